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
#include "proxy/stats/store.h"
#include "proxy/upstream/cluster.h"

namespace sluice::upstream {

class UpstreamConn;

// The request using a busy connection. Callbacks run on the worker's loop.
class UpstreamOwner {
 public:
  virtual ~UpstreamOwner() = default;
  // The connection is established (called once, for new connections only).
  virtual void onUpstreamConnected(UpstreamConn* conn) = 0;
  // Connecting failed: refused, unreachable, or `timed_out`. The pool has counted it; the owner
  // must destroy the connection.
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

  // Watch for readability / writability (idempotent).
  void wantRead(bool on);
  void wantWrite(bool on);
  // Writes as much of out() as the socket takes; false on a write error (errno set).
  bool flush();

 private:
  friend class ConnPool;
  UpstreamConn() = default;
  static void onEvent(evutil_socket_t fd, short what, void* arg);
  // The connect finished (either way): no longer pending.
  void endPending();

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
  };
  EndpointPool& poolFor(uint32_t key);
  void onIdleEvent(UpstreamConn* conn);
  static void onSweep(evutil_socket_t fd, short what, void* arg);
  void removeIdle(UpstreamConn* conn);
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
