#pragma once

// A cluster compiled for one config generation: resolved endpoint addresses, the load
// balancer's schedule, and the metric ids its requests count into. Immutable once built, except
// for each worker's own load-balancer cursor.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/stats/store.h"
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
// and each cluster's counters. Main thread only; the counters it hands out are shared.
class Registry {
 public:
  uint32_t key(const std::string& cluster, const std::string& endpoint);
  uint32_t size() const { return static_cast<uint32_t>(keys_.size()); }
  std::shared_ptr<ClusterCounters> counters(const std::string& cluster);

 private:
  // A hash, not a list: a generation of thousands of endpoints looks every one of them up.
  absl::flat_hash_map<std::string, uint32_t> keys_;
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
  stats::CounterId rq_total;         // requests sent upstream (retries included)
  stats::CounterId rq_reused;        // ... of which on a pooled keep-alive connection
  stats::CounterId rq_retry;          // retries: policy retries and stale pooled connections
  stats::CounterId rq_retry_success;  // requests answered by a retry
  stats::CounterId rq_retry_overflow;  // retries not made: max_retries or the budget
  stats::CounterId rq_timeout;         // route timeout expired waiting for the response
  stats::CounterId rq_per_try_timeout;  // an attempt's per-try timeout expired
  stats::CounterId rq_idle_timeout;     // the stream moved no bytes for the idle timeout
  stats::CounterId cx_connect_timeout;  // connects that timed out
  stats::CounterId rq_overflow;         // 503: max_requests
  stats::CounterId rq_pending_overflow;  // 503: max_pending_requests
  stats::CounterId cx_overflow;          // 503: max_connections
  stats::CounterId rq_mirror;            // copies sent here by request mirroring
  stats::CounterId rq_mirror_failed;     // ... that failed (connect, reset, bad answer)
  stats::CounterId rq_5xx;           // local 502/503/504 answers caused by this cluster
  stats::CounterId cx_total;         // connections opened
  stats::CounterId cx_connect_fail;  // connections refused, reset or timed out while connecting
  stats::CounterId cx_destroy_idle;  // idle pooled connections the peer closed
  stats::GaugeId cx_active;          // connections open (busy or idle)
  stats::GaugeId cx_idle;            // of which idle in a pool
  stats::HistogramId rq_time;        // request start to response end, seconds
  stats::CounterId no_healthy;       // requests answered 503: no endpoint
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
  uint32_t weight = 1;
  uint32_t pool_key = 0;
  stats::CounterId rq_total;  // per endpoint: /clusters and round-robin tests read it
  stats::GaugeId cx_active;
};

class Cluster {
 public:
  enum class Policy { kRoundRobin, kRandom, kLeastRequest };

  // Declares the cluster's metrics in `store` (same names keep their counts across generations).
  static absl::StatusOr<std::unique_ptr<Cluster>> compile(
      const config::v1::Cluster& config, const config::v1::ClusterLoadAssignment* assignment,
      int workers, stats::Store* store, Registry* keys);

  const std::string& name() const { return name_; }
  absl::Duration connectTimeout() const { return connect_timeout_; }
  uint32_t maxIdlePerEndpoint() const { return max_idle_; }
  Policy policy() const { return policy_; }
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }
  const ClusterStats& stats() const { return stats_; }
  const Breakers& breakers() const { return breakers_; }
  ClusterCounters& counters() const { return *counters_; }

  // The next endpoint for worker `worker`, or nullptr when the cluster has none. `random` is a
  // uniformly random number; `active(endpoint index)` the worker's busy connections to it (for
  // least-request). Lock-free: each worker advances only its own cursor.
  template <class ActiveFn>
  const Endpoint* pick(int worker, uint64_t random, const ActiveFn& active) const {
    if (endpoints_.empty()) return nullptr;
    switch (policy_) {
      case Policy::kRandom:
        return &endpoints_[weightedIndex(random)];
      case Policy::kLeastRequest: {
        // Power of two choices, weighted by the endpoints' weights.
        size_t a = weightedIndex(random);
        size_t b = weightedIndex(random >> 32 | random << 32);
        return &endpoints_[active(a) * endpoints_[b].weight <= active(b) * endpoints_[a].weight
                               ? a
                               : b];
      }
      case Policy::kRoundRobin:
      default: {
        uint64_t& cursor = cursors_[worker].value;
        return &endpoints_[schedule_[cursor++ % schedule_.size()]];
      }
    }
  }

 private:
  Cluster() = default;
  size_t weightedIndex(uint64_t random) const;

  struct alignas(64) Cursor {
    uint64_t value = 0;
  };

  std::string name_;
  absl::Duration connect_timeout_;
  uint32_t max_idle_ = 64;
  Policy policy_ = Policy::kRoundRobin;
  std::vector<Endpoint> endpoints_;
  // Smooth weighted round-robin order of endpoint indexes over one cycle of the weights.
  std::vector<uint32_t> schedule_;
  std::vector<uint64_t> cumulative_;  // running weight totals, for weighted random picks
  std::unique_ptr<Cursor[]> cursors_;
  ClusterStats stats_;
  Breakers breakers_;
  std::shared_ptr<ClusterCounters> counters_;
};

}  // namespace sluice::upstream
