#include "proxy/filters/ip_filter/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice::ip_filter {
namespace {

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

uint32_t loadV4(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

absl::uint128 loadV6(const uint8_t* bytes) {
  uint64_t high = 0, low = 0;
  for (int i = 0; i < 8; ++i) high = (high << 8) | bytes[i];
  for (int i = 8; i < 16; ++i) low = (low << 8) | bytes[i];
  return absl::MakeUint128(high, low);
}

// Masks with the top `prefix` bits set; shifting by the full width would be undefined.
uint32_t maskV4(int prefix) { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
absl::uint128 maskV6(int prefix) {
  return prefix == 0 ? absl::uint128(0) : ~absl::uint128(0) << (128 - prefix);
}

std::string_view trimOws(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// 1 to 3 decimal digits, nothing else.
std::optional<int> parsePrefixLength(std::string_view text) {
  if (text.empty() || text.size() > 3) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// Sorts and merges overlapping or adjacent ranges.
template <class Range>
void normalize(std::vector<Range>& ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  std::vector<Range> merged;
  for (const Range& range : ranges) {
    // `last + 1` would wrap when the previous range reaches the top of the space.
    if (!merged.empty() &&
        (merged.back().last == ~decltype(range.last)(0) || range.first <= merged.back().last + 1)) {
      merged.back().last = std::max(merged.back().last, range.last);
    } else {
      merged.push_back(range);
    }
  }
  ranges = std::move(merged);
}

template <class Range, class T>
bool rangesContain(const std::vector<Range>& ranges, T value) {
  auto after = std::upper_bound(ranges.begin(), ranges.end(), value,
                                [](T v, const Range& range) { return v < range.first; });
  return after != ranges.begin() && value <= std::prev(after)->last;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  char buffer[INET6_ADDRSTRLEN];
  // inet_pton reads a C string: an embedded NUL would hide whatever follows it.
  if (text.empty() || text.size() >= sizeof(buffer) || text.find('\0') != text.npos) {
    return std::nullopt;
  }
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  IpAddress address;
  address.family = text.find(':') == text.npos ? AF_INET : AF_INET6;
  if (inet_pton(address.family, buffer, address.bytes) != 1) return std::nullopt;
  return address;
}

std::optional<IpAddress> IpAddress::fromSockaddr(const sockaddr_storage& address) {
  IpAddress result;
  result.family = address.ss_family;
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    std::memcpy(result.bytes, &v4.sin_addr, 4);
  } else if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    std::memcpy(result.bytes, &v6.sin6_addr, 16);
  } else {
    return std::nullopt;
  }
  return result;
}

std::string IpAddress::toString() const {
  char buffer[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bytes, buffer, sizeof(buffer)) == nullptr) return "";
  return buffer;
}

bool IpAddress::isV4Mapped() const {
  return family == AF_INET6 && std::memcmp(bytes, kV4MappedPrefix, sizeof(kV4MappedPrefix)) == 0;
}

absl::StatusOr<CidrSet> CidrSet::parse(const std::vector<std::string>& entries) {
  CidrSet set;
  for (const std::string& entry : entries) {
    const size_t slash = entry.find('/');
    const std::optional<IpAddress> address =
        IpAddress::parse(std::string_view(entry).substr(0, slash));
    if (!address) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", entry, "' is not an IP address or a CIDR range such as 10.0.0.0/8"));
    }
    const int width = address->family == AF_INET ? 32 : 128;
    int prefix = width;
    if (slash != entry.npos) {
      const std::optional<int> parsed =
          parsePrefixLength(std::string_view(entry).substr(slash + 1));
      if (!parsed || *parsed > width) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", entry, "' has a bad prefix length: ", address->family == AF_INET ? "IPv4" : "IPv6",
            " prefixes are 0 to ", width));
      }
      prefix = *parsed;
    }
    if (address->family == AF_INET || (address->isV4Mapped() && prefix >= 96)) {
      const int v4_prefix = address->family == AF_INET ? prefix : prefix - 96;
      const uint32_t mask = maskV4(v4_prefix);
      const uint32_t first = loadV4(address->bytes + (address->family == AF_INET ? 0 : 12)) & mask;
      set.v4_.push_back({first, first | ~mask});
    } else {
      const absl::uint128 mask = maskV6(prefix);
      const absl::uint128 first = loadV6(address->bytes) & mask;
      set.v6_.push_back({first, first | ~mask});
    }
  }
  normalize(set.v4_);
  normalize(set.v6_);
  return set;
}

bool CidrSet::contains(const IpAddress& address) const {
  if (address.family == AF_INET) return rangesContain(v4_, loadV4(address.bytes));
  if (address.isV4Mapped()) return rangesContain(v4_, loadV4(address.bytes + 12));
  if (address.family == AF_INET6) return rangesContain(v6_, loadV6(address.bytes));
  return false;
}

IpFilter::IpFilter(CidrSet allow, CidrSet deny)
    : allow_(std::move(allow)), deny_(std::move(deny)) {}

bool IpFilter::admits(const IpAddress& address) const {
  if (deny_.contains(address)) return false;
  return allow_.empty() || allow_.contains(address);
}

std::optional<IpAddress> clientAddress(const IpAddress& peer, std::string_view x_forwarded_for,
                                       uint32_t trusted_hops) {
  if (trusted_hops == 0) return peer;
  std::string_view rest = trimOws(x_forwarded_for);
  if (rest.empty()) return peer;
  for (uint32_t position = 1;; ++position) {
    const size_t comma = rest.rfind(',');
    const std::string_view entry = comma == rest.npos ? rest : rest.substr(comma + 1);
    const std::optional<IpAddress> address = IpAddress::parse(trimOws(entry));
    if (!address) return std::nullopt;
    if (position == trusted_hops) return address;
    if (comma == rest.npos) return peer;
    rest = rest.substr(0, comma);
  }
}

}  // namespace sluice::ip_filter
