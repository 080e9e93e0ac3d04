// Compiled clusters: endpoint resolution, defaults, the load balancers' choices and pool keys.
#include "proxy/upstream/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace sluice::upstream {
namespace {

namespace v1 = config::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Cluster clusterConfig(const std::string& text) {
  v1::Cluster c;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c)) << text;
  return c;
}

// No busy connections anywhere.
uint32_t idle(size_t) { return 0; }

class ClusterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Cluster> compile(const v1::Cluster& config,
                                   const v1::ClusterLoadAssignment* assignment = nullptr,
                                   int workers = 1) {
    auto cluster = Cluster::compile(config, assignment, workers, store_.get(), &keys_);
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    return cluster.ok() ? *std::move(cluster) : nullptr;
  }

  // The names of the next `n` round-robin picks of `worker`.
  static std::vector<std::string> picks(const Cluster& c, int worker, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(c.pick(worker, 0, idle)->name);
    return out;
  }

  std::unique_ptr<stats::Store> store_ = stats::Store::create(1);
  Registry keys_;
};

TEST_F(ClusterTest, StaticClusterResolvesIpv4AndIpv6Endpoints) {
  auto c = compile(clusterConfig(R"pb(
    name: "web"
    endpoints { address: "127.0.0.1" port: 80 }
    endpoints { address: "::1" port: 80 weight: 3 }
  )pb"));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name(), "web");
  ASSERT_EQ(c->endpoints().size(), 2u);

  const Endpoint& v4 = c->endpoints()[0];
  EXPECT_EQ(v4.name, "127.0.0.1:80");
  EXPECT_EQ(v4.weight, 1u);
  ASSERT_EQ(v4.addr.ss_family, AF_INET);
  EXPECT_EQ(v4.addr_len, sizeof(sockaddr_in));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(&v4.addr);
  EXPECT_EQ(ntohs(sin->sin_port), 80);
  EXPECT_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);

  const Endpoint& v6 = c->endpoints()[1];
  EXPECT_EQ(v6.name, "[::1]:80");
  EXPECT_EQ(v6.weight, 3u);
  ASSERT_EQ(v6.addr.ss_family, AF_INET6);
  EXPECT_EQ(v6.addr_len, sizeof(sockaddr_in6));
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&v6.addr);
  EXPECT_EQ(ntohs(sin6->sin6_port), 80);
  EXPECT_EQ(std::memcmp(&sin6->sin6_addr, &in6addr_loopback, sizeof(in6_addr)), 0);

  // Each endpoint counts on its own.
  EXPECT_TRUE(v4.rq_total.valid());
  EXPECT_TRUE(v6.rq_total.valid());
  EXPECT_NE(v4.rq_total.cell, v6.rq_total.cell);
  EXPECT_NE(v4.pool_key, v6.pool_key);
}

TEST_F(ClusterTest, EdsClusterTakesItsEndpointsFromTheAssignment) {
  v1::ClusterLoadAssignment assignment;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        cluster_name: "api"
        endpoints { address: "10.0.0.1" port: 8080 weight: 2 }
        endpoints { address: "fe80::1" port: 8081 }
      )pb",
      &assignment));
  auto c = compile(clusterConfig(R"pb(name: "api" type: EDS lb_policy: RANDOM)pb"), &assignment);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->policy(), LbPolicy::kRandom);
  ASSERT_EQ(c->endpoints().size(), 2u);
  EXPECT_EQ(c->endpoints()[0].name, "10.0.0.1:8080");
  EXPECT_EQ(c->endpoints()[0].weight, 2u);
  EXPECT_EQ(c->endpoints()[1].name, "[fe80::1]:8081");
}

TEST_F(ClusterTest, DefaultsAndExplicitSettings) {
  auto defaults = compile(clusterConfig(R"pb(name: "a"
                                             endpoints { address: "127.0.0.1" port: 80 })pb"));
  ASSERT_NE(defaults, nullptr);
  EXPECT_EQ(defaults->connectTimeout(), absl::Seconds(5));
  EXPECT_EQ(defaults->maxIdlePerEndpoint(), 64u);
  EXPECT_EQ(defaults->policy(), LbPolicy::kRoundRobin);

  auto set = compile(clusterConfig(R"pb(
    name: "b"
    connect_timeout { seconds: 1 nanos: 250000000 }
    max_idle_connections_per_endpoint: 3
    lb_policy: LEAST_REQUEST
    endpoints { address: "127.0.0.1" port: 80 }
  )pb"));
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->connectTimeout(), absl::Milliseconds(1250));
  EXPECT_EQ(set->maxIdlePerEndpoint(), 3u);
  EXPECT_EQ(set->policy(), LbPolicy::kLeastRequest);
}

TEST_F(ClusterTest, RoundRobinOverEqualWeightsAlternatesPerWorker) {
  auto c = compile(clusterConfig(R"pb(
                     name: "web"
                     endpoints { address: "127.0.0.1" port: 1 }
                     endpoints { address: "127.0.0.1" port: 2 }
                   )pb"),
                   nullptr, 2);
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(picks(*c, 0, 3), ElementsAre("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"));
  // Worker 1 has its own cursor, started half a cycle later; worker 0's picks did not move it.
  EXPECT_THAT(picks(*c, 1, 4),
              ElementsAre("127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"));
  EXPECT_THAT(picks(*c, 0, 1), ElementsAre("127.0.0.1:2"));
}

TEST_F(ClusterTest, SmoothWeightedRoundRobinFollowsNginxOrder) {
  auto c = compile(clusterConfig(R"pb(
    name: "web"
    endpoints { address: "127.0.0.1" port: 1 weight: 5 }
    endpoints { address: "127.0.0.1" port: 2 weight: 1 }
    endpoints { address: "127.0.0.1" port: 3 weight: 1 }
  )pb"));
  ASSERT_NE(c, nullptr);
  const std::string a = "127.0.0.1:1", b = "127.0.0.1:2", cc = "127.0.0.1:3";
  // nginx's smooth weighted round robin for {a:5, b:1, c:1}: the heavy endpoint's turns spread.
  EXPECT_THAT(picks(*c, 0, 7), ElementsAre(a, a, b, a, cc, a, a));
  EXPECT_THAT(picks(*c, 0, 7), ElementsAre(a, a, b, a, cc, a, a));

  std::map<std::string, int> counts;
  for (const std::string& name : picks(*c, 0, 700)) ++counts[name];
  EXPECT_EQ(counts[a], 500);
  EXPECT_EQ(counts[b], 100);
  EXPECT_EQ(counts[cc], 100);
}

TEST_F(ClusterTest, WorkersStartAtDifferentOffsets) {
  auto c = compile(clusterConfig(R"pb(
                     name: "web"
                     endpoints { address: "127.0.0.1" port: 1 }
                     endpoints { address: "127.0.0.1" port: 2 }
                     endpoints { address: "127.0.0.1" port: 3 }
                     endpoints { address: "127.0.0.1" port: 4 }
                   )pb"),
                   nullptr, 4);
  ASSERT_NE(c, nullptr);
  std::vector<std::string> first;
  for (int w = 0; w < 4; ++w) first.push_back(c->pick(w, 0, idle)->name);
  EXPECT_THAT(first, ElementsAre("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"));
}

TEST_F(ClusterTest, RandomRespectsWeights) {
  auto c = compile(clusterConfig(R"pb(
    name: "web"
    lb_policy: RANDOM
    endpoints { address: "127.0.0.1" port: 1 weight: 5 }
    endpoints { address: "127.0.0.1" port: 2 weight: 1 }
    endpoints { address: "127.0.0.1" port: 3 weight: 1 }
  )pb"));
  ASSERT_NE(c, nullptr);
  std::mt19937_64 rng(42);
  std::vector<int> counts(3);
  constexpr int kPicks = 70000;
  for (int i = 0; i < kPicks; ++i) {
    const Endpoint* e = c->pick(0, rng(), idle);
    ++counts[e - c->endpoints().data()];
  }
  // Expected 50000 / 10000 / 10000; the bounds are dozens of standard deviations wide.
  EXPECT_NEAR(counts[0], 50000, 1500);
  EXPECT_NEAR(counts[1], 10000, 1000);
  EXPECT_NEAR(counts[2], 10000, 1000);
}

TEST_F(ClusterTest, LeastRequestWithoutLoadRespectsWeights) {
  auto c = compile(clusterConfig(R"pb(
    name: "web"
    lb_policy: LEAST_REQUEST
    endpoints { address: "127.0.0.1" port: 1 weight: 3 }
    endpoints { address: "127.0.0.1" port: 2 weight: 1 }
  )pb"));
  ASSERT_NE(c, nullptr);
  std::mt19937_64 rng(7);
  std::vector<int> counts(2);
  for (int i = 0; i < 40000; ++i) ++counts[c->pick(0, rng(), idle) - c->endpoints().data()];
  EXPECT_NEAR(counts[0], 30000, 1000);
  EXPECT_NEAR(counts[1], 10000, 1000);
}

TEST_F(ClusterTest, LeastRequestPicksTheLessBusyOfTwoChoices) {
  auto c = compile(clusterConfig(R"pb(
    name: "web"
    lb_policy: LEAST_REQUEST
    endpoints { address: "127.0.0.1" port: 1 }
    endpoints { address: "127.0.0.1" port: 2 }
  )pb"));
  ASSERT_NE(c, nullptr);
  const Endpoint* data = c->endpoints().data();
  // For a random number, the pick with no load is its first choice (ties go to it); making that
  // one busy reveals the second. Where the two differ, the less busy one must win either way.
  int compared = 0;
  for (uint64_t r = 0; r < 10000 && compared < 100; ++r) {
    const Endpoint* first = c->pick(0, r, idle);
    const size_t a = first - data;
    const Endpoint* second = c->pick(0, r, [&](size_t e) { return e == a ? 5u : 0u; });
    if (second == first) continue;  // both choices were the same endpoint
    ++compared;
    const size_t b = second - data;
    EXPECT_EQ(c->pick(0, r, [&](size_t e) { return e == b ? 5u : 0u; }), first) << r;
    EXPECT_EQ(c->pick(0, r, [](size_t) { return 2u; }), first) << r;
  }
  EXPECT_EQ(compared, 100);
}

// A busy endpoint is picked only when both choices land on it: 1/n^2 of the picks for n equal
// endpoints. Three endpoints (2^32 = 1 mod 3) once made both choices always the same endpoint.
TEST_F(ClusterTest, LeastRequestAvoidsABusyEndpointStatistically) {
  for (int n : {2, 3, 5}) {
    v1::Cluster config = clusterConfig(R"pb(name: "web" lb_policy: LEAST_REQUEST)pb");
    for (int i = 0; i < n; ++i) {
      v1::Endpoint* e = config.add_endpoints();
      e->set_address("127.0.0.1");
      e->set_port(1 + i);
    }
    auto c = compile(config);
    ASSERT_NE(c, nullptr);
    std::mt19937_64 rng(1);
    constexpr int kPicks = 45000;
    int busy_picks = 0;
    for (int i = 0; i < kPicks; ++i) {
      if (c->pick(0, rng(), [](size_t e) { return e == 0 ? 10u : 1u; }) == &c->endpoints()[0]) {
        ++busy_picks;
      }
    }
    EXPECT_NEAR(busy_picks, kPicks / (n * n), kPicks / 100) << n << " endpoints";
  }
}

TEST_F(ClusterTest, LeastRequestWeighsBusyConnectionsByEndpointWeight) {
  auto c = compile(clusterConfig(R"pb(
    name: "web"
    lb_policy: LEAST_REQUEST
    endpoints { address: "127.0.0.1" port: 1 weight: 4 }
    endpoints { address: "127.0.0.1" port: 2 weight: 1 }
  )pb"));
  ASSERT_NE(c, nullptr);
  // Endpoint 0 with 3 busy of weight 4 is less loaded than endpoint 1 with 1 busy of weight 1:
  // whenever the two choices differ, endpoint 0 wins.
  std::mt19937_64 rng(3);
  int heavy = 0;
  for (int i = 0; i < 50000; ++i) {
    if (c->pick(0, rng(), [](size_t e) { return e == 0 ? 3u : 1u; }) == &c->endpoints()[0]) {
      ++heavy;
    }
  }
  // Endpoint 1 only when both weighted choices are endpoint 1: (1/5)^2 = 4%.
  EXPECT_NEAR(heavy, 48000, 700);
}

TEST_F(ClusterTest, EmptyEdsClusterPicksNothing) {
  auto none = compile(clusterConfig(R"pb(name: "api" type: EDS)pb"), nullptr, 2);
  ASSERT_NE(none, nullptr);
  EXPECT_TRUE(none->endpoints().empty());
  EXPECT_EQ(none->pick(0, 0, idle), nullptr);
  EXPECT_EQ(none->pick(1, 12345, idle), nullptr);

  v1::ClusterLoadAssignment empty;
  empty.set_cluster_name("api2");
  for (auto policy : {v1::Cluster::ROUND_ROBIN, v1::Cluster::RANDOM, v1::Cluster::LEAST_REQUEST}) {
    v1::Cluster config = clusterConfig(R"pb(name: "api2" type: EDS)pb");
    config.set_lb_policy(policy);
    auto c = compile(config, &empty);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->pick(0, 99, idle), nullptr) << policy;
  }
}

TEST_F(ClusterTest, RegistryAreStableAcrossCompilations) {
  const v1::Cluster config = clusterConfig(R"pb(
    name: "web"
    endpoints { address: "127.0.0.1" port: 1 }
    endpoints { address: "::1" port: 2 }
  )pb");
  auto first = compile(config);
  ASSERT_NE(first, nullptr);
  const uint32_t k0 = first->endpoints()[0].pool_key;
  const uint32_t k1 = first->endpoints()[1].pool_key;
  EXPECT_NE(k0, k1);

  // A later generation with the endpoints in another order and one more.
  auto second = compile(clusterConfig(R"pb(
    name: "web"
    endpoints { address: "127.0.0.2" port: 3 }
    endpoints { address: "::1" port: 2 }
    endpoints { address: "127.0.0.1" port: 1 }
  )pb"));
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->endpoints()[1].pool_key, k1);
  EXPECT_EQ(second->endpoints()[2].pool_key, k0);
  EXPECT_NE(second->endpoints()[0].pool_key, k0);
  EXPECT_NE(second->endpoints()[0].pool_key, k1);

  // The same endpoint in another cluster has its own pool.
  auto other = compile(clusterConfig(R"pb(name: "other"
                                          endpoints { address: "127.0.0.1" port: 1 })pb"));
  ASSERT_NE(other, nullptr);
  EXPECT_NE(other->endpoints()[0].pool_key, k0);
  EXPECT_EQ(keys_.size(), 4u);

  // Metric ids too survive the generation.
  EXPECT_EQ(first->stats().rq_total.cell, second->stats().rq_total.cell);
  EXPECT_EQ(first->endpoints()[0].rq_total.cell, second->endpoints()[2].rq_total.cell);
  EXPECT_NE(first->stats().rq_total.cell, other->stats().rq_total.cell);
}

TEST_F(ClusterTest, BadAddressFailsWithAMessage) {
  auto c = Cluster::compile(clusterConfig(R"pb(
                              name: "web"
                              endpoints { address: "127.0.0.1" port: 80 }
                              endpoints { address: "backend.local" port: 80 }
                            )pb"),
                            nullptr, 1, store_.get(), &keys_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("cluster 'web'"));
  EXPECT_THAT(c.status().message(), HasSubstr("'backend.local' is not an IP address"));
}

TEST_F(ClusterTest, EveryEndpointHasItsOwnOutlierStateKeptAcrossCompilations) {
  const v1::Cluster config = clusterConfig(R"pb(
    name: "web"
    endpoints { address: "127.0.0.1" port: 1 }
    endpoints { address: "127.0.0.1" port: 2 }
  )pb");
  auto first = compile(config);
  auto again = compile(config);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(again, nullptr);
  const HostState* a = first->endpoints()[0].state;
  const HostState* b = first->endpoints()[1].state;
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, keys_.host(first->endpoints()[0].pool_key));
  EXPECT_EQ(again->endpoints()[0].state, a);
  EXPECT_EQ(again->endpoints()[1].state, b);
  // A thousand more endpoints elsewhere do not move them (a deque keeps its elements).
  for (int i = 0; i < 1000; ++i) keys_.key("other", absl::StrCat("10.0.0.1:", i + 1));
  EXPECT_EQ(keys_.host(first->endpoints()[0].pool_key), a);
  EXPECT_EQ(keys_.size(), 1002u);
}

}  // namespace
}  // namespace sluice::upstream
