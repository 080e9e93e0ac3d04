// Hardening end to end (issue 6): per-address and rate limits on connections, body size limits,
// slow clients (request_body_idle, min_bytes_per_second, slowloris and slow reads with
// slowhttptest), a 10 MB header flood, escaped slashes, the overload guard, and the tokens of the
// admin endpoint and the management API. Real sluice, sluice-echo, sluice-cp and sluicectl
// processes on 127.0.0.1.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/integration/echo.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSluice[] = "proxy/server/sluice";
constexpr char kCp[] = "control-plane/sluice-cp";
constexpr char kCtl[] = "tools/sluicectl/sluicectl";
constexpr char kSlowHttpTest[] = "/usr/bin/slowhttptest";

// Cluster "echo" and route configuration "main" (everything to it; /big adds the echo's header
// for a 4 MiB answer); the listener follows with its extra fields in {EXTRA}.
constexpr char kConfig[] = R"(
kind: Cluster
name: echo
endpoints:
  - {address: 127.0.0.1, port: {echo}}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /big}
        route: {cluster: echo}
        request_headers:
          add:
            - {name: x-echo-body-size, value: "4194304"}
      - match: {prefix: /}
        route: {cluster: echo}
---
kind: Listener
name: main
address: 127.0.0.1
port: {LISTEN}
route_config: main
{EXTRA}
)";

std::string get(absl::string_view target) {
  return absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: test\r\n\r\n");
}

// The first line of sluice-echo's answer: the request line it received.
std::string echoedRequestLine(const HttpResponse& r) { return r.body.substr(0, r.body.find('\n')); }

// VmRSS of `pid` in KiB, or -1.
int64_t rssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v(line);
    if (!absl::ConsumePrefix(&v, "VmRSS:")) continue;
    int64_t kib = -1;
    return absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(v), " kB"), &kib) ? kib
                                                                                           : -1;
  }
  return -1;
}

class HardeningTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (sluice_ == nullptr) return;
    EXPECT_TRUE(sluice_->running()) << "sluice exited during the test";
    int status = sluice_->stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
    if (HasFailure()) std::cerr << "--- sluice log ---\n" << sluice_->log();
  }

  // Starts a sluice-echo and sluice on kConfig with `listener` (YAML fields of the listener),
  // and waits until it serves.
  void startProxy(const std::string& listener, std::vector<std::string> flags = {}) {
    if (echo_ == nullptr) {
      echo_ = std::make_unique<Echo>("echo");
      ASSERT_TRUE(echo_->start()) << echo_->log();
    }
    port_ = freePort();
    admin_port_ = freePort();
    dir_ = makeTempDir("hardening");
    writeFile(dir_ + "/config.yaml", config(listener));
    std::vector<std::string> args = {
        "--config-dir", dir_, "--workers", "2", "--admin", absl::StrCat("127.0.0.1:", admin_port_)};
    args.insert(args.end(), flags.begin(), flags.end());
    sluice_ = std::make_unique<Process>(kSluice, args, "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(15), [&] {
      return httpGet(admin_port_, "/ready") == "ready\n" && HttpConnection::connect(port_).ok();
    })) << sluice_->log();
  }

  std::string config(const std::string& listener) {
    return absl::StrReplaceAll(kConfig, {{"{echo}", absl::StrCat(echo_->port())},
                                         {"{LISTEN}", absl::StrCat(port_)},
                                         {"{EXTRA}", listener}});
  }

  std::unique_ptr<HttpConnection> connect() {
    auto c = HttpConnection::connect(port_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // `bytes` on `c`; status 0 when no answer came.
  static HttpResponse answer(HttpConnection& c, const std::string& bytes) {
    auto r = c.roundTrip(bytes);
    return r.ok() ? *r : HttpResponse{};
  }

  // The sum of the series of `name` on /metrics whose labels include `labels`; -1 if none.
  double metric(
      absl::string_view name,
      std::initializer_list<std::pair<absl::string_view, absl::string_view>> labels = {}) {
    const std::string text = httpGet(admin_port_, "/metrics");
    double sum = 0;
    bool found = false;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (!absl::ConsumePrefix(&line, name) || line.empty() || (line[0] != '{' && line[0] != ' ')) {
        continue;
      }
      const size_t space = line.rfind(' ');
      bool match = true;
      for (const auto& [label, value] : labels) {
        match = match &&
                absl::StrContains(line.substr(0, space), absl::StrCat(label, "=\"", value, "\""));
      }
      double v = 0;
      if (!match || !absl::SimpleAtod(line.substr(space + 1), &v)) continue;
      sum += v;
      found = true;
    }
    return found ? sum : -1;
  }

  // Waits (bounded) until `name` reaches `at_least` (a worker may count a moment after it
  // answered); then its value.
  double metricOnceAtLeast(absl::string_view name, double at_least) {
    waitFor(absl::Seconds(5), [&] { return metric(name) >= at_least; });
    return metric(name);
  }

  int port_ = 0, admin_port_ = 0;
  std::string dir_;
  std::unique_ptr<Echo> echo_;
  std::unique_ptr<Process> sluice_;
};

// --- Connection limits ---------------------------------------------------------------------------

TEST_F(HardeningTest, PerAddressLimitCountsAcrossWorkers) {
  ASSERT_NO_FATAL_FAILURE(startProxy("limits: {max_connections_per_ip: 3}"));
  // The readiness probes' connections must be gone before the count starts.
  ASSERT_TRUE(
      waitFor(absl::Seconds(5), [&] { return metric("sluice_http_downstream_cx_active") == 0; }));
  std::vector<std::unique_ptr<HttpConnection>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(connect());
    ASSERT_NE(open.back(), nullptr);
    ASSERT_EQ(answer(*open.back(), get("/held")).status, 200) << i;
  }
  // Two workers accept from one address: the fourth is closed at accept by whichever it is.
  auto fourth = connect();
  ASSERT_NE(fourth, nullptr);
  ASSERT_TRUE(fourth->send(get("/refused")).ok());
  EXPECT_TRUE(fourth->closedByPeer(absl::Seconds(5)));
  EXPECT_EQ(metricOnceAtLeast("sluice_http_downstream_cx_per_ip_overflow_total", 1), 1);
  // Closing one gives its place back.
  open.pop_back();
  ASSERT_TRUE(
      waitFor(absl::Seconds(15), [&] { return metric("sluice_http_downstream_cx_active") == 2; }));
  auto again = connect();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(answer(*again, get("/again")).status, 200);
  EXPECT_EQ(metric("sluice_http_downstream_cx_per_ip_overflow_total"), 1);
}

TEST_F(HardeningTest, ConnectionRateAcrossWorkers) {
  ASSERT_NO_FATAL_FAILURE(startProxy("limits: {max_connection_rate: 5}"));
  // startProxy's readiness probes took part of the burst: wait for a full one.
  absl::SleepFor(absl::Milliseconds(1100));
  const auto start = std::chrono::steady_clock::now();
  int answered = 0, refused = 0;
  for (int i = 0; i < 15; ++i) {
    auto c = connect();
    ASSERT_NE(c, nullptr);
    if (answer(*c, get("/rate")).status == 200) {
      ++answered;
    } else {
      ++refused;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // A burst of 5, then one per 200 ms of the time the loop took.
  EXPECT_GE(answered, 5);
  EXPECT_LE(answered, 5 + static_cast<int>(seconds * 5) + 1) << seconds << " s";
  EXPECT_EQ(metricOnceAtLeast("sluice_http_downstream_cx_rate_limited_total", refused), refused);
}

// --- Request bodies ------------------------------------------------------------------------------

TEST_F(HardeningTest, ContentLengthOverTheLimitIs413BeforeTheUpstream) {
  ASSERT_NO_FATAL_FAILURE(startProxy("limits: {max_request_body_bytes: 1000}"));
  const int64_t before = echo_->requests();
  auto c = connect();
  ASSERT_NE(c, nullptr);
  // Only the head: the answer must not wait for the body.
  HttpResponse r =
      answer(*c, "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c->closedByPeer(absl::Seconds(5)));
  EXPECT_EQ(echo_->requests(), before);
  // At the limit it passes.
  auto ok = connect();
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(answer(*ok, absl::StrCat("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000"
                                     "\r\n\r\n",
                                     std::string(1000, 'x')))
                .status,
            200);
  EXPECT_EQ(metricOnceAtLeast("sluice_http_downstream_rq_too_large_total", 1), 1);
}

TEST_F(HardeningTest, ChunkedBodyGrowingPastTheLimitIs413) {
  ASSERT_NO_FATAL_FAILURE(startProxy("limits: {max_request_body_bytes: 1000}"));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->send("POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n").ok());
  ASSERT_TRUE(c->send(absl::StrCat("258\r\n", std::string(600, 'a'), "\r\n")).ok());
  ASSERT_TRUE(c->send(absl::StrCat("258\r\n", std::string(600, 'b'), "\r\n")).ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_EQ(metricOnceAtLeast("sluice_http_downstream_rq_too_large_total", 1), 1);
  // A chunked body within the limit passes.
  auto ok = connect();
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(answer(*ok, absl::StrCat("POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: "
                                     "chunked\r\n\r\n",
                                     chunkedBody(std::string(1000, 'c'), 300)))
                .status,
            200);
}

// --- Slow clients --------------------------------------------------------------------------------

TEST_F(HardeningTest, PausedRequestBodyIs408) {
  ASSERT_NO_FATAL_FAILURE(startProxy("timeouts: {request_body_idle: 300ms}"));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789").ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(metricOnceAtLeast("sluice_http_downstream_rq_body_timeout_total", 1), 1);
}

TEST_F(HardeningTest, TricklingUploadBelowTheMinimumRateIsDisconnected) {
  ASSERT_NO_FATAL_FAILURE(startProxy("limits: {min_bytes_per_second: 1000}"));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\n").ok());
  // 20 bytes a second, far below 1000: cut within the first 10 s window (bounded at 30 s).
  bool closed = false;
  for (int i = 0; i < 60 && !closed; ++i) {
    closed = !c->send(std::string(10, 'x')).ok() || c->readable(absl::Milliseconds(500));
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(metricOnceAtLeast("sluice_http_downstream_cx_too_slow_total", 1), 1);
}

TEST_F(HardeningTest, HeaderFloodIs431WithBoundedMemory) {
  ASSERT_NO_FATAL_FAILURE(startProxy(""));
  // Warm up: the first requests allocate what every later one reuses.
  for (int i = 0; i < 4; ++i) {
    auto c = connect();
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(answer(*c, get("/warm")).status, 200);
  }
  const int64_t rss_before = rssKib(sluice_->pid());
  ASSERT_GT(rss_before, 0);
  // Four clients at once, each an endless header line of 10 MB.
  std::vector<std::thread> floods;
  std::atomic<int> refused{0};
  for (int i = 0; i < 4; ++i) {
    floods.emplace_back([&] {
      auto c = HttpConnection::connect(port_, absl::Seconds(10));
      if (!c.ok()) return;
      (void)(*c)->send("GET / HTTP/1.1\r\nHost: test\r\nX-Flood: ");
      const std::string piece(64 * 1024, 'a');
      // Up to 10 MB; the proxy answers long before, and its answer ends the flood.
      for (int sent = 0; sent < 160; ++sent) {
        if (!(*c)->send(piece).ok() || (*c)->readable()) break;
      }
      auto r = (*c)->read();
      if (r.ok() && r->status == 431 && r->header("connection") == "close" &&
          (*c)->closedByPeer(absl::Seconds(5))) {
        ++refused;
      }
    });
  }
  for (std::thread& t : floods) t.join();
  EXPECT_EQ(refused.load(), 4);
  const int64_t rss_after = rssKib(sluice_->pid());
  EXPECT_LT(rss_after - rss_before, 4 * 1024) << rss_before << " -> " << rss_after << " KiB";
  EXPECT_GE(metricOnceAtLeast("sluice_http_downstream_rq_rejected_total", 4), 4);
}

TEST_F(HardeningTest, TrickledHeadTimesOutFromItsFirstByte) {
  ASSERT_NO_FATAL_FAILURE(startProxy("timeouts: {request_headers: 1s}"));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  // A byte every 100 ms: each one is progress, none may restart the head's timer. Bounded: the
  // head below takes 6 s to send, the timeout comes after 1 s.
  const std::string head = "GET /trickle HTTP/1.1\r\nHost: test\r\nX-Slow: " + std::string(20, 'a');
  bool answered = false;
  for (size_t i = 0; i < head.size() && !answered; ++i) {
    if (!c->send(head.substr(i, 1)).ok()) break;
    answered = c->readable(absl::Milliseconds(100));
  }
  EXPECT_TRUE(answered);
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(metricOnceAtLeast("sluice_http_downstream_rq_header_timeout_total", 1), 1);
}

// A concurrent normal client: `count` requests, one every `gap`, each on its own connection.
class Prober {
 public:
  Prober(int port, int count, absl::Duration gap) {
    thread_ = std::thread([=, this] {
      for (int i = 0; i < count; ++i) {
        auto c = HttpConnection::connect(port, absl::Seconds(5));
        if (c.ok()) {
          auto r = (*c)->roundTrip(get(absl::StrCat("/probe/", i)));
          if (r.ok() && r->status == 200) ++ok_;
        }
        absl::SleepFor(gap);
      }
    });
  }
  ~Prober() { join(); }
  int join() {
    if (thread_.joinable()) thread_.join();
    return ok_.load();
  }

 private:
  std::atomic<int> ok_{0};
  std::thread thread_;
};

TEST_F(HardeningTest, SlowlorisLeavesOtherClientsAnswered) {
  if (access(kSlowHttpTest, X_OK) != 0) {
    GTEST_SKIP() << kSlowHttpTest << " is missing (Debian package slowhttptest)";
  }
  ASSERT_NO_FATAL_FAILURE(startProxy("timeouts: {request_headers: 3s}"));
  Prober prober(port_, 40, absl::Milliseconds(250));
  // 300 connections sending a header line every second for 12 s.
  RunResult attack = run(kSlowHttpTest,
                         {"-H", "-c", "300", "-r", "150", "-i", "1", "-x", "24", "-l", "12", "-p",
                          "3", "-u", absl::StrCat("http://127.0.0.1:", port_, "/")},
                         absl::Seconds(40));
  EXPECT_EQ(attack.exit_code, 0) << attack.out << attack.err;
  EXPECT_EQ(prober.join(), 40);
  // The heads ran out of time: they were answered 408 (or closed) instead of held.
  EXPECT_GE(metric("sluice_http_downstream_rq_header_timeout_total"), 100);
  EXPECT_TRUE(sluice_->running());
}

TEST_F(HardeningTest, SlowReadersCostTheirWindowAndLeaveOtherClientsAnswered) {
  if (access(kSlowHttpTest, X_OK) != 0) {
    GTEST_SKIP() << kSlowHttpTest << " is missing (Debian package slowhttptest)";
  }
  ASSERT_NO_FATAL_FAILURE(startProxy("limits: {min_bytes_per_second: 4096}"));
  const int64_t rss_before = rssKib(sluice_->pid());
  Prober prober(port_, 40, absl::Milliseconds(250));
  // 100 connections asking for 4 MiB each and reading 32 bytes every 2 s, with a small
  // receive window, for 12 s.
  RunResult attack = run(
      kSlowHttpTest,
      {"-X", "-c",   "100", "-r", "100", "-w", "512",
       "-y", "1024", "-n",  "2",  "-z",  "32", "-k",
       "1",  "-l",   "12",  "-p", "3",   "-u", absl::StrCat("http://127.0.0.1:", port_, "/big")},
      absl::Seconds(40));
  EXPECT_EQ(attack.exit_code, 0) << attack.out << attack.err;
  EXPECT_EQ(prober.join(), 40);
  // Each slow reader holds at most a 32 KiB window (and its socket buffers, which the kernel
  // accounts for, not the proxy's RSS).
  const int64_t rss_after = rssKib(sluice_->pid());
  EXPECT_LT(rss_after - rss_before, 24 * 1024) << rss_before << " -> " << rss_after << " KiB";
  EXPECT_GE(metric("sluice_http_downstream_cx_too_slow_total"), 1);
}

// --- Paths ---------------------------------------------------------------------------------------

TEST_F(HardeningTest, EscapedSlashesAreRejectedByDefault) {
  ASSERT_NO_FATAL_FAILURE(startProxy(""));
  for (const char* target : {"/a%2Fb", "/a%2fb", "/..%5c..%5cadmin", "/x%00"}) {
    auto c = connect();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(answer(*c, get(target)).status, 400) << target;
  }
  // Dot segments, encoded or not, and empty segments are resolved before the upstream sees them.
  for (const char* target : {"/a/%2e%2e/admin", "/a/%2E%2E/admin", "//admin", "/public/../admin"}) {
    auto c = connect();
    ASSERT_NE(c, nullptr);
    HttpResponse r = answer(*c, get(target));
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(echoedRequestLine(r), "GET /admin HTTP/1.1") << target;
  }
}

TEST_F(HardeningTest, EscapedSlashesKeptEncodedReachTheUpstreamEncoded) {
  ASSERT_NO_FATAL_FAILURE(startProxy("path_handling: {escaped_slashes: KEEP_ENCODED}"));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  HttpResponse r = answer(*c, get("/files/a%2fb%5Cc/../d"));
  EXPECT_EQ(r.status, 200);
  // "a%2Fb%5Cc" is one segment, so ".." removes all of it.
  EXPECT_EQ(echoedRequestLine(r), "GET /files/d HTTP/1.1");
  r = answer(*c, get("/files/a%2fb"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(echoedRequestLine(r), "GET /files/a%2Fb HTTP/1.1");
}

// --- Overload guard ------------------------------------------------------------------------------

// A route configuration of `routes` direct-response routes: heap the proxy holds while it is
// the config, and gives back when it is removed.
std::string bulkRoutes(int routes) {
  std::string yaml = R"(
kind: RouteConfiguration
name: bulk
virtual_hosts:
  - name: bulk
    domains: ["*"]
    routes:
)";
  for (int i = 0; i < routes; ++i) {
    absl::StrAppend(&yaml, "      - match: {path: /bulk/route/number/", i,
                    "}\n        direct_response: {status: 200, body: bulk}\n");
  }
  return yaml;
}

TEST_F(HardeningTest, OverloadGuardShedsNewWorkAndRecovers) {
  // The heap this proxy uses idle, measured by a first run with a threshold it never reaches.
  ASSERT_NO_FATAL_FAILURE(startProxy("", {"--overload-max-heap-mb", "100000"}));
  ASSERT_TRUE(waitFor(absl::Seconds(5), [&] { return metric("sluice_overload_heap_bytes") > 0; }));
  const double idle_mib = metric("sluice_overload_heap_bytes") / (1 << 20);
  ASSERT_EQ(sluice_->stop(SIGTERM), 0);
  sluice_.reset();
  // 12 MiB of room; 40,000 routes take about twice that.
  const int threshold = static_cast<int>(idle_mib) + 12;
  ASSERT_NO_FATAL_FAILURE(startProxy("", {"--overload-max-heap-mb", absl::StrCat(threshold)}));
  EXPECT_EQ(metric("sluice_overload_active"), 0);
  auto kept = connect();
  ASSERT_NE(kept, nullptr);
  ASSERT_EQ(answer(*kept, get("/before")).status, 200);

  writeFile(dir_ + "/bulk.yaml", bulkRoutes(40000));
  ASSERT_EQ(kill(sluice_->pid(), SIGHUP), 0);
  ASSERT_TRUE(waitFor(absl::Seconds(60), [&] { return metric("sluice_overload_active") == 1; }))
      << "heap " << metric("sluice_overload_heap_bytes") << " threshold " << threshold << " MiB";
  // A new request on an open connection is shed and the connection closed.
  HttpResponse shed = answer(*kept, get("/during"));
  EXPECT_EQ(shed.status, 503);
  EXPECT_EQ(shed.header("connection"), "close");
  EXPECT_GE(metricOnceAtLeast("sluice_overload_rq_shed_total", 1), 1);
  // A new connection is not accepted: it waits in the backlog, unanswered.
  auto waiting = connect();
  ASSERT_NE(waiting, nullptr);
  ASSERT_TRUE(waiting->send(get("/queued")).ok());
  EXPECT_FALSE(waiting->readable(absl::Seconds(1)));

  // Once the routes are gone the guard turns off, and the waiting connection is served.
  ASSERT_EQ(unlink((dir_ + "/bulk.yaml").c_str()), 0);
  ASSERT_EQ(kill(sluice_->pid(), SIGHUP), 0);
  ASSERT_TRUE(waitFor(absl::Seconds(60), [&] { return metric("sluice_overload_active") == 0; }))
      << "heap " << metric("sluice_overload_heap_bytes") << " threshold " << threshold << " MiB";
  auto late = waiting->read();
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->status, 200);
  auto after = connect();
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(answer(*after, get("/after")).status, 200);
  EXPECT_EQ(metric("sluice_overload_activations_total"), 1);
}

// --- Admin endpoint and management API tokens ----------------------------------------------------

// GET `path` on the admin port with `authorization` (none if empty); the status, 0 if none.
int adminStatus(int port, const std::string& path, const std::string& authorization = "") {
  auto c = HttpConnection::connect(port);
  if (!c.ok()) return 0;
  std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: admin\r\n");
  if (!authorization.empty()) absl::StrAppend(&req, "Authorization: ", authorization, "\r\n");
  auto r = (*c)->roundTrip(absl::StrCat(req, "Connection: close\r\n\r\n"));
  return r.ok() ? r->status : 0;
}

TEST_F(HardeningTest, AdminTokenRequiredButForReady) {
  const std::string token_file = makeTempDir("admin-token") + "/token";
  writeFile(token_file, "adm1n-S3cret\n");
  ASSERT_NO_FATAL_FAILURE(startProxy("", {"--admin-token-file", token_file}));
  EXPECT_EQ(adminStatus(admin_port_, "/ready"), 200);
  for (const char* path : {"/metrics", "/config_dump", "/clusters"}) {
    EXPECT_EQ(adminStatus(admin_port_, path), 401) << path;
    EXPECT_EQ(adminStatus(admin_port_, path, "Bearer wrong"), 401) << path;
    EXPECT_EQ(adminStatus(admin_port_, path, "Bearer adm1n-S3cret"), 200) << path;
  }
  EXPECT_THAT(sluice_->log(), ::testing::Not(HasSubstr("adm1n-S3cret")));
}

TEST(HardeningStartTest, ProxyRefusesANonLoopbackAdminWithoutAToken) {
  const std::string dir = makeTempDir("no-admin-token");
  RunResult r = run(kSluice, {"--config-dir", dir, "--admin", "0.0.0.0:1"}, absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("without a token"));
  EXPECT_THAT(r.err, HasSubstr("--admin-token-file"));
}

TEST(HardeningStartTest, ControlPlaneRefusesANonLoopbackManagementAddressWithoutAToken) {
  const std::string dir = makeTempDir("no-mgmt-token");
  RunResult r = run(kCp, {"--config-dir", dir, "--mgmt-listen", "0.0.0.0:1"}, absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("without a token"));
  EXPECT_THAT(r.err, HasSubstr("--token-file"));
}

TEST(HardeningStartTest, SluicectlSendsTheTokenFromItsFile) {
  const std::string dir = makeTempDir("cp-token-file");
  writeFile(dir + "/token", "mgmt-T0ken\n");
  const std::string config = makeTempDir("cp-config");
  const int mgmt = freePort();
  const std::string server = absl::StrCat("127.0.0.1:", mgmt);
  // On all addresses, which the token allows.
  Process cp(kCp,
             {"--config-dir", config, "--mgmt-listen", absl::StrCat("0.0.0.0:", mgmt),
              "--xds-listen", absl::StrCat("127.0.0.1:", freePort()), "--admin-listen",
              absl::StrCat("127.0.0.1:", freePort()), "--token-file", dir + "/token"},
             "sluice-cp");
  ASSERT_TRUE(waitFor(absl::Seconds(15), [&] {
    return run(kCtl, {"--server", server, "--token-file", dir + "/token", "status"}).exit_code == 0;
  })) << cp.log();
  RunResult denied = run(kCtl, {"--server", server, "status"});
  EXPECT_EQ(denied.exit_code, 2);
  EXPECT_THAT(denied.err, HasSubstr("requires a token"));
  writeFile(dir + "/wrong", "not-it\n");
  EXPECT_EQ(run(kCtl, {"--server", server, "--token-file", dir + "/wrong", "status"}).exit_code, 2);
  RunResult missing = run(kCtl, {"--server", server, "--token-file", dir + "/none", "status"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("cannot read --token-file"));
  EXPECT_THAT(cp.log(), ::testing::Not(HasSubstr("mgmt-T0ken")));
}

}  // namespace
}  // namespace sluice::testing
