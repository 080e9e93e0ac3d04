#pragma once

// IP addresses, CIDR sets and the allow/deny decision of the IP filter, plus the client address
// behind trusted proxies (X-Forwarded-For). Sets are compiled once per config generation and
// then read by every worker; lookups neither allocate nor lock.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4
// client) is an IPv4 client: it matches IPv4 entries and never IPv6 ones, so "::/0" does not
// cover IPv4 clients and 0.0.0.0/0 covers all of them however the socket reports them.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"

namespace sluice::ip_filter {

struct IpAddress {
  int family = AF_INET;  // AF_INET or AF_INET6
  // Network byte order; an IPv4 address uses the first 4 bytes and leaves the rest zero.
  uint8_t bytes[16] = {};

  // A dotted quad (no leading zeros, no shorthand) or an RFC 4291 IPv6 text, including the
  // ::ffff:a.b.c.d form. No brackets, ports or zone indices.
  static std::optional<IpAddress> parse(std::string_view text);
  // nullopt for families other than AF_INET and AF_INET6 (e.g. a Unix socket peer).
  static std::optional<IpAddress> fromSockaddr(const sockaddr_storage& address);

  std::string toString() const;
  bool isV4Mapped() const;

  bool operator==(const IpAddress& other) const = default;
};

// A set of IPv4 and IPv6 CIDR ranges.
class CidrSet {
 public:
  // Entries are "10.0.0.0/8", "2001:db8::/32" or a bare address (= /32 or /128). Host bits under
  // the prefix are accepted and cleared, as Envoy does: "10.1.2.3/8" is 10.0.0.0/8. An IPv4-mapped
  // entry with a prefix of at least 96 ("::ffff:10.0.0.0/104") is the IPv4 entry it maps
  // (10.0.0.0/8). The error names the first bad entry.
  static absl::StatusOr<CidrSet> parse(const std::vector<std::string>& entries);

  // An empty set contains nothing.
  CidrSet() = default;

  bool contains(const IpAddress& address) const;
  bool empty() const { return v4_.empty() && v6_.empty(); }

 private:
  template <class T>
  struct Range {
    T first, last;
  };
  // Sorted, disjoint and non-adjacent, so one binary search answers a lookup.
  std::vector<Range<uint32_t>> v4_;
  std::vector<Range<absl::uint128>> v6_;
};

// Deny wins; when the allow set is not empty an address must also be in it.
class IpFilter {
 public:
  IpFilter(CidrSet allow, CidrSet deny);
  bool admits(const IpAddress& address) const;

 private:
  CidrSet allow_, deny_;
};

// The client's address as Envoy's xff_num_trusted_hops computes it with use_remote_address:
// `peer` (the connection's remote address) is the last trusted proxy, and with N trusted hops the
// client is the Nth entry from the right of X-Forwarded-For as received, before this proxy
// appends anything. `x_forwarded_for` is every X-Forwarded-For value joined with ",".
//  - 0 hops: `peer`; the header is not read.
//  - Otherwise the rightmost N entries are read (trusted proxies wrote them); nullopt, for the
//    caller to answer 400, when one of them is not a bare address after trimming spaces and tabs.
//    Envoy falls back to the peer instead, which would silently give every such request the
//    proxy's address. Entries further left came from the client and are not read.
//  - Fewer than N entries (an absent or blank header has none): `peer`, as Envoy does.
std::optional<IpAddress> clientAddress(const IpAddress& peer, std::string_view x_forwarded_for,
                                       uint32_t trusted_hops);

}  // namespace sluice::ip_filter
