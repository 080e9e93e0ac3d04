#pragma once

// The sluice process: the main thread's loop (config, admin endpoint, signals) and the workers.
#include <event2/event.h>
#include <event2/http.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proxy/server/generation.h"
#include "proxy/server/overload_guard.h"
#include "proxy/server/worker.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/cluster_manager.h"
#include "proxy/xds/ads_client.h"
#include "proxy/xds/subscription.h"

namespace sluice::server {

struct Options {
  std::string xds;  // control plane address; empty with config_dir
  std::string node_id;
  std::string node_group;
  std::string config_dir;  // run from YAML instead of a control plane
  int workers = 0;         // 0: one per core
  std::string admin = "127.0.0.1:9901";
  absl::Duration drain_timeout = absl::Seconds(30);
  std::string dns_hosts_file;  // host names for DNS clusters, consulted before DNS
  // Bearer token the admin endpoint requires on every path but /ready (empty: none).
  std::string admin_token;
  uint64_t overload_max_heap_bytes = 0;  // 0: no overload guard
  // How often certificate files are checked for changes (0: never).
  absl::Duration tls_reload_interval = absl::Seconds(5);
};

class Server {
 public:
  explicit Server(Options options);
  ~Server();

  // Runs until SIGTERM/SIGINT and the drain that follows. Returns the exit code.
  int run();

 private:
  struct Bound {
    std::string bind_key;
    std::shared_ptr<http::ListenerCounter> counter;
  };
  // A generation on its way to the workers; the last worker to switch stamps the time.
  struct Rollout;

  absl::Status startAdmin();
  absl::Status loadConfigDir();
  // Compiles and publishes a validated config; binds the sockets of new listeners first and
  // fails (nothing changed) if one cannot be bound.
  absl::Status apply(const config::ConfigSet& config, const xds::Versions& versions);
  // Sends `gen` to every worker, with the sockets of new listeners and the names of removed
  // ones. `start`: when compiling began, for the rollout's timing.
  void publish(std::shared_ptr<Generation> gen, std::chrono::steady_clock::time_point start,
               std::map<std::string, std::vector<int>> fresh, std::vector<std::string> remove);
  // The cluster manager has clusters whose hosts changed (health, ejections, DNS).
  void onHostsChanged();
  // Reads the certificate files of TLS listeners and clusters again and publishes a generation
  // with new contexts for those whose bytes changed.
  void reloadTls();
  static void onTlsReload(evutil_socket_t fd, short what, void* arg);
  absl::StatusOr<std::vector<int>> bindListener(const config::v1::Listener& listener);
  bool ready() const;
  void beginShutdown(const char* why);

  static void onSignal(evutil_socket_t sig, short what, void* arg);
  static void onShutdownTick(evutil_socket_t fd, short what, void* arg);
  static void onXds(evutil_socket_t fd, short what, void* arg);
  // A worker finished a rollout: records and logs every completed one.
  static void onLive(evutil_socket_t fd, short what, void* arg);
  static void handleAdmin(evhttp_request* req, void* arg);
  // A remote JWKS fetch brought new keys: a generation with them.
  void onJwks(const std::string& key, std::shared_ptr<const jwt_authn::KeySet> keys);
  // An endpoint of `cluster` in the live generation, for JWKS fetches.
  std::optional<authn::JwksTarget> jwksEndpoint(const std::string& cluster) const;
  std::string metricsText() const;
  std::string configDump() const;

  Options options_;
  int worker_count_;
  event_base* base_ = nullptr;
  std::unique_ptr<stats::Store> store_;
  stats::Cells* cells_ = nullptr;            // the main thread's
  std::unique_ptr<OverloadGuard> overload_;  // before the workers, which read its flag
  std::unique_ptr<upstream::ClusterManager> clusters_;
  std::unique_ptr<authn::JwksFetcher> jwks_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const Generation> current_;
  uint64_t next_generation_ = 1;
  std::map<std::string, Bound> bound_;  // listener name -> its sockets' address
  bool config_ready_ = false;
  bool shutting_down_ = false;
  absl::Time shutdown_deadline_;
  evhttp* admin_ = nullptr;
  std::vector<event*> signal_events_;
  event* shutdown_tick_ = nullptr;
  event* tls_reload_ = nullptr;
  // The last reload error per TLS listener, so that a file that stays bad is reported once.
  std::map<std::string, std::string> tls_reload_errors_;

  // xDS: the stream thread posts updates through a queue and an eventfd.
  std::unique_ptr<xds::AdsClient> ads_;
  std::unique_ptr<xds::Answerer> answerer_;
  std::unique_ptr<xds::Subscription> subscription_;
  int xds_fd_ = -1;
  event* xds_ev_ = nullptr;
  std::mutex xds_mu_;
  std::vector<xds::Update> xds_queue_;  // guarded by xds_mu_
  bool xds_disconnected_ = false;       // guarded by xds_mu_
  bool xds_connected_ = false;          // main thread's view
  stats::GaugeId xds_connected_gauge_;
  stats::CounterId generations_;

  // Rollouts in flight, oldest first; workers switch in order, so they complete in order.
  std::vector<std::shared_ptr<Rollout>> rollouts_;
  int live_fd_ = -1;  // the last worker of a rollout wakes the main thread through it
  event* live_ev_ = nullptr;
  stats::HistogramId compile_seconds_;
  stats::HistogramId publish_seconds_;
  stats::GaugeId live_generation_;
  stats::GaugeId live_routes_;
  stats::GaugeId live_clusters_;
  stats::GaugeId live_listeners_;
};

}  // namespace sluice::server
