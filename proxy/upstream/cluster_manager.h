#pragma once

// The main thread's side of the clusters: compiles them for each config generation and keeps
// what outlives generations running for each cluster name: active health checks, outlier
// detection and DNS resolution. When one of those changes an endpoint's standing (a health
// verdict flips, an endpoint is ejected or returns, a DNS answer changes), the affected
// clusters are compiled again and the server publishes them in a generation that shares
// everything else with the current one.
#include <event2/event.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config_set.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/cluster.h"
#include "proxy/upstream/dns_resolver.h"
#include "proxy/upstream/health_checker.h"
#include "proxy/upstream/outlier_detector.h"

namespace sluice::upstream {

class ClusterManager {
 public:
  using ClusterList = std::vector<std::shared_ptr<const Cluster>>;

  // `cells` are the main thread's. `on_hosts_changed` runs from the loop (never from inside a
  // call into the manager) when refresh() has something new.
  ClusterManager(event_base* base, stats::Store* store, stats::Cells* cells, int workers,
                 ResolverOptions dns, std::function<void()> on_hosts_changed);
  ~ClusterManager();
  ClusterManager(const ClusterManager&) = delete;
  ClusterManager& operator=(const ClusterManager&) = delete;

  // Compiles the clusters of a validated config, in its order, changing nothing yet: a cluster
  // whose config (and assignment) is unchanged and whose hosts did not change is shared with
  // the current list. commit() makes the result current and moves the health checks, outlier
  // detectors and DNS refreshers over to the new config; another prepare() drops it. The
  // server commits only once the rest of the generation compiled too.
  absl::StatusOr<ClusterList> prepare(const config::ConfigSet& config);
  void commit();
  // prepare() and commit() in one.
  absl::StatusOr<ClusterList> update(const config::ConfigSet& config);
  // Compiles again the clusters whose hosts changed since the last update() or refresh().
  ClusterList refresh();
  // Reads the files of TLS clusters again; a cluster whose bytes changed gets a new context
  // and is compiled again like one whose hosts changed (on_hosts_changed follows). A file that
  // cannot be used leaves the cluster with its context and is logged and counted once.
  void reloadTls();
  const ClusterList& current() const { return current_; }

  // The /clusters admin document: every cluster with its endpoints' health, ejection, weight,
  // priority, requests in flight and counts.
  std::string json() const;

  Registry& registry() { return registry_; }

 private:
  struct Entry;

  absl::StatusOr<std::shared_ptr<const Cluster>> compile(Entry& entry);
  void startRuntime(Entry& entry);
  void markDirty(const std::string& name);
  static void onOutlierWake(evutil_socket_t fd, short what, void* arg);
  static void onDirty(evutil_socket_t fd, short what, void* arg);

  event_base* base_;
  stats::Store* store_;
  stats::Cells* cells_;
  int workers_;
  ResolverOptions dns_options_;
  std::unique_ptr<DnsResolver> dns_;  // created with the first STRICT_DNS cluster
  std::function<void()> on_hosts_changed_;
  Registry registry_;
  WakeFd outlier_wake_;
  event* outlier_ev_ = nullptr;
  event* dirty_ev_ = nullptr;  // coalesces changes into one refresh
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::vector<std::string> order_;  // cluster names in the config's order
  ClusterList current_;
  // What prepare() compiled, waiting for commit().
  std::vector<std::unique_ptr<Entry>> pending_;
  ClusterList pending_list_;
};

}  // namespace sluice::upstream
