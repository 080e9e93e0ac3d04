// The proxy times every config generation it applies: compiling on the main thread, and the
// rollout until every worker runs it. A real sluice in --config-dir mode, reloaded with SIGHUP;
// the metrics and the log line must agree with what was applied (never with a time limit).
#include <signal.h>
#include <sys/wait.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSluice[] = "proxy/server/sluice";

// {PORT} is the listener's port; {ROUTES} the routes of the one virtual host.
constexpr char kConfig[] = R"(kind: Listener
name: main
address: 127.0.0.1
port: {PORT}
route_config: main
---
kind: Cluster
name: a
endpoints:
  - {address: 127.0.0.1, port: 9}
---
kind: Cluster
name: b
endpoints:
  - {address: 127.0.0.1, port: 9}
  - {address: 127.0.0.2, port: 9}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: any
    domains: ["*"]
    routes:
{ROUTES})";

std::string config(int port, int routes) {
  std::string lines;
  for (int i = 0; i < routes; ++i) {
    absl::StrAppend(&lines, "      - {match: {path: /r", i,
                    "}, route: {cluster: ", i % 2 == 0 ? "a" : "b", "}}\n");
  }
  return absl::StrReplaceAll(kConfig, {{"{PORT}", absl::StrCat(port)}, {"{ROUTES}", lines}});
}

class GenerationMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freePort();
    admin_port_ = freePort();
    dir_ = makeTempDir("generation-metrics");
    writeFile(dir_ + "/config.yaml", config(port_, 3));
    sluice_ = std::make_unique<Process>(
        kSluice,
        std::vector<std::string>{"--config-dir", dir_, "--workers", "2", "--admin",
                                 absl::StrCat("127.0.0.1:", admin_port_)},
        "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(15), [&] { return metric(kPublishCount) == 1; }))
        << sluice_->log();
  }

  void TearDown() override {
    int status = sluice_->stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
    if (HasFailure()) std::cerr << "--- sluice log ---\n" << sluice_->log();
  }

  // Every series on /metrics, "name{labels}" -> value.
  std::map<std::string, double> metrics() {
    std::map<std::string, double> out;
    for (absl::string_view line : absl::StrSplit(httpGet(admin_port_, "/metrics"), '\n')) {
      if (line.empty() || line[0] == '#') continue;
      std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 1));
      double v;
      if (parts.size() == 2 && absl::SimpleAtod(parts[1], &v)) out[std::string(parts[0])] = v;
    }
    return out;
  }

  double metric(const std::string& series) {
    auto m = metrics();
    auto it = m.find(series);
    return it == m.end() ? -1 : it->second;
  }

  // What every applied generation must satisfy once `n` generations are live.
  void expectConsistent(int n, int routes) {
    auto m = metrics();
    EXPECT_EQ(m["sluice_server_generations_total"], n);
    EXPECT_EQ(m[kCompileCount], n);
    EXPECT_EQ(m[kPublishCount], n);
    EXPECT_EQ(m["sluice_server_config_compile_seconds_bucket{le=\"+Inf\"}"], n);
    EXPECT_EQ(m["sluice_server_config_publish_seconds_bucket{le=\"+Inf\"}"], n);
    // Each rollout starts when compiling does and ends after it, so the sums keep that order.
    EXPECT_GT(m["sluice_server_config_compile_seconds_sum"], 0);
    EXPECT_GE(m["sluice_server_config_publish_seconds_sum"],
              m["sluice_server_config_compile_seconds_sum"]);
    EXPECT_EQ(m["sluice_server_generation_live"], n);
    EXPECT_EQ(m["sluice_server_config_routes"], routes);
    EXPECT_EQ(m["sluice_server_config_clusters"], 2);
    EXPECT_EQ(m["sluice_server_config_listeners"], 1);
  }

  static constexpr char kCompileCount[] = "sluice_server_config_compile_seconds_count";
  static constexpr char kPublishCount[] = "sluice_server_config_publish_seconds_count";

  int port_ = 0, admin_port_ = 0;
  std::string dir_;
  std::unique_ptr<Process> sluice_;
};

TEST_F(GenerationMetricsTest, FirstGenerationIsTimedAndLogged) {
  expectConsistent(1, 3);
  const std::string log = sluice_->log();
  EXPECT_THAT(log, HasSubstr("generation 1: compiled in "));
  EXPECT_THAT(log, HasSubstr(" ms, live on 2 workers in "));
  EXPECT_THAT(log, HasSubstr(" ms (3 routes, 2 clusters, 1 listeners)"));
  EXPECT_THAT(log, HasSubstr(" ms: read "));
}

TEST_F(GenerationMetricsTest, EachReloadAddsOneTimedGeneration) {
  writeFile(dir_ + "/config.yaml", config(port_, 40));
  ASSERT_EQ(kill(sluice_->pid(), SIGHUP), 0);
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return metric(kPublishCount) == 2; }))
      << sluice_->log();
  expectConsistent(2, 40);
  EXPECT_THAT(sluice_->log(), HasSubstr("generation 2: compiled in "));
  EXPECT_THAT(sluice_->log(), HasSubstr("(40 routes, 2 clusters, 1 listeners)"));

  writeFile(dir_ + "/config.yaml", config(port_, 7));
  ASSERT_EQ(kill(sluice_->pid(), SIGHUP), 0);
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return metric(kPublishCount) == 3; }))
      << sluice_->log();
  expectConsistent(3, 7);
}

TEST_F(GenerationMetricsTest, RejectedReloadIsNotAGeneration) {
  writeFile(dir_ + "/config.yaml",
            absl::StrReplaceAll(config(port_, 2), {{"cluster: b", "cluster: missing"}}));
  ASSERT_EQ(kill(sluice_->pid(), SIGHUP), 0);
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
    return absl::StrContains(sluice_->log(), "reload of");
  })) << sluice_->log();
  expectConsistent(1, 3);
}

}  // namespace
}  // namespace sluice::testing
