#pragma once

// A cluster compiled for one config generation: resolved endpoint addresses, the load
// balancer's schedule, and the metric ids its requests count into. Immutable once built, except
// for each worker's own load-balancer cursor.
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/stats/store.h"
#include "proxy/tls/context.h"
#include "proxy/tls/stats.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier_detector.h"
#include "sluice/config/v1/cluster.pb.h"

namespace sluice::upstream {

// What a cluster has in flight across all workers and generations, for circuit breakers and
// the retry budget. Counted only for the limits a cluster sets, so that clusters without them
// keep their workers off shared cache lines.
struct ClusterCounters {
  alignas(64) std::atomic<uint32_t> rq_active{0};
  std::atomic<uint32_t> rq_pending{0};  // waiting for a new connection to be established
  std::atomic<uint32_t> cx_active{0};
  std::atomic<uint32_t> retries_active{0};
};

// What outlives config generations, keyed by name: small integers for (cluster, endpoint)
// pairs, so that a worker's connection pool for an endpoint survives generations that keep it,
// each endpoint's outlier state, and each cluster's counters. Main thread only; the states and
// counters it hands out are shared with the workers and never freed.
class Registry {
 public:
  uint32_t key(const std::string& cluster, const std::string& endpoint);
  uint32_t size() const { return static_cast<uint32_t>(keys_.size()); }
  HostState* host(uint32_t key) { return &hosts_[key]; }
  std::shared_ptr<ClusterCounters> counters(const std::string& cluster);

 private:
  // A hash, not a list: a generation of thousands of endpoints looks every one of them up.
  absl::flat_hash_map<std::string, uint32_t> keys_;
  std::deque<HostState> hosts_;  // by key; a deque keeps their addresses
  absl::flat_hash_map<std::string, std::shared_ptr<ClusterCounters>> counters_;
};

// Circuit-breaker limits (CircuitBreakers in cluster.proto). kUnlimited: not counted.
struct Breakers {
  static constexpr uint32_t kUnlimited = UINT32_MAX;
  uint32_t max_connections = kUnlimited;
  uint32_t max_pending = kUnlimited;
  uint32_t max_requests = kUnlimited;
  uint32_t max_retries = 3;
  bool budget = false;  // retry budget instead of max_retries
  double budget_percent = 20;
  uint32_t min_retry_concurrency = 3;

  // Whether requests in flight are counted (a limit or the budget needs them).
  bool countRequests() const { return max_requests != kUnlimited || budget; }
};

struct ClusterStats {
  stats::CounterId rq_total;            // requests sent upstream (retries included)
  stats::CounterId rq_reused;           // ... of which on a pooled keep-alive connection
  stats::CounterId rq_retry;            // retries: policy retries and stale pooled connections
  stats::CounterId rq_retry_success;    // requests answered by a retry
  stats::CounterId rq_retry_overflow;   // retries not made: max_retries or the budget
  stats::CounterId rq_timeout;          // route timeout expired waiting for the response
  stats::CounterId rq_per_try_timeout;  // an attempt's per-try timeout expired
  stats::CounterId rq_idle_timeout;     // the stream moved no bytes for the idle timeout
  stats::CounterId cx_connect_timeout;  // connects that timed out
  // The next three exist only for the limits the cluster sets (invalid ids otherwise).
  stats::CounterId rq_overflow;          // 503: max_requests
  stats::CounterId rq_pending_overflow;  // 503: max_pending_requests
  stats::CounterId cx_overflow;          // 503: max_connections
  stats::CounterId rq_mirror;            // copies sent here by request mirroring
  stats::CounterId rq_mirror_failed;     // ... that failed (connect, reset, bad answer)
  stats::CounterId rq_5xx;               // local 502/503/504 answers caused by this cluster
  stats::CounterId cx_total;             // connections opened
  stats::CounterId cx_connect_fail;      // connections refused, reset or timed out while connecting
  stats::CounterId cx_destroy_idle;      // idle pooled connections the peer closed
  stats::GaugeId cx_active;              // connections open (busy or idle)
  stats::GaugeId cx_idle;                // of which idle in a pool
  stats::HistogramId rq_time;            // request start to response end, seconds
  stats::CounterId no_healthy;           // requests answered 503: no endpoint
  // The next three exist only with health checks or outlier detection (invalid otherwise).
  stats::GaugeId lb_panic;           // 1 while the balancer is in panic
  stats::CounterId lb_panic_rq;      // requests balanced in panic mode
  stats::GaugeId endpoints_healthy;  // endpoints the balancer counts healthy
  tls::ClientStats tls;              // TLS clusters only (invalid ids otherwise)
};

struct Endpoint {
  // IPv4 or IPv6: the size of sockaddr_in6 (28 bytes), not of sockaddr_storage (128), which
  // made up a third of a compiled cluster. The family member keeps sockaddr_storage's name.
  union Address {
    sa_family_t ss_family;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } addr{};
  socklen_t addr_len = 0;
  std::string name;  // "127.0.0.1:8081" or "[::1]:8081"
  std::string host;  // the DNS name it was resolved from, if any
  uint32_t weight = 1;
  uint32_t priority = 0;
  bool healthy = true;  // as the balancer was built: active health check and not ejected
  uint32_t pool_key = 0;
  HostState* state = nullptr;  // outlier counters and ejection (Registry::host)
  stats::CounterId rq_total;   // per endpoint: /clusters and round-robin tests read it
  stats::GaugeId rq_active;    // requests in flight, summed over workers
  stats::GaugeId cx_active;
};

class Cluster {
 public:
  // Whether an endpoint is healthy (active health check, not ejected) when the balancer is
  // built.
  using HealthFn = std::function<bool(const Endpoint&)>;
  struct Inputs {
    // IP addresses: the config's own, an assignment's or DNS answers.
    std::span<const config::v1::Endpoint* const> endpoints;
    std::span<const std::string> host_names;  // the DNS names of `endpoints`, if resolved
    HealthFn healthy;                         // null: all are healthy
    int outlier_wake_fd = -1;  // where workers ask for ejections; -1: no outlier detection
    // The context of a cluster with `tls` (the cluster manager keeps it across compilations);
    // null: compiled from the config.
    std::shared_ptr<const tls::ClientContext> tls;
  };

  // Declares the cluster's metrics in `store` (same names keep their counts across
  // generations).
  static absl::StatusOr<std::unique_ptr<Cluster>> compile(const config::v1::Cluster& config,
                                                          const Inputs& inputs, int workers,
                                                          stats::Store* store, Registry* registry);
  // The same with the config's endpoints, or the assignment's for EDS, all healthy; a TLS
  // context is compiled from the config.
  static absl::StatusOr<std::unique_ptr<Cluster>> compile(
      const config::v1::Cluster& config, const config::v1::ClusterLoadAssignment* assignment,
      int workers, stats::Store* store, Registry* registry);

  const std::string& name() const { return name_; }
  absl::Duration connectTimeout() const { return connect_timeout_; }
  uint32_t maxIdlePerEndpoint() const { return max_idle_; }
  LbPolicy policy() const { return policy_; }
  // Ring hash or Maglev: requests carry a hash key (the route's hash_policy).
  bool hashed() const { return policy_ == LbPolicy::kRingHash || policy_ == LbPolicy::kMaglev; }
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }
  const ClusterStats& stats() const { return stats_; }
  const Breakers& breakers() const { return breakers_; }
  ClusterCounters& counters() const { return *counters_; }
  // Passive health checking: null when off.
  const OutlierConfig* outlier() const { return outlier_on_ ? &outlier_ : nullptr; }
  int outlierWakeFd() const { return outlier_wake_fd_; }
  // Upstream TLS: null for plain connections.
  const std::shared_ptr<const tls::ClientContext>& tls() const { return tls_; }
  bool panic() const { return lb_->panic(); }
  std::span<const uint32_t> priorityLoad() const { return lb_->priorityLoad(); }

  // The endpoint for a request, or nullptr when the cluster has none to offer. `active(i)` is
  // the worker's requests in flight to endpoint i (least request). Lock-free; a worker writes
  // only its own round-robin cursor.
  template <class ActiveFn>
  const Endpoint* pick(const LbRequest& request, const ActiveFn& active) const {
    int i = lb_->pick(request, active);
    return i < 0 ? nullptr : &endpoints_[i];
  }
  template <class ActiveFn>
  const Endpoint* pick(int worker, uint64_t random, const ActiveFn& active) const {
    return pick(LbRequest{.worker = worker, .random = random}, active);
  }

 private:
  Cluster() = default;

  std::string name_;
  absl::Duration connect_timeout_;
  uint32_t max_idle_ = 64;
  LbPolicy policy_ = LbPolicy::kRoundRobin;
  std::vector<Endpoint> endpoints_;
  std::unique_ptr<LoadBalancer> lb_;
  ClusterStats stats_;
  Breakers breakers_;
  std::shared_ptr<ClusterCounters> counters_;
  bool outlier_on_ = false;
  OutlierConfig outlier_;
  int outlier_wake_fd_ = -1;
  std::shared_ptr<const tls::ClientContext> tls_;
};

}  // namespace sluice::upstream
