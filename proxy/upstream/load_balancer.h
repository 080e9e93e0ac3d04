#pragma once

// Load balancing over one cluster's hosts: priority levels with Envoy's health, spill-over and
// panic arithmetic, then one of five policies within the chosen level. Built on the main thread
// whenever hosts, weights or health change, then shared read-only by the workers; a pick takes no
// lock, makes no system call and does not allocate.
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::upstream {

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };

struct LbOptions {
  LbPolicy policy = LbPolicy::kRoundRobin;
  uint32_t healthy_panic_threshold = 50;                   // percent; 0 = never panic
  uint64_t ring_min_size = 1024, ring_max_size = 8388608;  // ring hash
  uint32_t maglev_table_size = 65537;  // a prime; another size is raised to the next prime
};

// One host of the cluster; its index in the span given to build() is the index pick() returns.
struct LbHost {
  std::string_view key;   // stable identity for hashing, e.g. "10.0.0.1:8080"
  uint32_t weight = 1;    // >= 1
  uint32_t priority = 0;  // 0 (highest) .. 7
  bool healthy = true;
};

struct LbRequest {
  int worker = 0;         // the calling worker, 0 .. workers - 1: its own round-robin cursor
  uint64_t random = 0;    // a uniformly random number drawn by the caller for this pick
  bool has_hash = false;  // ring hash / maglev: the request carries a key
  uint64_t hash = 0;
  uint32_t attempt = 0;  // 0 first try; a retry (> 0) hashes elsewhere
};

// Stable 64-bit hash (xxHash64, seed 0) for request keys and ring points: the same in every
// process, build and machine, so proxies agree on where a key goes.
uint64_t hashKey(std::string_view data);

class LoadBalancer {
 public:
  static constexpr uint32_t kMaxPriorities = 8;

  // `workers` round-robin cursors; priorities above 7 count as 7, weight 0 as 1.
  static std::unique_ptr<LoadBalancer> build(const LbOptions& options,
                                             std::span<const LbHost> hosts, int workers);
  ~LoadBalancer();

  // Index of the chosen host, or -1 when there is none to choose. `active(i)` returns the calling
  // worker's requests in flight to host i (least request only).
  template <class ActiveFn>
  int pick(const LbRequest& request, const ActiveFn& active) const {
    if (policy_ != LbPolicy::kLeastRequest) return pickIgnoringLoad(request);
    const auto [a, b] = twoChoices(request.random);
    if (a < 0) return -1;
    // Power of two choices: fewer requests in flight per unit of weight wins, a tie keeps `a`.
    return static_cast<uint64_t>(active(a)) * weights_[b] <=
                   static_cast<uint64_t>(active(b)) * weights_[a]
               ? a
               : b;
  }

  // Some priority level that receives traffic balances over all its hosts, healthy or not.
  bool panic() const { return panic_; }
  // Percent of the traffic each priority level gets (index = priority); sums to 100 when there
  // is any host, empty when there is none.
  std::span<const uint32_t> priorityLoad() const { return loads_; }

 private:
  struct Level;
  // Each worker's cursors (one per priority) on a cache line of their own: workers never write
  // to a line another worker reads.
  struct alignas(64) Cursors {
    uint32_t next[kMaxPriorities] = {};
  };

  LoadBalancer() = default;
  uint32_t chooseLevel(uint64_t random) const;
  int pickIgnoringLoad(const LbRequest& request) const;
  std::pair<int, int> twoChoices(uint64_t random) const;

  LbPolicy policy_ = LbPolicy::kRoundRobin;
  bool panic_ = false;
  std::vector<uint32_t> weights_;  // by host index
  std::vector<uint32_t> loads_;    // by priority
  std::vector<Level> levels_;      // by priority
  // Written by pick() through a const LoadBalancer: each worker only its own slot.
  std::unique_ptr<Cursors[]> cursors_;
};

}  // namespace sluice::upstream
