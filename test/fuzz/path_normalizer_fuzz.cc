// libFuzzer target for request path normalization (http::normalizePath), under both escaped-slash
// rules. Besides crashes and sanitizer reports, it aborts when a normalized path could still
// mean something else to an upstream: a dot segment, an empty segment, an escape that should
// have been decoded or refused, a character outside pchar; or when normalizing is not
// idempotent, needs more room than the input took, or the two rules disagree where they should
// not.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "proxy/http/codec.h"

namespace sluice::http {
namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case included: escapes come out upper-cased
}

bool unreserved(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// RFC 3986 pchar without '%' (checked as escapes), and '/'.
bool plainPathChar(char c) {
  return unreserved(static_cast<unsigned char>(c)) ||
         std::string_view("!$&'()*+,;=:@/").find(c) != std::string_view::npos;
}

bool hasEscapedSlash(std::string_view path) {
  for (size_t i = 0; i + 2 < path.size(); ++i) {
    if (path[i] != '%') continue;
    const char a = path[i + 1], b = path[i + 2];
    if ((a == '2' && (b == 'f' || b == 'F')) || (a == '5' && (b == 'c' || b == 'C'))) return true;
  }
  return false;
}

void checkNormalized(std::string_view path, EscapedSlashes rule) {
  check(!path.empty() && path[0] == '/', "starts with '/'");
  check(path.find("//") == std::string_view::npos, "no empty segment");
  check(path.find("/./") == std::string_view::npos && path.find("/../") == std::string_view::npos,
        "no dot segment");
  check(!path.ends_with("/.") && !path.ends_with("/.."), "no final dot segment");
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      check(plainPathChar(path[i]), "only pchar and '/'");
      continue;
    }
    check(i + 2 < path.size(), "escape is complete");
    const int hi = hexDigit(path[i + 1]), lo = hexDigit(path[i + 2]);
    check(hi >= 0 && lo >= 0, "escape is upper-case hex");
    const int c = hi * 16 + lo;
    check(!unreserved(c), "unreserved characters are decoded");
    check(c >= 0x20 && c != 0x7f, "no encoded control character");
    if (c == '/' || c == '\\') {
      check(rule == EscapedSlashes::kKeepEncoded, "escaped slashes only when kept");
    }
    i += 2;
  }
}

// Normalizes `path` under `rule`; checks the output and what depends on it. Returns whether it
// was accepted and the result in out[0, *len).
bool normalizeChecked(std::string_view path, EscapedSlashes rule, char* out, size_t cap,
                      size_t* len) {
  if (!normalizePath(path, out, cap, len, rule)) return false;
  const std::string_view normalized(out, *len);
  check(*len <= path.size(), "never lengthens");
  checkNormalized(normalized, rule);

  char again[kPathCapacity];
  size_t again_len = 0;
  check(normalizePath(normalized, again, sizeof(again), &again_len, rule), "output is accepted");
  check(std::string_view(again, again_len) == normalized, "idempotent");

  // A buffer as long as the input always suffices (codec.h), and gives the same output.
  check(normalizePath(path, again, path.size(), &again_len, rule), "input-sized buffer suffices");
  check(std::string_view(again, again_len) == normalized, "same output in an input-sized buffer");
  return true;
}

}  // namespace
}  // namespace sluice::http

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace sluice::http;
  std::string_view path(reinterpret_cast<const char*>(bytes), size);
  if (path.size() > kPathCapacity) path = path.substr(0, kPathCapacity);
  char rejected[kPathCapacity], kept[kPathCapacity];
  size_t rejected_len = 0, kept_len = 0;
  const bool by_reject =
      normalizeChecked(path, EscapedSlashes::kReject, rejected, sizeof(rejected), &rejected_len);
  const bool by_keep =
      normalizeChecked(path, EscapedSlashes::kKeepEncoded, kept, sizeof(kept), &kept_len);
  // The rules differ only on escaped slashes: what one accepts without them, so does the other.
  if (by_reject) {
    check(by_keep && std::string_view(rejected, rejected_len) == std::string_view(kept, kept_len),
          "kReject's answers are kKeepEncoded's");
  }
  if (!hasEscapedSlash(path)) check(by_reject == by_keep, "same verdict without escaped slashes");
  if (by_keep && hasEscapedSlash(path)) check(!by_reject, "kReject refuses escaped slashes");
  return 0;
}
