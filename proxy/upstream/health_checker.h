#pragma once

// Active health checking of one cluster's endpoints, on the main thread's event loop (Envoy's
// HTTP and TCP health checkers). Each target is checked on its own schedule, one check at a
// time: a fresh non-blocking connection per check, closed when the check ends.
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/time/time.h"
#include "proxy/stats/store.h"
#include "proxy/tls/context.h"
#include "sluice/config/v1/cluster.pb.h"

namespace sluice::upstream {

struct HealthCheckConfig {
  enum class Kind { kHttp, kTcp };
  // Statuses from min to max, both included.
  struct StatusRange {
    uint32_t min = 0;
    uint32_t max = 0;
  };

  Kind kind = Kind::kTcp;
  absl::Duration interval = absl::Seconds(5);
  absl::Duration timeout = absl::Seconds(1);  // connect and answer together
  absl::Duration interval_jitter = absl::ZeroDuration();
  uint32_t healthy_threshold = 2;
  uint32_t unhealthy_threshold = 3;
  // HTTP only.
  std::string path = "/";
  std::string host;
  std::vector<StatusRange> expected_statuses = {{200, 299}};
  // The cluster's upstream TLS: checks connect with it (a TCP check then passes once the
  // handshake does). Null: plain.
  std::shared_ptr<const tls::ClientContext> tls;
};

// The config with the defaults documented in cluster.proto filled in; the Host header defaults
// to `cluster_name`. A check with neither `http` nor `tcp` set (the validator rejects it) is TCP.
HealthCheckConfig healthCheckConfig(const config::v1::HealthCheck& proto,
                                    std::string_view cluster_name);

// Why a check failed; the `reason` label of the failure counter.
enum class HealthCheckFailure {
  kTimeout,   // no verdict within the timeout
  kConnect,   // connecting failed (refused, unreachable), or the socket failed afterwards
  kStatus,    // an HTTP status outside the expected ranges
  kProtocol,  // closed, or answered something other than an HTTP/1.x status line
};
inline constexpr int kHealthCheckFailureCount = 4;
const char* healthCheckFailureName(HealthCheckFailure reason);

struct HealthCheckStats {
  std::string cluster;  // the cluster these ids count for; log lines name it
  stats::CounterId attempt;
  stats::CounterId success;
  std::array<stats::CounterId, kHealthCheckFailureCount> failure;  // by HealthCheckFailure
  stats::GaugeId healthy;  // targets whose verdict is healthy
};

// Declares the metrics of `cluster`'s health checks (the same ids again for a known cluster).
HealthCheckStats declareHealthCheckStats(stats::Store* store, const std::string& cluster);

class HealthChecker {
 public:
  struct Target {
    std::string key;  // identity across setTargets calls, e.g. "127.0.0.1:8080"
    sockaddr_storage addr;
    socklen_t addr_len;
    std::string host;  // the DNS name it was resolved from, if any: TLS's default SNI
  };

  // `cells` are the main thread's. `on_change` runs from the loop, after one or more targets'
  // healthy() changed, never from inside a call into the checker.
  HealthChecker(event_base* base, stats::Cells* cells, HealthCheckConfig config,
                HealthCheckStats stats, std::function<void()> on_change);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Targets whose key was there before keep their verdict and schedule; new ones start
  // unhealthy and are checked at once; the others are forgotten (a check under way is closed).
  void setTargets(std::vector<Target> targets);
  // Healthy by the last verdict; false for a target not yet checked and for unknown keys.
  bool healthy(std::string_view key) const;
  // Keeps every target's verdict and consecutive counts; a check under way finishes under the
  // config it started with.
  void updateConfig(HealthCheckConfig config);

 private:
  struct Host;
  enum class Verdict { kPending, kHealthy, kUnhealthy };
  // A config and its HTTP request, shared by the checks started under it.
  struct Compiled {
    HealthCheckConfig config;
    std::string request;
  };

  static void onTimer(evutil_socket_t fd, short what, void* arg);
  static void onIo(evutil_socket_t fd, short what, void* arg);
  static void onNotify(evutil_socket_t fd, short what, void* arg);
  void startCheck(Host* host);
  void watch(Host* host, short what);
  void handshake(Host* host);
  void sendRequest(Host* host);
  void readResponse(Host* host);
  void succeed(Host* host);
  void fail(Host* host, HealthCheckFailure reason, const std::string& detail);
  void endCheck(Host* host);
  void setVerdict(Host* host, Verdict verdict, const std::string& why);
  void scheduleNext(Host* host);
  void closeHost(Host* host);

  event_base* base_;
  stats::Cells* cells_;
  std::shared_ptr<const Compiled> current_;
  HealthCheckStats stats_;
  std::function<void()> on_change_;
  absl::flat_hash_map<std::string, std::unique_ptr<Host>> hosts_;
  int64_t healthy_count_ = 0;  // this checker's share of the healthy gauge
  event* notify_ = nullptr;    // runs on_change_ from the loop
  absl::BitGen random_;        // interval jitter
};

}  // namespace sluice::upstream
