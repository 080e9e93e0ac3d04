// The plain proxy path allocates nothing per request in steady state: a real sluice, with every
// call into the C heap counted by an LD_PRELOAD library (malloc_counter.cc), forwards thousands
// of keep-alive requests to a sluice-echo upstream; the count may not grow with them.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

constexpr char kSluice[] = "proxy/server/sluice";
constexpr char kEcho[] = "tools/echo/sluice-echo";
constexpr char kCounter[] = "test/integration/libmalloc_counter.so";

constexpr char kConfig[] = R"(kind: Listener
name: main
address: 127.0.0.1
port: {LISTEN}
route_config: main
---
kind: Cluster
name: echo
endpoints:
  - {address: 127.0.0.1, port: {ECHO}}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: any
    domains: ["*"]
    routes:
      - {match: {path: /healthz}, direct_response: {status: 200, body: "ok"}}
      - {match: {prefix: /}, route: {cluster: echo}}
)";

class AllocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    echo_port_ = freePort();
    port_ = freePort();
    admin_port_ = freePort();
    echo_ = std::make_unique<Process>(
        kEcho, std::vector<std::string>{"--listen", absl::StrCat("127.0.0.1:", echo_port_)},
        "echo");
    ASSERT_TRUE(
        waitFor(absl::Seconds(10), [&] { return HttpConnection::connect(echo_port_).ok(); }));
    dir_ = makeTempDir("allocation");
    count_file_ = dir_ + "/malloc-count";
    writeFile(dir_ + "/config.yaml",
              absl::StrReplaceAll(kConfig, {{"{LISTEN}", absl::StrCat(port_)},
                                            {"{ECHO}", absl::StrCat(echo_port_)}}));
    char cwd[4096];
    ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
    // Only the proxy gets the counter: set for its spawn, unset again.
    setenv("LD_PRELOAD", absl::StrCat(cwd, "/", kCounter).c_str(), 1);
    setenv("MALLOC_COUNTER_FILE", count_file_.c_str(), 1);
    sluice_ = std::make_unique<Process>(
        kSluice,
        std::vector<std::string>{"--config-dir", dir_, "--workers", "1", "--admin",
                                 absl::StrCat("127.0.0.1:", admin_port_)},
        "sluice");
    unsetenv("LD_PRELOAD");
    unsetenv("MALLOC_COUNTER_FILE");
    ASSERT_TRUE(waitFor(absl::Seconds(15), [&] {
      return httpGet(admin_port_, "/ready") == "ready\n" && HttpConnection::connect(port_).ok();
    })) << sluice_->log();
  }

  void TearDown() override {
    if (sluice_ == nullptr) return;
    EXPECT_TRUE(sluice_->running()) << "sluice exited during the test";
    int status = sluice_->stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
  }

  // The proxy's heap calls so far, or -1.
  int64_t heapCalls() {
    std::remove(count_file_.c_str());
    kill(sluice_->pid(), SIGUSR2);
    int64_t n = -1;
    waitFor(absl::Seconds(5), [&] {
      std::string text = readFile(count_file_);
      return absl::SimpleAtoi(absl::StripSuffix(text, "\n"), &n);
    });
    return n;
  }

  // `rounds` requests on each connection, every answer checked.
  void traffic(std::vector<std::unique_ptr<HttpConnection>>& conns, int rounds,
               const std::string& path, const std::string& want_body) {
    std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\n\r\n");
    for (int r = 0; r < rounds; ++r) {
      for (auto& c : conns) {
        auto response = c->roundTrip(request);
        ASSERT_TRUE(response.ok()) << response.status();
        ASSERT_EQ(response->status, 200);
        if (!want_body.empty()) ASSERT_EQ(response->body, want_body);
      }
    }
  }

  int echo_port_ = 0, port_ = 0, admin_port_ = 0;
  std::string dir_, count_file_;
  std::unique_ptr<Process> echo_, sluice_;
};

TEST_F(AllocationTest, KeepAliveRequestsDoNotReachTheHeap) {
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < 8; ++i) {
    auto c = HttpConnection::connect(port_);
    ASSERT_TRUE(c.ok()) << c.status();
    conns.push_back(std::move(*c));
  }
  // Warm-up: connections, upstream pool, free lists and lazily grown vectors reach their size.
  traffic(conns, 50, "/warm", "");
  traffic(conns, 10, "/healthz", "ok");
  int64_t before = heapCalls();
  ASSERT_GT(before, 0) << "the counter is not loaded into the proxy";

  traffic(conns, 250, "/steady/state?x=1", "");  // 2,000 proxied requests
  traffic(conns, 25, "/healthz", "ok");          // 200 direct responses
  int64_t after = heapCalls();
  ASSERT_GE(after, before);
  std::cout << "heap calls for 2,200 keep-alive requests: " << after - before << "\n";
  // Timers and the main thread may allocate now and then; a request may not.
  EXPECT_LT(after - before, 20) << (after - before) << " heap calls for 2,200 requests";
}

// The counter itself: a proxy that has to allocate (new connections, each with its own
// connection object and buffers) shows it, so the test above could fail.
TEST_F(AllocationTest, NewConnectionsDoReachTheHeap) {
  {
    auto c = HttpConnection::connect(port_);
    ASSERT_TRUE(c.ok());
  }
  int64_t before = heapCalls();
  ASSERT_GT(before, 0);
  for (int i = 0; i < 50; ++i) {
    auto c = HttpConnection::connect(port_);
    ASSERT_TRUE(c.ok()) << c.status();
    auto response = (*c)->roundTrip("GET /fresh HTTP/1.1\r\nHost: test\r\n\r\n");
    ASSERT_TRUE(response.ok()) << response.status();
    ASSERT_EQ(response->status, 200);
  }
  int64_t after = heapCalls();
  EXPECT_GE(after - before, 50);
}

}  // namespace
}  // namespace sluice::testing
