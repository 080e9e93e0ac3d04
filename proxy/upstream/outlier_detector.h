#pragma once

// Passive health checking from live traffic (Envoy's outlier detection, consecutive-errors
// kinds). Workers count each endpoint's consecutive failures in its shared HostState, lock-free;
// the worker whose failure crosses a threshold requests an ejection and wakes the main thread
// through an eventfd, where the cluster's OutlierDetector ejects the endpoint (within the
// cluster's ejection budget) and later returns it.
#include <event2/event.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proxy/stats/store.h"
#include "sluice/config/v1/cluster.pb.h"

namespace sluice::upstream {

enum class EjectionReason : uint8_t { kNone, kConsecutive5xx, kConsecutiveGatewayFailure };
// "consecutive_5xx", "consecutive_gateway_failure" (the metric's `reason` label), or "none".
const char* ejectionReasonName(EjectionReason reason);

// One endpoint's outlier state, shared by the workers and the main thread for the life of the
// process (one per endpoint identity, at a stable address). Its own cache line: workers hammer
// the counters of different endpoints at once.
struct alignas(64) HostState {
  // Written by workers (recordOutcome); reset by the main thread.
  std::atomic<uint32_t> consecutive_5xx{0};
  std::atomic<uint32_t> consecutive_gateway_failure{0};
  // Set by the worker whose failure crossed a threshold; cleared by processRequests().
  std::atomic<bool> ejection_requested{false};

  // Main thread only.
  bool ejected = false;
  absl::Time ejected_until;    // while ejected: when the endpoint returns
  uint32_t times_ejected = 0;  // the ejection time multiplier; decays while not ejected
  absl::Time decay_at;         // while not ejected and times_ejected > 0: its next decrement
  EjectionReason last_ejection_reason = EjectionReason::kNone;
};

struct OutlierConfig {
  uint32_t consecutive_5xx = 5;              // 0: off
  uint32_t consecutive_gateway_failure = 5;  // 0: off
  absl::Duration base_ejection_time = absl::Seconds(30);
  absl::Duration max_ejection_time = absl::Seconds(300);
  uint32_t max_ejection_percent = 10;
};

// The config with the defaults documented in cluster.proto filled in.
OutlierConfig outlierConfig(const config::v1::OutlierDetection& proto);

// What one upstream attempt says about its endpoint.
enum class Outcome {
  kSuccess,
  k5xx,             // the endpoint answered 5xx (other than the gateway statuses below)
  kGatewayFailure,  // connect failure, reset, timeout, or 502/503/504: counts as 5xx too
};

// Worker thread, after every upstream attempt; lock-free. A success writes nothing when the
// counters are already zero (the request hot path). The first worker to cross a threshold sets
// ejection_requested and writes 1 to `wake_fd` (an eventfd); later ones see the flag and do not.
void recordOutcome(HostState* host, const OutlierConfig& config, Outcome outcome, int wake_fd);

// The eventfd that wakes the main thread for processRequests(): non-blocking, close-on-exec.
class WakeFd {
 public:
  WakeFd();
  ~WakeFd();
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;

  int fd() const { return fd_; }  // -1 when eventfd(2) failed (writes to it are then no-ops)
  // Resets the counter so that the next write wakes the loop again.
  void drain();

 private:
  int fd_ = -1;
};

struct OutlierStats {
  std::string cluster;  // the cluster these ids count for; log lines name it
  stats::CounterId ejections_consecutive_5xx;
  stats::CounterId ejections_consecutive_gateway_failure;
  stats::CounterId ejections_overflow;  // requests dropped: max_ejection_percent reached
  stats::GaugeId ejections_active;
};

// Declares the metrics of `cluster`'s outlier detection (the same ids again for a known cluster).
OutlierStats declareOutlierStats(stats::Store* store, const std::string& cluster);

// One cluster's ejections, on the main thread.
class OutlierDetector {
 public:
  // `cells` are the main thread's. `on_change` runs after endpoints were ejected (from
  // processRequests) or returned (from the detector's timer).
  OutlierDetector(event_base* base, stats::Cells* cells, OutlierConfig config, OutlierStats stats,
                  std::function<void()> on_change);
  // Returns the hosts it ejected (without on_change): nothing else would.
  ~OutlierDetector();
  OutlierDetector(const OutlierDetector&) = delete;
  OutlierDetector& operator=(const OutlierDetector&) = delete;

  // The cluster's current endpoints and their names (for log lines), in parallel. A host keeps
  // its state while it is away; a stale ejection request of one that comes back is dropped.
  void setHosts(std::vector<HostState*> hosts, std::vector<std::string> names);
  // Thresholds apply to the next failures, ejection times to the next ejections.
  void updateConfig(OutlierConfig config);

  // Acts on the hosts' ejection requests (call when the wake fd fires). A request is granted
  // while the cluster's ejected hosts stay within max_ejection_percent, and always when none is
  // ejected; otherwise it is dropped and counted as overflow. Either way the host's counters
  // start again from zero.
  void processRequests();
  bool ejected(const HostState* host) const { return host->ejected; }

 private:
  struct Entry {
    HostState* host;
    std::string name;
  };

  static void onTimer(evutil_socket_t fd, short what, void* arg);
  void eject(Entry& entry, EjectionReason reason, absl::Time now);
  void arm();

  event_base* base_;
  stats::Cells* cells_;
  OutlierConfig config_;
  OutlierStats stats_;
  std::function<void()> on_change_;
  std::vector<Entry> hosts_;
  int64_t active_ = 0;      // ejected hosts among hosts_ (this detector's share of the gauge)
  event* timer_ = nullptr;  // the next return or decay
};

}  // namespace sluice::upstream
