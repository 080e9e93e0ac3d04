#include "proxy/server/generation.h"

#include "absl/strings/str_cat.h"
#include "proxy/filters/access/access.h"
#include "proxy/filters/ip_filter/filter.h"

namespace sluice::server {
namespace v1 = config::v1;

namespace {

template <class T>
std::vector<std::string> serialize(const std::vector<config::Sourced<T>>& items) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& item : items) out.push_back(item.resource.SerializeAsString());
  return out;
}

absl::Duration durationOr(bool has, const google::protobuf::Duration& d, absl::Duration def) {
  if (!has) return def;
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

ListenerStats declareListenerStats(const std::string& name, stats::Store* store) {
  ListenerStats s;
  static constexpr const char* kClasses[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 0; i < 5; ++i) {
    s.rq_by_class[i] = store->counter("sluice_http_downstream_rq_total",
                                      "Requests answered, by listener and status class.",
                                      {{"listener", name}, {"code_class", kClasses[i]}});
  }
  const stats::Labels labels = {{"listener", name}};
  s.rq_time = store->histogram("sluice_http_downstream_rq_time_seconds",
                               "Time from a request's first byte to its response's last.", labels,
                               stats::durationBuckets());
  s.cx_total = store->counter("sluice_http_downstream_cx_total", "Connections accepted.", labels);
  s.cx_active =
      store->gauge("sluice_http_downstream_cx_active", "Downstream connections open.", labels);
  s.cx_overflow =
      store->counter("sluice_http_downstream_cx_overflow_total",
                     "Connections refused because max_connections was reached.", labels);
  s.cx_per_ip_overflow = store->counter(
      "sluice_http_downstream_cx_per_ip_overflow_total",
      "Connections refused because their client address had max_connections_per_ip.", labels);
  s.cx_rate_limited = store->counter(
      "sluice_http_downstream_cx_rate_limited_total",
      "Connections refused because the listener's max_connection_rate was exceeded.", labels);
  s.cx_too_slow = store->counter(
      "sluice_http_downstream_cx_too_slow_total",
      "Connections closed for sending a body or reading a response below min_bytes_per_second.",
      labels);
  s.rq_too_large = store->counter(
      "sluice_http_downstream_rq_too_large_total",
      "Requests whose body exceeded max_request_body_bytes (413, or a reset once answered).",
      labels);
  s.rq_body_timeout = store->counter(
      "sluice_http_downstream_rq_body_timeout_total",
      "Requests whose client paused the body longer than request_body_idle (408).", labels);
  s.rq_rejected = store->counter("sluice_http_downstream_rq_rejected_total",
                                 "Malformed requests answered with an error and closed.", labels);
  s.rq_timeout = store->counter("sluice_http_downstream_rq_header_timeout_total",
                                "Connections closed because a request head took too long.", labels);
  s.fault_delays = store->counter("sluice_http_fault_delays_injected_total",
                                  "Requests delayed by a route's fault injection.", labels);
  s.fault_aborts = store->counter("sluice_http_fault_aborts_injected_total",
                                  "Requests answered by a route's fault injection.", labels);
  s.ip_denied = store->counter(
      "sluice_listener_ip_filter_denied_total",
      "Connections closed at accept or requests answered 403 by the listener's ip_filter.", labels);
  return s;
}

}  // namespace

std::string ListenerConfig::bindKey() const { return absl::StrCat(address, " ", port); }

std::string listenerAddress(const v1::Listener& listener) {
  return listener.address().empty() ? "0.0.0.0" : listener.address();
}

std::string bindKey(const v1::Listener& listener) {
  return absl::StrCat(listenerAddress(listener), " ", listener.port());
}

const ListenerConfig* Generation::listener(std::string_view name) const {
  auto it = listeners.find(absl::string_view(name.data(), name.size()));
  return it == listeners.end() ? nullptr : it->second.get();
}

const router::RouteTable* Generation::routeTable(std::string_view name) const {
  auto it = route_tables.find(absl::string_view(name.data(), name.size()));
  return it == route_tables.end() ? nullptr : it->second.get();
}

absl::StatusOr<std::shared_ptr<Generation>> compileGeneration(
    const config::ConfigSet& config, std::vector<std::shared_ptr<const upstream::Cluster>> clusters,
    const Generation* previous, stats::Store* store) {
  auto gen = std::make_shared<Generation>();
  auto serialized = std::make_shared<SerializedConfig>();
  serialized->listeners = serialize(config.listeners);
  serialized->route_configs = serialize(config.route_configs);
  serialized->clusters = serialize(config.clusters);
  serialized->assignments = serialize(config.assignments);
  serialized->consumers = serialize(config.consumers);
  gen->config = serialized;
  gen->clusters = std::move(clusters);
  auto consumers = authn::Consumers::compile(config.consumers);
  if (!consumers.ok()) return consumers.status();
  gen->consumers = *std::move(consumers);
  // Fetched key sets stay until the fetcher replaces them.
  gen->jwks = previous != nullptr && previous->jwks != nullptr
                  ? previous->jwks
                  : std::make_shared<const authn::JwksCache>();

  absl::flat_hash_map<std::string, int> cluster_index;
  for (size_t i = 0; i < gen->clusters.size(); ++i) {
    cluster_index[gen->clusters[i]->name()] = static_cast<int>(i);
  }
  // Route tables refer to clusters by place: they can be shared only if every place holds the
  // same cluster name as before.
  bool same_clusters = previous != nullptr && previous->clusters.size() == gen->clusters.size();
  for (size_t i = 0; same_clusters && i < gen->clusters.size(); ++i) {
    same_clusters = previous->clusters[i]->name() == gen->clusters[i]->name();
  }
  // The previous generation's serialized resources by name.
  absl::flat_hash_map<std::string, const std::string*> old_routes, old_listeners;
  if (previous != nullptr) {
    for (const std::string& bytes : previous->config->route_configs) {
      v1::RouteConfiguration rc;
      // Only the name is needed; a parse costs little next to compiling the table.
      if (rc.ParseFromString(bytes)) old_routes[rc.name()] = &bytes;
    }
    for (const std::string& bytes : previous->config->listeners) {
      v1::Listener l;
      if (l.ParseFromString(bytes)) old_listeners[l.name()] = &bytes;
    }
  }

  for (size_t i = 0; i < config.route_configs.size(); ++i) {
    const auto& rc = config.route_configs[i];
    if (same_clusters) {
      auto old = old_routes.find(rc.resource.name());
      if (old != old_routes.end() && *old->second == serialized->route_configs[i]) {
        gen->route_tables[rc.resource.name()] = previous->route_tables.at(rc.resource.name());
        continue;
      }
    }
    auto table = router::RouteTable::compile(rc.resource, [&](const std::string& name) {
      auto it = cluster_index.find(name);
      return it == cluster_index.end() ? -1 : it->second;
    });
    if (!table.ok()) return table.status();
    if (absl::Status s = access::attachAccessChains(rc.resource, table->get(), store); !s.ok()) {
      return s;
    }
    (*table)->forEachRoute([&](const std::string& vhost, router::Route& route) {
      if (route.traffic == nullptr || route.traffic->max_concurrent == 0) return;
      stats::CounterId overflow = store->counter(
          "sluice_route_rq_overflow_total",
          "Requests answered 503 (or the fallback): the route's max_concurrent_requests.",
          {{"route_config", rc.resource.name()},
           {"virtual_host", vhost},
           {"route", route.name.empty() ? route.path : route.name}});
      route.traffic->overflow_counter = overflow.cell;
    });
    gen->route_tables[rc.resource.name()] = *std::move(table);
  }

  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const v1::Listener& lc = config.listeners[i].resource;
    auto old = old_listeners.find(lc.name());
    const bool unchanged = old != old_listeners.end() && *old->second == serialized->listeners[i] &&
                           gen->routeTable(lc.route_config()) != nullptr;
    const ListenerConfig* prev = previous != nullptr ? previous->listener(lc.name()) : nullptr;
    std::shared_ptr<const tls::ServerContext> tls;
    if (lc.has_tls()) {
      // The files are read again: an update is also how certificates changed on disk get
      // picked up without waiting for the reload timer.
      auto ctx = tls::ServerContext::create(lc.tls(), absl::StrCat("listener '", lc.name(), "'"),
                                            prev != nullptr ? prev->tls : nullptr);
      if (ctx.ok()) {
        tls = *std::move(ctx);
      } else if (unchanged) {
        tls = prev->tls;
      } else {
        return ctx.status();
      }
    }
    if (unchanged && tls == prev->tls) {
      gen->listeners[lc.name()] = previous->listeners.at(lc.name());
      continue;
    }
    auto listener = std::make_shared<ListenerConfig>();
    listener->name = lc.name();
    listener->address = listenerAddress(lc);
    listener->port = lc.port();
    listener->route_config = lc.route_config();
    if (gen->routeTable(lc.route_config()) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("listener '", lc.name(),
                                                     "' names route configuration '",
                                                     lc.route_config(), "' which does not exist"));
    }
    const v1::ListenerLimits& lim = lc.limits();
    if (lim.max_request_headers_kb() != 0) {
      listener->limits.max_head_bytes = size_t{lim.max_request_headers_kb()} * 1024;
    }
    if (lim.max_request_headers() != 0) listener->limits.max_headers = lim.max_request_headers();
    if (lim.max_request_line_kb() != 0) {
      listener->limits.max_request_line = size_t{lim.max_request_line_kb()} * 1024;
    }
    if (lim.buffer_limit_kb() != 0) listener->buffer_limit = size_t{lim.buffer_limit_kb()} * 1024;
    listener->max_connections = lim.max_connections();
    listener->max_connections_per_ip = lim.max_connections_per_ip();
    listener->max_connection_rate = lim.max_connection_rate();
    listener->max_request_body_bytes = lim.max_request_body_bytes();
    listener->min_bytes_per_second = lim.min_bytes_per_second();
    if (lc.path_handling().escaped_slashes() == v1::PathHandling::KEEP_ENCODED) {
      listener->limits.escaped_slashes = http::EscapedSlashes::kKeepEncoded;
    }
    const v1::ListenerTimeouts& t = lc.timeouts();
    listener->request_headers_timeout =
        durationOr(t.has_request_headers(), t.request_headers(), absl::Seconds(10));
    listener->idle_timeout = durationOr(t.has_idle(), t.idle(), absl::Seconds(60));
    listener->drain_timeout = durationOr(t.has_drain(), t.drain(), absl::Seconds(30));
    if (lc.has_ip_filter()) {
      auto filter = ip_filter::compileIpFilter(
          lc.ip_filter(), absl::StrCat("listener '", lc.name(), "' ip_filter"));
      if (!filter.ok()) return filter.status();
      listener->ip_filter = std::make_shared<const ip_filter::IpFilter>(*std::move(filter));
    }
    listener->xff_hops = lc.xff_num_trusted_hops();
    listener->request_body_idle_timeout =
        durationOr(t.has_request_body_idle(), t.request_body_idle(), listener->idle_timeout);
    listener->stats = declareListenerStats(listener->name, store);
    if (tls != nullptr) {
      listener->tls = std::move(tls);
      listener->tls_stats = tls::declareServerStats(store, listener->name);
    }
    if (lc.has_https_redirect()) {
      const v1::HttpsRedirect& r = lc.https_redirect();
      listener->https_redirect_code = r.response_code() != 0 ? r.response_code() : 301;
      if (r.port() != 0) listener->https_redirect_port = r.port();
    }
    gen->listeners[listener->name] = std::move(listener);
  }
  return gen;
}

std::shared_ptr<Generation> withClusters(
    const Generation& gen, std::vector<std::shared_ptr<const upstream::Cluster>> clusters) {
  auto next = std::make_shared<Generation>(gen);
  next->clusters = std::move(clusters);
  return next;
}

std::shared_ptr<Generation> withJwks(const Generation& gen,
                                     std::shared_ptr<const authn::JwksCache> jwks) {
  auto next = std::make_shared<Generation>(gen);
  next->jwks = std::move(jwks);
  return next;
}

std::vector<authn::JwksSource> remoteJwksSources(const config::ConfigSet& config) {
  std::vector<authn::JwksSource> out;
  for (const auto& rc : config.route_configs) {
    for (const v1::JwtProvider& p : rc.resource.jwt_providers()) {
      if (!p.has_remote_jwks()) continue;
      const v1::RemoteJwks& r = p.remote_jwks();
      authn::JwksSource s;
      s.key = authn::remoteJwksKey(r.uri(), r.cluster());
      s.uri = r.uri();
      s.cluster = r.cluster();
      s.refresh = durationOr(r.has_refresh_interval(), r.refresh_interval(), absl::Minutes(10));
      s.timeout = durationOr(r.has_timeout(), r.timeout(), absl::Seconds(5));
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::shared_ptr<Generation> withListeners(
    const Generation& gen,
    absl::flat_hash_map<std::string, std::shared_ptr<const ListenerConfig>> listeners) {
  auto next = std::make_shared<Generation>(gen);
  next->listeners = std::move(listeners);
  return next;
}

}  // namespace sluice::server
