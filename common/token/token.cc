#include "common/token/token.h"

#include <arpa/inet.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sluice::token {

absl::StatusOr<std::string> readFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", flag, " ", path));
  std::string line;
  std::getline(in, line);
  const std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is empty"));
  for (unsigned char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", path, ": the token must be printable ASCII without spaces"));
    }
  }
  return token;
}

bool bearerMatches(absl::string_view authorization, absl::string_view token) {
  constexpr absl::string_view kScheme = "Bearer ";
  const std::string want = absl::StrCat(kScheme, token);
  // Every byte of the expected value is compared whatever the input, so the time depends on
  // the token's length only.
  unsigned char diff = authorization.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < want.size(); ++i) {
    const unsigned char got = i < authorization.size() ? authorization[i] : 0;
    diff |= static_cast<unsigned char>(got ^ static_cast<unsigned char>(want[i]));
  }
  return diff == 0;
}

bool isLoopback(absl::string_view address) {
  if (absl::StartsWith(address, "unix:")) return true;
  std::string host(address);
  const size_t colon = host.rfind(':');
  if (colon != std::string::npos && host.find(':') == colon) {
    host.resize(colon);  // HOST:PORT
  } else if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return false;
    host = host.substr(1, close - 1);  // [IPv6]:PORT
  }
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  unsigned char v4[4], v6[16];
  if (inet_pton(AF_INET, host.c_str(), v4) == 1) return v4[0] == 127;
  if (inet_pton(AF_INET6, host.c_str(), v6) != 1) return false;
  static constexpr unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(v6, v6 + 16, kLoopback6)) return true;
  return std::equal(v6, v6 + 12, kMapped) && v6[12] == 127;
}

}  // namespace sluice::token
