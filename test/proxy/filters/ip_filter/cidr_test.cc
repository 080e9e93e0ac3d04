// Addresses, CIDR sets at their boundaries (against a brute-force model too), the allow/deny
// decision and the client address behind trusted proxies.
#include "proxy/filters/ip_filter/cidr.h"

#include <sys/un.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Every heap allocation in this test binary, so that a test can show contains() makes none.
std::atomic<int64_t> g_allocations{0};

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace sluice::ip_filter {
namespace {

using ::testing::HasSubstr;

IpAddress ip(std::string_view text) {
  std::optional<IpAddress> address = IpAddress::parse(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(IpAddress{});
}

CidrSet cidrs(const std::vector<std::string>& entries) {
  absl::StatusOr<CidrSet> set = CidrSet::parse(entries);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *std::move(set) : CidrSet();
}

TEST(IpAddressTest, ParsesAndPrintsBothFamilies) {
  const IpAddress v4 = ip("192.0.2.1");
  EXPECT_EQ(v4.family, AF_INET);
  EXPECT_EQ(v4.bytes[0], 192);
  EXPECT_EQ(v4.bytes[3], 1);
  EXPECT_EQ(v4.toString(), "192.0.2.1");
  const IpAddress v6 = ip("2001:DB8::1");
  EXPECT_EQ(v6.family, AF_INET6);
  EXPECT_EQ(v6.bytes[0], 0x20);
  EXPECT_EQ(v6.bytes[15], 1);
  EXPECT_EQ(v6.toString(), "2001:db8::1");
  EXPECT_FALSE(v6.isV4Mapped());
  const IpAddress mapped = ip("::ffff:192.0.2.1");
  EXPECT_EQ(mapped.family, AF_INET6);
  EXPECT_TRUE(mapped.isV4Mapped());
  EXPECT_EQ(mapped.toString(), "::ffff:192.0.2.1");
  EXPECT_EQ(ip("::ffff:c000:201"), mapped);
  EXPECT_EQ(ip("0.0.0.0").toString(), "0.0.0.0");
  EXPECT_EQ(ip("::").toString(), "::");
}

TEST(IpAddressTest, RejectsAnythingButABareAddress) {
  for (const std::string text : {
           "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4:80",
           "[::1]", "[::1]:80", "fe80::1%eth0", "1::2::3", "12345::", "localhost", "0x7f.0.0.1",
           "2001:db8::/32",
           "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1",  // longer than any address
       }) {
    EXPECT_EQ(IpAddress::parse(text), std::nullopt) << text;
  }
  EXPECT_EQ(IpAddress::parse(std::string_view("1.2.3.4\0junk", 12)), std::nullopt);
}

TEST(IpAddressTest, FromSockaddr) {
  sockaddr_storage storage{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(storage);
  v4.sin_family = AF_INET;
  v4.sin_port = htons(8080);
  v4.sin_addr.s_addr = htonl(0xC0000201);
  EXPECT_EQ(IpAddress::fromSockaddr(storage), ip("192.0.2.1"));

  storage = {};
  auto& v6 = reinterpret_cast<sockaddr_in6&>(storage);
  v6.sin6_family = AF_INET6;
  const IpAddress expected = ip("2001:db8::7");
  std::memcpy(&v6.sin6_addr, expected.bytes, 16);
  EXPECT_EQ(IpAddress::fromSockaddr(storage), expected);

  storage = {};
  reinterpret_cast<sockaddr_un&>(storage).sun_family = AF_UNIX;
  EXPECT_EQ(IpAddress::fromSockaddr(storage), std::nullopt);
}

TEST(CidrSetTest, EmptySetContainsNothing) {
  const CidrSet set = cidrs({});
  EXPECT_TRUE(set.empty());
  EXPECT_FALSE(set.contains(ip("10.0.0.1")));
  EXPECT_FALSE(set.contains(ip("::1")));
}

TEST(CidrSetTest, V4SlashZeroIsEveryIpv4ClientAndNoIpv6One) {
  const CidrSet set = cidrs({"0.0.0.0/0"});
  EXPECT_TRUE(set.contains(ip("0.0.0.0")));
  EXPECT_TRUE(set.contains(ip("255.255.255.255")));
  EXPECT_TRUE(set.contains(ip("::ffff:8.8.8.8")));
  EXPECT_FALSE(set.contains(ip("::1")));
}

TEST(CidrSetTest, V6SlashZeroIsEveryIpv6ClientAndNoIpv4One) {
  const CidrSet set = cidrs({"::/0"});
  EXPECT_TRUE(set.contains(ip("::")));
  EXPECT_TRUE(set.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(set.contains(ip("10.0.0.1")));
  EXPECT_FALSE(set.contains(ip("::ffff:10.0.0.1")));
}

TEST(CidrSetTest, Slash32AndBareAddressAreOneAddress) {
  for (const char* entry : {"192.0.2.7/32", "192.0.2.7"}) {
    const CidrSet set = cidrs({entry});
    EXPECT_TRUE(set.contains(ip("192.0.2.7"))) << entry;
    EXPECT_FALSE(set.contains(ip("192.0.2.6"))) << entry;
    EXPECT_FALSE(set.contains(ip("192.0.2.8"))) << entry;
  }
}

TEST(CidrSetTest, Slash31Boundaries) {
  const CidrSet set = cidrs({"10.0.0.2/31"});
  EXPECT_FALSE(set.contains(ip("10.0.0.1")));
  EXPECT_TRUE(set.contains(ip("10.0.0.2")));
  EXPECT_TRUE(set.contains(ip("10.0.0.3")));
  EXPECT_FALSE(set.contains(ip("10.0.0.4")));
}

TEST(CidrSetTest, Slash8Boundaries) {
  const CidrSet set = cidrs({"10.0.0.0/8"});
  EXPECT_FALSE(set.contains(ip("9.255.255.255")));
  EXPECT_TRUE(set.contains(ip("10.0.0.0")));
  EXPECT_TRUE(set.contains(ip("10.255.255.255")));
  EXPECT_FALSE(set.contains(ip("11.0.0.0")));
}

TEST(CidrSetTest, Slash128AndBareV6AddressAreOneAddress) {
  for (const char* entry : {"2001:db8::1/128", "2001:db8::1"}) {
    const CidrSet set = cidrs({entry});
    EXPECT_TRUE(set.contains(ip("2001:db8::1"))) << entry;
    EXPECT_FALSE(set.contains(ip("2001:db8::"))) << entry;
    EXPECT_FALSE(set.contains(ip("2001:db8::2"))) << entry;
  }
}

TEST(CidrSetTest, V6PrefixBoundaries) {
  const CidrSet set = cidrs({"2001:db8::/32", "fe80::/127"});
  EXPECT_FALSE(set.contains(ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(set.contains(ip("2001:db8::")));
  EXPECT_TRUE(set.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(set.contains(ip("2001:db9::")));
  EXPECT_TRUE(set.contains(ip("fe80::1")));
  EXPECT_FALSE(set.contains(ip("fe80::2")));
}

TEST(CidrSetTest, MappedAddressesMatchIpv4Entries) {
  const CidrSet set = cidrs({"192.0.2.0/24"});
  EXPECT_TRUE(set.contains(ip("::ffff:192.0.2.200")));
  EXPECT_FALSE(set.contains(ip("::ffff:192.0.3.1")));
  // The same bytes outside the mapped prefix are an ordinary IPv6 address.
  EXPECT_FALSE(set.contains(ip("::192.0.2.200")));
}

TEST(CidrSetTest, MappedEntriesAreIpv4Entries) {
  const CidrSet set = cidrs({"::ffff:10.0.0.0/104", "::ffff:192.0.2.1"});
  EXPECT_TRUE(set.contains(ip("10.1.2.3")));
  EXPECT_TRUE(set.contains(ip("::ffff:10.1.2.3")));
  EXPECT_FALSE(set.contains(ip("11.0.0.0")));
  EXPECT_TRUE(set.contains(ip("192.0.2.1")));
  EXPECT_FALSE(set.contains(ip("192.0.2.2")));

  const CidrSet all_mapped = cidrs({"::ffff:0:0/96"});
  EXPECT_TRUE(all_mapped.contains(ip("1.2.3.4")));
  EXPECT_FALSE(all_mapped.contains(ip("::1")));
}

TEST(CidrSetTest, HostBitsAreCleared) {
  const CidrSet set = cidrs({"10.1.2.3/8", "2001:db8::1/32"});
  EXPECT_TRUE(set.contains(ip("10.200.0.0")));
  EXPECT_FALSE(set.contains(ip("11.0.0.0")));
  EXPECT_TRUE(set.contains(ip("2001:db8:abcd::")));
}

TEST(CidrSetTest, OverlappingAndAdjacentEntriesMerge) {
  const CidrSet set = cidrs({"10.1.0.0/16", "10.0.0.0/8", "11.0.0.0/8", "255.255.255.255",
                             "0.0.0.0/1", "::/1", "8000::/1"});
  EXPECT_TRUE(set.contains(ip("10.1.0.1")));
  EXPECT_TRUE(set.contains(ip("11.255.255.255")));
  EXPECT_TRUE(set.contains(ip("127.255.255.255")));
  EXPECT_FALSE(set.contains(ip("128.0.0.0")));
  EXPECT_FALSE(set.contains(ip("255.255.255.254")));
  EXPECT_TRUE(set.contains(ip("255.255.255.255")));
  EXPECT_TRUE(set.contains(ip("7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(set.contains(ip("8000::")));
  EXPECT_TRUE(set.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
}

TEST(CidrSetTest, OneAddressGapStaysOpen) {
  const CidrSet set = cidrs({"192.0.2.0/31", "192.0.2.3", "2001:db8::/127", "2001:db8::3"});
  EXPECT_TRUE(set.contains(ip("192.0.2.1")));
  EXPECT_FALSE(set.contains(ip("192.0.2.2")));
  EXPECT_TRUE(set.contains(ip("192.0.2.3")));
  EXPECT_FALSE(set.contains(ip("2001:db8::2")));
  EXPECT_TRUE(set.contains(ip("2001:db8::3")));
}

TEST(CidrSetTest, ErrorsNameTheBadEntry) {
  struct Case {
    std::string entry, message;
  };
  for (const Case& c : std::vector<Case>{
           {"10.0.0.0/33", "IPv4 prefixes are 0 to 32"},
           {"2001:db8::/129", "IPv6 prefixes are 0 to 128"},
           {"10.0.0.0/", "bad prefix length"},
           {"10.0.0.0/-1", "bad prefix length"},
           {"10.0.0.0/+8", "bad prefix length"},
           {"10.0.0.0/8 ", "bad prefix length"},
           {"10.0.0.0/1000", "bad prefix length"},
           {"10.0.0.0/8/8", "bad prefix length"},
           {"junk", "not an IP address"},
           {"/8", "not an IP address"},
           {"", "not an IP address"},
           {" 10.0.0.0/8", "not an IP address"},
           {"10.0.0/8", "not an IP address"},
       }) {
    const absl::StatusOr<CidrSet> set = CidrSet::parse({"192.0.2.0/24", c.entry});
    ASSERT_FALSE(set.ok()) << c.entry;
    EXPECT_THAT(set.status().message(), HasSubstr(absl::StrCat("'", c.entry, "'")));
    EXPECT_THAT(set.status().message(), HasSubstr(c.message)) << c.entry;
  }
}

// The bit of an address at `index`, counted from the most significant.
bool bit(const IpAddress& address, int index) {
  return (address.bytes[index / 8] >> (7 - index % 8)) & 1;
}

TEST(CidrSetTest, AgreesWithBruteForceOnRandomSets) {
  std::mt19937_64 random(42);
  // Mostly zero bytes, so that entries overlap, nest and touch.
  auto randomAddress = [&](int family) {
    IpAddress address;
    address.family = family;
    const int size = family == AF_INET ? 4 : 16;
    for (int i = 0; i < size; ++i) address.bytes[i] = random() % 4 == 0 ? random() : 0;
    // IPv6 ones start with 0x20..0x23 so that none is IPv4-mapped, which the model does not know.
    address.bytes[0] = (family == AF_INET6 ? 0x20 : 0) | (address.bytes[0] & 0x03);
    return address;
  };
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> entries;
    std::vector<std::pair<IpAddress, int>> model;
    for (int i = 0; i < 8; ++i) {
      const int family = random() % 2 ? AF_INET : AF_INET6;
      const int width = family == AF_INET ? 32 : 128;
      const IpAddress network = randomAddress(family);
      const int prefix = random() % (width + 1);
      entries.push_back(absl::StrCat(network.toString(), "/", prefix));
      model.emplace_back(network, prefix);
    }
    const CidrSet set = cidrs(entries);
    for (int probe = 0; probe < 200; ++probe) {
      const IpAddress address = randomAddress(random() % 2 ? AF_INET : AF_INET6);
      bool expected = false;
      for (const auto& [network, prefix] : model) {
        if (network.family != address.family) continue;
        bool match = true;
        for (int b = 0; b < prefix && match; ++b) match = bit(network, b) == bit(address, b);
        expected = expected || match;
      }
      ASSERT_EQ(set.contains(address), expected)
          << address.toString() << " in " << absl::StrJoin(entries, ",");
    }
  }
}

TEST(CidrSetTest, ContainsDoesNotAllocate) {
  const int64_t at_start = g_allocations.load();
  const CidrSet set = cidrs({"10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "fe80::/10"});
  ASSERT_GT(g_allocations.load(), at_start);  // the counter sees parse()'s allocations
  const IpAddress addresses[] = {ip("10.1.1.1"), ip("8.8.8.8"), ip("2001:db8::1"),
                                 ip("::ffff:192.0.2.1")};
  const int64_t before = g_allocations.load();
  int found = 0;
  for (const IpAddress& address : addresses) found += set.contains(address);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_EQ(found, 3);
}

TEST(IpFilterTest, DenyWinsOverAllow) {
  const IpFilter filter(cidrs({"10.0.0.0/8"}), cidrs({"10.6.0.0/16"}));
  EXPECT_TRUE(filter.admits(ip("10.1.0.1")));
  EXPECT_FALSE(filter.admits(ip("10.6.0.1")));
  EXPECT_FALSE(filter.admits(ip("192.0.2.1")));
}

TEST(IpFilterTest, EmptyAllowAdmitsAllButDenied) {
  const IpFilter filter(CidrSet(), cidrs({"192.0.2.0/24", "2001:db8::/32"}));
  EXPECT_TRUE(filter.admits(ip("10.1.0.1")));
  EXPECT_TRUE(filter.admits(ip("::1")));
  EXPECT_FALSE(filter.admits(ip("192.0.2.1")));
  EXPECT_FALSE(filter.admits(ip("::ffff:192.0.2.1")));
  EXPECT_FALSE(filter.admits(ip("2001:db8::5")));
}

TEST(IpFilterTest, NoListsAdmitEverything) {
  const IpFilter filter{CidrSet(), CidrSet()};
  EXPECT_TRUE(filter.admits(ip("10.1.0.1")));
  EXPECT_TRUE(filter.admits(ip("::")));
}

class ClientAddressTest : public ::testing::Test {
 protected:
  const IpAddress peer_ = ip("10.0.0.1");
};

TEST_F(ClientAddressTest, ZeroHopsIsThePeerWhateverTheHeaderSays) {
  EXPECT_EQ(clientAddress(peer_, "192.0.2.1", 0), peer_);
  EXPECT_EQ(clientAddress(peer_, "garbage", 0), peer_);
  EXPECT_EQ(clientAddress(peer_, "", 0), peer_);
}

TEST_F(ClientAddressTest, OneHopIsTheRightmostEntry) {
  EXPECT_EQ(clientAddress(peer_, "192.0.2.1", 1), ip("192.0.2.1"));
  EXPECT_EQ(clientAddress(peer_, "198.51.100.9, 192.0.2.1", 1), ip("192.0.2.1"));
  EXPECT_EQ(clientAddress(peer_, "2001:db8::1", 1), ip("2001:db8::1"));
}

TEST_F(ClientAddressTest, TwoHopsIsTheSecondFromTheRight) {
  EXPECT_EQ(clientAddress(peer_, "203.0.113.5,198.51.100.9, 192.0.2.1", 2), ip("198.51.100.9"));
  // Header lines joined with "," by the caller count like one list.
  EXPECT_EQ(clientAddress(peer_, "198.51.100.9,192.0.2.1", 2), ip("198.51.100.9"));
}

TEST_F(ClientAddressTest, FewerEntriesThanHopsIsThePeer) {
  EXPECT_EQ(clientAddress(peer_, "192.0.2.1", 2), peer_);
  EXPECT_EQ(clientAddress(peer_, "198.51.100.9, 192.0.2.1", 3), peer_);
  EXPECT_EQ(clientAddress(peer_, "", 1), peer_);
  EXPECT_EQ(clientAddress(peer_, " \t", 1), peer_);
}

TEST_F(ClientAddressTest, SpacesAndTabsAroundEntriesAreTrimmed) {
  EXPECT_EQ(clientAddress(peer_, "  198.51.100.9\t,\t192.0.2.1  ", 2), ip("198.51.100.9"));
}

TEST_F(ClientAddressTest, MalformedTrustedEntriesAreRejected) {
  for (const char* header : {"garbage", "192.0.2.1:8080", "[2001:db8::1]", "[2001:db8::1]:443",
                             "192.0.2.1,", "unknown", "192.0.2.1 192.0.2.2", "192.0.2"}) {
    EXPECT_EQ(clientAddress(peer_, header, 1), std::nullopt) << header;
  }
  // The chosen entry is fine but a trusted proxy's entry to its right is not.
  EXPECT_EQ(clientAddress(peer_, "192.0.2.1, junk", 2), std::nullopt);
  EXPECT_EQ(clientAddress(peer_, "192.0.2.1,,198.51.100.9", 2), std::nullopt);
  // Short, but what is there must still be addresses.
  EXPECT_EQ(clientAddress(peer_, "junk", 3), std::nullopt);
}

TEST_F(ClientAddressTest, EntriesLeftOfTheChosenOneAreNotRead) {
  EXPECT_EQ(clientAddress(peer_, "not-an-address, <script>, 192.0.2.1", 1), ip("192.0.2.1"));
  EXPECT_EQ(clientAddress(peer_, ",, 198.51.100.9, 192.0.2.1", 2), ip("198.51.100.9"));
}

}  // namespace
}  // namespace sluice::ip_filter
