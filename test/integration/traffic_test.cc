// Traffic management end to end (issue 5): retry policies, per-try and route timeouts, circuit
// breakers and route concurrency limits, fallback answers, fault injection, header and cookie
// routing, the per-route idle timeout. A real sluice in --config-dir mode in front of real
// sluice-echo upstreams, all on 127.0.0.1. Where a test must know that requests are in flight
// when it sends the next ones, the upstream is a TestUpstream of this file that answers only
// when the test releases it: no delay that a slow machine could outlast.
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/common/loopback.h"
#include "test/integration/echo.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSluice[] = "proxy/server/sluice";

// Appended to every test's clusters and route configuration "main".
constexpr char kListener[] = R"(
---
kind: Listener
name: main
address: 127.0.0.1
port: {LISTEN}
route_config: main
)";

std::string sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), len));
}

// Deterministic bytes with no short period: a request body.
std::string uploadBody(size_t size) {
  std::string s(size, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// The value of a "key: value" line of sluice-echo's answer (tools/echo/README.md), or "".
std::string echoLine(absl::string_view echo, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(echo, '\n')) {
    if (absl::ConsumePrefix(&line, key) && absl::ConsumePrefix(&line, ": ")) {
      return std::string(line);
    }
  }
  return "";
}

// Whether `r` is sluice-echo's answer to a request that carried exactly `body`.
::testing::AssertionResult echoedBody(const HttpResponse& r, absl::string_view body) {
  if (r.status != 200) return ::testing::AssertionFailure() << r.status << " " << r.body;
  if (echoLine(r.body, "body-bytes") != absl::StrCat(body.size()) ||
      echoLine(r.body, "body-sha256") != sha256Hex(body)) {
    return ::testing::AssertionFailure() << "the upstream saw another body: " << r.body;
  }
  return ::testing::AssertionSuccess();
}

std::string request(absl::string_view method, absl::string_view target,
                    absl::string_view headers = "", absl::string_view body = "") {
  std::string length = method == "GET" ? "" : absl::StrCat("Content-Length: ", body.size(), "\r\n");
  return absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: test\r\n", headers, length, "\r\n",
                      body);
}

std::string get(absl::string_view target, absl::string_view headers = "") {
  return request("GET", target, headers);
}

// An upstream of the test's own on a free port. It counts each request head it reads, then
// kHold: holds the request until release(), and from then on answers at once ("held\n",
// keep-alive); kCloseUnanswered: closes the connection without an answer.
class TestUpstream {
 public:
  enum class Behaviour { kHold, kCloseUnanswered };
  static constexpr char kAnswer[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nheld\n";

  explicit TestUpstream(Behaviour behaviour) : behaviour_(behaviour) {
    listen_fd_ = listenLoopback(64, &port_);
    if (listen_fd_ >= 0) acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~TestUpstream() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (acceptor_.joinable()) acceptor_.join();
    {
      // Ends the reads that block.
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : threads_) t.join();
    for (int fd : fds_) close(fd);
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;

  int port() const { return port_; }
  int received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  // Waits (bounded) until `n` request heads arrived.
  bool waitReceived(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return received_ >= n; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  void acceptLoop() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
      }
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::string buf, head;
    while (readRequestHead(fd, &buf, &head)) {
      std::unique_lock<std::mutex> lock(mu_);
      ++received_;
      cv_.notify_all();
      if (behaviour_ == Behaviour::kCloseUnanswered) {
        shutdown(fd, SHUT_RDWR);  // closed for good by the destructor
        return;
      }
      cv_.wait(lock, [&] { return released_ || stop_; });
      if (stop_) return;
      lock.unlock();
      if (!sendAll(fd, kAnswer)) return;
    }
  }

  const Behaviour behaviour_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool released_ = false;
  int received_ = 0;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

// A listening socket whose accept queue is full and never drained: the kernel drops further
// SYNs, so a connect to it stays pending until the connecting side gives up.
class Blackhole {
 public:
  Blackhole() {
    // Backlog 0 queues one connection: the filler's.
    listen_fd_ = listenLoopback(0, &port_);
    if (listen_fd_ < 0) return;
    filler_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    if (connect(filler_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) port_ = 0;
  }
  ~Blackhole() {
    if (filler_ >= 0) close(filler_);
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  Blackhole(const Blackhole&) = delete;
  Blackhole& operator=(const Blackhole&) = delete;

  int port() const { return port_; }

 private:
  int listen_fd_ = -1;
  int filler_ = -1;
  int port_ = 0;
};

class TrafficTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Nothing listens here.
    ports_["{dead}"] = freePort();
  }

  void TearDown() override {
    // A test that failed half-way may leave requests held: the proxy's drain would wait.
    for (auto& upstream : upstreams_) upstream->release();
    if (sluice_ == nullptr) return;
    EXPECT_TRUE(sluice_->running()) << "sluice exited during the test";
    int status = sluice_->stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
    if (HasFailure()) std::cerr << "--- sluice log ---\n" << sluice_->log();
  }

  // A sluice-echo whose port the config names "{name}"; null (and a failure) if it did not
  // start.
  Echo* startEcho(const std::string& name, const std::vector<std::string>& flags = {}) {
    echoes_.push_back(std::make_unique<Echo>(name));
    Echo* echo = echoes_.back().get();
    if (!echo->start(0, flags)) {
      ADD_FAILURE() << "sluice-echo " << name << " did not start: " << echo->log();
      return nullptr;
    }
    namePort(name, echo->port());
    return echo;
  }

  // A TestUpstream whose port the config names "{name}"; null (and a failure) if it could not
  // listen.
  TestUpstream* startUpstream(const std::string& name, TestUpstream::Behaviour behaviour) {
    upstreams_.push_back(std::make_unique<TestUpstream>(behaviour));
    TestUpstream* upstream = upstreams_.back().get();
    if (upstream->port() <= 0) {
      ADD_FAILURE() << "no listening socket for " << name;
      return nullptr;
    }
    namePort(name, upstream->port());
    return upstream;
  }

  // Names `port` "{name}" in the config.
  void namePort(const std::string& name, int port) { ports_[absl::StrCat("{", name, "}")] = port; }

  // Starts sluice on `config` (clusters and the route configuration "main"; "{name}" stands
  // for the port named so) and waits until it serves.
  void startProxy(const std::string& config, int workers = 2) {
    port_ = freePort();
    admin_port_ = freePort();
    ports_["{LISTEN}"] = port_;
    std::vector<std::pair<std::string, std::string>> replacements;
    for (const auto& [name, port] : ports_) replacements.emplace_back(name, absl::StrCat(port));
    const std::string dir = makeTempDir("traffic-config");
    writeFile(dir + "/config.yaml",
              absl::StrReplaceAll(absl::StrCat(config, kListener), replacements));
    sluice_ = std::make_unique<Process>(
        kSluice,
        std::vector<std::string>{"--config-dir", dir, "--workers", absl::StrCat(workers), "--admin",
                                 absl::StrCat("127.0.0.1:", admin_port_)},
        "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(15), [&] {
      return httpGet(admin_port_, "/ready") == "ready\n" && HttpConnection::connect(port_).ok();
    })) << sluice_->log();
  }

  std::unique_ptr<HttpConnection> connect() {
    auto c = HttpConnection::connect(port_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // `bytes` on a fresh connection; status 0 when no answer came.
  HttpResponse send(const std::string& bytes) {
    auto c = connect();
    if (c == nullptr) return {};
    return answer(*c, bytes);
  }

  // `bytes` on `c`, and its answer; status 0 when none came.
  static HttpResponse answer(HttpConnection& c, const std::string& bytes) {
    auto r = c.roundTrip(bytes);
    EXPECT_TRUE(r.ok()) << r.status() << " for " << bytes.substr(0, bytes.find('\r'));
    return r.ok() ? *r : HttpResponse{};
  }

  // The next answer on `c`; status 0 when none came.
  static HttpResponse next(HttpConnection& c) {
    auto r = c.read();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }

  // The sum of the series of metric `name` on the admin /metrics page whose labels include
  // every `label="value"` of `labels`; -1 when there is none (a misspelt name does not read 0).
  double metric(absl::string_view name,
                std::initializer_list<std::pair<absl::string_view, absl::string_view>> labels) {
    const std::string text = httpGet(admin_port_, "/metrics");
    double sum = 0;
    bool found = false;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (!absl::ConsumePrefix(&line, name) || line.empty() || (line[0] != '{' && line[0] != ' ')) {
        continue;
      }
      const size_t space = line.rfind(' ');
      const absl::string_view series = line.substr(0, space);
      bool match = true;
      for (const auto& [label, value] : labels) {
        match = match && absl::StrContains(series, absl::StrCat(label, "=\"", value, "\""));
      }
      double v = 0;
      if (!match || !absl::SimpleAtod(line.substr(space + 1), &v)) continue;
      sum += v;
      found = true;
    }
    return found ? sum : -1;
  }

  double clusterMetric(absl::string_view name, absl::string_view cluster) {
    return metric(name, {{"cluster", cluster}});
  }

  // Waits (bounded) until a counter reaches `at_least`, since a scrape may come a moment
  // before a worker counted what it just answered; then its value.
  double counterOnceAtLeast(absl::string_view name, absl::string_view cluster, double at_least) {
    waitFor(absl::Seconds(5), [&] { return clusterMetric(name, cluster) >= at_least; });
    return clusterMetric(name, cluster);
  }

  int port_ = 0, admin_port_ = 0;
  std::map<std::string, int> ports_;
  std::vector<std::unique_ptr<Echo>> echoes_;
  std::vector<std::unique_ptr<TestUpstream>> upstreams_;
  std::unique_ptr<Process> sluice_;
};

// --- Retries -------------------------------------------------------------------------------------

TEST_F(TrafficTest, RetriesHideAStoppedUpstream) {
  Echo* a = startEcho("a");
  Echo* b = startEcho("b");
  Echo* c = startEcho("c");
  ASSERT_TRUE(a && b && c);
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: trio
lb_policy: ROUND_ROBIN
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route:
          cluster: trio
          retry_policy: {retry_on: [connect-failure, 5xx], num_retries: 2}
)"));
  // Every upstream answers, and the workers pool connections to each.
  std::map<std::string, int> by_name;
  for (int i = 0; i < 12; ++i) {
    HttpResponse r = send(get("/warm"));
    ASSERT_EQ(r.status, 200) << r.body;
    ++by_name[r.header("x-echo-name")];
  }
  EXPECT_EQ(by_name.size(), 3u);

  ASSERT_TRUE(c->stop()) << c->log();
  // Half the requests on one kept-alive connection (a retry's state must not outlive its
  // request), half on fresh ones (both workers).
  auto kept = connect();
  ASSERT_NE(kept, nullptr);
  int not_ok = 0, from_c = 0;
  std::string first_failure;
  for (int i = 0; i < 150; ++i) {
    const std::string target = absl::StrCat("/after-stop/", i);
    HttpResponse r = i % 2 == 0 ? answer(*kept, get(target)) : send(get(target));
    if (r.status != 200 && not_ok++ == 0) first_failure = absl::StrCat(r.status, " ", r.body);
    from_c += r.header("x-echo-name") == "c" ? 1 : 0;
  }
  EXPECT_EQ(not_ok, 0) << "first: " << first_failure;
  EXPECT_EQ(from_c, 0);
  // Pipelined requests wait behind one being retried and are answered in order.
  ASSERT_TRUE(kept->send(absl::StrCat(get("/pipelined/0"), get("/pipelined/1"), get("/pipelined/2"),
                                      get("/pipelined/3")))
                  .ok());
  for (int i = 0; i < 4; ++i) {
    HttpResponse r = next(*kept);
    EXPECT_EQ(r.status, 200) << i;
    EXPECT_TRUE(absl::StartsWith(r.body, absl::StrCat("GET /pipelined/", i, " "))) << r.body;
  }
  EXPECT_GT(counterOnceAtLeast("sluice_cluster_upstream_rq_retry_total", "trio", 1), 0);
  EXPECT_GT(clusterMetric("sluice_cluster_upstream_rq_retry_success_total", "trio"), 0);
  EXPECT_GT(clusterMetric("sluice_cluster_upstream_cx_connect_fail_total", "trio"), 0);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_local_5xx_total", "trio"), 0);
}

TEST_F(TrafficTest, RetriesOnUpstreamStatusAsThePolicySays) {
  // Round robin over the two: each worker's requests alternate between them unless retried.
  ASSERT_TRUE(startEcho("failing", {"--status", "503"}) && startEcho("ok"));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: any5xx
endpoints: [{address: 127.0.0.1, port: {failing}}, {address: 127.0.0.1, port: {ok}}]
---
kind: Cluster
name: listed503
endpoints: [{address: 127.0.0.1, port: {failing}}, {address: 127.0.0.1, port: {ok}}]
---
kind: Cluster
name: listed500
endpoints: [{address: 127.0.0.1, port: {failing}}, {address: 127.0.0.1, port: {ok}}]
---
kind: Cluster
name: noretries
circuit_breakers: {max_retries: 0}
endpoints: [{address: 127.0.0.1, port: {failing}}, {address: 127.0.0.1, port: {ok}}]
---
kind: Cluster
name: nopolicy
endpoints: [{address: 127.0.0.1, port: {failing}}, {address: 127.0.0.1, port: {ok}}]
---
# A retry budget of nothing: no retry is ever in the budget.
kind: Cluster
name: nobudget
circuit_breakers: {retry_budget: {budget_percent: 0, min_retry_concurrency: 0}}
endpoints: [{address: 127.0.0.1, port: {failing}}, {address: 127.0.0.1, port: {ok}}]
---
# The default budget: 20% of requests in flight, but always 3 retries.
kind: Cluster
name: budget
circuit_breakers: {retry_budget: {}}
endpoints: [{address: 127.0.0.1, port: {failing}}, {address: 127.0.0.1, port: {ok}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /any5xx}
        route:
          cluster: any5xx
          retry_policy: {retry_on: [5xx]}
      - match: {prefix: /listed503}
        route:
          cluster: listed503
          retry_policy: {retry_on: [retriable-status-codes], retriable_status_codes: [503]}
      - match: {prefix: /listed500}
        route:
          cluster: listed500
          retry_policy: {retry_on: [retriable-status-codes], retriable_status_codes: [500]}
      - match: {prefix: /post}
        route:
          cluster: any5xx
          retry_policy: {retry_on: [5xx], retry_non_idempotent: true}
      - match: {prefix: /noretries}
        route:
          cluster: noretries
          retry_policy: {retry_on: [5xx]}
      - match: {prefix: /nopolicy}
        route: {cluster: nopolicy}
      - match: {prefix: /nobudget}
        route:
          cluster: nobudget
          retry_policy: {retry_on: [5xx]}
      - match: {prefix: /budget}
        route:
          cluster: budget
          retry_policy: {retry_on: [5xx]}
)"));
  constexpr int kRequests = 20;
  // Answers by status, per route.
  auto statuses = [&](absl::string_view route) {
    std::map<int, int> count;
    for (int i = 0; i < kRequests; ++i) ++count[send(get(absl::StrCat(route, "/", i))).status];
    return count;
  };
  for (absl::string_view retried : {"any5xx", "listed503", "budget"}) {
    SCOPED_TRACE(retried);
    EXPECT_EQ(statuses(absl::StrCat("/", retried)), (std::map<int, int>{{200, kRequests}}));
    const double successes =
        counterOnceAtLeast("sluice_cluster_upstream_rq_retry_success_total", retried, 1);
    EXPECT_GT(successes, 0);
    EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_retry_total", retried), successes);
  }
  // The body of a POST answered 503 goes again, whole, to the other upstream.
  const std::string body = uploadBody(20000);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(echoedBody(send(request("POST", absl::StrCat("/post/", i), "", body)), body)) << i;
  }
  for (absl::string_view passed_on : {"listed500", "noretries", "nopolicy", "nobudget"}) {
    SCOPED_TRACE(passed_on);
    std::map<int, int> count = statuses(absl::StrCat("/", passed_on));
    EXPECT_GT(count[503], 0);
    EXPECT_GT(count[200], 0);
    EXPECT_EQ(count[503] + count[200], kRequests);
    EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_retry_total", passed_on), 0);
  }
  // The circuit breaker's max_retries: 0 refused each retry the policy asked for.
  EXPECT_GT(clusterMetric("sluice_cluster_upstream_rq_retry_overflow_total", "noretries"), 0);
  EXPECT_GT(clusterMetric("sluice_cluster_upstream_rq_retry_overflow_total", "nobudget"), 0);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_retry_overflow_total", "budget"), 0);
}

TEST_F(TrafficTest, RetriesAfterAConnectionClosedUnanswered) {
  TestUpstream* closer = startUpstream("closer", TestUpstream::Behaviour::kCloseUnanswered);
  ASSERT_NE(closer, nullptr);
  ASSERT_TRUE(startEcho("ok"));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: pair
endpoints: [{address: 127.0.0.1, port: {closer}}, {address: 127.0.0.1, port: {ok}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /reset}
        route:
          cluster: pair
          retry_policy: {retry_on: [reset]}
      - match: {prefix: /gateway-error}
        route:
          cluster: pair
          retry_policy: {retry_on: [gateway-error]}
      - match: {prefix: /connect-failure}
        route:
          cluster: pair
          retry_policy: {retry_on: [connect-failure]}
)"));
  for (absl::string_view route : {"/reset", "/gateway-error"}) {
    for (int i = 0; i < 10; ++i) {
      HttpResponse r = send(get(absl::StrCat(route, "/", i)));
      EXPECT_EQ(r.status, 200) << route << ": " << r.body;
      EXPECT_EQ(r.header("x-echo-name"), "ok");
    }
  }
  const int closed = closer->received();
  EXPECT_GT(closed, 0);
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_rq_retry_total", "pair", closed), closed);
  // A closed connection is not a connect failure: passed on as 502.
  int passed_on = 0;
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = send(get(absl::StrCat("/connect-failure/", i)));
    if (r.status == 502) {
      ++passed_on;
      EXPECT_EQ(r.body, "upstream connection closed\n");
    } else {
      EXPECT_EQ(r.status, 200) << r.body;
    }
  }
  EXPECT_GT(passed_on, 0);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_retry_total", "pair"), closed);
}

TEST_F(TrafficTest, PerTryTimeoutRetriesOnTheOtherEndpoint) {
  // Round robin: a worker's retry takes the fast upstream's turn, so after its first request
  // each worker tries the slow one first every time. The per-try timeout is what the fast one
  // has to answer in.
  ASSERT_TRUE(startEcho("slow", {"--delay", "10s"}) && startEcho("fast"));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: pair
endpoints: [{address: 127.0.0.1, port: {slow}}, {address: 127.0.0.1, port: {fast}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route:
          cluster: pair
          timeout: 5s
          retry_policy: {retry_on: [gateway-error], num_retries: 1, per_try_timeout: 500ms}
)"));
  for (int i = 0; i < 4; ++i) {
    HttpResponse r = send(get(absl::StrCat("/", i)));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-echo-name"), "fast");
  }
  EXPECT_GT(counterOnceAtLeast("sluice_cluster_upstream_rq_per_try_timeout_total", "pair", 1), 0);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_timeout_total", "pair"), 0);
}

TEST_F(TrafficTest, PerTryTimeoutWithoutRetriesIs504) {
  ASSERT_TRUE(startEcho("slow", {"--delay", "2s"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: slow
endpoints: [{address: 127.0.0.1, port: {slow}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route:
          cluster: slow
          timeout: 5s
          retry_policy: {retry_on: [gateway-error], num_retries: 0, per_try_timeout: 200ms}
)"));
  HttpResponse r = send(get("/"));
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.body, "upstream per-try timeout\n");
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_rq_per_try_timeout_total", "slow", 1), 1);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_retry_total", "slow"), 0);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_timeout_total", "slow"), 0);
}

TEST_F(TrafficTest, RouteTimeoutCoversEveryAttempt) {
  ASSERT_TRUE(startEcho("slow", {"--delay", "3s"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: slow
endpoints: [{address: 127.0.0.1, port: {slow}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route:
          cluster: slow
          timeout: 1.5s
          retry_policy: {retry_on: [5xx], num_retries: 5, per_try_timeout: 1s}
)"));
  HttpResponse r = send(get("/"));
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.body, "upstream request timeout\n");
  // The first attempt timed out and was retried; the route timeout ended the second.
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_rq_timeout_total", "slow", 1), 1);
  EXPECT_GE(clusterMetric("sluice_cluster_upstream_rq_per_try_timeout_total", "slow"), 1);
  const double retries = clusterMetric("sluice_cluster_upstream_rq_retry_total", "slow");
  EXPECT_GE(retries, 1);
  EXPECT_LE(retries, 2);
}

TEST_F(TrafficTest, NonIdempotentRequestsAreRetriedOnlyWhenThePolicyAllows) {
  // Round robin: a worker's second request at the latest tries the dead endpoint.
  ASSERT_TRUE(startEcho("live"));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: halfdead
endpoints: [{address: 127.0.0.1, port: {dead}}, {address: 127.0.0.1, port: {live}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /idempotent-only}
        route:
          cluster: halfdead
          retry_policy: {retry_on: [connect-failure]}
      - match: {prefix: /any-method}
        route:
          cluster: halfdead
          retry_policy: {retry_on: [connect-failure], retry_non_idempotent: true}
      - match: {prefix: /small-buffer}
        route:
          cluster: halfdead
          retry_policy:
            retry_on: [connect-failure]
            retry_non_idempotent: true
            max_buffered_body_bytes: 1024
)"));
  const std::string body = uploadBody(10000);
  // Not retried: some POSTs hit the dead endpoint; those that reach the live one arrive whole.
  for (absl::string_view route : {"/idempotent-only", "/small-buffer"}) {
    SCOPED_TRACE(route);
    int refused = 0;
    for (int i = 0; i < 10; ++i) {
      HttpResponse r = send(request("POST", route, "", body));
      if (r.status == 502) {
        ++refused;
        EXPECT_THAT(r.body, HasSubstr("upstream connect error"));
      } else {
        EXPECT_TRUE(echoedBody(r, body));
      }
    }
    EXPECT_GT(refused, 0);
  }
  const double retries_before = clusterMetric("sluice_cluster_upstream_rq_retry_total", "halfdead");
  // Retried: every POST reaches the live upstream with its whole body, with Content-Length or
  // chunked.
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(echoedBody(send(request("POST", "/any-method", "", body)), body)) << i;
  }
  // Near the default 64 KiB buffer: more than the 32 KiB window waits in the client buffer
  // while the first attempt connects.
  const std::string large = uploadBody(60000);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(echoedBody(send(request("POST", "/any-method", "", large)), large)) << i;
  }
  for (int i = 0; i < 5; ++i) {
    HttpResponse r =
        send(absl::StrCat("POST /any-method HTTP/1.1\r\nHost: test\r\n",
                          "Transfer-Encoding: chunked\r\n\r\n", chunkedBody(body, 3000)));
    EXPECT_TRUE(echoedBody(r, body)) << i;
  }
  EXPECT_GT(clusterMetric("sluice_cluster_upstream_rq_retry_total", "halfdead"), retries_before);
}

// --- Circuit breakers and concurrency limits -----------------------------------------------------

TEST_F(TrafficTest, CircuitBreakerMaxRequestsIsExact) {
  TestUpstream* held = startUpstream("held", TestUpstream::Behaviour::kHold);
  ASSERT_NE(held, nullptr);
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: held
circuit_breakers: {max_requests: 3}
endpoints: [{address: 127.0.0.1, port: {held}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: held}
)"));
  // Five connections, spread over both workers: the limit is the cluster's, not a worker's.
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < 5; ++i) {
    conns.push_back(connect());
    ASSERT_NE(conns.back(), nullptr);
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(conns[i]->send(get("/in-flight")).ok());
  ASSERT_TRUE(held->waitReceived(3));
  for (int i = 3; i < 5; ++i) {
    HttpResponse r = answer(*conns[i], get("/over"));
    EXPECT_EQ(r.status, 503) << i;
    EXPECT_EQ(r.header("x-sluice-overflow"), "max_requests") << i;
    EXPECT_EQ(r.body, "upstream overflow: too many requests\n") << i;
  }
  EXPECT_EQ(held->received(), 3);
  held->release();
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = next(*conns[i]);
    EXPECT_EQ(r.status, 200) << i;
    EXPECT_EQ(r.body, "held\n") << i;
    EXPECT_EQ(r.headerCount("x-sluice-overflow"), 0);
  }
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_rq_overflow_total", "held", 2), 2);
  // Every place is free again, the refused requests' included.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(conns[i]->send(get("/again")).ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(next(*conns[i]).status, 200) << i;
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_overflow_total", "held"), 2);
}

TEST_F(TrafficTest, RouteMaxConcurrentRequestsIsExact) {
  TestUpstream* held = startUpstream("held", TestUpstream::Behaviour::kHold);
  ASSERT_NE(held, nullptr);
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: held
endpoints: [{address: 127.0.0.1, port: {held}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - name: limited
        match: {prefix: /limited}
        route: {cluster: held, max_concurrent_requests: 2}
      - match: {prefix: /}
        route: {cluster: held}
)"));
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < 6; ++i) {
    conns.push_back(connect());
    ASSERT_NE(conns.back(), nullptr);
  }
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(conns[i]->send(get("/limited")).ok());
  ASSERT_TRUE(held->waitReceived(2));
  for (int i = 2; i < 5; ++i) {
    HttpResponse r = answer(*conns[i], get("/limited"));
    EXPECT_EQ(r.status, 503) << i;
    EXPECT_EQ(r.header("x-sluice-overflow"), "route_max_concurrent_requests") << i;
    EXPECT_EQ(r.body, "route concurrency limit reached\n") << i;
  }
  // Another route to the same cluster is not limited.
  ASSERT_TRUE(conns[5]->send(get("/other")).ok());
  ASSERT_TRUE(held->waitReceived(3));
  held->release();
  for (int i : {0, 1, 5}) {
    HttpResponse r = next(*conns[i]);
    EXPECT_EQ(r.status, 200) << i;
    EXPECT_EQ(r.body, "held\n") << i;
  }
  waitFor(absl::Seconds(5), [&] {
    return metric("sluice_route_rq_overflow_total", {{"route", "limited"}}) >= 3;
  });
  EXPECT_EQ(metric("sluice_route_rq_overflow_total", {{"route", "limited"}}), 3);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(conns[i]->send(get("/limited")).ok());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(next(*conns[i]).status, 200) << i;
}

TEST_F(TrafficTest, CircuitBreakerMaxConnections) {
  TestUpstream* held = startUpstream("held", TestUpstream::Behaviour::kHold);
  ASSERT_NE(held, nullptr);
  // One worker: the second request must find the only connection busy, and a later one find
  // it idle in the same pool.
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: held
circuit_breakers: {max_connections: 1}
endpoints: [{address: 127.0.0.1, port: {held}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: held}
)",
                                     /*workers=*/1));
  auto first = connect();
  auto second = connect();
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->send(get("/first")).ok());
  ASSERT_TRUE(held->waitReceived(1));
  HttpResponse r = answer(*second, get("/second"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("x-sluice-overflow"), "max_connections");
  EXPECT_EQ(r.body, "upstream overflow: too many connections\n");
  held->release();
  EXPECT_EQ(next(*first).status, 200);
  // The connection is pooled again: the next request takes it.
  EXPECT_EQ(answer(*second, get("/third")).status, 200);
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_cx_overflow_total", "held", 1), 1);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_cx_total", "held"), 1);
}

TEST_F(TrafficTest, CircuitBreakerMaxPendingRequests) {
  Blackhole blackhole;
  ASSERT_GT(blackhole.port(), 0);
  namePort("blackhole", blackhole.port());
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: blackhole
connect_timeout: 3s
circuit_breakers: {max_pending_requests: 1}
endpoints: [{address: 127.0.0.1, port: {blackhole}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: blackhole}
)"));
  auto first = connect();
  auto second = connect();
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->send(get("/first")).ok());
  // Its connection is being established (and stays so: the SYN is dropped).
  ASSERT_TRUE(waitFor(absl::Seconds(5), [&] {
    return clusterMetric("sluice_cluster_upstream_cx_active", "blackhole") == 1;
  }));
  HttpResponse r = answer(*second, get("/second"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("x-sluice-overflow"), "max_pending_requests");
  EXPECT_EQ(r.body, "upstream overflow: too many pending requests\n");
  r = next(*first);
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.body, "upstream connect timeout\n");
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_rq_pending_overflow_total", "blackhole", 1),
            1);
}

TEST_F(TrafficTest, FallbackAnswersWhenNoEndpointCanTakeTheRequest) {
  TestUpstream* held = startUpstream("held", TestUpstream::Behaviour::kHold);
  ASSERT_NE(held, nullptr);
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: nowhere
type: EDS
---
kind: Cluster
name: held
circuit_breakers: {max_requests: 1}
endpoints: [{address: 127.0.0.1, port: {held}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /nowhere-fallback}
        route: {cluster: nowhere, fallback: {status: 200, body: "degraded\n"}}
      - match: {prefix: /nowhere}
        route: {cluster: nowhere}
      - match: {prefix: /held}
        route: {cluster: held, fallback: {status: 200, body: "degraded\n"}}
)"));
  HttpResponse r = send(get("/nowhere-fallback"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "degraded\n");
  r = send(get("/nowhere"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "no healthy upstream\n");

  // The breaker at its limit: the fallback instead of the 503.
  auto first = connect();
  auto second = connect();
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->send(get("/held")).ok());
  ASSERT_TRUE(held->waitReceived(1));
  r = answer(*second, get("/held"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "degraded\n");
  EXPECT_EQ(r.header("x-sluice-overflow"), "max_requests");
  held->release();
  r = next(*first);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "held\n");
  EXPECT_EQ(held->received(), 1);
}

// --- Fault injection -----------------------------------------------------------------------------

constexpr char kFaultConfig[] = R"(
kind: Cluster
name: up
endpoints: [{address: 127.0.0.1, port: {up}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /abort}
        route: {cluster: up, fault: {abort: {http_status: 418, percentage: 100}}}
      - match: {prefix: /delay}
        route: {cluster: up, fault: {delay: {fixed_delay: 300ms, percentage: 100}}}
      - match: {prefix: /never}
        route:
          cluster: up
          fault:
            delay: {fixed_delay: 300ms, percentage: 0}
            abort: {http_status: 418, percentage: 0}
)";

TEST_F(TrafficTest, FaultAbortAnswersWithoutTheUpstream) {
  Echo* up = startEcho("up");
  ASSERT_TRUE(up);
  ASSERT_NO_FATAL_FAILURE(startProxy(kFaultConfig));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 5; ++i) {
    // A body the upstream never reads: the connection stays usable all the same.
    HttpResponse r = answer(*c, i % 2 == 0 ? get("/abort") : request("POST", "/abort", "", "xyz"));
    EXPECT_EQ(r.status, 418) << i;
    EXPECT_EQ(r.body, "fault filter abort\n") << i;
  }
  EXPECT_EQ(up->requests(), 0);
  waitFor(absl::Seconds(5), [&] {
    return metric("sluice_http_fault_aborts_injected_total", {{"listener", "main"}}) >= 5;
  });
  EXPECT_EQ(metric("sluice_http_fault_aborts_injected_total", {{"listener", "main"}}), 5);
  EXPECT_EQ(metric("sluice_http_fault_delays_injected_total", {{"listener", "main"}}), 0);
}

TEST_F(TrafficTest, FaultDelayStillForwards) {
  Echo* up = startEcho("up");
  ASSERT_TRUE(up);
  ASSERT_NO_FATAL_FAILURE(startProxy(kFaultConfig));
  const std::string body = uploadBody(5000);
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = answer(*c, get(absl::StrCat("/delay/", i)));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-echo-name"), "up");
  }
  EXPECT_TRUE(echoedBody(answer(*c, request("POST", "/delay/post", "", body)), body));
  EXPECT_EQ(up->requests(), 4);
  waitFor(absl::Seconds(5), [&] {
    return metric("sluice_http_fault_delays_injected_total", {{"listener", "main"}}) >= 4;
  });
  EXPECT_EQ(metric("sluice_http_fault_delays_injected_total", {{"listener", "main"}}), 4);
  EXPECT_EQ(metric("sluice_http_fault_aborts_injected_total", {{"listener", "main"}}), 0);
}

TEST_F(TrafficTest, FaultsAtZeroPercentNeverApply) {
  Echo* up = startEcho("up");
  ASSERT_TRUE(up);
  ASSERT_NO_FATAL_FAILURE(startProxy(kFaultConfig));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 50; ++i) {
    HttpResponse r = answer(*c, get(absl::StrCat("/never/", i)));
    ASSERT_EQ(r.status, 200) << i << ": " << r.body;
  }
  EXPECT_EQ(up->requests(), 50);
  EXPECT_EQ(metric("sluice_http_fault_aborts_injected_total", {{"listener", "main"}}), 0);
  EXPECT_EQ(metric("sluice_http_fault_delays_injected_total", {{"listener", "main"}}), 0);
}

// --- Routing and idle timeout --------------------------------------------------------------------

TEST_F(TrafficTest, CanaryByHeaderOrCookie) {
  ASSERT_TRUE(startEcho("stable") && startEcho("canary"));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: stable
endpoints: [{address: 127.0.0.1, port: {stable}}]
---
kind: Cluster
name: canary
endpoints: [{address: 127.0.0.1, port: {canary}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match:
          prefix: /
          headers: [{name: x-canary, exact: "1"}]
        route: {cluster: canary}
      - match:
          prefix: /
          cookies: [{name: canary, exact: "1"}]
        route: {cluster: canary}
      - match: {prefix: /}
        route: {cluster: stable}
)"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "stable"},
      {"x-canary: 1\r\n", "canary"},
      {"X-Canary: 1\r\n", "canary"},
      {"x-canary: 0\r\n", "stable"},
      {"x-canary: 11\r\n", "stable"},
      {"Cookie: canary=1\r\n", "canary"},
      {"Cookie: session=abc; canary=1\r\n", "canary"},
      {"Cookie: canary=\"1\"\r\n", "canary"},
      {"Cookie: session=abc\r\nCookie: canary=1\r\n", "canary"},
      {"Cookie: canary=0\r\n", "stable"},
      {"Cookie: canary=10\r\n", "stable"},
      {"Cookie: xcanary=1; canary2=1\r\n", "stable"},
      {"Cookie: Canary=1\r\n", "stable"},  // cookie names are case-sensitive
      {"x-canary-cookie: canary=1\r\n", "stable"},
  };
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (const auto& [headers, expected] : cases) {
    HttpResponse r = answer(*c, get("/page", headers));
    EXPECT_EQ(r.status, 200) << headers;
    EXPECT_EQ(r.header("x-echo-name"), expected) << headers;
  }
}

TEST_F(TrafficTest, RouteIdleTimeout) {
  ASSERT_TRUE(startEcho("up"));
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
kind: Cluster
name: up
endpoints: [{address: 127.0.0.1, port: {up}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /idle}
        route: {cluster: up, idle_timeout: 200ms}
      - match: {prefix: /}
        route: {cluster: up}
)"));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  HttpResponse r = answer(*c, get("/idle/slow", "x-echo-delay-ms: 2000\r\n"));
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.body, "upstream idle timeout\n");
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_rq_idle_timeout_total", "up", 1), 1);
  // The route's timeout ends with its request: the next one on the connection, on another
  // route, waits longer.
  r = answer(*c, get("/plain", "x-echo-delay-ms: 600\r\n"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_idle_timeout_total", "up"), 1);
}

// --- Mirroring -----------------------------------------------------------------------------------

constexpr char kMirrorConfig[] = R"(
kind: Cluster
name: primary
endpoints: [{address: 127.0.0.1, port: {primary}}]
---
kind: Cluster
name: shadow
endpoints: [{address: 127.0.0.1, port: {shadow}}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route:
          cluster: primary
          request_mirror_policies: [{cluster: shadow}]
)";

TEST_F(TrafficTest, MirroringCopiesRequestsAndNeverFailsThePrimary) {
  Echo* primary = startEcho("primary");
  Echo* shadow = startEcho("shadow");
  ASSERT_TRUE(primary && shadow);
  ASSERT_NO_FATAL_FAILURE(startProxy(kMirrorConfig));
  const std::string body = uploadBody(5000);
  {
    auto c = connect();
    ASSERT_NE(c, nullptr);
    for (int i = 0; i < 10; ++i) {
      HttpResponse r = answer(*c, get(absl::StrCat("/copy/", i)));
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.header("x-echo-name"), "primary");
    }
    EXPECT_TRUE(echoedBody(answer(*c, request("POST", "/copy/post", "", body)), body));
  }
  // Every request, the POST's body included, reached the shadow as well.
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] { return shadow->requests() == 11; }))
      << shadow->requests();
  EXPECT_EQ(primary->requests(), 11);
  EXPECT_EQ(counterOnceAtLeast("sluice_cluster_upstream_rq_mirror_total", "shadow", 11), 11);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_mirror_failed_total", "shadow"), 0);

  // The shadow goes away: the primary answers every request as before.
  ASSERT_TRUE(shadow->stop());
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = answer(*c, get(absl::StrCat("/down/", i)));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-echo-name"), "primary");
  }
  EXPECT_TRUE(echoedBody(answer(*c, request("POST", "/down/post", "", body)), body));
  EXPECT_EQ(primary->requests(), 22);
  EXPECT_GE(counterOnceAtLeast("sluice_cluster_upstream_rq_mirror_failed_total", "shadow", 1), 1);
  EXPECT_EQ(clusterMetric("sluice_cluster_upstream_rq_local_5xx_total", "primary"), 0);
}

}  // namespace
}  // namespace sluice::testing
