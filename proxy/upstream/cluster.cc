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

// A smooth weighted round-robin cycle is as long as the sum of the weights; beyond this the
// weights are scaled down (keeping every endpoint at least once).
constexpr uint64_t kMaxSchedule = 1 << 16;

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

// Smooth weighted round robin (as in nginx): each step adds every weight to its endpoint's
// credit and picks the largest credit, which then pays the total. Spreads a heavy endpoint's
// turns evenly instead of in a burst.
std::vector<uint32_t> smoothSchedule(const std::vector<uint64_t>& weights) {
  const uint64_t total = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
  std::vector<int64_t> credit(weights.size(), 0);
  std::vector<uint32_t> schedule;
  schedule.reserve(total);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      credit[i] += static_cast<int64_t>(weights[i]);
      if (credit[i] > credit[best]) best = i;
    }
    credit[best] -= static_cast<int64_t>(total);
    schedule.push_back(static_cast<uint32_t>(best));
  }
  return schedule;
}

}  // namespace

uint32_t Registry::key(const std::string& cluster, const std::string& endpoint) {
  // Keys are dense in order of first use and never reused.
  return keys_.try_emplace(absl::StrCat(cluster, "\n", endpoint), keys_.size()).first->second;
}

std::shared_ptr<ClusterCounters> Registry::counters(const std::string& cluster) {
  auto& c = counters_[cluster];
  if (c == nullptr) c = std::make_shared<ClusterCounters>();
  return c;
}

size_t Cluster::weightedIndex(uint64_t random) const {
  // Mixed first (splitmix64's finalizer): least request's second choice swaps the halves of the
  // first's number, and where 2^32 % total == 1 (3, 5, 15, 17 ...) both remainders were equal.
  random = (random ^ (random >> 30)) * 0xbf58476d1ce4e5b9ULL;
  random = (random ^ (random >> 27)) * 0x94d049bb133111ebULL;
  random ^= random >> 31;
  const uint64_t point = random % cumulative_.back();
  return std::upper_bound(cumulative_.begin(), cumulative_.end(), point) - cumulative_.begin();
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::compile(
    const v1::Cluster& config, const v1::ClusterLoadAssignment* assignment, int workers,
    stats::Store* store, Registry* keys) {
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
  switch (config.lb_policy()) {
    case v1::Cluster::RANDOM:
      c.policy_ = Policy::kRandom;
      break;
    case v1::Cluster::LEAST_REQUEST:
      c.policy_ = Policy::kLeastRequest;
      break;
    default:
      c.policy_ = Policy::kRoundRobin;
      break;
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
      "Requests retried on a fresh connection after a pooled one failed before answering.", labels);
  s.rq_retry_success = store->counter("sluice_cluster_upstream_rq_retry_success_total",
                                      "Requests whose retry got an answer.", labels);
  s.rq_retry_overflow = store->counter(
      "sluice_cluster_upstream_rq_retry_overflow_total",
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
  s.rq_overflow = store->counter("sluice_cluster_upstream_rq_overflow_total",
                                 "Requests answered 503: circuit breaker max_requests.", labels);
  s.rq_pending_overflow =
      store->counter("sluice_cluster_upstream_rq_pending_overflow_total",
                     "Requests answered 503: circuit breaker max_pending_requests.", labels);
  s.cx_overflow =
      store->counter("sluice_cluster_upstream_cx_overflow_total",
                     "Requests answered 503: circuit breaker max_connections.", labels);
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

  const auto& endpoints =
      config.type() == v1::Cluster::EDS
          ? (assignment != nullptr ? assignment : &v1::ClusterLoadAssignment::default_instance())
                ->endpoints()
          : config.endpoints();
  std::vector<uint64_t> weights;
  c.endpoints_.reserve(endpoints.size());
  c.cumulative_.reserve(endpoints.size());
  for (const v1::Endpoint& e : endpoints) {
    Endpoint ep;
    if (!resolve(e.address(), e.port(), &ep)) {
      return absl::InvalidArgumentError(absl::StrCat("cluster '", c.name_, "': endpoint address '",
                                                     e.address(), "' is not an IP address"));
    }
    ep.weight = e.weight() == 0 ? 1 : e.weight();
    ep.pool_key = keys->key(c.name_, ep.name);
    const stats::Labels el = {{"cluster", c.name_}, {"endpoint", ep.name}};
    ep.rq_total =
        store->counter("sluice_endpoint_upstream_rq_total", "Requests sent to one endpoint.", el);
    ep.cx_active =
        store->gauge("sluice_endpoint_upstream_cx_active", "Connections open to one endpoint.", el);
    weights.push_back(ep.weight);
    c.endpoints_.push_back(std::move(ep));
  }
  if (!weights.empty()) {
    uint64_t total = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
    if (total > kMaxSchedule) {
      for (uint64_t& w : weights) w = std::max<uint64_t>(1, w * kMaxSchedule / total);
    }
    c.schedule_ = smoothSchedule(weights);
    uint64_t running = 0;
    for (const Endpoint& ep : c.endpoints_) {
      running += ep.weight;
      c.cumulative_.push_back(running);
    }
  }
  c.cursors_ = std::make_unique<Cursor[]>(workers);
  // Workers start at different points so they do not all hit the first endpoint together.
  for (int w = 0; w < workers; ++w) {
    c.cursors_[w].value = c.schedule_.empty() ? 0 : w * c.schedule_.size() / workers;
  }
  return cluster;
}

}  // namespace sluice::upstream
