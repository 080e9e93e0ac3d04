#include "proxy/upstream/conn_pool.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/log/log.h"

namespace sluice::upstream {

void UpstreamConn::wantRead(bool on) {
  if (on == reading_) return;
  reading_ = on;
  if (tls_ != nullptr) {
    syncTlsEvents();
  } else if (on) {
    event_add(&read_ev_, nullptr);
  } else {
    event_del(&read_ev_);
  }
}

void UpstreamConn::wantWrite(bool on) {
  if (on == writing_) return;
  writing_ = on;
  if (tls_ != nullptr) {
    syncTlsEvents();
  } else if (on) {
    event_add(&write_ev_, nullptr);
  } else {
    event_del(&write_ev_);
  }
}

void UpstreamConn::syncTlsEvents() {
  if (handshaking_) return;  // the handshake watches for itself
  const bool read = (reading_ && !tls_->readWantsWrite()) || tls_->writeWantsRead();
  const bool write = (writing_ && !tls_->writeWantsRead()) || tls_->readWantsWrite();
  if (read != read_armed_) {
    read_armed_ = read;
    read ? event_add(&read_ev_, nullptr) : event_del(&read_ev_);
  }
  if (write != write_armed_) {
    write_armed_ = write;
    write ? event_add(&write_ev_, nullptr) : event_del(&write_ev_);
  }
}

ssize_t UpstreamConn::readTls() {
  const ssize_t n = tls_->readInto(in_);
  const int err = errno;
  syncTlsEvents();
  errno = err;
  return n;
}

bool UpstreamConn::flush() {
  while (evbuffer_get_length(out_) > 0) {
    ssize_t n = tls_ == nullptr ? http::writeFrom(out_, fd_) : tls_->writeFrom(out_);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      return false;
    }
    if (n == 0) break;
  }
  wantWrite(evbuffer_get_length(out_) > 0);
  if (tls_ != nullptr) syncTlsEvents();
  return true;
}

void UpstreamConn::startHandshake() {
  ConnPool::EndpointPool& pool = pool_->poolFor(pool_key_);
  SSL_SESSION* session = pool.session_context == tls_context_id_ ? pool.session : nullptr;
  tls_ = tls_context_->connect(fd_, endpoint_.host, session);
  tls_context_.reset();
  if (tls_ == nullptr) {
    handshakeFailed(tls::HandshakeFailure::kProtocol);
    return;
  }
  handshaking_ = true;
  continueHandshake(0);
}

void UpstreamConn::watchUntilDeadline(event* ev, event* other) {
  event_del(other);
  const absl::Duration left = connect_deadline_ - absl::Now();
  if (left <= absl::ZeroDuration()) {
    handshakeFailed(tls::HandshakeFailure::kTimeout);
    return;
  }
  const timeval tv = absl::ToTimeval(left);
  event_add(ev, &tv);
}

void UpstreamConn::continueHandshake(short what) {
  if ((what & EV_TIMEOUT) != 0) {
    handshakeFailed(tls::HandshakeFailure::kTimeout);
    return;
  }
  switch (tls_->handshake()) {
    case tls::Connection::Step::kWantRead:
      watchUntilDeadline(&read_ev_, &write_ev_);
      return;
    case tls::Connection::Step::kWantWrite:
      watchUntilDeadline(&write_ev_, &read_ev_);
      return;
    case tls::Connection::Step::kFailed:
      handshakeFailed(tls_->failure());
      return;
    case tls::Connection::Step::kDone:
      break;
  }
  handshaking_ = false;
  // The handshake watched with the connect's deadline: both events afresh, without it (a
  // persistent event would keep its timeout).
  event_base* base = event_get_base(&read_ev_);
  event_del(&read_ev_);
  event_del(&write_ev_);
  event_assign(&read_ev_, base, fd_, EV_READ | EV_PERSIST, &UpstreamConn::onEvent, this);
  event_assign(&write_ev_, base, fd_, EV_WRITE | EV_PERSIST, &UpstreamConn::onEvent, this);
  connected_ = true;
  endPending();
  stats::Cells* cells = pool_->cells_;
  cells->add(cluster_stats_.tls.handshake);
  if (tls_->sessionReused()) cells->add(cluster_stats_.tls.session_reused);
  pool_->keepSession(this);
  owner_->onUpstreamConnected(this);
}

void UpstreamConn::handshakeFailed(tls::HandshakeFailure failure) {
  handshaking_ = false;
  tls_failed_ = true;
  // The session this handshake offered may be why it failed: the next one starts afresh.
  pool_->dropSession(pool_->poolFor(pool_key_));
  event_del(&read_ev_);
  event_del(&write_ev_);
  endPending();
  stats::Cells* cells = pool_->cells_;
  const bool timed_out = failure == tls::HandshakeFailure::kTimeout;
  cells->add(cluster_stats_.cx_connect_fail);
  if (timed_out) cells->add(cluster_stats_.cx_connect_timeout);
  cells->add(cluster_stats_.tls.handshake_error[static_cast<int>(failure)]);
  log::debug("TLS handshake with %s failed: %s", endpoint_.name,
             tls::handshakeFailureName(failure));
  errno = timed_out ? ETIMEDOUT : EPROTO;
  owner_->onUpstreamConnectFailed(this, timed_out);
}

void UpstreamConn::onEvent(evutil_socket_t, short what, void* arg) {
  auto* conn = static_cast<UpstreamConn*>(arg);
  if (conn->owner_ == nullptr) {
    conn->pool_->onIdleEvent(conn);
    return;
  }
  if (!conn->connected_) {
    if (conn->handshaking_) {
      conn->continueHandshake(what);
      return;
    }
    // The connect's outcome: writable (check SO_ERROR) or the connect timeout.
    int err = 0;
    socklen_t len = sizeof(err);
    bool timed_out = (what & EV_TIMEOUT) != 0;
    if (conn->connect_error_ != 0) {
      err = conn->connect_error_;
    } else if (!timed_out && getsockopt(conn->fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
      err = errno;
    }
    if (timed_out || err != 0) {
      conn->endPending();
      conn->pool_->cells_->add(conn->cluster_stats_.cx_connect_fail);
      if (timed_out) conn->pool_->cells_->add(conn->cluster_stats_.cx_connect_timeout);
      conn->writing_ = false;
      event_del(&conn->write_ev_);
      errno = timed_out ? ETIMEDOUT : err;
      conn->owner_->onUpstreamConnectFailed(conn, timed_out);
      return;
    }
    conn->writing_ = false;
    event_del(&conn->write_ev_);
    // Re-arm without the connect timeout (a persistent event would keep it).
    event_assign(&conn->write_ev_, event_get_base(&conn->write_ev_), conn->fd_,
                 EV_WRITE | EV_PERSIST, &UpstreamConn::onEvent, conn);
    if (conn->tls_context_ != nullptr) {
      conn->startHandshake();
      return;
    }
    conn->connected_ = true;
    conn->endPending();
    conn->owner_->onUpstreamConnected(conn);
    return;
  }
  if (conn->tls_ != nullptr) {
    // A TLS read that waited for writability, or a write for readability, goes on.
    if ((what & EV_WRITE) && conn->tls_->readWantsWrite()) {
      conn->owner_->onUpstreamReadable(conn);
      return;
    }
    if ((what & EV_READ) && conn->tls_->writeWantsRead()) {
      conn->owner_->onUpstreamWritable(conn);
      return;
    }
  }
  if (what & EV_READ) {
    conn->owner_->onUpstreamReadable(conn);
    return;  // the owner may have released or destroyed the connection
  }
  if (what & EV_WRITE) conn->owner_->onUpstreamWritable(conn);
}

ConnPool::ConnPool(event_base* base, stats::Cells* cells) : base_(base), cells_(cells) {
  sweep_ = event_new(base_, -1, EV_PERSIST, &ConnPool::onSweep, this);
  timeval tv = {5, 0};
  event_add(sweep_, &tv);
}

ConnPool::~ConnPool() {
  drain();
  for (EndpointPool& pool : pools_) dropSession(pool);
  event_free(sweep_);
}

void ConnPool::keepSession(UpstreamConn* conn) {
  SSL_SESSION* session = conn->tls_->takeSession();
  if (session == nullptr) return;
  EndpointPool& pool = poolFor(conn->pool_key_);
  dropSession(pool);
  pool.session = session;
  pool.session_context = conn->tls_context_id_;
}

void ConnPool::dropSession(EndpointPool& pool) {
  if (pool.session != nullptr) SSL_SESSION_free(pool.session);
  pool.session = nullptr;
  pool.session_context = 0;
}

void ConnPool::onSweep(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<ConnPool*>(arg);
  const absl::Time cutoff = absl::Now() - kIdleTimeout;
  for (EndpointPool& pool : self->pools_) {
    // Oldest first: the most recently used connection is at the back.
    while (!pool.idle.empty() && pool.idle.front()->idle_since_ < cutoff) {
      UpstreamConn* conn = pool.idle.front();
      pool.idle.erase(pool.idle.begin());
      self->cells_->gaugeAdd(conn->cluster_stats_.cx_idle, -1);
      pool.busy++;
      self->destroy(conn);
    }
  }
}

void ConnPool::retain(const std::vector<bool>& live) {
  live_ = live;
  retained_ = true;
  for (uint32_t key = 0; key < pools_.size(); ++key) {
    if (key >= live_.size() || !live_[key]) {
      drainEndpoint(key);
      dropSession(pools_[key]);
    }
  }
}

ConnPool::EndpointPool& ConnPool::poolFor(uint32_t key) {
  if (key >= pools_.size()) pools_.resize(key + 1);
  return pools_[key];
}

uint32_t ConnPool::busy(uint32_t pool_key) const {
  return pool_key < pools_.size() ? pools_[pool_key].busy : 0;
}

size_t ConnPool::idleCount() const {
  size_t n = 0;
  for (const EndpointPool& p : pools_) n += p.idle.size();
  return n;
}

void UpstreamConn::endPending() {
  if (pending_counters_ == nullptr) return;
  pending_counters_->rq_pending.fetch_sub(1, std::memory_order_relaxed);
  pending_counters_ = nullptr;
}

UpstreamConn* ConnPool::acquire(const Cluster& cluster, const Endpoint& endpoint,
                                UpstreamOwner* owner, bool* reused, Refusal* refusal) {
  *refusal = Refusal::kNone;
  EndpointPool& pool = poolFor(endpoint.pool_key);
  const uint64_t tls_id = cluster.tls() != nullptr ? cluster.tls()->id() : 0;
  while (!pool.idle.empty()) {
    UpstreamConn* conn = pool.idle.back();
    pool.idle.pop_back();
    cells_->gaugeAdd(conn->cluster_stats_.cx_idle, -1);
    if (conn->tls_context_id_ != tls_id) {
      // Made under another TLS config of the cluster (other CAs, or none).
      pool.busy++;
      destroy(conn);
      continue;
    }
    // Reading stays enabled: the new owner wants the response, and nothing can fire between
    // here and its taking over (one thread). Toggling would cost two epoll_ctl calls.
    conn->owner_ = owner;
    conn->max_idle_ = cluster.maxIdlePerEndpoint();
    conn->uses_++;
    pool.busy++;
    *reused = true;
    return conn;
  }
  *reused = false;
  // Circuit breakers: a new connection counts against max_connections and, until it is
  // established, its request against max_pending_requests.
  const Breakers& limits = cluster.breakers();
  ClusterCounters& counters = cluster.counters();
  if (limits.max_connections != Breakers::kUnlimited) {
    if (counters.cx_active.fetch_add(1, std::memory_order_relaxed) >= limits.max_connections) {
      counters.cx_active.fetch_sub(1, std::memory_order_relaxed);
      *refusal = Refusal::kMaxConnections;
      return nullptr;
    }
  }
  auto unlimitConnection = [&] {
    if (limits.max_connections != Breakers::kUnlimited) {
      counters.cx_active.fetch_sub(1, std::memory_order_relaxed);
    }
  };
  if (limits.max_pending != Breakers::kUnlimited) {
    if (counters.rq_pending.fetch_add(1, std::memory_order_relaxed) >= limits.max_pending) {
      counters.rq_pending.fetch_sub(1, std::memory_order_relaxed);
      unlimitConnection();
      *refusal = Refusal::kMaxPending;
      return nullptr;
    }
  }
  int fd = socket(endpoint.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    unlimitConnection();
    if (limits.max_pending != Breakers::kUnlimited) {
      counters.rq_pending.fetch_sub(1, std::memory_order_relaxed);
    }
    errno = err;
    *refusal = Refusal::kSocket;
    return nullptr;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto* conn = new UpstreamConn();
  conn->pool_ = this;
  conn->owner_ = owner;
  conn->fd_ = fd;
  conn->pool_key_ = endpoint.pool_key;
  conn->max_idle_ = cluster.maxIdlePerEndpoint();
  conn->endpoint_ = endpoint;
  conn->cluster_stats_ = cluster.stats();
  if (limits.max_connections != Breakers::kUnlimited) conn->cx_counters_ = &counters;
  if (limits.max_pending != Breakers::kUnlimited) conn->pending_counters_ = &counters;
  conn->in_ = evbuffer_new();
  conn->out_ = evbuffer_new();
  event_assign(&conn->read_ev_, base_, fd, EV_READ | EV_PERSIST, &UpstreamConn::onEvent, conn);
  event_assign(&conn->write_ev_, base_, fd, EV_WRITE | EV_PERSIST, &UpstreamConn::onEvent, conn);
  pool.busy++;
  cells_->add(conn->cluster_stats_.cx_total);
  cells_->gaugeAdd(conn->cluster_stats_.cx_active, 1);
  cells_->gaugeAdd(conn->endpoint_.cx_active, 1);
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&endpoint.addr), endpoint.addr_len);
  // Even an immediate result (loopback) is reported from the loop, so the owner sees one order
  // of events: acquire returns, then connected or failed.
  if (rc < 0 && errno != EINPROGRESS) conn->connect_error_ = errno;
  absl::Duration timeout = cluster.connectTimeout();
  if (cluster.tls() != nullptr) {
    conn->tls_context_ = cluster.tls();
    conn->tls_context_id_ = tls_id;
    conn->connect_deadline_ = absl::Now() + timeout;
  }
  timeval tv = absl::ToTimeval(timeout);
  conn->writing_ = true;
  event_add(&conn->write_ev_, &tv);
  return conn;
}

void ConnPool::release(UpstreamConn* conn) {
  // TLS 1.3 tickets arrive after the handshake, read with the response.
  if (conn->tls_ != nullptr) keepSession(conn);
  EndpointPool& pool = poolFor(conn->pool_key_);
  pool.busy--;
  const bool live = live_.empty() || (conn->pool_key_ < live_.size() && live_[conn->pool_key_]);
  if (draining_ || !live || pool.idle.size() >= conn->max_idle_ ||
      evbuffer_get_length(conn->in_) > 0 || evbuffer_get_length(conn->out_) > 0) {
    pool.busy++;  // destroy() counts it out
    destroy(conn);
    return;
  }
  conn->owner_ = nullptr;
  conn->idle_since_ = absl::Now();
  conn->wantWrite(false);
  conn->wantRead(true);  // anything the upstream sends now is EOF or garbage: drop the conn
  pool.idle.push_back(conn);
  cells_->gaugeAdd(conn->cluster_stats_.cx_idle, 1);
}

void ConnPool::removeIdle(UpstreamConn* conn) {
  EndpointPool& pool = poolFor(conn->pool_key_);
  auto it = std::find(pool.idle.begin(), pool.idle.end(), conn);
  if (it != pool.idle.end()) {
    pool.idle.erase(it);
    cells_->gaugeAdd(conn->cluster_stats_.cx_idle, -1);
  }
}

void ConnPool::onIdleEvent(UpstreamConn* conn) {
  if (conn->tls_ != nullptr) {
    // A TLS server may send session tickets (or a key update) whenever it likes: a record
    // without data leaves the connection usable.
    const ssize_t n = conn->tls_->readInto(conn->in_);
    if (n < 0 && errno == EAGAIN && !conn->tls_->readWantsWrite()) {
      keepSession(conn);
      return;
    }
  }
  cells_->add(conn->cluster_stats_.cx_destroy_idle);
  removeIdle(conn);
  poolFor(conn->pool_key_).busy++;  // destroy() counts a busy connection out
  destroy(conn);
}

void ConnPool::destroy(UpstreamConn* conn) {
  if (conn->tls_ != nullptr) keepSession(conn);
  poolFor(conn->pool_key_).busy--;
  event_del(&conn->read_ev_);
  event_del(&conn->write_ev_);
  close(conn->fd_);
  evbuffer_free(conn->in_);
  evbuffer_free(conn->out_);
  cells_->gaugeAdd(conn->cluster_stats_.cx_active, -1);
  cells_->gaugeAdd(conn->endpoint_.cx_active, -1);
  conn->endPending();
  if (conn->cx_counters_ != nullptr) {
    conn->cx_counters_->cx_active.fetch_sub(1, std::memory_order_relaxed);
  }
  delete conn;
}

void ConnPool::drainEndpoint(uint32_t pool_key) {
  EndpointPool& pool = poolFor(pool_key);
  while (!pool.idle.empty()) {
    UpstreamConn* conn = pool.idle.back();
    pool.idle.pop_back();
    cells_->gaugeAdd(conn->cluster_stats_.cx_idle, -1);
    pool.busy++;
    destroy(conn);
  }
}

void ConnPool::drain() {
  draining_ = true;
  for (uint32_t key = 0; key < pools_.size(); ++key) drainEndpoint(key);
}

}  // namespace sluice::upstream
