// Active health checks against real loopback servers on the test's own event loop: HTTP verdicts
// and thresholds, the first-check rule, TCP checks, timeouts, status ranges, answers that are not
// HTTP, target sets that change, config updates and the counters.
#include "proxy/upstream/health_checker.h"
#include "test/common/loopback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace sluice::upstream {
namespace {

namespace v1 = config::v1;
using ::testing::HasSubstr;

// Every wait is bounded by this; it only matters when a test fails.
constexpr absl::Duration kWait = absl::Seconds(5);

// A loopback HTTP/1.1 server on the test's loop. Answers each request's head with `status`
// (or, for other paths than `path`, 404) and closes; `silent` accepts and reads but holds the
// answer until answerHeld(); `raw_reply` replaces the answer (an empty one closes without a
// word).
class HttpServer {
 public:
  explicit HttpServer(event_base* base, std::string path = "/healthz") : base_(base) {
    path_ = std::move(path);
    fd_ = testing::listenLoopback(64, &port_, SOCK_NONBLOCK);
    EXPECT_GE(fd_, 0) << errno;
    accept_ = event_new(base_, fd_, EV_READ | EV_PERSIST, &HttpServer::onAccept, this);
    event_add(accept_, nullptr);
  }
  ~HttpServer() {
    for (auto& [fd, conn] : conns_) {
      event_free(conn.ev);
      close(fd);
    }
    event_free(accept_);
    close(fd_);
  }

  uint16_t port() const { return static_cast<uint16_t>(port_); }

  // Answers the requests `silent` held back.
  void answerHeld() {
    std::vector<int> held;
    for (auto& [fd, conn] : conns_) {
      if (conn.in.find("\r\n\r\n") != std::string::npos) held.push_back(fd);
    }
    for (int fd : held) answer(fd);
  }

  int status = 200;
  bool silent = false;
  std::optional<std::string> raw_reply;
  std::vector<std::string> requests;  // request heads received, in order
  int accepted = 0;
  int peer_closed = 0;  // connections the client closed before an answer

 private:
  struct Conn {
    event* ev = nullptr;
    std::string in;
  };

  static void onAccept(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<HttpServer*>(arg);
    int fd = accept4(self->fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    self->accepted++;
    Conn& conn = self->conns_[fd];
    conn.ev = event_new(self->base_, fd, EV_READ | EV_PERSIST, &HttpServer::onRead, self);
    event_add(conn.ev, nullptr);
  }

  static void onRead(evutil_socket_t fd, short, void* arg) {
    auto* self = static_cast<HttpServer*>(arg);
    Conn& conn = self->conns_[fd];
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      self->peer_closed++;
      self->closeConn(fd);
      return;
    }
    conn.in.append(buf, n);
    if (conn.in.find("\r\n\r\n") == std::string::npos) return;
    self->requests.push_back(conn.in);
    if (!self->silent) self->answer(fd);
  }

  void answer(int fd) {
    std::string reply;
    if (raw_reply.has_value()) {
      reply = *raw_reply;
    } else {
      const bool found = conns_[fd].in.starts_with(absl::StrCat("GET ", path_, " "));
      reply = absl::StrCat("HTTP/1.1 ", found ? status : 404,
                           " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    closeConn(fd);
  }

  void closeConn(int fd) {
    event_free(conns_[fd].ev);
    conns_.erase(fd);
    close(fd);
  }

  event_base* base_;
  std::string path_;
  int fd_ = -1;
  int port_ = 0;
  event* accept_ = nullptr;
  std::map<int, Conn> conns_;
};

HealthChecker::Target target(uint16_t port) {
  HealthChecker::Target t{};
  t.key = absl::StrCat("127.0.0.1:", port);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&t.addr);
  v4->sin_family = AF_INET;
  v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  v4->sin_port = htons(port);
  t.addr_len = sizeof(sockaddr_in);
  return t;
}

std::string key(uint16_t port) { return absl::StrCat("127.0.0.1:", port); }

HealthCheckConfig httpConfig(uint32_t healthy_threshold = 2, uint32_t unhealthy_threshold = 3) {
  HealthCheckConfig c;
  c.kind = HealthCheckConfig::Kind::kHttp;
  c.interval = absl::Milliseconds(20);
  c.timeout = absl::Seconds(2);
  c.healthy_threshold = healthy_threshold;
  c.unhealthy_threshold = unhealthy_threshold;
  c.path = "/healthz";
  c.host = "web";
  return c;
}

HealthCheckConfig tcpConfig() {
  HealthCheckConfig c = httpConfig();
  c.kind = HealthCheckConfig::Kind::kTcp;
  return c;
}

class HealthCheckerTest : public ::testing::Test {
 protected:
  HealthCheckerTest()
      : base_(event_base_new()),
        store_(stats::Store::create(1)),
        stats_(declareHealthCheckStats(store_.get(), "web")) {}

  ~HealthCheckerTest() override {
    checker_.reset();
    event_base_free(base_);
  }

  // The checker under test; on_change counts calls and notes the counters at each.
  HealthChecker& start(HealthCheckConfig config) {
    checker_ =
        std::make_unique<HealthChecker>(base_, store_->cells(0), std::move(config), stats_, [this] {
          changes_++;
          successes_at_change_ = successes();
          failures_at_change_ = failures();
        });
    return *checker_;
  }

  // Runs the loop until `done` or kWait passes; wakes at least every 10 ms to check.
  bool runUntil(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    while (!done()) {
      if (absl::Now() > deadline) return false;
      timeval tick = absl::ToTimeval(absl::Milliseconds(10));
      event_base_once(
          base_, -1, EV_TIMEOUT, [](evutil_socket_t, short, void*) {}, nullptr, &tick);
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }

  int64_t attempts() { return store_->value(stats_.attempt); }
  int64_t successes() { return store_->value(stats_.success); }
  int64_t failures(HealthCheckFailure reason) {
    return store_->value(stats_.failure[static_cast<int>(reason)]);
  }
  int64_t failures() {
    int64_t n = 0;
    for (stats::CounterId id : stats_.failure) n += store_->value(id);
    return n;
  }
  int64_t healthyGauge() { return store_->value(stats_.healthy); }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  HealthCheckStats stats_;
  std::unique_ptr<HealthChecker> checker_;
  int changes_ = 0;
  int64_t successes_at_change_ = 0;
  int64_t failures_at_change_ = 0;
};

TEST_F(HealthCheckerTest, StatsAreDeclaredWithClusterAndReasonLabels) {
  EXPECT_EQ(stats_.cluster, "web");
  EXPECT_TRUE(stats_.attempt.valid());
  EXPECT_TRUE(stats_.success.valid());
  for (stats::CounterId id : stats_.failure) EXPECT_TRUE(id.valid());
  EXPECT_TRUE(stats_.healthy.valid());
  store_->cells(0)->add(stats_.failure[static_cast<int>(HealthCheckFailure::kProtocol)]);
  const std::string text = store_->prometheusText();
  EXPECT_THAT(text, HasSubstr("sluice_cluster_health_check_attempt_total{cluster=\"web\"} 0"));
  EXPECT_THAT(text, HasSubstr("sluice_cluster_health_check_success_total{cluster=\"web\"} 0"));
  for (const char* reason : {"timeout", "connect", "status"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("sluice_cluster_health_check_failure_total{cluster="
                                             "\"web\",reason=\"",
                                             reason, "\"} 0")));
  }
  EXPECT_THAT(text, HasSubstr("sluice_cluster_health_check_failure_total{cluster=\"web\","
                              "reason=\"protocol\"} 1"));
  EXPECT_THAT(text, HasSubstr("sluice_cluster_health_check_healthy{cluster=\"web\"} 0"));
  // Declaring again (a new generation) returns the same ids.
  HealthCheckStats again = declareHealthCheckStats(store_.get(), "web");
  EXPECT_EQ(again.attempt.cell, stats_.attempt.cell);
  EXPECT_EQ(again.healthy.cell, stats_.healthy.cell);
}

TEST(HealthCheckConfigTest, DefaultsFromTheProto) {
  v1::HealthCheck proto;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString("http { path: '/healthz' }", &proto));
  HealthCheckConfig c = healthCheckConfig(proto, "users");
  EXPECT_EQ(c.kind, HealthCheckConfig::Kind::kHttp);
  EXPECT_EQ(c.interval, absl::Seconds(5));
  EXPECT_EQ(c.timeout, absl::Seconds(1));
  EXPECT_EQ(c.interval_jitter, absl::ZeroDuration());
  EXPECT_EQ(c.unhealthy_threshold, 3u);
  EXPECT_EQ(c.healthy_threshold, 2u);
  EXPECT_EQ(c.path, "/healthz");
  EXPECT_EQ(c.host, "users");
  ASSERT_EQ(c.expected_statuses.size(), 1u);
  EXPECT_EQ(c.expected_statuses[0].min, 200u);
  EXPECT_EQ(c.expected_statuses[0].max, 299u);

  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString("tcp {}", &proto));
  EXPECT_EQ(healthCheckConfig(proto, "users").kind, HealthCheckConfig::Kind::kTcp);
}

TEST(HealthCheckConfigTest, ExplicitValuesFromTheProto) {
  v1::HealthCheck proto;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(interval { seconds: 10 }
           timeout { nanos: 250000000 }
           interval_jitter { seconds: 1 }
           unhealthy_threshold: 7
           healthy_threshold: 4
           http {
             path: "/ready?deep=1"
             host: "users.internal"
             expected_statuses { min: 200 max: 204 }
             expected_statuses { min: 301 max: 301 }
           })pb",
      &proto));
  HealthCheckConfig c = healthCheckConfig(proto, "users");
  EXPECT_EQ(c.interval, absl::Seconds(10));
  EXPECT_EQ(c.timeout, absl::Milliseconds(250));
  EXPECT_EQ(c.interval_jitter, absl::Seconds(1));
  EXPECT_EQ(c.unhealthy_threshold, 7u);
  EXPECT_EQ(c.healthy_threshold, 4u);
  EXPECT_EQ(c.path, "/ready?deep=1");
  EXPECT_EQ(c.host, "users.internal");
  ASSERT_EQ(c.expected_statuses.size(), 2u);
  EXPECT_EQ(c.expected_statuses[1].min, 301u);
  EXPECT_EQ(c.expected_statuses[1].max, 301u);
}

TEST_F(HealthCheckerTest, HttpVerdictFollowsTheServerAfterTheThresholds) {
  HttpServer server(base_);
  HealthChecker& checker = start(httpConfig(/*healthy_threshold=*/2, /*unhealthy_threshold=*/3));
  checker.setTargets({target(server.port())});
  // Unhealthy until checked; on_change never runs inside setTargets.
  EXPECT_FALSE(checker.healthy(key(server.port())));
  EXPECT_EQ(changes_, 0);

  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));
  EXPECT_EQ(changes_, 1);
  EXPECT_EQ(healthyGauge(), 1);
  ASSERT_FALSE(server.requests.empty());
  EXPECT_EQ(server.requests[0],
            "GET /healthz HTTP/1.1\r\nHost: web\r\nUser-Agent: sluice-health-check\r\n"
            "Connection: close\r\n\r\n");

  // Exactly unhealthy_threshold failed checks flip it.
  server.status = 500;
  const int64_t failed_before = failures();
  ASSERT_TRUE(runUntil([&] { return !checker.healthy(key(server.port())); }));
  EXPECT_EQ(changes_, 2);
  EXPECT_EQ(failures_at_change_ - failed_before, 3);
  EXPECT_EQ(failures(HealthCheckFailure::kStatus), failures());
  EXPECT_EQ(healthyGauge(), 0);

  // And exactly healthy_threshold passed checks flip it back.
  server.status = 200;
  const int64_t passed_before = successes();
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));
  EXPECT_EQ(changes_, 3);
  EXPECT_EQ(successes_at_change_ - passed_before, 2);
  EXPECT_EQ(healthyGauge(), 1);
}

TEST_F(HealthCheckerTest, FirstPassedCheckMakesANewTargetHealthyAtOnce) {
  HttpServer server(base_);
  HealthChecker& checker = start(httpConfig(/*healthy_threshold=*/5, /*unhealthy_threshold=*/5));
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));
  EXPECT_EQ(successes_at_change_, 1);
  EXPECT_EQ(failures_at_change_, 0);
}

TEST_F(HealthCheckerTest, FirstFailedCheckMakesANewTargetUnhealthyAtOnce) {
  HttpServer server(base_);
  server.status = 503;
  HealthChecker& checker = start(httpConfig(/*healthy_threshold=*/3, /*unhealthy_threshold=*/5));
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return failures() >= 1; }));
  EXPECT_FALSE(checker.healthy(key(server.port())));
  EXPECT_EQ(changes_, 0);  // healthy() was false and stayed false

  // Unhealthy now, not pending: it takes healthy_threshold passed checks, not one.
  server.status = 200;
  const int64_t passed_before = successes();
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));
  EXPECT_EQ(successes_at_change_ - passed_before, 3);
}

TEST_F(HealthCheckerTest, TcpCheckPassesOnAListenerAndFailsOnAClosedPort) {
  HttpServer listener(base_);
  const uint16_t closed = testing::closedLoopbackPort();
  HealthChecker& checker = start(tcpConfig());
  checker.setTargets({target(listener.port()), target(closed)});
  ASSERT_TRUE(runUntil([&] {
    return checker.healthy(key(listener.port())) && failures(HealthCheckFailure::kConnect) >= 1;
  }));
  EXPECT_FALSE(checker.healthy(key(closed)));
  EXPECT_EQ(failures(), failures(HealthCheckFailure::kConnect));
  EXPECT_GE(attempts(), 2);
  // A TCP check sends nothing: the server sees connections closed without a request.
  EXPECT_TRUE(listener.requests.empty());
  ASSERT_TRUE(runUntil([&] { return listener.peer_closed >= 1; }));
}

TEST_F(HealthCheckerTest, ServerThatNeverAnswersFailsWithTimeout) {
  HttpServer server(base_);
  server.silent = true;
  HealthCheckConfig config = httpConfig();
  config.timeout = absl::Milliseconds(30);
  HealthChecker& checker = start(config);
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return failures(HealthCheckFailure::kTimeout) >= 2; }));
  EXPECT_FALSE(checker.healthy(key(server.port())));
  EXPECT_EQ(successes(), 0);
  EXPECT_EQ(failures(), failures(HealthCheckFailure::kTimeout));
  EXPECT_FALSE(server.requests.empty());  // it did get the request
  // The timed-out check's connection was closed.
  ASSERT_TRUE(runUntil([&] { return server.peer_closed >= 1; }));
}

TEST_F(HealthCheckerTest, ExpectedStatusRangesDecide) {
  HttpServer server(base_);
  server.status = 404;
  HealthCheckConfig in_range = httpConfig();
  in_range.expected_statuses = {{200, 299}, {404, 404}};
  HealthChecker& checker = start(in_range);
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));
  EXPECT_EQ(failures(), 0);

  // Bounds are inclusive on both ends; 404 is just outside 400-403 and 405-499.
  HealthCheckConfig outside = httpConfig(/*healthy_threshold=*/1, /*unhealthy_threshold=*/1);
  outside.expected_statuses = {{400, 403}, {405, 499}};
  checker.updateConfig(outside);
  ASSERT_TRUE(runUntil([&] { return !checker.healthy(key(server.port())); }));
  EXPECT_EQ(failures(), failures(HealthCheckFailure::kStatus));

  HealthCheckConfig edge = outside;
  edge.expected_statuses = {{404, 499}};
  checker.updateConfig(edge);
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));

  // The default range: 404 fails.
  checker.updateConfig(httpConfig(/*healthy_threshold=*/1, /*unhealthy_threshold=*/1));
  const int64_t failed_before = failures(HealthCheckFailure::kStatus);
  ASSERT_TRUE(runUntil([&] { return !checker.healthy(key(server.port())); }));
  EXPECT_GT(failures(HealthCheckFailure::kStatus), failed_before);
}

TEST_F(HealthCheckerTest, AnswersThatAreNotHttpFailWithProtocol) {
  HttpServer server(base_);
  server.raw_reply = "SSH-2.0-OpenSSH_9.2\r\n";
  HealthChecker& checker = start(httpConfig(/*healthy_threshold=*/1, /*unhealthy_threshold=*/1));
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return failures(HealthCheckFailure::kProtocol) >= 1; }));
  EXPECT_FALSE(checker.healthy(key(server.port())));

  // Closed without a word.
  server.raw_reply = "";
  const int64_t before = failures(HealthCheckFailure::kProtocol);
  ASSERT_TRUE(runUntil([&] { return failures(HealthCheckFailure::kProtocol) > before; }));

  // A status line without a reason phrase is still one.
  server.raw_reply = "HTTP/1.0 200\r\n\r\n";
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));

  // A status with a fourth digit is not.
  server.raw_reply = "HTTP/1.1 2000 OK\r\n\r\n";
  const int64_t before_digit = failures(HealthCheckFailure::kProtocol);
  ASSERT_TRUE(runUntil([&] { return !checker.healthy(key(server.port())); }));
  EXPECT_GT(failures(HealthCheckFailure::kProtocol), before_digit);
  EXPECT_EQ(failures(HealthCheckFailure::kStatus), 0);
}

TEST_F(HealthCheckerTest, SetTargetsKeepsKeptTargetsAndForgetsRemovedOnes) {
  HttpServer a(base_), b(base_);
  HealthChecker& checker = start(httpConfig(/*healthy_threshold=*/3, /*unhealthy_threshold=*/3));
  checker.setTargets({target(a.port()), target(b.port())});
  ASSERT_TRUE(
      runUntil([&] { return checker.healthy(key(a.port())) && checker.healthy(key(b.port())); }));
  EXPECT_EQ(healthyGauge(), 2);
  const int changes = changes_;

  const uint16_t closed = testing::closedLoopbackPort();
  checker.setTargets({target(a.port()), target(closed)});
  // Kept: still healthy, with no new first check. Removed: forgotten. New: not yet checked.
  EXPECT_TRUE(checker.healthy(key(a.port())));
  EXPECT_FALSE(checker.healthy(key(b.port())));
  EXPECT_FALSE(checker.healthy(key(closed)));
  EXPECT_EQ(healthyGauge(), 1);
  EXPECT_EQ(changes_, changes);

  const size_t b_requests = b.requests.size();
  const size_t a_requests = a.requests.size();
  ASSERT_TRUE(runUntil([&] {
    return failures(HealthCheckFailure::kConnect) >= 1 && a.requests.size() >= a_requests + 3;
  }));
  EXPECT_TRUE(checker.healthy(key(a.port())));
  EXPECT_FALSE(checker.healthy(key(closed)));
  EXPECT_EQ(b.requests.size(), b_requests);  // no more checks of the removed target
  EXPECT_EQ(changes_, changes);  // a's verdict never flipped; the new target's first was a failure
}

TEST_F(HealthCheckerTest, RemovingATargetClosesItsCheckUnderWay) {
  HttpServer server(base_);
  server.silent = true;
  HealthChecker& checker = start(httpConfig());  // 2 s timeout: the check is still under way
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return !server.requests.empty(); }));
  EXPECT_EQ(server.peer_closed, 0);
  checker.setTargets({});
  EXPECT_FALSE(checker.healthy(key(server.port())));
  ASSERT_TRUE(runUntil([&] { return server.peer_closed == 1; }));
  EXPECT_EQ(attempts(), 1);
  EXPECT_EQ(failures(), 0);  // forgotten, not failed
}

TEST_F(HealthCheckerTest, UpdateConfigKeepsVerdictsAndCounts) {
  HttpServer server(base_);
  HealthChecker& checker = start(httpConfig(/*healthy_threshold=*/2, /*unhealthy_threshold=*/3));
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));

  // A path the server does not know: 404 under the new config, which needs two failures.
  HealthCheckConfig config = httpConfig(/*healthy_threshold=*/2, /*unhealthy_threshold=*/2);
  config.path = "/missing";
  config.interval_jitter = absl::Milliseconds(5);
  checker.updateConfig(config);
  EXPECT_TRUE(checker.healthy(key(server.port())));
  const int64_t failed_before = failures();
  ASSERT_TRUE(runUntil([&] { return !checker.healthy(key(server.port())); }));
  EXPECT_EQ(failures_at_change_ - failed_before, 2);
  EXPECT_THAT(server.requests.back(), ::testing::StartsWith("GET /missing HTTP/1.1\r\n"));
}

TEST_F(HealthCheckerTest, CheckUnderWayFinishesUnderTheConfigItStartedWith) {
  HttpServer server(base_);
  server.silent = true;
  HealthChecker& checker = start(httpConfig(/*healthy_threshold=*/1, /*unhealthy_threshold=*/1));
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return server.requests.size() == 1; }));

  // Under the new config the 200 that is coming would fail.
  HealthCheckConfig config = httpConfig(/*healthy_threshold=*/1, /*unhealthy_threshold=*/1);
  config.path = "/a/much/longer/path";
  config.expected_statuses = {{500, 500}};
  checker.updateConfig(config);
  server.answerHeld();
  ASSERT_TRUE(runUntil([&] { return successes() + failures() == 1; }));
  EXPECT_EQ(successes(), 1);
  EXPECT_TRUE(checker.healthy(key(server.port())));

  // The next check is the new config's.
  ASSERT_TRUE(runUntil([&] { return server.requests.size() == 2; }));
  EXPECT_THAT(server.requests[1], ::testing::StartsWith("GET /a/much/longer/path HTTP/1.1\r\n"));
  server.answerHeld();
  ASSERT_TRUE(runUntil([&] { return !checker.healthy(key(server.port())); }));
  EXPECT_EQ(failures(HealthCheckFailure::kStatus), 1);
}

TEST_F(HealthCheckerTest, CountersAddUp) {
  HttpServer good(base_), bad(base_);
  bad.status = 500;
  const uint16_t closed = testing::closedLoopbackPort();
  HealthChecker& checker = start(httpConfig());
  checker.setTargets({target(good.port()), target(bad.port()), target(closed)});
  ASSERT_TRUE(runUntil([&] {
    return successes() >= 5 && failures(HealthCheckFailure::kStatus) >= 5 &&
           failures(HealthCheckFailure::kConnect) >= 5;
  }));
  checker.setTargets({});  // closes what is under way: at most one check per target
  const int64_t outcomes = successes() + failures();
  EXPECT_GE(attempts(), outcomes);
  EXPECT_LE(attempts(), outcomes + 3);
  EXPECT_EQ(failures(HealthCheckFailure::kTimeout), 0);
  EXPECT_EQ(failures(HealthCheckFailure::kProtocol), 0);
  EXPECT_EQ(healthyGauge(), 0);  // the healthy target was removed
  // Every passed check was a request the good server answered (the last may be unread).
  EXPECT_GE(static_cast<int64_t>(good.requests.size()), successes());
  EXPECT_LE(static_cast<int64_t>(good.requests.size()), successes() + 1);
}

TEST_F(HealthCheckerTest, DestroyingTheCheckerTakesItsHealthyTargetsOffTheGauge) {
  HttpServer server(base_);
  HealthChecker& checker = start(tcpConfig());
  checker.setTargets({target(server.port())});
  ASSERT_TRUE(runUntil([&] { return checker.healthy(key(server.port())); }));
  EXPECT_EQ(healthyGauge(), 1);
  checker_.reset();
  EXPECT_EQ(healthyGauge(), 0);
}

}  // namespace
}  // namespace sluice::upstream
