#pragma once

// Character classes of RFC 9110/9112 and RFC 3986 as 256-entry tables: one load per byte on the
// hot path. Internal to //proxy/http:codec.
#include <array>
#include <cstdint>
#include <string_view>

namespace sluice::http::chars {

enum : uint8_t {
  kToken = 1 << 0,       // tchar: header names, methods, codings, Connection options
  kFieldValue = 1 << 1,  // field-vchar / SP / HTAB (obs-text included)
  kPath = 1 << 2,        // pchar and '/', '%' (escapes are checked separately)
  kQuery = 1 << 3,       // VCHAR except '#'
  kUnreserved = 1 << 4,  // ALPHA / DIGIT / "-" / "." / "_" / "~"
  kHostName = 1 << 5,    // a DNS-style reg-name: unreserved
  kHex = 1 << 6,
};

constexpr std::array<uint8_t, 256> makeTable() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool unreserved = alpha || digit || c == '-' || c == '.' || c == '_' || c == '~';
    const bool sub_delim =
        std::string_view("!$&'()*+,;=").find(static_cast<char>(c)) != std::string_view::npos;
    uint8_t v = 0;
    if (alpha || digit ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos) {
      v |= kToken;
    }
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) v |= kFieldValue;
    if (unreserved || sub_delim || c == ':' || c == '@' || c == '/' || c == '%') v |= kPath;
    if (c > 0x20 && c < 0x7f && c != '#') v |= kQuery;
    if (unreserved) v |= kUnreserved | kHostName;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    t[c] = v;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kTable = makeTable();

inline bool is(char c, uint8_t cls) { return (kTable[static_cast<uint8_t>(c)] & cls) != 0; }

inline int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool isOws(char c) { return c == ' ' || c == '\t'; }

}  // namespace sluice::http::chars
