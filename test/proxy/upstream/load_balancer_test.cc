// The load balancer: every policy's spread and weights, round robin's exact cycles, least
// request's preference, consistent hashing's stability, Envoy's priority and panic arithmetic,
// the stable key hash, and picks that never allocate.
#include "proxy/upstream/load_balancer.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Every heap allocation in this test binary, so that a test can show pick() makes none.
std::atomic<int64_t> g_allocations{0};

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace sluice::upstream {
namespace {

using ::testing::ElementsAre;

constexpr LbPolicy kAllPolicies[] = {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest,
                                     LbPolicy::kRandom, LbPolicy::kRingHash, LbPolicy::kMaglev};

std::string policyName(LbPolicy policy) {
  switch (policy) {
    case LbPolicy::kRoundRobin:
      return "RoundRobin";
    case LbPolicy::kLeastRequest:
      return "LeastRequest";
    case LbPolicy::kRandom:
      return "Random";
    case LbPolicy::kRingHash:
      return "RingHash";
    case LbPolicy::kMaglev:
      return "Maglev";
  }
  return "?";
}

// How far a policy's share of 10,000 picks may stray from a host's weight share. Round robin
// is exact up to the unfinished cycle; the random draws have a standard deviation of about 0.005;
// the ring adds its points' uneven spacing (512 points a host: about 4% of a host's share).
double tolerance(LbPolicy policy) {
  switch (policy) {
    case LbPolicy::kRoundRobin:
      return 0.001;
    case LbPolicy::kRingHash:
      return 0.03;
    default:
      return 0.02;
  }
}

// Stable keys that outlive the LbHosts viewing them: "10.0.<i / 200>.<i % 200>:8080".
std::string_view keyOf(int i) {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (int j = 0; j < 1000; ++j)
      k.push_back(absl::StrCat("10.0.", j / 200, ".", j % 200, ":8080"));
    return k;
  }();
  return keys[i];
}

// Healthy priority-0 hosts keyOf(0), keyOf(1) ... with these weights.
std::vector<LbHost> weighted(const std::vector<uint32_t>& weights) {
  std::vector<LbHost> hosts;
  for (size_t i = 0; i < weights.size(); ++i) {
    hosts.push_back({.key = keyOf(static_cast<int>(i)), .weight = weights[i]});
  }
  return hosts;
}

std::vector<LbHost> equal(int n) { return weighted(std::vector<uint32_t>(n, 1)); }

LbOptions withPolicy(LbPolicy policy) {
  LbOptions options;
  options.policy = policy;
  return options;
}

uint32_t idle(int) { return 0; }

std::vector<uint32_t> loads(const LoadBalancer& lb) {
  return {lb.priorityLoad().begin(), lb.priorityLoad().end()};
}

// Host shares of `n` picks with random numbers and random request hashes from a fixed seed.
std::vector<double> shares(const LoadBalancer& lb, size_t hosts, int n, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<double> out(hosts, 0);
  for (int i = 0; i < n; ++i) {
    const LbRequest request{.random = rng(), .has_hash = true, .hash = rng()};
    const int host = lb.pick(request, idle);
    EXPECT_GE(host, 0);
    if (host >= 0) out[host] += 1.0 / n;
  }
  return out;
}

// The host that the request hash `hash` goes to.
int hostOf(const LoadBalancer& lb, uint64_t hash, uint32_t attempt = 0) {
  return lb.pick(LbRequest{.has_hash = true, .hash = hash, .attempt = attempt}, idle);
}

TEST(HashKeyTest, MatchesReferenceXxHash64) {
  // From the reference implementation (libxxhash 0.8.1, XXH64 with seed 0). The inputs cover
  // the 32-byte stripes and each tail (8, 4 and single bytes).
  EXPECT_EQ(hashKey(""), 0xef46db3751d8e999u);
  EXPECT_EQ(hashKey("a"), 0xd24ec4f1a98c6e5bu);
  EXPECT_EQ(hashKey("abc"), 0x44bc2cf5ad770999u);
  EXPECT_EQ(hashKey("10.0.0.1:8080"), 0xcb972177068eb685u);
  EXPECT_EQ(hashKey("10.0.0.1:8080_0"), 0x23a29ae775dfd4a3u);
  EXPECT_EQ(hashKey("The quick brown fox jumps over the lazy dog"), 0x0b242d361fda71bcu);
  std::string bytes;
  for (int i = 0; i < 100; ++i) bytes.push_back(static_cast<char>(i));
  EXPECT_EQ(hashKey(bytes), 0x6ac1e58032166597u);
}

TEST(LoadBalancerTest, NoHostsPicksNothing) {
  for (LbPolicy policy : kAllPolicies) {
    auto lb = LoadBalancer::build(withPolicy(policy), {}, 2);
    EXPECT_EQ(lb->pick(LbRequest{.random = 7, .has_hash = true, .hash = 7}, idle), -1)
        << policyName(policy);
    EXPECT_TRUE(lb->priorityLoad().empty());
    EXPECT_FALSE(lb->panic());
  }
}

class PolicyTest : public ::testing::TestWithParam<LbPolicy> {
 protected:
  LbOptions options() const { return withPolicy(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(AllPolicies, PolicyTest, ::testing::ValuesIn(kAllPolicies),
                         [](const auto& info) { return policyName(info.param); });

TEST_P(PolicyTest, OneHostTakesEverything) {
  auto hosts = equal(1);
  auto lb = LoadBalancer::build(options(), hosts, 1);
  for (uint32_t i = 0; i < 100; ++i) {
    EXPECT_EQ(lb->pick(LbRequest{.random = i * 7919, .attempt = i % 3}, idle), 0);
    EXPECT_EQ(hostOf(*lb, i, i % 3), 0);
  }
}

TEST_P(PolicyTest, SharesFollowWeights) {
  auto hosts = weighted({1, 2, 3});
  auto lb = LoadBalancer::build(options(), hosts, 1);
  const std::vector<double> got = shares(*lb, hosts.size(), 10'000);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(got[i], (i + 1) / 6.0, tolerance(GetParam())) << i;
}

TEST_P(PolicyTest, EqualWeightsShareEvenly) {
  auto hosts = equal(5);
  auto lb = LoadBalancer::build(options(), hosts, 1);
  const std::vector<double> got = shares(*lb, hosts.size(), 10'000);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(got[i], 0.2, tolerance(GetParam())) << i;
}

TEST_P(PolicyTest, LightHostNextToAHeavyOneGetsItsShare) {
  auto hosts = weighted({1000, 1});
  auto lb = LoadBalancer::build(options(), hosts, 1);
  // Expected 1 in 1001, about 100 of 100,000 picks. Coarse on the ring, where the light host has
  // 2 points to the heavy one's 2,000 (it got 29 picks).
  const double light = shares(*lb, hosts.size(), 100'000)[1];
  EXPECT_GT(light, 0.0001);
  EXPECT_LT(light, 0.005);
}

TEST_P(PolicyTest, PicksDoNotAllocate) {
  auto hosts = weighted({1, 2, 3, 4});
  hosts[3].priority = 1;
  hosts[0].healthy = false;
  const int64_t at_start = g_allocations.load();
  auto lb = LoadBalancer::build(options(), hosts, 2);
  ASSERT_GT(g_allocations.load(), at_start);  // the counter sees build()'s allocations
  std::mt19937_64 rng(3);
  std::vector<LbRequest> requests;
  for (uint32_t i = 0; i < 1000; ++i) {
    requests.push_back({.worker = static_cast<int>(i % 2),
                        .random = rng(),
                        .has_hash = i % 2 == 0,
                        .hash = rng(),
                        .attempt = i % 3});
  }
  const int64_t before = g_allocations.load();
  int64_t sum = 0;
  for (const LbRequest& request : requests) sum += lb->pick(request, idle);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_GT(sum, 0);
}

TEST_P(PolicyTest, HealthyPriorityZeroTakesAllTraffic) {
  auto hosts = equal(6);
  for (int i = 3; i < 6; ++i) hosts[i].priority = 1;
  auto lb = LoadBalancer::build(options(), hosts, 1);
  EXPECT_THAT(loads(*lb), ElementsAre(100, 0));
  EXPECT_FALSE(lb->panic());
  const std::vector<double> got = shares(*lb, hosts.size(), 3'000);
  EXPECT_DOUBLE_EQ(got[3] + got[4] + got[5], 0);
}

TEST_P(PolicyTest, DegradedPriorityZeroSpillsToPriorityOne) {
  // P0 has 1 of 3 hosts healthy: health min(100, 140 * 1 / 3) = 46, so P0 keeps 46% (all on its
  // healthy host) and P1 gets the other 54%. Together healthy enough: no panic.
  auto hosts = equal(6);
  hosts[0].healthy = hosts[1].healthy = false;
  for (int i = 3; i < 6; ++i) hosts[i].priority = 1;
  auto lb = LoadBalancer::build(options(), hosts, 1);
  EXPECT_THAT(loads(*lb), ElementsAre(46, 54));
  EXPECT_FALSE(lb->panic());
  const std::vector<double> got = shares(*lb, hosts.size(), 10'000);
  EXPECT_DOUBLE_EQ(got[0] + got[1], 0);
  EXPECT_NEAR(got[2], 0.46, 0.02);
  for (int i = 3; i < 6; ++i) EXPECT_NEAR(got[i], 0.18, tolerance(GetParam()) + 0.01) << i;
}

TEST_P(PolicyTest, LoadIsScaledUpWhenAllLevelsTogetherAreShort) {
  // Health 84 and 14: 98 in all, shared out as 84/98 and 14/98 rounded down, the rest to P0. P1
  // (1 of 10 healthy) is below the panic threshold and balances over all its hosts.
  std::vector<LbHost> hosts = equal(20);
  for (int i = 0; i < 20; ++i) {
    hosts[i].priority = i / 10;
    hosts[i].healthy = i < 6 || i == 10;
  }
  auto lb = LoadBalancer::build(options(), hosts, 1);
  EXPECT_THAT(loads(*lb), ElementsAre(86, 14));
  EXPECT_TRUE(lb->panic());
  const std::vector<double> got = shares(*lb, hosts.size(), 10'000);
  double p0 = 0;
  for (int i = 0; i < 10; ++i) {
    p0 += got[i];
    if (i >= 6) {
      EXPECT_DOUBLE_EQ(got[i], 0) << i;
    }
  }
  EXPECT_NEAR(p0, 0.86, 0.02);
  for (int i = 10; i < 20; ++i) EXPECT_GT(got[i], 0.005) << i;
}

TEST_P(PolicyTest, PanicSpreadsOverAllHostsWhenAllButOneAreUnhealthy) {
  auto hosts = equal(10);
  for (int i = 1; i < 10; ++i) hosts[i].healthy = false;
  auto lb = LoadBalancer::build(options(), hosts, 1);
  EXPECT_TRUE(lb->panic());
  EXPECT_THAT(loads(*lb), ElementsAre(100));
  const std::vector<double> got = shares(*lb, hosts.size(), 10'000);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(got[i], 0.1, tolerance(GetParam())) << i;
}

TEST_P(PolicyTest, ThresholdZeroNeverPanics) {
  auto hosts = equal(10);
  for (int i = 1; i < 10; ++i) hosts[i].healthy = false;
  LbOptions options = this->options();
  options.healthy_panic_threshold = 0;
  auto lb = LoadBalancer::build(options, hosts, 1);
  EXPECT_FALSE(lb->panic());
  EXPECT_DOUBLE_EQ(shares(*lb, hosts.size(), 1'000)[0], 1.0);
}

TEST_P(PolicyTest, NoHealthyHostWithoutPanicPicksNothing) {
  auto hosts = equal(3);
  for (LbHost& h : hosts) h.healthy = false;
  LbOptions options = this->options();
  options.healthy_panic_threshold = 0;
  auto lb = LoadBalancer::build(options, hosts, 1);
  EXPECT_FALSE(lb->panic());
  EXPECT_THAT(loads(*lb), ElementsAre(100));
  EXPECT_EQ(lb->pick(LbRequest{.random = 5, .has_hash = true, .hash = 5}, idle), -1);
}

TEST_P(PolicyTest, TotalPanicSharesLevelsByHostCount) {
  // Nothing healthy anywhere: every level panics and takes load by its number of hosts.
  auto hosts = equal(10);
  for (int i = 0; i < 10; ++i) {
    hosts[i].priority = i < 4 ? 0 : 2;
    hosts[i].healthy = false;
  }
  auto lb = LoadBalancer::build(options(), hosts, 1);
  EXPECT_TRUE(lb->panic());
  EXPECT_THAT(loads(*lb), ElementsAre(40, 0, 60));
  const std::vector<double> got = shares(*lb, hosts.size(), 10'000);
  // Round robin too draws the level at random.
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(got[i], 0.1, tolerance(GetParam()) + 0.01) << i;
}

TEST(PriorityTest, LevelPanicsWhenItsOwnHealthyShareIsBelowThreshold) {
  // As in Envoy, the threshold compares a level's healthy hosts (4 of 10 = 40%) without the
  // overprovisioning factor (which would make it 56).
  auto hosts = equal(10);
  for (int i = 4; i < 10; ++i) hosts[i].healthy = false;
  EXPECT_TRUE(LoadBalancer::build(LbOptions{}, hosts, 1)->panic());
  hosts[4].healthy = true;  // 50%
  EXPECT_FALSE(LoadBalancer::build(LbOptions{}, hosts, 1)->panic());
}

TEST(PriorityTest, EmptyAndUnhealthyLevelsAreSkipped) {
  auto hosts = equal(4);
  hosts[0].healthy = hosts[1].healthy = false;
  hosts[2].priority = hosts[3].priority = 2;
  auto lb = LoadBalancer::build(LbOptions{}, hosts, 1);
  EXPECT_THAT(loads(*lb), ElementsAre(0, 0, 100));
  EXPECT_FALSE(lb->panic());
  const std::vector<double> got = shares(*lb, hosts.size(), 1'000);
  EXPECT_DOUBLE_EQ(got[2] + got[3], 1.0);
}

TEST(RoundRobinTest, CycleIsExactAndSmooth) {
  auto hosts = weighted({1, 2, 3});
  auto lb = LoadBalancer::build(LbOptions{}, hosts, 1);
  std::vector<int> picks;
  for (int i = 0; i < 12; ++i) picks.push_back(lb->pick(LbRequest{}, idle));
  // nginx's smooth order: the heaviest host's turns spread out, never three in a row.
  EXPECT_THAT(picks, ElementsAre(2, 1, 0, 2, 1, 2, 2, 1, 0, 2, 1, 2));
}

TEST(RoundRobinTest, WeightsWithACommonFactorCycleAsTheReducedWeights) {
  auto hosts = weighted({200, 400, 600});
  auto lb = LoadBalancer::build(LbOptions{}, hosts, 1);
  std::vector<int> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(lb->pick(LbRequest{}, idle));
  EXPECT_THAT(picks, ElementsAre(2, 1, 0, 2, 1, 2));
}

TEST(RoundRobinTest, HugeWeightsKeepAShortCycleWithEveryHost) {
  auto hosts = weighted({4'000'000'000u, 1});
  auto lb = LoadBalancer::build(LbOptions{}, hosts, 1);
  int light = 0;
  for (int i = 0; i < 1 << 16; ++i) light += lb->pick(LbRequest{}, idle);
  EXPECT_EQ(light, 1);
}

TEST(RoundRobinTest, WorkersKeepTheirOwnCursors) {
  auto hosts = equal(3);
  auto lb = LoadBalancer::build(LbOptions{}, hosts, 3);
  std::vector<int> seen[3];
  // Interleaved unevenly: each worker's sequence depends only on its own picks.
  for (int worker : {0, 0, 1, 2, 0, 2, 2, 1, 0, 2}) {
    seen[worker].push_back(lb->pick(LbRequest{.worker = worker}, idle));
  }
  EXPECT_THAT(seen[0], ElementsAre(0, 1, 2, 0));
  EXPECT_THAT(seen[1], ElementsAre(1, 2));
  EXPECT_THAT(seen[2], ElementsAre(2, 0, 1, 2));
}

TEST(RoundRobinTest, EachPriorityLevelKeepsItsOwnCycle) {
  // P0 takes 46%, P1 54%: the picks that land on P1 still go round its hosts in order.
  auto hosts = equal(6);
  hosts[0].healthy = hosts[1].healthy = false;
  for (int i = 3; i < 6; ++i) hosts[i].priority = 1;
  auto lb = LoadBalancer::build(LbOptions{}, hosts, 1);
  std::mt19937_64 rng(9);
  std::vector<int> p1;
  for (int i = 0; i < 100; ++i) {
    const int host = lb->pick(LbRequest{.random = rng()}, idle);
    if (host >= 3) p1.push_back(host);
  }
  ASSERT_GT(p1.size(), 30u);
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_EQ(p1[i], 3 + static_cast<int>(i % 3)) << i;
}

TEST(LeastRequestTest, PrefersTheHostWithFewerRequestsInFlight) {
  // Host 1 is idle and wins whenever it is one of the two choices: 1 - (2/3)^2 = 5/9.
  auto hosts = equal(3);
  auto lb = LoadBalancer::build(withPolicy(LbPolicy::kLeastRequest), hosts, 1);
  const uint32_t active[] = {5, 0, 5};
  std::mt19937_64 rng(4);
  std::vector<int> counts(3);
  for (int i = 0; i < 10'000; ++i) {
    ++counts[lb->pick(LbRequest{.random = rng()}, [&](int h) { return active[h]; })];
  }
  EXPECT_NEAR(counts[1] / 10'000.0, 5.0 / 9, 0.02);
  EXPECT_NEAR(counts[0] / 10'000.0, 2.0 / 9, 0.02);
}

TEST(LeastRequestTest, ComparesRequestsPerUnitOfWeight) {
  // Host 0: 4 in flight at weight 4; host 1: 2 at weight 1. Host 0 wins unless both choices are
  // host 1 (chance (1/5)^2).
  auto hosts = weighted({4, 1});
  auto lb = LoadBalancer::build(withPolicy(LbPolicy::kLeastRequest), hosts, 1);
  const uint32_t active[] = {4, 2};
  std::mt19937_64 rng(5);
  int host1 = 0;
  for (int i = 0; i < 10'000; ++i) {
    host1 += lb->pick(LbRequest{.random = rng()}, [&](int h) { return active[h]; });
  }
  EXPECT_NEAR(host1 / 10'000.0, 0.04, 0.01);
}

class HashPolicyTest : public ::testing::TestWithParam<LbPolicy> {
 protected:
  LbOptions options() const { return withPolicy(GetParam()); }
  bool isRing() const { return GetParam() == LbPolicy::kRingHash; }

  // Request hashes of 10,000 keys.
  static std::vector<uint64_t> keyHashes() {
    std::vector<uint64_t> out;
    for (int i = 0; i < 10'000; ++i) out.push_back(hashKey(absl::StrCat("user-", i)));
    return out;
  }
};

INSTANTIATE_TEST_SUITE_P(HashPolicies, HashPolicyTest,
                         ::testing::Values(LbPolicy::kRingHash, LbPolicy::kMaglev),
                         [](const auto& info) { return policyName(info.param); });

TEST_P(HashPolicyTest, SameHashSameHost) {
  auto hosts = equal(5);
  auto lb = LoadBalancer::build(options(), hosts, 2);
  auto rebuilt = LoadBalancer::build(options(), hosts, 2);
  std::mt19937_64 rng(6);
  for (uint64_t hash : keyHashes()) {
    const int host = hostOf(*lb, hash);
    ASSERT_GE(host, 0);
    // Whatever the worker and random number, and in another build of the same hosts.
    EXPECT_EQ(
        lb->pick(LbRequest{.worker = 1, .random = rng(), .has_hash = true, .hash = hash}, idle),
        host);
    EXPECT_EQ(hostOf(*rebuilt, hash), host);
  }
}

TEST_P(HashPolicyTest, RemovingAHostMovesAboutOneInN) {
  const std::vector<uint64_t> hashes = keyHashes();
  for (int n : {3, 5, 10}) {
    const auto hosts = equal(n);
    const int removed = n / 2;
    std::vector<LbHost> fewer = hosts;
    fewer.erase(fewer.begin() + removed);
    auto before = LoadBalancer::build(options(), hosts, 1);
    auto after = LoadBalancer::build(options(), fewer, 1);
    int moved = 0, moved_from_others = 0;
    for (uint64_t hash : hashes) {
      const int was = hostOf(*before, hash);
      const std::string_view now = fewer[hostOf(*after, hash)].key;
      if (hosts[was].key != now) {
        ++moved;
        if (was != removed) ++moved_from_others;
      }
    }
    EXPECT_LE(moved, hashes.size() * (1.0 / n + 0.05)) << n;
    // Ketama: the hosts that stay keep their points, so only the removed host's keys move.
    if (isRing()) {
      EXPECT_EQ(moved_from_others, 0) << n;
    }
  }
}

TEST_P(HashPolicyTest, AddingAHostMovesAboutOneInNPlusOne) {
  const std::vector<uint64_t> hashes = keyHashes();
  for (int n : {3, 5, 10}) {
    const auto hosts = equal(n);
    const auto more = equal(n + 1);
    auto before = LoadBalancer::build(options(), hosts, 1);
    auto after = LoadBalancer::build(options(), more, 1);
    int moved = 0, moved_elsewhere = 0;
    for (uint64_t hash : hashes) {
      const int was = hostOf(*before, hash), now = hostOf(*after, hash);
      if (was != now) {
        ++moved;
        if (now != n) ++moved_elsewhere;
      }
    }
    EXPECT_GE(moved, hashes.size() * (1.0 / (n + 1) - 0.05)) << n;
    EXPECT_LE(moved, hashes.size() * (1.0 / (n + 1) + 0.05)) << n;
    if (isRing()) {
      EXPECT_EQ(moved_elsewhere, 0) << n;
    }
  }
}

TEST_P(HashPolicyTest, UnhealthyHostsKeysMoveAndTheOthersStay) {
  auto hosts = equal(5);
  auto before = LoadBalancer::build(options(), hosts, 1);
  hosts[2].healthy = false;
  auto after = LoadBalancer::build(options(), hosts, 1);
  ASSERT_FALSE(after->panic());
  int stayed = 0, others = 0;
  for (uint64_t hash : keyHashes()) {
    const int was = hostOf(*before, hash), now = hostOf(*after, hash);
    EXPECT_NE(now, 2);
    if (was != 2) {
      ++others;
      stayed += now == was;
    }
  }
  // Maglev's table shifts a few slots of the other hosts too (about 1-2% at 65537 slots).
  EXPECT_GE(stayed, others * (isRing() ? 1.0 : 0.97));
}

TEST_P(HashPolicyTest, RetriesUsuallyLandElsewhere) {
  // With 3 equal hosts a retry's mixed hash lands elsewhere 2 times in 3.
  auto hosts = equal(3);
  auto lb = LoadBalancer::build(options(), hosts, 1);
  const std::vector<uint64_t> hashes = keyHashes();
  int elsewhere = 0;
  for (uint64_t hash : hashes) {
    const int retry = hostOf(*lb, hash, 1);
    EXPECT_EQ(hostOf(*lb, hash, 1), retry);
    elsewhere += retry != hostOf(*lb, hash);
  }
  EXPECT_NEAR(elsewhere / static_cast<double>(hashes.size()), 2.0 / 3, 0.03);
}

TEST_P(HashPolicyTest, WithoutAHashPicksAtRandom) {
  auto hosts = weighted({1, 2, 3});
  auto lb = LoadBalancer::build(options(), hosts, 1);
  std::mt19937_64 rng(8);
  std::vector<int> counts(3);
  for (int i = 0; i < 10'000; ++i) ++counts[lb->pick(LbRequest{.random = rng()}, idle)];
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(counts[i] / 10'000.0, (i + 1) / 6.0, 0.03) << i;
}

TEST(RingHashTest, RingMaxSizeKeepsEveryHostOnTheRing) {
  // 10 points for 1002 units of weight: the light hosts still get one each.
  auto hosts = weighted({1000, 1, 1});
  LbOptions options = withPolicy(LbPolicy::kRingHash);
  options.ring_max_size = 10;
  auto lb = LoadBalancer::build(options, hosts, 1);
  const std::vector<double> got = shares(*lb, hosts.size(), 10'000);
  EXPECT_GT(got[1], 0);
  EXPECT_GT(got[2], 0);
}

TEST(RingHashTest, LargerMinimumRingSpreadsMoreEvenly) {
  auto hosts = equal(4);
  LbOptions options = withPolicy(LbPolicy::kRingHash);
  options.ring_min_size = 1 << 20;
  auto lb = LoadBalancer::build(options, hosts, 1);
  // 262,144 points a host: its share of the ring is within 0.2% of a quarter; what is left is
  // the sampling error of 100,000 picks.
  const std::vector<double> got = shares(*lb, hosts.size(), 100'000);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], 0.25, 0.006) << i;
}

// Host counts over the whole Maglev table: hash h lands in slot h % size.
std::vector<int> maglevSlots(const LoadBalancer& lb, size_t hosts, uint64_t size) {
  std::vector<int> counts(hosts);
  for (uint64_t h = 0; h < size; ++h) ++counts[hostOf(lb, h)];
  return counts;
}

TEST(MaglevTest, EqualWeightsFillTheTableEvenly) {
  auto hosts = equal(3);
  auto lb = LoadBalancer::build(withPolicy(LbPolicy::kMaglev), hosts, 1);
  for (int slots : maglevSlots(*lb, hosts.size(), 65537)) {
    EXPECT_GE(slots, 21845);
    EXPECT_LE(slots, 21846);
  }
}

TEST(MaglevTest, WeightsShareTheTable) {
  auto hosts = weighted({1, 2, 3});
  auto lb = LoadBalancer::build(withPolicy(LbPolicy::kMaglev), hosts, 1);
  const std::vector<int> slots = maglevSlots(*lb, hosts.size(), 65537);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(slots[i] / 65537.0, (i + 1) / 6.0, 0.001) << i;
}

TEST(MaglevTest, SmallTable) {
  auto hosts = equal(3);
  LbOptions options = withPolicy(LbPolicy::kMaglev);
  options.maglev_table_size = 7;
  auto lb = LoadBalancer::build(options, hosts, 1);
  EXPECT_THAT(maglevSlots(*lb, hosts.size(), 7), ::testing::UnorderedElementsAre(3, 2, 2));
  for (uint64_t h = 0; h < 7; ++h) EXPECT_EQ(hostOf(*lb, h + 7), hostOf(*lb, h)) << h;
}

TEST(MaglevTest, SizeThatIsNotPrimeIsRaisedToTheNextPrime) {
  auto hosts = equal(5);
  LbOptions options = withPolicy(LbPolicy::kMaglev);
  options.maglev_table_size = 1000;  // 1009 is the next prime
  auto lb = LoadBalancer::build(options, hosts, 1);
  int differs_at_1000 = 0;
  for (uint64_t h = 0; h < 2000; ++h) {
    EXPECT_EQ(hostOf(*lb, h + 1009), hostOf(*lb, h)) << h;
    differs_at_1000 += hostOf(*lb, h + 1000) != hostOf(*lb, h);
  }
  EXPECT_GT(differs_at_1000, 1000);
}

}  // namespace
}  // namespace sluice::upstream
