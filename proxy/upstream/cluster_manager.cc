#include "proxy/upstream/cluster_manager.h"

#include <arpa/inet.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log/log.h"

namespace sluice::upstream {
namespace v1 = config::v1;

namespace {

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

const char* policyName(LbPolicy policy) {
  switch (policy) {
    case LbPolicy::kRoundRobin:
      return "ROUND_ROBIN";
    case LbPolicy::kLeastRequest:
      return "LEAST_REQUEST";
    case LbPolicy::kRandom:
      return "RANDOM";
    case LbPolicy::kRingHash:
      return "RING_HASH";
    case LbPolicy::kMaglev:
      return "MAGLEV";
  }
  return "?";
}

DnsFamily dnsFamily(v1::Cluster::DnsLookupFamily family) {
  switch (family) {
    case v1::Cluster::V4_ONLY:
      return DnsFamily::kV4Only;
    case v1::Cluster::V6_ONLY:
      return DnsFamily::kV6Only;
    case v1::Cluster::ALL:
      return DnsFamily::kAll;
    default:
      return DnsFamily::kAuto;
  }
}

// What makes a DNS refresher: kept across updates that leave it alone.
std::string dnsKey(const v1::Cluster& c) {
  v1::Cluster key;
  *key.mutable_endpoints() = c.endpoints();
  *key.mutable_dns_refresh_rate() = c.dns_refresh_rate();
  key.set_dns_lookup_family(c.dns_lookup_family());
  return key.SerializeAsString();
}

}  // namespace

struct ClusterManager::Entry {
  v1::Cluster config;
  bool has_assignment = false;
  v1::ClusterLoadAssignment assignment;
  std::string bytes;  // config and assignment serialized: an update that keeps them is no change
  std::string dns_key;
  std::unique_ptr<HealthChecker> health;
  std::unique_ptr<OutlierDetector> outlier;
  std::unique_ptr<DnsRefresher> dns;
  // The last DNS answers compiled: a refresher started for a changed config has none until its
  // first round ends, and the cluster keeps these meanwhile.
  std::vector<ResolvedEndpoint> dns_answers;
  std::shared_ptr<const Cluster> compiled;
  bool dirty = false;
  // Upstream TLS, kept across compilations while its config and files are unchanged.
  std::shared_ptr<const tls::ClientContext> tls;
  std::string tls_error;  // the last reload error, reported once
};

ClusterManager::ClusterManager(event_base* base, stats::Store* store, stats::Cells* cells,
                               int workers, ResolverOptions dns,
                               std::function<void()> on_hosts_changed)
    : base_(base),
      store_(store),
      cells_(cells),
      workers_(workers),
      dns_options_(std::move(dns)),
      on_hosts_changed_(std::move(on_hosts_changed)) {
  if (outlier_wake_.fd() >= 0) {
    outlier_ev_ = event_new(base_, outlier_wake_.fd(), EV_READ | EV_PERSIST,
                            &ClusterManager::onOutlierWake, this);
    event_add(outlier_ev_, nullptr);
  }
  dirty_ev_ = event_new(base_, -1, 0, &ClusterManager::onDirty, this);
}

ClusterManager::~ClusterManager() {
  // Runtimes first: their callbacks refer to this manager, and DNS refreshers to the resolver.
  entries_.clear();
  dns_.reset();
  if (outlier_ev_ != nullptr) event_free(outlier_ev_);
  event_free(dirty_ev_);
}

absl::StatusOr<std::shared_ptr<const Cluster>> ClusterManager::compile(Entry& entry) {
  const v1::Cluster& config = entry.config;
  std::vector<v1::Endpoint> resolved;
  std::vector<std::string> host_names;
  std::vector<const v1::Endpoint*> endpoints;
  if (config.type() == v1::Cluster::STRICT_DNS) {
    // No answer at all (every name failed) keeps the last ones, as a failed refresh does.
    if (entry.dns != nullptr && entry.dns->resolvedOnce() && !entry.dns->endpoints().empty()) {
      entry.dns_answers = entry.dns->endpoints();
    }
    for (const ResolvedEndpoint& r : entry.dns_answers) {
      v1::Endpoint& e = resolved.emplace_back();
      e.set_address(r.address);
      e.set_port(r.port);
      e.set_weight(r.weight);
      e.set_priority(r.priority);
      host_names.push_back(r.host);
    }
    for (const v1::Endpoint& e : resolved) endpoints.push_back(&e);
  } else {
    const auto& listed =
        config.type() == v1::Cluster::EDS ? entry.assignment.endpoints() : config.endpoints();
    for (const v1::Endpoint& e : listed) endpoints.push_back(&e);
  }
  const HealthChecker* health = entry.health.get();
  const bool checked = config.has_health_check();
  // An ejection counts only while the cluster has outlier detection: a detector that goes
  // returns its hosts, and one dropped by this very config has not yet.
  const bool watched = config.has_outlier_detection();
  auto healthy = [health, checked, watched](const Endpoint& e) {
    // A checked endpoint without a verdict yet (a new checker) counts as unhealthy, as the
    // checker itself does until its first check passes.
    if (checked && (health == nullptr || !health->healthy(e.name))) return false;
    return !(watched && e.state->ejected);
  };
  Cluster::Inputs inputs{
      .endpoints = endpoints,
      .host_names = host_names,
      .healthy = healthy,
      .outlier_wake_fd = config.has_outlier_detection() ? outlier_wake_.fd() : -1,
      .tls = entry.tls};
  auto cluster = Cluster::compile(config, inputs, workers_, store_, &registry_);
  if (!cluster.ok()) return cluster.status();
  const Cluster& c = **cluster;
  int64_t healthy_count = 0;
  for (const Endpoint& e : c.endpoints()) healthy_count += e.healthy ? 1 : 0;
  if (c.stats().lb_panic.valid()) {
    cells_->gaugeSet(c.stats().endpoints_healthy, healthy_count);
    cells_->gaugeSet(c.stats().lb_panic, c.panic() ? 1 : 0);
  }
  return std::shared_ptr<const Cluster>(*std::move(cluster));
}

absl::StatusOr<ClusterManager::ClusterList> ClusterManager::update(
    const config::ConfigSet& config) {
  auto list = prepare(config);
  if (list.ok()) commit();
  return list;
}

absl::StatusOr<ClusterManager::ClusterList> ClusterManager::prepare(
    const config::ConfigSet& config) {
  pending_.clear();
  pending_list_.clear();
  std::map<std::string, const v1::ClusterLoadAssignment*> assignments;
  for (const auto& a : config.assignments) assignments[a.resource.cluster_name()] = &a.resource;

  // First compile everything, changing nothing: an error leaves the manager as it was.
  std::vector<std::unique_ptr<Entry>> next;
  ClusterList list;
  for (const auto& item : config.clusters) {
    const v1::Cluster& c = item.resource;
    auto e = std::make_unique<Entry>();
    e->config = c;
    auto a = assignments.find(c.name());
    if (a != assignments.end()) {
      e->has_assignment = true;
      e->assignment = *a->second;
    }
    e->bytes = absl::StrCat(c.SerializeAsString(), "\n",
                            e->has_assignment ? e->assignment.SerializeAsString() : "");
    e->dns_key = c.type() == v1::Cluster::STRICT_DNS ? dnsKey(c) : "";
    auto old = entries_.find(c.name());
    Entry* prev = old != entries_.end() ? old->second.get() : nullptr;
    if (prev != nullptr && prev->bytes == e->bytes && !prev->dirty && prev->compiled != nullptr) {
      e->compiled = prev->compiled;
      e->tls = prev->tls;
    } else {
      if (c.has_tls()) {
        auto ctx = tls::ClientContext::create(c.tls(), absl::StrCat("cluster '", c.name(), "'"),
                                              prev != nullptr ? prev->tls : nullptr);
        if (ctx.ok()) {
          e->tls = *std::move(ctx);
        } else if (prev != nullptr && prev->bytes == e->bytes) {
          e->tls = prev->tls;  // recompiled for its hosts: its files are reloadTls' business
        } else {
          return ctx.status();
        }
      }
      // Compiled with the runtime the cluster has now (borrowed, given back below), and its
      // last DNS answers until a changed refresher has its own.
      if (prev != nullptr) {
        e->health = std::move(prev->health);
        if (prev->dns_key == e->dns_key) e->dns = std::move(prev->dns);
        e->dns_answers = prev->dns_answers;
      }
      auto compiled = compile(*e);
      if (prev != nullptr) {
        prev->health = std::move(e->health);
        if (e->dns != nullptr) prev->dns = std::move(e->dns);
      }
      if (!compiled.ok()) return compiled.status();
      e->compiled = *std::move(compiled);
    }
    if (e->dns_answers.empty() && prev != nullptr) e->dns_answers = prev->dns_answers;
    list.push_back(e->compiled);
    next.push_back(std::move(e));
  }
  pending_ = std::move(next);
  pending_list_ = list;
  return list;
}

void ClusterManager::commit() {
  // Move each cluster's health checks, outlier detection and DNS over to its new config.
  std::map<std::string, std::unique_ptr<Entry>> entries;
  order_.clear();
  for (auto& e : pending_) {
    const std::string name = e->config.name();
    auto old = entries_.find(name);
    std::unique_ptr<Entry> prev =
        old != entries_.end() ? std::move(old->second) : std::unique_ptr<Entry>();
    const Cluster& compiled = *e->compiled;
    if (e->config.type() == v1::Cluster::STRICT_DNS) {
      if (prev != nullptr && prev->dns != nullptr && prev->dns_key == e->dns_key) {
        e->dns = std::move(prev->dns);
      } else {
        if (dns_ == nullptr) {
          auto resolver = DnsResolver::create(base_, dns_options_);
          if (!resolver.ok()) {
            log::error("cluster '%s': cannot resolve host names: %s", name,
                       resolver.status().message());
          } else {
            dns_ = *std::move(resolver);
          }
        }
        if (dns_ != nullptr) {
          std::vector<DnsTarget> targets;
          for (const v1::Endpoint& ep : e->config.endpoints()) {
            targets.push_back({.host = ep.address(),
                               .port = ep.port(),
                               .weight = ep.weight() == 0 ? 1 : ep.weight(),
                               .priority = ep.priority()});
          }
          const auto& rate = e->config.dns_refresh_rate();
          absl::Duration refresh =
              e->config.has_dns_refresh_rate()
                  ? absl::Seconds(rate.seconds()) + absl::Nanoseconds(rate.nanos())
                  : absl::Seconds(5);
          e->dns = std::make_unique<DnsRefresher>(
              dns_.get(), name, std::move(targets), dnsFamily(e->config.dns_lookup_family()),
              refresh, DnsStats::declare(store_, name), cells_,
              [this, name](const std::vector<ResolvedEndpoint>&) { markDirty(name); });
          e->dns->start();
        }
      }
    }
    if (e->config.has_health_check()) {
      HealthCheckConfig hc = healthCheckConfig(e->config.health_check(), name);
      hc.tls = e->tls;
      if (prev != nullptr && prev->health != nullptr) {
        e->health = std::move(prev->health);
        e->health->updateConfig(hc);
      } else {
        e->health = std::make_unique<HealthChecker>(base_, cells_, hc,
                                                    declareHealthCheckStats(store_, name),
                                                    [this, name] { markDirty(name); });
      }
      std::vector<HealthChecker::Target> targets;
      for (const Endpoint& ep : compiled.endpoints()) {
        HealthChecker::Target t{
            .key = ep.name, .addr = {}, .addr_len = ep.addr_len, .host = ep.host};
        std::memcpy(&t.addr, &ep.addr, ep.addr_len);
        targets.push_back(std::move(t));
      }
      e->health->setTargets(std::move(targets));
    }
    if (e->config.has_outlier_detection()) {
      OutlierConfig oc = outlierConfig(e->config.outlier_detection());
      if (prev != nullptr && prev->outlier != nullptr) {
        e->outlier = std::move(prev->outlier);
        e->outlier->updateConfig(oc);
      } else {
        e->outlier =
            std::make_unique<OutlierDetector>(base_, cells_, oc, declareOutlierStats(store_, name),
                                              [this, name] { markDirty(name); });
      }
      std::vector<HostState*> hosts;
      std::vector<std::string> names;
      for (const Endpoint& ep : compiled.endpoints()) {
        hosts.push_back(ep.state);
        names.push_back(ep.name);
      }
      e->outlier->setHosts(std::move(hosts), std::move(names));
    }
    order_.push_back(name);
    entries[name] = std::move(e);
  }
  // Removed clusters' runtimes stop here.
  entries_ = std::move(entries);
  current_ = std::move(pending_list_);
  pending_.clear();
  pending_list_.clear();
}

void ClusterManager::markDirty(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second->dirty = true;
  event_active(dirty_ev_, EV_TIMEOUT, 0);
}

void ClusterManager::onDirty(evutil_socket_t, short, void* arg) {
  static_cast<ClusterManager*>(arg)->on_hosts_changed_();
}

void ClusterManager::onOutlierWake(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<ClusterManager*>(arg);
  self->outlier_wake_.drain();
  for (auto& [name, e] : self->entries_) {
    if (e->outlier != nullptr) e->outlier->processRequests();
  }
}

ClusterManager::ClusterList ClusterManager::refresh() {
  bool changed = false;
  for (size_t i = 0; i < order_.size(); ++i) {
    Entry& e = *entries_.at(order_[i]);
    if (!e.dirty) continue;
    e.dirty = false;
    auto compiled = compile(e);
    if (!compiled.ok()) {
      log::error("cluster '%s': %s; keeping its endpoints", order_[i], compiled.status().message());
      continue;
    }
    e.compiled = *std::move(compiled);
    current_[i] = e.compiled;
    changed = true;
    // DNS answers change the endpoints that are checked and watched.
    if (e.dns != nullptr) {
      if (e.health != nullptr) {
        std::vector<HealthChecker::Target> targets;
        for (const Endpoint& ep : e.compiled->endpoints()) {
          HealthChecker::Target t{
              .key = ep.name, .addr = {}, .addr_len = ep.addr_len, .host = ep.host};
          std::memcpy(&t.addr, &ep.addr, ep.addr_len);
          targets.push_back(std::move(t));
        }
        e.health->setTargets(std::move(targets));
      }
      if (e.outlier != nullptr) {
        std::vector<HostState*> hosts;
        std::vector<std::string> names;
        for (const Endpoint& ep : e.compiled->endpoints()) {
          hosts.push_back(ep.state);
          names.push_back(ep.name);
        }
        e.outlier->setHosts(std::move(hosts), std::move(names));
      }
    }
  }
  return changed ? current_ : ClusterList();
}

void ClusterManager::reloadTls() {
  for (auto& [name, e] : entries_) {
    if (e->tls == nullptr || !e->tls->readsFiles()) continue;
    const tls::ClientStats& stats = e->compiled->stats().tls;
    auto ctx = tls::ClientContext::create(e->tls->config(), e->tls->name(), e->tls);
    if (!ctx.ok()) {
      if (e->tls_error != ctx.status().message()) {
        e->tls_error = std::string(ctx.status().message());
        cells_->add(stats.reload_error);
        log::error("%s; still using the files loaded before", e->tls_error);
      }
      continue;
    }
    e->tls_error.clear();
    if (*ctx == e->tls) continue;
    e->tls = *std::move(ctx);
    cells_->add(stats.reload);
    log::info("cluster '%s': upstream TLS files reloaded", name);
    if (e->health != nullptr) {
      HealthCheckConfig hc = healthCheckConfig(e->config.health_check(), name);
      hc.tls = e->tls;
      e->health->updateConfig(hc);
    }
    markDirty(name);
  }
}

std::string ClusterManager::json() const {
  const absl::Time now = absl::Now();
  std::vector<std::string> clusters;
  for (size_t i = 0; i < current_.size(); ++i) {
    const Cluster& c = *current_[i];
    const Entry* entry = entries_.count(c.name()) ? entries_.at(c.name()).get() : nullptr;
    std::vector<std::string> eps;
    for (const Endpoint& e : c.endpoints()) {
      std::string active_hc = "\"none\"";
      if (entry != nullptr && entry->health != nullptr) {
        active_hc = entry->health->healthy(e.name) ? "\"healthy\"" : "\"unhealthy\"";
      }
      std::string ejection = "null";
      if (e.state->ejected) {
        ejection = absl::StrCat(
            "{\"reason\":\"", ejectionReasonName(e.state->last_ejection_reason),
            "\",\"remaining_seconds\":", absl::ToDoubleSeconds(e.state->ejected_until - now), "}");
      }
      eps.push_back(absl::StrCat(
          "{\"address\":", jsonString(e.name),
          e.host.empty() ? "" : absl::StrCat(",\"host\":", jsonString(e.host)),
          ",\"weight\":", e.weight, ",\"priority\":", e.priority, ",\"health\":\"",
          e.healthy ? "healthy" : "unhealthy", "\",\"active_health_check\":", active_hc,
          ",\"ejected\":", e.state->ejected ? "true" : "false", ",\"ejection\":", ejection,
          ",\"times_ejected\":", e.state->times_ejected, ",\"rq_active\":",
          store_->value(e.rq_active), ",\"rq_total\":", store_->value(e.rq_total),
          ",\"cx_active\":", store_->value(e.cx_active), "}"));
    }
    const ClusterStats& s = c.stats();
    const ClusterCounters& n = c.counters();
    clusters.push_back(absl::StrCat(
        "{\"name\":", jsonString(c.name()), ",\"lb_policy\":\"", policyName(c.policy()),
        "\",\"panic\":", c.panic() ? "true" : "false", ",\"priority_load\":[",
        absl::StrJoin(c.priorityLoad(), ","), "],\"rq_total\":", store_->value(s.rq_total),
        ",\"cx_active\":", store_->value(s.cx_active), ",\"cx_idle\":", store_->value(s.cx_idle),
        ",\"circuit_breakers\":{\"rq_active\":", n.rq_active.load(std::memory_order_relaxed),
        ",\"rq_pending\":", n.rq_pending.load(std::memory_order_relaxed),
        ",\"cx_active\":", n.cx_active.load(std::memory_order_relaxed),
        ",\"retries_active\":", n.retries_active.load(std::memory_order_relaxed),
        "},\"endpoints\":[", absl::StrJoin(eps, ","), "]}"));
  }
  return absl::StrCat("{\"clusters\":[", absl::StrJoin(clusters, ","), "]}\n");
}

}  // namespace sluice::upstream
