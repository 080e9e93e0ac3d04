// The per-worker keep-alive pool against a real loopback listener: connecting, reuse, idle
// connections the upstream closes, connect failures, the idle limit, draining and the gauges.
#include "proxy/upstream/conn_pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
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

// Every wait is bounded by this; it only matters when a test fails.
constexpr absl::Duration kWait = absl::Seconds(10);

// A loopback TCP listener the test accepts on by hand.
class Listener {
 public:
  explicit Listener(int backlog = 16) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << errno;
    EXPECT_EQ(listen(fd_, backlog), 0) << errno;
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() {
    for (int fd : accepted_) close(fd);
    if (fd_ >= 0) close(fd_);
  }

  uint16_t port() const { return port_; }
  // The server side of the next established connection (blocking).
  int accept() {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) accepted_.push_back(fd);
    return fd;
  }
  // Closes a connection accept() returned.
  void closeAccepted(int fd) {
    std::erase(accepted_, fd);
    close(fd);
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> accepted_;
};

// A port nothing listens on: bound once, then closed.
uint16_t closedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class FakeOwner : public UpstreamOwner {
 public:
  explicit FakeOwner(ConnPool* pool) : pool_(pool) {}

  void onUpstreamConnected(UpstreamConn*) override { ++connected; }
  void onUpstreamConnectFailed(UpstreamConn* conn, bool was_timed_out) override {
    ++failed;
    timed_out = was_timed_out;
    error = errno;
    pool_->destroy(conn);  // the owner's duty
  }
  void onUpstreamReadable(UpstreamConn*) override { ++readable; }
  void onUpstreamWritable(UpstreamConn*) override { ++writable; }

  int connected = 0;
  int failed = 0;
  bool timed_out = false;
  int error = 0;
  int readable = 0;
  int writable = 0;

 private:
  ConnPool* pool_;
};

class ConnPoolTest : public ::testing::Test {
 protected:
  ConnPoolTest()
      : base_(event_base_new()),
        store_(stats::Store::create(1)),
        pool_(std::make_unique<ConnPool>(base_, store_->cells(0))) {}

  ~ConnPoolTest() override {
    pool_.reset();
    event_base_free(base_);
  }

  std::unique_ptr<Cluster> cluster(uint16_t port, const std::string& extra = "",
                                   const std::string& name = "web") {
    v1::Cluster config;
    config.set_name(name);
    v1::Endpoint* e = config.add_endpoints();
    e->set_address("127.0.0.1");
    e->set_port(port);
    if (!extra.empty()) {
      EXPECT_TRUE(google::protobuf::TextFormat::MergeFromString(extra, &config)) << extra;
    }
    auto c = Cluster::compile(config, nullptr, 1, store_.get(), &keys_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
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

  // A connected connection to `c`'s endpoint for `owner`, and the server side in *peer.
  UpstreamConn* connectOne(const Cluster& c, FakeOwner* owner, Listener* listener, int* peer) {
    bool reused = true;
    UpstreamConn* conn = pool_->acquire(c, c.endpoints()[0], owner, &reused, &refusal_);
    EXPECT_NE(conn, nullptr);
    EXPECT_FALSE(reused);
    if (conn == nullptr) return nullptr;
    const int before = owner->connected;
    EXPECT_TRUE(runUntil([&] { return owner->connected > before || owner->failed > 0; }));
    EXPECT_TRUE(conn->connected());
    *peer = listener->accept();
    EXPECT_GE(*peer, 0);
    return conn;
  }

  int64_t value(stats::CounterId id) { return store_->value(id); }
  int64_t value(stats::GaugeId id) { return store_->value(id); }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  Registry keys_;
  std::unique_ptr<ConnPool> pool_;
  ConnPool::Refusal refusal_ = ConnPool::Refusal::kNone;
};

TEST_F(ConnPoolTest, AcquireOpensANewConnectionAndReportsItConnected) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner owner(pool_.get());

  bool reused = true;
  UpstreamConn* conn = pool_->acquire(*c, c->endpoints()[0], &owner, &reused, &refusal_);
  ASSERT_NE(conn, nullptr);
  EXPECT_FALSE(reused);
  EXPECT_GE(conn->fd(), 0);
  EXPECT_EQ(conn->uses(), 0u);
  // Reported from the loop, never from inside acquire().
  EXPECT_EQ(owner.connected, 0);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 1u);
  EXPECT_EQ(value(c->stats().cx_total), 1);
  EXPECT_EQ(value(c->stats().cx_active), 1);
  EXPECT_EQ(value(c->endpoints()[0].cx_active), 1);

  ASSERT_TRUE(runUntil([&] { return owner.connected > 0 || owner.failed > 0; }));
  EXPECT_EQ(owner.connected, 1);
  EXPECT_EQ(owner.failed, 0);
  EXPECT_TRUE(conn->connected());

  // The socket works: bytes written reach the listener's side.
  int peer = listener.accept();
  ASSERT_GE(peer, 0);
  evbuffer_add(conn->out(), "ping", 4);
  ASSERT_TRUE(conn->flush());
  char buf[8] = {};
  ASSERT_EQ(read(peer, buf, sizeof(buf)), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");

  pool_->destroy(conn);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(value(c->endpoints()[0].cx_active), 0);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 0u);
  EXPECT_EQ(owner.connected, 1);
}

TEST_F(ConnPoolTest, ReleasedConnectionIsReusedByTheNextAcquire) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner first(pool_.get()), second(pool_.get());
  int peer = -1;
  UpstreamConn* conn = connectOne(*c, &first, &listener, &peer);
  ASSERT_NE(conn, nullptr);
  const int fd = conn->fd();

  pool_->release(conn);
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 0u);
  EXPECT_EQ(value(c->stats().cx_idle), 1);
  EXPECT_EQ(value(c->stats().cx_active), 1);

  bool reused = false;
  UpstreamConn* again = pool_->acquire(*c, c->endpoints()[0], &second, &reused, &refusal_);
  EXPECT_TRUE(reused);
  ASSERT_EQ(again, conn);
  EXPECT_EQ(again->fd(), fd);
  EXPECT_EQ(again->uses(), 1u);
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 1u);
  EXPECT_EQ(value(c->stats().cx_idle), 0);
  EXPECT_EQ(value(c->stats().cx_total), 1);
  // A reused connection is ready at once: no second connected callback.
  EXPECT_EQ(second.connected, 0);

  // The new owner gets the connection's events.
  again->wantRead(true);
  ASSERT_EQ(write(peer, "x", 1), 1);
  ASSERT_TRUE(runUntil([&] { return second.readable > 0; }));
  EXPECT_EQ(first.readable, 0);
  pool_->destroy(again);
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

TEST_F(ConnPoolTest, IdleConnectionClosedByThePeerLeavesThePool) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner owner(pool_.get());
  int peer = -1;
  UpstreamConn* conn = connectOne(*c, &owner, &listener, &peer);
  ASSERT_NE(conn, nullptr);
  pool_->release(conn);
  ASSERT_EQ(pool_->idleCount(), 1u);

  listener.closeAccepted(peer);
  ASSERT_TRUE(runUntil([&] { return pool_->idleCount() == 0; }));
  EXPECT_EQ(value(c->stats().cx_destroy_idle), 1);
  EXPECT_EQ(value(c->stats().cx_idle), 0);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(value(c->endpoints()[0].cx_active), 0);
  EXPECT_EQ(owner.readable, 0);

  // The next request gets a fresh connection.
  bool reused = true;
  UpstreamConn* fresh = pool_->acquire(*c, c->endpoints()[0], &owner, &reused, &refusal_);
  ASSERT_NE(fresh, nullptr);
  EXPECT_FALSE(reused);
  pool_->destroy(fresh);
}

TEST_F(ConnPoolTest, IdleConnectionThePeerWritesToIsDropped) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner owner(pool_.get());
  int peer = -1;
  UpstreamConn* conn = connectOne(*c, &owner, &listener, &peer);
  ASSERT_NE(conn, nullptr);
  pool_->release(conn);

  // Bytes nobody asked for (a stray response): the connection cannot carry a request safely.
  ASSERT_EQ(write(peer, "HTTP/1.1 200 OK\r\n\r\n", 19), 19);
  ASSERT_TRUE(runUntil([&] { return pool_->idleCount() == 0; }));
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(owner.readable, 0);
}

TEST_F(ConnPoolTest, ConnectingToAClosedPortFails) {
  auto c = cluster(closedPort());
  ASSERT_NE(c, nullptr);
  FakeOwner owner(pool_.get());
  bool reused = true;
  UpstreamConn* conn = pool_->acquire(*c, c->endpoints()[0], &owner, &reused, &refusal_);
  ASSERT_NE(conn, nullptr);
  EXPECT_FALSE(reused);
  EXPECT_EQ(owner.failed, 0);

  ASSERT_TRUE(runUntil([&] { return owner.failed > 0 || owner.connected > 0; }));
  EXPECT_EQ(owner.connected, 0);
  EXPECT_EQ(owner.failed, 1);
  EXPECT_FALSE(owner.timed_out);
  EXPECT_EQ(owner.error, ECONNREFUSED);
  EXPECT_EQ(value(c->stats().cx_connect_fail), 1);
  EXPECT_EQ(value(c->stats().cx_total), 1);
  // The owner destroyed it.
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 0u);
  EXPECT_EQ(pool_->idleCount(), 0u);
}

TEST_F(ConnPoolTest, ConnectTimeoutIsReportedAsTimedOut) {
  // A listener whose accept queue holds one connection: once it is full, the kernel drops
  // further SYNs and their connects hang.
  Listener listener(/*backlog=*/0);
  auto c = cluster(listener.port(), "connect_timeout { nanos: 100000000 }");
  ASSERT_NE(c, nullptr);
  FakeOwner filler(pool_.get()), owner(pool_.get());
  bool reused = true;
  UpstreamConn* first = pool_->acquire(*c, c->endpoints()[0], &filler, &reused, &refusal_);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(runUntil([&] { return filler.connected > 0 || filler.failed > 0; }));
  ASSERT_EQ(filler.connected, 1);

  UpstreamConn* conn = pool_->acquire(*c, c->endpoints()[0], &owner, &reused, &refusal_);
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(runUntil([&] { return owner.failed > 0 || owner.connected > 0; }));
  EXPECT_EQ(owner.connected, 0);
  EXPECT_TRUE(owner.timed_out);
  EXPECT_EQ(owner.error, ETIMEDOUT);
  EXPECT_EQ(value(c->stats().cx_connect_fail), 1);
  pool_->destroy(first);
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

TEST_F(ConnPoolTest, ReleaseBeyondTheIdleLimitCloses) {
  Listener listener;
  auto c = cluster(listener.port(), "max_idle_connections_per_endpoint: 1");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->maxIdlePerEndpoint(), 1u);
  FakeOwner a(pool_.get()), b(pool_.get());
  int peer_a = -1, peer_b = -1;
  UpstreamConn* ca = connectOne(*c, &a, &listener, &peer_a);
  UpstreamConn* cb = connectOne(*c, &b, &listener, &peer_b);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  EXPECT_EQ(value(c->stats().cx_active), 2);

  pool_->release(ca);
  EXPECT_EQ(pool_->idleCount(), 1u);
  pool_->release(cb);
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(value(c->stats().cx_active), 1);
  EXPECT_EQ(value(c->stats().cx_idle), 1);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 0u);

  // The closed one's peer sees EOF.
  char buf[1];
  EXPECT_EQ(read(peer_b, buf, 1), 0);
}

TEST_F(ConnPoolTest, IdleLimitZeroTurnsPoolingOff) {
  Listener listener;
  auto c = cluster(listener.port(), "max_idle_connections_per_endpoint: 0");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->maxIdlePerEndpoint(), 0u);
  FakeOwner owner(pool_.get());
  int peer = -1;
  UpstreamConn* conn = connectOne(*c, &owner, &listener, &peer);
  ASSERT_NE(conn, nullptr);
  pool_->release(conn);
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  char buf[1];
  EXPECT_EQ(read(peer, buf, 1), 0);
}

TEST_F(ConnPoolTest, ReleaseWithUnconsumedBytesCloses) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner owner(pool_.get());
  int peer = -1;
  UpstreamConn* conn = connectOne(*c, &owner, &listener, &peer);
  ASSERT_NE(conn, nullptr);
  evbuffer_add(conn->in(), "leftover", 8);
  pool_->release(conn);
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_EQ(value(c->stats().cx_active), 0);
}

TEST_F(ConnPoolTest, DrainClosesIdleConnectionsAndLaterReleases) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner a(pool_.get()), b(pool_.get()), busy(pool_.get());
  int pa = -1, pb = -1, pbusy = -1;
  UpstreamConn* ca = connectOne(*c, &a, &listener, &pa);
  UpstreamConn* cb = connectOne(*c, &b, &listener, &pb);
  UpstreamConn* cbusy = connectOne(*c, &busy, &listener, &pbusy);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  ASSERT_NE(cbusy, nullptr);
  pool_->release(ca);
  pool_->release(cb);
  ASSERT_EQ(pool_->idleCount(), 2u);
  EXPECT_EQ(value(c->stats().cx_active), 3);

  pool_->drain();
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_EQ(value(c->stats().cx_idle), 0);
  EXPECT_EQ(value(c->stats().cx_active), 1);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 1u);

  // A request in flight finishes; its connection is closed, not pooled.
  pool_->release(cbusy);
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(pool_->busy(c->endpoints()[0].pool_key), 0u);
  char buf[1];
  EXPECT_EQ(read(pbusy, buf, 1), 0);
}

TEST_F(ConnPoolTest, DrainEndpointClosesOnlyThatEndpointsIdleConnections) {
  Listener one, two;
  auto c1 = cluster(one.port(), "", "one");
  auto c2 = cluster(two.port(), "", "two");
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  FakeOwner a(pool_.get()), b(pool_.get());
  int pa = -1, pb = -1;
  UpstreamConn* ca = connectOne(*c1, &a, &one, &pa);
  UpstreamConn* cb = connectOne(*c2, &b, &two, &pb);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  pool_->release(ca);
  pool_->release(cb);
  ASSERT_EQ(pool_->idleCount(), 2u);

  pool_->drainEndpoint(c1->endpoints()[0].pool_key);
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(value(c1->stats().cx_active), 0);
  EXPECT_EQ(value(c2->stats().cx_active), 1);

  // Pooling goes on for the other endpoint.
  bool reused = false;
  UpstreamConn* again = pool_->acquire(*c2, c2->endpoints()[0], &b, &reused, &refusal_);
  EXPECT_TRUE(reused);
  EXPECT_EQ(again, cb);
  pool_->release(again);
  EXPECT_EQ(pool_->idleCount(), 1u);
}

TEST_F(ConnPoolTest, RetainClosesPoolsOfEndpointsNoLongerConfigured) {
  Listener one, two;
  auto c1 = cluster(one.port(), "", "one");
  auto c2 = cluster(two.port(), "", "two");
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  FakeOwner a(pool_.get()), b(pool_.get()), busy(pool_.get());
  int pa = -1, pb = -1, pbusy = -1;
  UpstreamConn* ca = connectOne(*c1, &a, &one, &pa);
  UpstreamConn* cb = connectOne(*c2, &b, &two, &pb);
  UpstreamConn* cbusy = connectOne(*c1, &busy, &one, &pbusy);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  ASSERT_NE(cbusy, nullptr);
  pool_->release(ca);
  pool_->release(cb);
  ASSERT_EQ(pool_->idleCount(), 2u);

  // A generation with only endpoint "two".
  std::vector<bool> live(c2->endpoints()[0].pool_key + 1, false);
  live[c2->endpoints()[0].pool_key] = true;
  pool_->retain(live);
  EXPECT_EQ(pool_->idleCount(), 1u);  // "one"'s idle connection closed
  char buf[1];
  EXPECT_EQ(read(pa, buf, 1), 0);
  // The busy connection to "one" finishes its request, then closes instead of pooling.
  pool_->release(cbusy);
  EXPECT_EQ(pool_->idleCount(), 1u);
  EXPECT_EQ(read(pbusy, buf, 1), 0);
  EXPECT_EQ(value(c1->stats().cx_active), 0);
  EXPECT_EQ(value(c2->stats().cx_active), 1);
}

TEST_F(ConnPoolTest, GaugesReturnToZeroWhenThePoolGoes) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner a(pool_.get()), b(pool_.get());
  int pa = -1, pb = -1;
  UpstreamConn* ca = connectOne(*c, &a, &listener, &pa);
  UpstreamConn* cb = connectOne(*c, &b, &listener, &pb);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  pool_->release(ca);
  pool_->destroy(cb);
  EXPECT_EQ(value(c->stats().cx_active), 1);
  EXPECT_EQ(value(c->stats().cx_idle), 1);

  pool_.reset();  // closes the idle one
  EXPECT_EQ(value(c->stats().cx_active), 0);
  EXPECT_EQ(value(c->stats().cx_idle), 0);
  EXPECT_EQ(value(c->endpoints()[0].cx_active), 0);
  EXPECT_EQ(value(c->stats().cx_total), 2);
  const std::string text = store_->prometheusText();
  EXPECT_THAT(text, ::testing::HasSubstr("sluice_cluster_upstream_cx_active{cluster=\"web\"} 0"));
  EXPECT_THAT(text, ::testing::HasSubstr("sluice_cluster_upstream_cx_total{cluster=\"web\"} 2"));
}

TEST_F(ConnPoolTest, MaxConnectionsRefusesTheConnectionBeyondTheLimitAcrossEndpointsAndFrees) {
  Listener listener;
  auto c = cluster(listener.port(), "circuit_breakers { max_connections: 2 }");
  ASSERT_NE(c, nullptr);
  FakeOwner a(pool_.get()), b(pool_.get()), d(pool_.get());
  int pa = -1, pb = -1;
  UpstreamConn* ca = connectOne(*c, &a, &listener, &pa);
  UpstreamConn* cb = connectOne(*c, &b, &listener, &pb);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  bool reused = false;
  EXPECT_EQ(pool_->acquire(*c, c->endpoints()[0], &d, &reused, &refusal_), nullptr);
  EXPECT_EQ(refusal_, ConnPool::Refusal::kMaxConnections);
  EXPECT_EQ(c->counters().cx_active.load(), 2u);
  // An idle pooled connection still counts; a destroyed one frees its place.
  pool_->release(ca);
  EXPECT_EQ(c->counters().cx_active.load(), 2u);
  pool_->destroy(cb);
  EXPECT_EQ(c->counters().cx_active.load(), 1u);
  UpstreamConn* again = pool_->acquire(*c, c->endpoints()[0], &d, &reused, &refusal_);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(reused);  // the idle one first
  UpstreamConn* fresh = pool_->acquire(*c, c->endpoints()[0], &b, &reused, &refusal_);
  ASSERT_NE(fresh, nullptr);
  EXPECT_FALSE(reused);
  EXPECT_EQ(c->counters().cx_active.load(), 2u);
  pool_->destroy(again);
  pool_->destroy(fresh);
  EXPECT_EQ(c->counters().cx_active.load(), 0u);
  close(pa);
  close(pb);
}

TEST_F(ConnPoolTest, MaxPendingCountsOnlyConnectsUnderWay) {
  Listener listener;
  auto c = cluster(listener.port(), "circuit_breakers { max_pending_requests: 1 }");
  ASSERT_NE(c, nullptr);
  FakeOwner a(pool_.get()), b(pool_.get());
  bool reused = false;
  UpstreamConn* first = pool_->acquire(*c, c->endpoints()[0], &a, &reused, &refusal_);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(c->counters().rq_pending.load(), 1u);
  EXPECT_EQ(pool_->acquire(*c, c->endpoints()[0], &b, &reused, &refusal_), nullptr);
  EXPECT_EQ(refusal_, ConnPool::Refusal::kMaxPending);
  ASSERT_TRUE(runUntil([&] { return a.connected > 0 || a.failed > 0; }));
  EXPECT_EQ(c->counters().rq_pending.load(), 0u);
  UpstreamConn* second = pool_->acquire(*c, c->endpoints()[0], &b, &reused, &refusal_);
  ASSERT_NE(second, nullptr);
  // Destroyed while still connecting: no longer pending either.
  pool_->destroy(second);
  EXPECT_EQ(c->counters().rq_pending.load(), 0u);
  pool_->destroy(first);
}

TEST_F(ConnPoolTest, ClustersWithoutBreakersCountNothingShared) {
  Listener listener;
  auto c = cluster(listener.port());
  ASSERT_NE(c, nullptr);
  FakeOwner a(pool_.get());
  int peer = -1;
  UpstreamConn* conn = connectOne(*c, &a, &listener, &peer);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(c->counters().cx_active.load(), 0u);
  EXPECT_EQ(c->counters().rq_pending.load(), 0u);
  pool_->destroy(conn);
  close(peer);
}

}  // namespace
}  // namespace sluice::upstream
