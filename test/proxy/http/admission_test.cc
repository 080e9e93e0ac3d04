#include "proxy/http/admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::http {
namespace {

AddressKey v4(const char* ip) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &sin->sin_addr);
  AddressKey key;
  EXPECT_TRUE(addressKey(ss, &key));
  return key;
}

AddressKey v6(const char* ip) {
  sockaddr_storage ss{};
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &sin6->sin6_addr);
  AddressKey key;
  EXPECT_TRUE(addressKey(ss, &key));
  return key;
}

TEST(AddressKeyTest, Ipv4IsItsMappedIpv6Address) {
  EXPECT_EQ(v4("10.1.2.3"), v6("::ffff:10.1.2.3"));
  EXPECT_NE(v4("10.1.2.3"), v4("10.1.2.4"));
  EXPECT_NE(v6("2001:db8::1"), v6("2001:db8::2"));
  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  AddressKey key;
  EXPECT_FALSE(addressKey(unix_peer, &key));
}

TEST(AddressCountsTest, ExactLimitPerAddress) {
  AddressCounts counts;
  const AddressKey a = v4("192.0.2.1"), b = v4("192.0.2.2");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(counts.acquire(a, 3)) << i;
  EXPECT_FALSE(counts.acquire(a, 3));
  EXPECT_EQ(counts.count(a), 3u);
  // Another address has its own count.
  EXPECT_TRUE(counts.acquire(b, 3));
  counts.release(a);
  EXPECT_TRUE(counts.acquire(a, 3));
  EXPECT_FALSE(counts.acquire(a, 3));
  // A lower limit (a config change) applies to the connections already open.
  EXPECT_FALSE(counts.acquire(a, 2));
  EXPECT_EQ(counts.count(a), 3u);
}

TEST(AddressCountsTest, DepartedClientsLeaveNoEntry) {
  AddressCounts counts;
  for (int i = 0; i < 1000; ++i) {
    AddressKey k = v4("198.51.100.0");
    k[14] = static_cast<uint8_t>(i >> 8);
    k[15] = static_cast<uint8_t>(i);
    ASSERT_TRUE(counts.acquire(k, 1));
  }
  EXPECT_EQ(counts.addresses(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    AddressKey k = v4("198.51.100.0");
    k[14] = static_cast<uint8_t>(i >> 8);
    k[15] = static_cast<uint8_t>(i);
    counts.release(k);
  }
  EXPECT_EQ(counts.addresses(), 0u);
  // Refusals leave no entry either.
  const AddressKey a = v4("203.0.113.9");
  EXPECT_FALSE(counts.acquire(a, 0));
  EXPECT_EQ(counts.addresses(), 0u);
}

// Workers racing on one address never get more than the limit between them.
TEST(AddressCountsTest, ExactUnderConcurrency) {
  AddressCounts counts;
  const AddressKey a = v4("192.0.2.7");
  constexpr uint32_t kLimit = 5;
  std::atomic<int> held{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!counts.acquire(a, kLimit)) continue;
        int now = held.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        held.fetch_sub(1);
        counts.release(a);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(most.load(), static_cast<int>(kLimit));
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(counts.count(a), 0u);
}

TEST(ConnectionRateTest, BurstOfOneSecondThenTheRate) {
  constexpr int64_t kMs = 1'000'000;
  ConnectionRate rate;
  const int64_t t0 = 5'000 * kMs;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(rate.admit(5, t0)) << i;
  EXPECT_FALSE(rate.admit(5, t0));
  EXPECT_FALSE(rate.admit(5, t0 + 199 * kMs));
  EXPECT_TRUE(rate.admit(5, t0 + 200 * kMs));
  EXPECT_FALSE(rate.admit(5, t0 + 200 * kMs));
  // A quiet second refills the burst, no more.
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += rate.admit(5, t0 + 3'000 * kMs) ? 1 : 0;
  EXPECT_EQ(admitted, 5);
}

TEST(ConnectionRateTest, SharedAcrossThreads) {
  ConnectionRate rate;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) admitted += rate.admit(100, 1'000'000'000) ? 1 : 0;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100);
}

}  // namespace
}  // namespace sluice::http
