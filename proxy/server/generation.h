#pragma once

// A config generation: everything one config version needs to serve requests, compiled once on
// the main thread and then shared read-only by every worker as shared_ptr<const Generation>.
// A request holds the generation it started on until it ends.
#include <array>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/config_set.h"
#include "proxy/filters/authn/consumers.h"
#include "proxy/filters/authn/jwks_cache.h"
#include "proxy/filters/authn/jwks_fetcher.h"
#include "proxy/filters/ip_filter/cidr.h"
#include "proxy/http/codec.h"
#include "proxy/router/route_table.h"
#include "proxy/stats/store.h"
#include "proxy/tls/context.h"
#include "proxy/tls/stats.h"
#include "proxy/upstream/cluster.h"

namespace sluice::server {

struct ListenerStats {
  stats::CounterId rq_by_class[5];  // 1xx .. 5xx
  stats::HistogramId rq_time;
  stats::CounterId cx_total;
  stats::GaugeId cx_active;
  stats::CounterId cx_overflow;         // refused: max_connections reached
  stats::CounterId cx_per_ip_overflow;  // refused: max_connections_per_ip reached
  stats::CounterId cx_rate_limited;     // refused: max_connection_rate exceeded
  stats::CounterId cx_too_slow;         // closed: below min_bytes_per_second
  stats::CounterId rq_rejected;         // malformed requests answered 4xx and closed
  stats::CounterId rq_timeout;          // request heads not received in time (408)
  stats::CounterId rq_too_large;        // bodies over max_request_body_bytes (413 or reset)
  stats::CounterId rq_body_timeout;     // request bodies paused past request_body_idle (408)
  stats::CounterId fault_delays;        // requests delayed by a route's fault injection
  stats::CounterId fault_aborts;        // requests answered by a route's fault injection
  stats::CounterId ip_denied;           // connections closed or requests answered 403 by ip_filter
};

struct ListenerConfig {
  std::string name;
  std::string address;
  uint32_t port = 0;
  std::string route_config;
  http::Limits limits;
  size_t buffer_limit = 32 * 1024;
  uint32_t max_connections = 0;         // 0: unlimited
  uint32_t max_connections_per_ip = 0;  // 0: unlimited
  uint32_t max_connection_rate = 0;     // new connections per second; 0: unlimited
  uint64_t max_request_body_bytes = 0;  // 0: unlimited
  uint32_t min_bytes_per_second = 0;    // 0: off
  absl::Duration request_headers_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration request_body_idle_timeout = absl::Seconds(60);
  absl::Duration drain_timeout = absl::Seconds(30);
  // Listener.ip_filter (null: none) and the x-forwarded-for entries trusted.
  std::shared_ptr<const ip_filter::IpFilter> ip_filter;
  uint32_t xff_hops = 0;
  ListenerStats stats;
  // TLS termination (null: plain HTTP). Shared across generations while the listener's TLS
  // config and certificate bytes stay the same; a connection keeps the one it was accepted with.
  std::shared_ptr<const tls::ServerContext> tls;
  tls::ServerStats tls_stats;  // declared for TLS listeners only
  // https_redirect: every request is answered with a redirect to https (code 0: off).
  uint32_t https_redirect_code = 0;
  uint32_t https_redirect_port = 443;

  // Where the listener binds: two listeners with equal keys share sockets across generations.
  std::string bindKey() const;
};

// The address a listener binds ("0.0.0.0" when unset).
std::string listenerAddress(const config::v1::Listener& listener);
// ListenerConfig::bindKey() of the listener `listener` compiles to.
std::string bindKey(const config::v1::Listener& listener);

// The resources a generation was compiled from, for /config_dump: serialized, because they are
// read only when dumped, and the parsed messages (with the loader's line numbers) took ten times
// the memory of the compiled tables.
struct SerializedConfig {
  std::vector<std::string> listeners;
  std::vector<std::string> route_configs;
  std::vector<std::string> clusters;
  std::vector<std::string> assignments;
  std::vector<std::string> consumers;
};

// Parts are shared between generations where a change leaves them alone: an update of
// endpoints, health or DNS answers makes a generation that shares the previous one's route
// tables and listeners and replaces only the clusters.
struct Generation {
  uint64_t id = 0;
  std::shared_ptr<const SerializedConfig> config;  // what it was compiled from, for /config_dump
  std::array<std::string, config::kKindCount> versions;

  std::vector<std::shared_ptr<const upstream::Cluster>> clusters;
  absl::flat_hash_map<std::string, std::shared_ptr<const router::RouteTable>> route_tables;
  absl::flat_hash_map<std::string, std::shared_ptr<const ListenerConfig>> listeners;
  // Who the access filters know: consumers and their credentials, and the key sets fetched for
  // JWT providers with a remote JWKS (replaced on their own when a fetch brings new keys).
  std::shared_ptr<const authn::Consumers> consumers;
  std::shared_ptr<const authn::JwksCache> jwks;

  const ListenerConfig* listener(std::string_view name) const;
  const router::RouteTable* routeTable(std::string_view name) const;
};

// Compiles a validated config set around its compiled `clusters` (in the config's order).
// Route tables and listeners whose config is unchanged since `previous` (and, for route tables,
// whose clusters keep their places) are shared with it instead of compiled again; so is a TLS
// context whose config and certificate bytes are unchanged. Fails (with a message for the NACK)
// only on what the shared validator cannot know (certificate files it cannot read or use);
// binding sockets is the server's job. A listener whose config is unchanged keeps its
// certificates when their files have since gone bad (reloading reports that).
absl::StatusOr<std::shared_ptr<Generation>> compileGeneration(
    const config::ConfigSet& config, std::vector<std::shared_ptr<const upstream::Cluster>> clusters,
    const Generation* previous, stats::Store* store);

// A generation like `gen` with other clusters (the same names in the same order): for updates
// of endpoints and health, which leave routes and listeners alone.
std::shared_ptr<Generation> withClusters(
    const Generation& gen, std::vector<std::shared_ptr<const upstream::Cluster>> clusters);

// A generation like `gen` with other fetched JWT key sets.
std::shared_ptr<Generation> withJwks(const Generation& gen,
                                     std::shared_ptr<const authn::JwksCache> jwks);

// The remote JWKS documents the JWT providers of `config` fetch.
std::vector<authn::JwksSource> remoteJwksSources(const config::ConfigSet& config);

// A generation like `gen` with other listener configs (the same names): for certificates
// reloaded from changed files.
std::shared_ptr<Generation> withListeners(
    const Generation& gen,
    absl::flat_hash_map<std::string, std::shared_ptr<const ListenerConfig>> listeners);

}  // namespace sluice::server
