// The cluster manager on a real event loop: clusters kept across updates, health checks,
// outlier ejections and DNS answers turning into recompiled clusters, and /clusters.
#include "proxy/upstream/cluster_manager.h"
#include "test/common/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace sluice::upstream {
namespace {

namespace v1 = config::v1;
using ::testing::HasSubstr;
using ::testing::Not;

// A listening socket on 127.0.0.1 that accepts (by backlog) without ever answering.
class Listening {
 public:
  Listening() {
    fd_ = testing::listenLoopback(64, &port_);
    EXPECT_GE(fd_, 0);
  }
  ~Listening() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class ClusterManagerTest : public ::testing::Test {
 protected:
  ClusterManagerTest() : base_(event_base_new()), store_(stats::Store::create(2)) {}
  ~ClusterManagerTest() override {
    manager_.reset();
    event_base_free(base_);
  }

  void start(ResolverOptions dns = {}) {
    manager_ = std::make_unique<ClusterManager>(base_, store_.get(), store_->cells(1), 1, dns,
                                                [this] { ++changes_; });
  }

  static config::ConfigSet configOf(const std::vector<std::string>& clusters,
                                    const std::vector<std::string>& assignments = {}) {
    config::ConfigSet set;
    for (const std::string& text : clusters) {
      v1::Cluster c;
      EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c)) << text;
      set.clusters.push_back({c, {}});
    }
    for (const std::string& text : assignments) {
      v1::ClusterLoadAssignment a;
      EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &a)) << text;
      set.assignments.push_back({a, {}});
    }
    return set;
  }

  ClusterManager::ClusterList update(const config::ConfigSet& set) {
    auto list = manager_->update(set);
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? *list : ClusterManager::ClusterList();
  }

  // Runs the loop until `done` (bounded: a failing condition ends the test, not the run).
  bool runUntil(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!done()) {
      if (absl::Now() > deadline) return false;
      timeval tick = {0, 10'000};
      event_base_once(
          base_, -1, EV_TIMEOUT, [](evutil_socket_t, short, void*) {}, nullptr, &tick);
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }

  // Runs the loop until a refresh brings a list in which `done` holds.
  bool refreshUntil(const std::function<bool(const ClusterManager::ClusterList&)>& done) {
    return runUntil([&] {
      if (changes_ == 0) return false;
      changes_ = 0;
      ClusterManager::ClusterList list = manager_->refresh();
      return !list.empty() && done(list);
    });
  }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  std::unique_ptr<ClusterManager> manager_;
  int changes_ = 0;
};

TEST_F(ClusterManagerTest, UnchangedClustersAreSharedAcrossUpdatesAndChangedOnesCompiled) {
  start();
  const std::string web = R"pb(name: "web"
                               endpoints { address: "127.0.0.1" port: 81 })pb";
  const std::string api = R"pb(name: "api" type: EDS)pb";
  auto first =
      update(configOf({web, api}, {R"pb(cluster_name: "api"
                                        endpoints { address: "127.0.0.1" port: 82 })pb"}));
  ASSERT_EQ(first.size(), 2u);
  // An EDS-only change: the other cluster is the very same object.
  auto second =
      update(configOf({web, api}, {R"pb(cluster_name: "api"
                                        endpoints { address: "127.0.0.1" port: 82 }
                                        endpoints { address: "127.0.0.1" port: 83 })pb"}));
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0], first[0]);
  EXPECT_NE(second[1], first[1]);
  EXPECT_EQ(second[1]->endpoints().size(), 2u);
  // Endpoints keep their identity (pool key, outlier state) across the change.
  EXPECT_EQ(second[1]->endpoints()[0].pool_key, first[1]->endpoints()[0].pool_key);
  EXPECT_EQ(second[1]->endpoints()[0].state, first[1]->endpoints()[0].state);
  EXPECT_EQ(manager_->current(), second);
  // Nothing changed: nothing to refresh.
  EXPECT_TRUE(manager_->refresh().empty());
}

TEST_F(ClusterManagerTest, ActiveHealthCheckMarksADeadEndpointUnhealthy) {
  start();
  Listening up;
  const int down = testing::closedLoopbackPort();
  auto list =
      update(configOf({absl::StrCat(R"pb(
                                      name: "web"
                                      health_check {
                                        interval { nanos: 20000000 }
                                        timeout { nanos: 20000000 }
                                        tcp {}
                                      }
                                      endpoints { address: "127.0.0.1" port:)pb",
                                    up.port(), R"pb(}
                                                    endpoints { address: "127.0.0.1" port: )pb",
                                    down, " }")}));
  ASSERT_EQ(list.size(), 1u);
  // Before any verdict every endpoint is pending (unhealthy) and the balancer panics.
  EXPECT_FALSE(list[0]->endpoints()[0].healthy);
  EXPECT_TRUE(list[0]->panic());
  ASSERT_TRUE(refreshUntil([](const ClusterManager::ClusterList& l) {
    return l[0]->endpoints()[0].healthy && !l[0]->endpoints()[1].healthy;
  }));
  const Cluster& c = *manager_->current()[0];
  // One of two healthy is 70% health with overprovisioning, above the 50% panic threshold.
  EXPECT_FALSE(c.panic());
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(c.pick(0, i, [](size_t) { return 0u; }), &c.endpoints()[0]);
  std::string json = manager_->json();
  EXPECT_THAT(json, HasSubstr("\"active_health_check\":\"healthy\""));
  EXPECT_THAT(json, HasSubstr("\"active_health_check\":\"unhealthy\""));
}

TEST_F(ClusterManagerTest, OutlierEjectionRecompilesTheClusterAndTheEndpointReturns) {
  start();
  auto list = update(configOf({R"pb(
                                 name: "web"
                                 outlier_detection {
                                   consecutive_gateway_failure: 2
                                   base_ejection_time { nanos: 300000000 }
                                   max_ejection_percent: 50
                                 }
                                 endpoints { address: "127.0.0.1" port: 81 }
                                 endpoints { address: "127.0.0.1" port: 82 }
                               )pb"}));
  ASSERT_EQ(list.size(), 1u);
  const Cluster& c = *list[0];
  ASSERT_NE(c.outlier(), nullptr);
  // What a worker does after two failed attempts on endpoint 0.
  for (int i = 0; i < 2; ++i) {
    recordOutcome(c.endpoints()[0].state, *c.outlier(), Outcome::kGatewayFailure,
                  c.outlierWakeFd());
  }
  ASSERT_TRUE(refreshUntil([](const ClusterManager::ClusterList& l) {
    return !l[0]->endpoints()[0].healthy && l[0]->endpoints()[1].healthy;
  }));
  EXPECT_THAT(manager_->json(), HasSubstr("\"ejected\":true"));
  EXPECT_THAT(store_->prometheusText(),
              HasSubstr("sluice_cluster_outlier_detection_ejections_total{cluster=\"web\","
                        "reason=\"consecutive_gateway_failure\"} 1"));
  // Back after the ejection time.
  ASSERT_TRUE(refreshUntil(
      [](const ClusterManager::ClusterList& l) { return l[0]->endpoints()[0].healthy; }));
  EXPECT_THAT(manager_->json(), Not(HasSubstr("\"ejected\":true")));
}

TEST_F(ClusterManagerTest, DnsClusterTakesItsEndpointsFromTheAnswers) {
  const std::string dir = ::testing::TempDir();
  const std::string hosts = dir + "/cluster_manager_hosts";
  std::ofstream(hosts) << "127.0.0.2 web.sluice.test\n127.0.0.3 web.sluice.test\n";
  const std::string resolv = dir + "/cluster_manager_no_resolv.conf";  // none: hosts files only
  start(ResolverOptions{.hosts_file = hosts, .resolv_conf = resolv});
  auto list = update(configOf({R"pb(
                                 name: "web"
                                 type: STRICT_DNS
                                 dns_refresh_rate { nanos: 100000000 }
                                 endpoints { address: "web.sluice.test" port: 8080 weight: 2 }
                               )pb"}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_TRUE(list[0]->endpoints().empty());  // until the first answer
  ASSERT_TRUE(refreshUntil(
      [](const ClusterManager::ClusterList& l) { return l[0]->endpoints().size() == 2; }));
  const Cluster& c = *manager_->current()[0];
  EXPECT_EQ(c.endpoints()[0].name, "127.0.0.2:8080");
  EXPECT_EQ(c.endpoints()[1].name, "127.0.0.3:8080");
  EXPECT_EQ(c.endpoints()[0].weight, 2u);
  EXPECT_EQ(c.endpoints()[0].host, "web.sluice.test");
  EXPECT_THAT(manager_->json(), HasSubstr("\"host\":\"web.sluice.test\""));
}

TEST_F(ClusterManagerTest, ChangingHowANameResolvesKeepsTheLastAnswersMeanwhile) {
  const std::string dir = ::testing::TempDir();
  const std::string hosts = dir + "/cluster_manager_hosts_keep";
  std::ofstream(hosts) << "127.0.0.2 api.sluice.test\n127.0.0.3 api.sluice.test\n";
  start(ResolverOptions{.hosts_file = hosts, .resolv_conf = dir + "/no_resolv.conf"});
  auto config = [](int refresh_ms) {
    return absl::StrCat(R"pb(
                          name: "api"
                          type: STRICT_DNS
                          dns_refresh_rate { nanos:)pb",
                        refresh_ms * 1000000, R"pb(}
                                                   endpoints { address: "api.sluice.test" port: 80 }
    )pb");
  };
  update(configOf({config(100)}));
  ASSERT_TRUE(refreshUntil(
      [](const ClusterManager::ClusterList& l) { return l[0]->endpoints().size() == 2; }));
  // A new refresher (another rate) has no answer yet: the cluster keeps the two endpoints.
  auto list = update(configOf({config(200)}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]->endpoints().size(), 2u);
}

TEST_F(ClusterManagerTest, DroppingOutlierDetectionReturnsAnEjectedEndpoint) {
  start();
  const std::string with = R"pb(
    name: "web"
    outlier_detection {
      consecutive_gateway_failure: 1
      base_ejection_time { seconds: 300 }
    }
    endpoints { address: "127.0.0.1" port: 81 }
    endpoints { address: "127.0.0.1" port: 82 }
  )pb";
  auto list = update(configOf({with}));
  const Cluster& c = *list[0];
  recordOutcome(c.endpoints()[0].state, *c.outlier(), Outcome::kGatewayFailure, c.outlierWakeFd());
  ASSERT_TRUE(refreshUntil(
      [](const ClusterManager::ClusterList& l) { return !l[0]->endpoints()[0].healthy; }));
  auto without = update(configOf({R"pb(
                                    name: "web"
                                    endpoints { address: "127.0.0.1" port: 81 }
                                    endpoints { address: "127.0.0.1" port: 82 }
                                  )pb"}));
  ASSERT_EQ(without.size(), 1u);
  EXPECT_TRUE(without[0]->endpoints()[0].healthy);
  EXPECT_FALSE(without[0]->endpoints()[0].state->ejected);
}

TEST_F(ClusterManagerTest, PrepareChangesNothingUntilCommit) {
  start();
  const std::string one = R"pb(name: "web"
                               endpoints { address: "127.0.0.1" port: 81 })pb";
  auto first = update(configOf({one}));
  Listening up;
  auto prepared =
      manager_->prepare(configOf({absl::StrCat(R"pb(
                                                 name: "web"
                                                 health_check {
                                                   interval { seconds: 1 }
                                                   timeout { seconds: 1 }
                                                   tcp {}
                                                 }
                                                 endpoints { address: "127.0.0.1" port:)pb",
                                               up.port(), " }")}));
  ASSERT_TRUE(prepared.ok());
  EXPECT_EQ(manager_->current(), first);
  EXPECT_THAT(manager_->json(), HasSubstr("\"active_health_check\":\"none\""));
  // A second prepare replaces the first, which is never committed.
  auto again = manager_->prepare(configOf({one}));
  ASSERT_TRUE(again.ok());
  manager_->commit();
  EXPECT_EQ(manager_->current()[0], first[0]);
  EXPECT_THAT(manager_->json(), HasSubstr("\"active_health_check\":\"none\""));
}

TEST_F(ClusterManagerTest, JsonShowsPolicyBreakersAndEndpoints) {
  start();
  update(configOf({R"pb(
                     name: "web"
                     lb_policy: MAGLEV
                     circuit_breakers { max_requests: 10 }
                     endpoints { address: "127.0.0.1" port: 81 weight: 3 priority: 1 }
                   )pb"}));
  std::string json = manager_->json();
  EXPECT_THAT(json, HasSubstr("\"lb_policy\":\"MAGLEV\""));
  EXPECT_THAT(json, HasSubstr("\"circuit_breakers\":{\"rq_active\":0"));
  EXPECT_THAT(json, HasSubstr("\"weight\":3,\"priority\":1,\"health\":\"healthy\""));
  EXPECT_THAT(json, HasSubstr("\"priority_load\":[0,100]"));
}

}  // namespace
}  // namespace sluice::upstream
