#include "proxy/upstream/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace sluice::upstream {
namespace v1 = config::v1;

namespace {

bool resolve(const std::string& address, uint32_t port, Endpoint* out) {
  std::memset(&out->addr, 0, sizeof(out->addr));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->addr);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out->addr_len = sizeof(sockaddr_in);
    out->name = absl::StrCat(address, ":", port);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->addr);
  if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out->addr_len = sizeof(sockaddr_in6);
    out->name = absl::StrCat("[", address, "]:", port);
    return true;
  }
  return false;
}

}  // namespace

uint32_t Registry::key(const std::string& cluster, const std::string& endpoint) {
  // Keys are dense in order of first use and never reused.
  auto [it, added] = keys_.try_emplace(absl::StrCat(cluster, "\n", endpoint), keys_.size());
  if (added) hosts_.emplace_back();  // the endpoint's outlier state, at Registry::host(key)
  return it->second;
}

std::shared_ptr<ClusterCounters> Registry::counters(const std::string& cluster) {
  auto& c = counters_[cluster];
  if (c == nullptr) c = std::make_shared<ClusterCounters>();
  return c;
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::compile(
    const v1::Cluster& config, const v1::ClusterLoadAssignment* assignment, int workers,
    stats::Store* store, Registry* registry) {
  const auto& listed =
      config.type() == v1::Cluster::EDS
          ? (assignment != nullptr ? assignment : &v1::ClusterLoadAssignment::default_instance())
                ->endpoints()
          : config.endpoints();
  std::vector<const v1::Endpoint*> endpoints;
  for (const v1::Endpoint& e : listed) endpoints.push_back(&e);
  return compile(config, Inputs{.endpoints = endpoints}, workers, store, registry);
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::compile(const v1::Cluster& config,
                                                          const Inputs& inputs, int workers,
                                                          stats::Store* store, Registry* keys) {
  const auto& endpoints = inputs.endpoints;
  auto cluster = std::unique_ptr<Cluster>(new Cluster());
  Cluster& c = *cluster;
  c.name_ = config.name();
  c.connect_timeout_ = config.has_connect_timeout()
                           ? absl::Seconds(config.connect_timeout().seconds()) +
                                 absl::Nanoseconds(config.connect_timeout().nanos())
                           : absl::Seconds(5);
  c.max_idle_ = config.has_max_idle_connections_per_endpoint()
                    ? config.max_idle_connections_per_endpoint()
                    : 64;
  LbOptions lb;
  switch (config.lb_policy()) {
    case v1::Cluster::RANDOM:
      lb.policy = LbPolicy::kRandom;
      break;
    case v1::Cluster::LEAST_REQUEST:
      lb.policy = LbPolicy::kLeastRequest;
      break;
    case v1::Cluster::RING_HASH:
      lb.policy = LbPolicy::kRingHash;
      break;
    case v1::Cluster::MAGLEV:
      lb.policy = LbPolicy::kMaglev;
      break;
    default:
      lb.policy = LbPolicy::kRoundRobin;
      break;
  }
  c.policy_ = lb.policy;
  if (config.has_healthy_panic_threshold()) {
    lb.healthy_panic_threshold = config.healthy_panic_threshold();
  }
  if (config.ring_hash().minimum_ring_size() != 0) {
    lb.ring_min_size = config.ring_hash().minimum_ring_size();
  }
  if (config.ring_hash().maximum_ring_size() != 0) {
    lb.ring_max_size = config.ring_hash().maximum_ring_size();
  }
  if (config.maglev().table_size() != 0) lb.maglev_table_size = config.maglev().table_size();
  if (config.has_outlier_detection() && inputs.outlier_wake_fd >= 0) {
    c.outlier_on_ = true;
    c.outlier_ = outlierConfig(config.outlier_detection());
    c.outlier_wake_fd_ = inputs.outlier_wake_fd;
  }

  if (config.has_circuit_breakers()) {
    const v1::CircuitBreakers& cb = config.circuit_breakers();
    Breakers& b = c.breakers_;
    if (cb.has_max_connections()) b.max_connections = cb.max_connections();
    if (cb.has_max_pending_requests()) b.max_pending = cb.max_pending_requests();
    if (cb.has_max_requests()) b.max_requests = cb.max_requests();
    if (cb.has_max_retries()) b.max_retries = cb.max_retries();
    if (cb.has_retry_budget()) {
      b.budget = true;
      const v1::RetryBudget& rb = cb.retry_budget();
      if (rb.has_budget_percent()) b.budget_percent = rb.budget_percent();
      if (rb.has_min_retry_concurrency()) b.min_retry_concurrency = rb.min_retry_concurrency();
    }
  }
  c.counters_ = keys->counters(c.name_);

  const stats::Labels labels = {{"cluster", c.name_}};
  ClusterStats& s = c.stats_;
  s.rq_total = store->counter("sluice_cluster_upstream_rq_total",
                              "Requests sent to the cluster's endpoints.", labels);
  s.rq_reused = store->counter("sluice_cluster_upstream_rq_reused_total",
                               "Requests sent on a pooled keep-alive connection.", labels);
  s.rq_retry = store->counter(
      "sluice_cluster_upstream_rq_retry_total",
      "Retries: by a route's retry policy, and of requests whose pooled connection failed before "
      "answering.",
      labels);
  s.rq_retry_success =
      store->counter("sluice_cluster_upstream_rq_retry_success_total",
                     "Requests whose retry got an answer the policy does not retry.", labels);
  s.rq_retry_overflow =
      store->counter("sluice_cluster_upstream_rq_retry_overflow_total",
                     "Retries not made because of max_retries or the retry budget.", labels);
  s.rq_timeout = store->counter("sluice_cluster_upstream_rq_timeout_total",
                                "Requests whose route timeout expired (answered 504).", labels);
  s.rq_per_try_timeout = store->counter("sluice_cluster_upstream_rq_per_try_timeout_total",
                                        "Attempts whose per-try timeout expired.", labels);
  s.rq_idle_timeout =
      store->counter("sluice_cluster_upstream_rq_idle_timeout_total",
                     "Requests whose stream moved no bytes for the idle timeout.", labels);
  s.cx_connect_timeout = store->counter("sluice_cluster_upstream_cx_connect_timeout_total",
                                        "Upstream connects that timed out.", labels);
  // Metrics of what a cluster may not have (a breaker, health checking) exist only where it has
  // it: a series costs every cluster of a large config its cells on every thread.
  const Breakers& b = c.breakers_;
  if (b.max_requests != Breakers::kUnlimited) {
    s.rq_overflow = store->counter("sluice_cluster_upstream_rq_overflow_total",
                                   "Requests answered 503: circuit breaker max_requests.", labels);
  }
  if (b.max_pending != Breakers::kUnlimited) {
    s.rq_pending_overflow =
        store->counter("sluice_cluster_upstream_rq_pending_overflow_total",
                       "Requests answered 503: circuit breaker max_pending_requests.", labels);
  }
  if (b.max_connections != Breakers::kUnlimited) {
    s.cx_overflow =
        store->counter("sluice_cluster_upstream_cx_overflow_total",
                       "Requests answered 503: circuit breaker max_connections.", labels);
  }
  s.rq_mirror = store->counter("sluice_cluster_upstream_rq_mirror_total",
                               "Mirrored copies of requests sent to this cluster.", labels);
  s.rq_mirror_failed =
      store->counter("sluice_cluster_upstream_rq_mirror_failed_total",
                     "Mirrored copies that failed (connect, reset, invalid answer).", labels);
  s.rq_5xx = store->counter("sluice_cluster_upstream_rq_local_5xx_total",
                            "Requests answered 502/503/504 by the proxy for this cluster.", labels);
  s.cx_total =
      store->counter("sluice_cluster_upstream_cx_total", "Upstream connections opened.", labels);
  s.cx_connect_fail =
      store->counter("sluice_cluster_upstream_cx_connect_fail_total",
                     "Upstream connections that failed or timed out connecting.", labels);
  s.cx_destroy_idle = store->counter("sluice_cluster_upstream_cx_idle_closed_total",
                                     "Idle pooled connections closed by the upstream.", labels);
  s.cx_active = store->gauge("sluice_cluster_upstream_cx_active",
                             "Upstream connections open, busy or idle.", labels);
  s.cx_idle = store->gauge("sluice_cluster_upstream_cx_idle",
                           "Upstream connections idle in a keep-alive pool.", labels);
  s.rq_time = store->histogram("sluice_cluster_upstream_rq_time_seconds",
                               "Time from sending a request upstream to the response's end.",
                               labels, stats::durationBuckets());
  s.no_healthy =
      store->counter("sluice_cluster_upstream_no_healthy_total",
                     "Requests answered 503 because the cluster had no endpoint.", labels);
  // Endpoints are unhealthy only by an active health check or an ejection.
  if (config.has_health_check() || config.has_outlier_detection()) {
    s.lb_panic =
        store->gauge("sluice_cluster_lb_healthy_panic",
                     "1 while too few endpoints are healthy and the balancer uses all.", labels);
    s.lb_panic_rq = store->counter("sluice_cluster_lb_healthy_panic_total",
                                   "Requests balanced over all endpoints in panic mode.", labels);
    s.endpoints_healthy = store->gauge("sluice_cluster_membership_healthy",
                                       "Endpoints the balancer counts as healthy.", labels);
  }

  if (config.has_tls()) {
    c.tls_ = inputs.tls;
    if (c.tls_ == nullptr) {
      auto ctx = tls::ClientContext::create(config.tls(), absl::StrCat("cluster '", c.name_, "'"));
      if (!ctx.ok()) return ctx.status();
      c.tls_ = *std::move(ctx);
    }
    s.tls = tls::declareClientStats(store, c.name_);
  }

  c.endpoints_.reserve(endpoints.size());
  for (const v1::Endpoint* e : endpoints) {
    Endpoint ep;
    if (!resolve(e->address(), e->port(), &ep)) {
      return absl::InvalidArgumentError(absl::StrCat("cluster '", c.name_, "': endpoint address '",
                                                     e->address(), "' is not an IP address"));
    }
    if (c.endpoints_.size() < inputs.host_names.size()) {
      ep.host = inputs.host_names[c.endpoints_.size()];
    }
    ep.weight = e->weight() == 0 ? 1 : e->weight();
    ep.priority = e->priority();
    ep.pool_key = keys->key(c.name_, ep.name);
    ep.state = keys->host(ep.pool_key);
    const stats::Labels el = {{"cluster", c.name_}, {"endpoint", ep.name}};
    ep.rq_total =
        store->counter("sluice_endpoint_upstream_rq_total", "Requests sent to one endpoint.", el);
    ep.rq_active = store->gauge("sluice_endpoint_upstream_rq_active",
                                "Requests in flight to one endpoint.", el);
    ep.cx_active =
        store->gauge("sluice_endpoint_upstream_cx_active", "Connections open to one endpoint.", el);
    c.endpoints_.push_back(std::move(ep));
  }
  std::vector<LbHost> hosts;
  hosts.reserve(c.endpoints_.size());
  for (Endpoint& ep : c.endpoints_) {
    ep.healthy = inputs.healthy == nullptr || inputs.healthy(ep);
    hosts.push_back(
        {.key = ep.name, .weight = ep.weight, .priority = ep.priority, .healthy = ep.healthy});
  }
  c.lb_ = LoadBalancer::build(lb, hosts, workers);
  return cluster;
}

}  // namespace sluice::upstream
