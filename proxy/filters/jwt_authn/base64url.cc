#include "proxy/filters/jwt_authn/base64url.h"

#include <array>
#include <cstdint>

namespace sluice::jwt_authn {
namespace {

constexpr uint8_t kInvalid = 0xff;

constexpr std::array<uint8_t, 256> makeTable() {
  std::array<uint8_t, 256> table{};
  for (uint8_t& v : table) v = kInvalid;
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<uint8_t>(i);
  }
  return table;
}

constexpr std::array<uint8_t, 256> kTable = makeTable();

}  // namespace

bool decodeBase64Url(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 == 1) return false;
  out->reserve(in.size() / 4 * 3 + 2);
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    const uint8_t v = kTable[static_cast<uint8_t>(c)];
    if (v == kInvalid) return false;
    bits = (bits << 6) | v;
    if (++count == 4) {
      out->push_back(static_cast<char>(bits >> 16));
      out->push_back(static_cast<char>(bits >> 8));
      out->push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  // 2 characters carry 1 byte and 4 spare bits, 3 characters 2 bytes and 2 spare bits.
  if (count == 2) {
    if ((bits & 0xf) != 0) return false;
    out->push_back(static_cast<char>(bits >> 4));
  } else if (count == 3) {
    if ((bits & 0x3) != 0) return false;
    out->push_back(static_cast<char>(bits >> 10));
    out->push_back(static_cast<char>(bits >> 2));
  }
  return true;
}

}  // namespace sluice::jwt_authn
