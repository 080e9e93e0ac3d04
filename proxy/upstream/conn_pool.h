#pragma once

// A worker's keep-alive connections to upstream endpoints. One ConnPool per worker, used only
// on that worker's thread: no locks. A connection is either busy (owned by one request, which
// does its I/O) or idle in its endpoint's pool, where the pool watches it so that one the
// upstream closes is dropped at once and never handed to a request.
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "proxy/http/socket_io.h"
#include "proxy/stats/store.h"
#include "proxy/tls/connection.h"
#include "proxy/upstream/cluster.h"

namespace sluice::upstream {

class UpstreamConn;

// The request using a busy connection. Callbacks run on the worker's loop.
class UpstreamOwner {
 public:
  virtual ~UpstreamOwner() = default;
  // The connection is established, TLS handshake included (called once, for new connections
  // only).
  virtual void onUpstreamConnected(UpstreamConn* conn) = 0;
  // Connecting failed: refused, unreachable, the TLS handshake failed (tlsFailed()), or
  // `timed_out`. The pool has counted it; the owner must destroy the connection.
  virtual void onUpstreamConnectFailed(UpstreamConn* conn, bool timed_out) = 0;
  virtual void onUpstreamReadable(UpstreamConn* conn) = 0;
  virtual void onUpstreamWritable(UpstreamConn* conn) = 0;
};

class ConnPool;

class UpstreamConn {
 public:
  int fd() const { return fd_; }
  evbuffer* in() { return in_; }
  evbuffer* out() { return out_; }
  bool connected() const { return connected_; }
  const Endpoint& endpointStats() const { return endpoint_; }
  const ClusterStats& clusterStats() const { return cluster_stats_; }
  // Requests this connection has carried before the current one.
  uint32_t uses() const { return uses_; }
  // The TLS handshake failed (after onUpstreamConnectFailed).
  bool tlsFailed() const { return tls_failed_; }

  // Watch for readability / writability (idempotent).
  void wantRead(bool on);
  void wantWrite(bool on);
  // Reads what the connection has into in(), as http::readInto (TLS decrypted).
  ssize_t read() { return tls_ == nullptr ? http::readInto(in_, fd_) : readTls(); }
  // Writes as much of out() as the socket takes; false on a write error (errno set).
  bool flush();

 private:
  friend class ConnPool;
  UpstreamConn() = default;
  static void onEvent(evutil_socket_t fd, short what, void* arg);
  // The connect (and handshake) finished, either way: no longer pending.
  void endPending();
  ssize_t readTls();
  // TLS reads may wait for writability and writes for readability: the events watched are
  // what reading_ and writing_ ask for, turned around where TLS needs it.
  void syncTlsEvents();
  void startHandshake();
  void continueHandshake(short what);
  void handshakeFailed(tls::HandshakeFailure failure);
  // Watches `ev` (the other event not) until the connect timeout's deadline.
  void watchUntilDeadline(event* ev, event* other);

  ConnPool* pool_ = nullptr;
  UpstreamOwner* owner_ = nullptr;  // null while idle
  int fd_ = -1;
  uint32_t pool_key_ = 0;
  uint32_t max_idle_ = 0;
  uint32_t uses_ = 0;
  absl::Time idle_since_;
  bool connected_ = false;
  int connect_error_ = 0;  // connect(2) failed at once: reported from the loop
  bool reading_ = false;
  bool writing_ = false;
  event read_ev_;
  event write_ev_;
  evbuffer* in_ = nullptr;
  evbuffer* out_ = nullptr;
  Endpoint endpoint_;  // a copy of the endpoint's address and metric ids (generations come and go)
  ClusterStats cluster_stats_;
  // The cluster's shared counters, where its circuit breakers count connections (nullptr: not
  // counted) and pending requests (while connecting).
  ClusterCounters* cx_counters_ = nullptr;
  ClusterCounters* pending_counters_ = nullptr;
  // Upstream TLS: the cluster's context until the handshake starts (kept alive by the
  // connection after), then the connection.
  std::shared_ptr<const tls::ClientContext> tls_context_;
  uint64_t tls_context_id_ = 0;  // 0: plain; pooled connections serve only their own context
  std::unique_ptr<tls::Connection> tls_;
  absl::Time connect_deadline_;  // TCP connect and handshake together
  bool handshaking_ = false;
  bool tls_failed_ = false;
  bool read_armed_ = false;  // TLS only: what is actually watched
  bool write_armed_ = false;
};

class ConnPool {
 public:
  // A pooled connection unused this long is closed (nginx's upstream keepalive_timeout).
  static constexpr absl::Duration kIdleTimeout = absl::Seconds(60);

  ConnPool(event_base* base, stats::Cells* cells);
  ~ConnPool();
  ConnPool(const ConnPool&) = delete;
  ConnPool& operator=(const ConnPool&) = delete;

  // Why acquire() returned nullptr.
  enum class Refusal {
    kNone,
    kSocket,          // no socket could be created (errno set): answer 502
    kMaxConnections,  // circuit breakers: answer 503
    kMaxPending,
  };
  // An idle connection to `endpoint` (*reused = true) or a new one whose connect is under way
  // (*reused = false; onUpstreamConnected follows), or nullptr and the reason in *refusal.
  UpstreamConn* acquire(const Cluster& cluster, const Endpoint& endpoint, UpstreamOwner* owner,
                        bool* reused, Refusal* refusal);
  // The request is done and the connection can carry another: back to the idle pool (or closed
  // when the endpoint already has its cluster's maximum of idle connections, or when draining).
  void release(UpstreamConn* conn);
  // Closes the connection (errors, "Connection: close", unfinished messages).
  void destroy(UpstreamConn* conn);

  // Busy connections of this worker to the endpoint with `pool_key` (for least-request).
  uint32_t busy(uint32_t pool_key) const;
  // Closes the idle connections to one endpoint (before a retry that must use a fresh one).
  void drainEndpoint(uint32_t pool_key);
  // Keeps pooling only for the pool keys in `live` (a new generation's endpoints): idle
  // connections to others close now, busy ones when released.
  void retain(const std::vector<bool>& live);
  // Closes every idle connection and stops pooling (shutdown).
  void drain();
  size_t idleCount() const;

 private:
  struct EndpointPool {
    std::vector<UpstreamConn*> idle;  // most recently used last
    uint32_t busy = 0;
    // The newest TLS session an endpoint's server gave, offered by the next new connection
    // made with the same context.
    SSL_SESSION* session = nullptr;
    uint64_t session_context = 0;
  };
  EndpointPool& poolFor(uint32_t key);
  void onIdleEvent(UpstreamConn* conn);
  static void onSweep(evutil_socket_t fd, short what, void* arg);
  void removeIdle(UpstreamConn* conn);
  // Keeps the session `conn`'s server issued, if any, for its endpoint (TLS connections only).
  void keepSession(UpstreamConn* conn);
  void dropSession(EndpointPool& pool);
  friend class UpstreamConn;

  event_base* base_;
  stats::Cells* cells_;
  std::vector<EndpointPool> pools_;  // indexed by pool key
  std::vector<bool> live_;           // pool keys of the current generation
  bool retained_ = false;            // retain() was called: live_ applies
  event* sweep_ = nullptr;           // closes connections idle longer than kIdleTimeout
  bool draining_ = false;
};

}  // namespace sluice::upstream
