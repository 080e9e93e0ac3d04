// Shadow requests against a mirror upstream on loopback, driven by the test's own event loop:
// what the mirror receives, how answers are skipped and connections reused, and every way a
// copy can fail without anyone but the counters noticing.
#include "proxy/http/mirror.h"
#include "test/common/loopback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/cluster.h"
#include "proxy/upstream/conn_pool.h"

namespace sluice::http {
namespace {

namespace v1 = config::v1;

// Every wait is bounded by this; it only matters when a test fails.
constexpr absl::Duration kWait = absl::Seconds(10);
// For copies that must not time out while the test looks at them.
constexpr absl::Duration kLong = absl::Seconds(60);

constexpr std::string_view kGet =
    "GET /a HTTP/1.1\r\nhost: example.com\r\nx-request-id: 1\r\nvia: 1.1 sluice\r\n\r\n";
constexpr std::string_view kGetShadow =
    "GET /a HTTP/1.1\r\nhost: example.com-shadow\r\nx-request-id: 1\r\nvia: 1.1 sluice\r\n\r\n";
constexpr std::string_view kPost =
    "POST /up HTTP/1.1\r\nhost: example.com\r\ncontent-length: 11\r\n\r\n";
constexpr std::string_view kPostShadow =
    "POST /up HTTP/1.1\r\nhost: example.com-shadow\r\ncontent-length: 11\r\n\r\n";
constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

// The mirror cluster's endpoint: a loopback listener on the test's loop that accepts every
// connection and records what each one sends (or, with `read` false, leaves it unread). The
// test writes the answers itself.
class Mirror {
 public:
  struct Peer {
    Mirror* mirror = nullptr;
    int fd = -1;
    event* ev = nullptr;
    std::string received;
    bool closed = false;  // EOF or reset seen
  };

  Mirror(event_base* base, bool read = true) : read_(read) {
    fd_ = testing::listenLoopback(16, &port_, SOCK_NONBLOCK);
    EXPECT_GE(fd_, 0) << errno;
    accept_ev_ = event_new(base, fd_, EV_READ | EV_PERSIST, &Mirror::onAccept, this);
    event_add(accept_ev_, nullptr);
  }
  ~Mirror() {
    for (auto& p : peers_) {
      if (p->ev != nullptr) event_free(p->ev);
      close(p->fd);
    }
    event_free(accept_ev_);
    close(fd_);
  }

  uint16_t port() const { return static_cast<uint16_t>(port_); }
  size_t accepted() const { return peers_.size(); }
  Peer& peer(size_t i) { return *peers_[i]; }
  // Sends the whole answer (small enough for the socket buffer).
  void send(size_t i, std::string_view bytes) {
    ASSERT_EQ(::send(peers_[i]->fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  void shut(size_t i) { shutdown(peers_[i]->fd, SHUT_RDWR); }

 private:
  static void onAccept(evutil_socket_t fd, short, void* arg) {
    auto* self = static_cast<Mirror*>(arg);
    int c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    auto p = std::make_unique<Peer>();
    p->mirror = self;
    p->fd = c;
    if (self->read_) {
      p->ev = event_new(event_get_base(self->accept_ev_), c, EV_READ | EV_PERSIST, &Mirror::onRead,
                        p.get());
      event_add(p->ev, nullptr);
    }
    self->peers_.push_back(std::move(p));
  }
  static void onRead(evutil_socket_t fd, short, void* arg) {
    auto* p = static_cast<Peer*>(arg);
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      p->received.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      p->closed = true;
      event_del(p->ev);
    }
  }

  bool read_;
  int fd_ = -1;
  int port_ = 0;
  event* accept_ev_ = nullptr;
  std::vector<std::unique_ptr<Peer>> peers_;
};

class MirrorTest : public ::testing::Test {
 protected:
  MirrorTest()
      : base_(event_base_new()),
        store_(stats::Store::create(1)),
        pool_(std::make_unique<upstream::ConnPool>(base_, store_->cells(0))),
        shadows_(std::make_unique<ShadowSet>(base_, store_->cells(0))) {}

  ~MirrorTest() override {
    shadows_.reset();  // before the pool its shadows use
    pool_.reset();
    event_base_free(base_);
  }

  std::unique_ptr<upstream::Cluster> cluster(uint16_t port, const std::string& extra = "") {
    v1::Cluster config;
    config.set_name("mirror");
    v1::Endpoint* e = config.add_endpoints();
    e->set_address("127.0.0.1");
    e->set_port(port);
    if (!extra.empty()) {
      EXPECT_TRUE(google::protobuf::TextFormat::MergeFromString(extra, &config)) << extra;
    }
    auto c = upstream::Cluster::compile(config, nullptr, 1, store_.get(), &keys_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  Shadow* start(const upstream::Cluster& c, std::string_view head, bool body,
                absl::Duration timeout = kLong, bool head_request = false) {
    return Shadow::start(shadows_.get(), pool_.get(), c, 0, 42, head, head_request, body, timeout);
  }

  // Runs the loop until `done` or kWait passes; wakes at least every 10 ms to check.
  bool runUntil(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    while (!done()) {
      if (absl::Now() > deadline) return false;
      runOnce();
    }
    return true;
  }
  // Runs the loop for `d` (lets timers that must not fire have their chance).
  void runFor(absl::Duration d) {
    const absl::Time until = absl::Now() + d;
    while (absl::Now() < until) runOnce();
  }
  void runOnce() {
    timeval tick = absl::ToTimeval(absl::Milliseconds(10));
    event_base_once(
        base_, -1, EV_TIMEOUT, [](evutil_socket_t, short, void*) {}, nullptr, &tick);
    event_base_loop(base_, EVLOOP_ONCE);
  }

  // Feeds `bytes` the way the connection manager does: from its input buffer, undrained.
  void feed(Shadow* s, std::string_view bytes) {
    evbuffer* b = evbuffer_new();
    evbuffer_add(b, bytes.data(), bytes.size());
    evbuffer_add(b, "next request", 12);  // beyond n: not the shadow's
    s->feed(b, bytes.size());
    EXPECT_EQ(evbuffer_get_length(b), bytes.size() + 12);
    evbuffer_free(b);
  }

  // The head the mirror receives for an upstream head whose host is `host`.
  std::string mirroredHost(const upstream::Cluster& c, Mirror& m, std::string_view host) {
    std::string head = "GET / HTTP/1.1\r\nhost: " + std::string(host) + "\r\n\r\n";
    const size_t peers = m.accepted();
    EXPECT_NE(start(c, head, false), nullptr);
    EXPECT_TRUE(runUntil([&] {
      return m.accepted() > peers && m.peer(peers).received.find("\r\n\r\n") != std::string::npos;
    }));
    if (m.accepted() <= peers) return "";
    std::string got = m.peer(peers).received;
    const size_t at = got.find("host: ") + 6;
    return got.substr(at, got.find("\r\n", at) - at);
  }

  int64_t value(stats::CounterId id) { return store_->value(id); }
  int64_t value(stats::GaugeId id) { return store_->value(id); }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  upstream::Registry keys_;
  std::unique_ptr<upstream::ConnPool> pool_;
  std::unique_ptr<ShadowSet> shadows_;
};

TEST_F(MirrorTest, MirrorReceivesTheShadowHostAndTheBodyAndTheConnectionIsPooled) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  Shadow* s = start(*c, kPost, true);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(shadows_->size(), 1u);
  // Queued before the connect completes: it waits in the connection's buffer.
  feed(s, "hello ");
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && !m.peer(0).received.empty(); }));
  feed(s, "world");
  s->finishBody();
  const std::string want = std::string(kPostShadow) + "hello world";
  ASSERT_TRUE(runUntil([&] { return m.peer(0).received.size() >= want.size(); }));
  EXPECT_EQ(m.peer(0).received, want);
  EXPECT_EQ(shadows_->size(), 1u);  // waiting for the answer

  m.send(0, kOk);
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(value(c->stats().rq_mirror), 1);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
  EXPECT_EQ(value(c->stats().rq_total), 1);
  EXPECT_EQ(value(c->endpoints()[0].rq_total), 1);
  EXPECT_FALSE(m.peer(0).closed);
}

TEST_F(MirrorTest, SecondShadowReusesThePooledConnection) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == kGetShadow; }));
  m.send(0, kOk);
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  ASSERT_EQ(pool_->idleCount(), 1u);

  ASSERT_NE(start(*c, kGet, false), nullptr);
  EXPECT_EQ(pool_->idleCount(), 0u);
  const std::string twice = std::string(kGetShadow) + std::string(kGetShadow);
  ASSERT_TRUE(runUntil([&] { return m.peer(0).received.size() >= twice.size(); }));
  EXPECT_EQ(m.peer(0).received, twice);
  m.send(0, kOk);
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(m.accepted(), 1u);
  EXPECT_EQ(value(c->stats().cx_total), 1);
  EXPECT_EQ(value(c->stats().rq_reused), 1);
  EXPECT_EQ(value(c->stats().rq_mirror), 2);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
}

TEST_F(MirrorTest, InterimAndChunkedAnswerIsSkippedAcrossReads) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == kGetShadow; }));
  m.send(
      0,
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel");
  runFor(absl::Milliseconds(50));
  EXPECT_EQ(shadows_->size(), 1u);  // the body is not over
  m.send(0, "lo\r\n0\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);

  // The same connection carries the next copy, answered with a Content-Length body in pieces.
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.peer(0).received.size() == 2 * kGetShadow.size(); }));
  m.send(0, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234");
  runFor(absl::Milliseconds(50));
  EXPECT_EQ(shadows_->size(), 1u);
  m.send(0, "56789");
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
}

TEST_F(MirrorTest, AnswerEndingWithTheConnectionIsReadToTheEnd) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == kGetShadow; }));
  m.send(0, "HTTP/1.1 200 OK\r\n\r\nno framing");
  runFor(absl::Milliseconds(50));
  EXPECT_EQ(shadows_->size(), 1u);
  m.shut(0);
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
}

TEST_F(MirrorTest, HeadAnswerThatAnnouncesABodyIsNotReused) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, "HEAD / HTTP/1.1\r\nhost: h\r\n\r\n", false, kLong, true), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && !m.peer(0).received.empty(); }));
  EXPECT_EQ(m.peer(0).received, "HEAD / HTTP/1.1\r\nhost: h-shadow\r\n\r\n");
  // No body follows a HEAD answer, whatever its Content-Length says.
  m.send(0, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
}

TEST_F(MirrorTest, ConnectionCloseAnswerClosesTheConnection) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == kGetShadow; }));
  m.send(0, "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(pool_->idleCount(), 0u);
  ASSERT_TRUE(runUntil([&] { return m.peer(0).closed; }));
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
}

TEST_F(MirrorTest, HostGetsTheSuffixBeforeAnyPort) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(mirroredHost(*c, m, "example.com:8080"), "example.com-shadow:8080");
  EXPECT_EQ(mirroredHost(*c, m, "[::1]:8080"), "[::1]-shadow:8080");
  EXPECT_EQ(mirroredHost(*c, m, "[::1]"), "[::1]-shadow");
  EXPECT_EQ(mirroredHost(*c, m, "10.0.0.1"), "10.0.0.1-shadow");
}

TEST_F(MirrorTest, HeadWithoutHostFirstIsNotSent) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(start(*c, "GET / HTTP/1.1\r\nvia: 1.1 sluice\r\nhost: h\r\n\r\n", false), nullptr);
  EXPECT_EQ(shadows_->size(), 0u);
  EXPECT_EQ(value(c->stats().rq_mirror), 1);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_total), 0);
}

TEST_F(MirrorTest, ClusterWithoutEndpointsFailsAtOnce) {
  v1::Cluster config;
  config.set_name("empty");
  auto c = upstream::Cluster::compile(config, nullptr, 1, store_.get(), &keys_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(start(**c, kGet, false), nullptr);
  EXPECT_EQ(shadows_->size(), 0u);
  EXPECT_EQ(value((*c)->stats().rq_mirror), 1);
  EXPECT_EQ(value((*c)->stats().rq_mirror_failed), 1);
}

TEST_F(MirrorTest, CircuitBreakerRefusalFailsAtOnce) {
  Mirror m(base_);
  auto c = cluster(m.port(), "circuit_breakers { max_connections: 1 }");
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  EXPECT_EQ(start(*c, kGet, false), nullptr);
  EXPECT_EQ(shadows_->size(), 1u);
  EXPECT_EQ(value(c->stats().rq_mirror), 2);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
}

TEST_F(MirrorTest, RefusedConnectCountsFailedAndFreesTheShadow) {
  auto c = cluster(testing::closedLoopbackPort());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(value(c->stats().rq_mirror), 1);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_connect_fail), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

TEST_F(MirrorTest, RefusedConnectWhileTheBodyIsFedWaitsForTheCaller) {
  auto c = cluster(testing::closedLoopbackPort());
  ASSERT_NE(c, nullptr);
  Shadow* s = start(*c, kPost, true);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(runUntil([&] { return value(c->stats().rq_mirror_failed) == 1; }));
  // Still valid for the caller, whose feeds now go nowhere.
  EXPECT_EQ(shadows_->size(), 1u);
  feed(s, "hello world");
  s->finishBody();
  EXPECT_EQ(shadows_->size(), 0u);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

TEST_F(MirrorTest, MirrorThatNeverAnswersTimesOut) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false, absl::Milliseconds(50)), nullptr);
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).closed; }));
  EXPECT_EQ(m.peer(0).received, kGetShadow);
}

TEST_F(MirrorTest, TimeoutCountsFromTheEndOfTheRequest) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  Shadow* s = start(*c, kPost, true, absl::Milliseconds(10));
  ASSERT_NE(s, nullptr);
  feed(s, "hello");
  // A slow client's upload: the copy goes on however long the body takes.
  runFor(absl::Milliseconds(100));
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
  EXPECT_EQ(value(c->stats().cx_active), 1);
  feed(s, " world");
  s->finishBody();
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
}

TEST_F(MirrorTest, InvalidAnswerCountsFailed) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == kGetShadow; }));
  m.send(0, "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

TEST_F(MirrorTest, BadChunkedBodyCountsFailed) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == kGetShadow; }));
  m.send(0, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(pool_->idleCount(), 0u);
}

TEST_F(MirrorTest, MirrorClosingMidAnswerCountsFailed) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == kGetShadow; }));
  m.send(0, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort");
  m.shut(0);
  ASSERT_TRUE(runUntil([&] { return shadows_->size() == 0; }));
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

TEST_F(MirrorTest, AbortMidBodyClosesAndCountsFailed) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  Shadow* s = start(*c, kPost, true);
  ASSERT_NE(s, nullptr);
  feed(s, "hello");
  const std::string want = std::string(kPostShadow) + "hello";
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && m.peer(0).received == want; }));
  s->abort();
  EXPECT_EQ(shadows_->size(), 0u);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(pool_->idleCount(), 0u);
  ASSERT_TRUE(runUntil([&] { return m.peer(0).closed; }));
  EXPECT_EQ(m.peer(0).received, want);
}

TEST_F(MirrorTest, AnswerBeforeTheBodyEndsFinishesWithoutReusingTheConnection) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  Shadow* s = start(*c, kPost, true);
  ASSERT_NE(s, nullptr);
  feed(s, "hello");
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1 && !m.peer(0).received.empty(); }));
  m.send(0, "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n");
  // The copy is over (answered, not failed), and its connection, mid-request, is closed.
  ASSERT_TRUE(runUntil([&] { return value(c->stats().cx_active) == 0; }));
  EXPECT_EQ(shadows_->size(), 1u);
  EXPECT_EQ(pool_->idleCount(), 0u);
  feed(s, " world");
  s->finishBody();
  EXPECT_EQ(shadows_->size(), 0u);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
}

TEST_F(MirrorTest, BufferCapFailsAShadowBeforeItConnects) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  Shadow* s = start(*c, kPost, true);
  ASSERT_NE(s, nullptr);
  // Not connected yet: everything waits in the connection's buffer.
  const std::string half(Shadow::kMaxBuffered / 2, 'x');
  feed(s, half);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
  feed(s, half);  // head + 1 MiB
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(shadows_->size(), 1u);
  s->finishBody();
  EXPECT_EQ(shadows_->size(), 0u);
}

TEST_F(MirrorTest, BufferCapFailsAShadowWhoseMirrorStopsReading) {
  Mirror m(base_, /*read=*/false);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  Shadow* s = start(*c, kPost, true);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(runUntil([&] { return m.accepted() == 1; }));
  ASSERT_TRUE(runUntil([&] { return value(c->stats().cx_active) == 1; }));
  const std::string chunk(256 * 1024, 'x');
  // The socket buffers take a few MiB; past them the shadow holds at most 1 MiB.
  for (int i = 0; i < 256 && value(c->stats().rq_mirror_failed) == 0; ++i) {
    feed(s, chunk);
    runOnce();
  }
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 1);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  s->finishBody();
  EXPECT_EQ(shadows_->size(), 0u);
}

TEST_F(MirrorTest, CloseAllFreesShadowsInFlight) {
  Mirror m(base_);
  auto c = cluster(m.port());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  ASSERT_NE(start(*c, kGet, false), nullptr);
  EXPECT_EQ(shadows_->size(), 2u);
  ASSERT_TRUE(runUntil([&] {
    return m.accepted() == 2 && m.peer(0).received == kGetShadow &&
           m.peer(1).received == kGetShadow;
  }));
  shadows_->closeAll();
  EXPECT_EQ(shadows_->size(), 0u);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(value(c->stats().rq_mirror_failed), 0);
  ASSERT_TRUE(runUntil([&] { return m.peer(0).closed && m.peer(1).closed; }));

  // The set's destructor does the same.
  ASSERT_NE(start(*c, kGet, false), nullptr);
  shadows_.reset();
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

}  // namespace
}  // namespace sluice::http
