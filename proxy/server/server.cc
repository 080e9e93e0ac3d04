#include "proxy/server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/loader.h"
#include "common/config/redact.h"
#include "common/config/validator.h"
#include "common/log/log.h"
#include "common/token/token.h"
#include "google/protobuf/util/json_util.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace sluice::server {
namespace {

constexpr const char* kUserAgent = "sluice/0.1";

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start, Clock::time_point end = Clock::now()) {
  return std::chrono::duration<double>(end - start).count();
}

// "127.0.0.1:9901", "[::1]:9901" -> host and port.
bool splitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::SimpleAtoi(address.substr(colon + 1), port) && *port > 0 && *port < 65536;
}

class AdsAnswerer : public xds::Answerer {
 public:
  explicit AdsAnswerer(xds::AdsClient* client) : client_(client) {}
  void ack(const xds::Update& update) override { client_->ack(update); }
  void nack(const xds::Update& update, const std::string& running_version,
            const std::string& message) override {
    client_->nack(update, running_version, message);
  }

 private:
  xds::AdsClient* client_;
};

std::string toJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(m, &out, opts).ok()) return "null";
  return out;
}

std::string jsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrCat("\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Resources of type T, serialized, as a JSON list with their secrets redacted.
template <class T>
std::string jsonList(const std::vector<std::string>& items) {
  std::vector<std::string> parts;
  T resource;
  for (const std::string& item : items) {
    if (!resource.ParseFromString(item)) {
      parts.push_back("null");
      continue;
    }
    config::redactSecrets(&resource);
    parts.push_back(toJson(resource));
  }
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}

}  // namespace

struct Server::Rollout {
  uint64_t generation = 0;
  Clock::time_point start;  // compiling began
  double compile_seconds = 0;
  size_t routes = 0, clusters = 0, listeners = 0;
  std::atomic<int> pending{0};  // workers that have not switched yet
  Clock::time_point live;       // written by the last worker before `done`
  std::atomic<bool> done{false};
  // The generation this one replaces, released on the main thread once every worker has
  // switched: otherwise the last worker to switch would free it, between two requests.
  std::shared_ptr<const Generation> previous;

  // On each worker once it has switched; the last one wakes the main thread.
  void arrive(int wake_fd) {
    if (pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    live = Clock::now();
    done.store(true, std::memory_order_release);
    uint64_t one = 1;
    (void)!write(wake_fd, &one, sizeof(one));
  }
};

Server::Server(Options options) : options_(std::move(options)) {
  worker_count_ = options_.workers > 0
                      ? options_.workers
                      : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // Worker i writes cells i; the main thread writes the last set.
  store_ = stats::Store::create(worker_count_ + 1);
  cells_ = store_->cells(worker_count_);
  base_ = event_base_new();
  if (options_.overload_max_heap_bytes > 0) {
    overload_ =
        std::make_unique<OverloadGuard>(base_, options_.overload_max_heap_bytes, store_.get(),
                                        cells_, &OverloadGuard::heapInUse, [this](bool active) {
                                          for (auto& w : workers_) w->setAccepting(!active);
                                        });
  }
  for (int i = 0; i < worker_count_; ++i) {
    workers_.push_back(std::make_unique<Worker>(
        i, store_->cells(i), overload_ != nullptr ? overload_->state() : nullptr));
  }
  xds_connected_gauge_ = store_->gauge("sluice_xds_connected",
                                       "1 while the ADS stream to the control plane is up.", {});
  generations_ = store_->counter("sluice_server_generations_total",
                                 "Config generations compiled and published to the workers.", {});
  compile_seconds_ = store_->histogram("sluice_server_config_compile_seconds",
                                       "Time the main thread took to compile a config generation.",
                                       {}, stats::durationBuckets());
  publish_seconds_ = store_->histogram(
      "sluice_server_config_publish_seconds",
      "Time from the start of a generation's compilation until every worker runs it.", {},
      stats::durationBuckets());
  live_generation_ = store_->gauge("sluice_server_generation_live",
                                   "Id of the newest config generation every worker runs.", {});
  live_routes_ = store_->gauge("sluice_server_config_routes", "Routes in the live generation.", {});
  live_clusters_ =
      store_->gauge("sluice_server_config_clusters", "Clusters in the live generation.", {});
  live_listeners_ =
      store_->gauge("sluice_server_config_listeners", "Listeners in the live generation.", {});
  clusters_ = std::make_unique<upstream::ClusterManager>(
      base_, store_.get(), cells_, worker_count_,
      upstream::ResolverOptions{.hosts_file = options_.dns_hosts_file},
      [this] { onHostsChanged(); });
  jwks_ = std::make_unique<authn::JwksFetcher>(
      base_, [this](const std::string& cluster) { return jwksEndpoint(cluster); },
      [this](const std::string& key, std::shared_ptr<const jwt_authn::KeySet> keys) {
        onJwks(key, std::move(keys));
      },
      store_.get(), cells_);
  live_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  live_ev_ = event_new(base_, live_fd_, EV_READ | EV_PERSIST, &Server::onLive, this);
  event_add(live_ev_, nullptr);
  if (options_.tls_reload_interval > absl::ZeroDuration()) {
    tls_reload_ = event_new(base_, -1, EV_PERSIST, &Server::onTlsReload, this);
    const timeval tv = absl::ToTimeval(options_.tls_reload_interval);
    event_add(tls_reload_, &tv);
  }
}

Server::~Server() {
  if (ads_ != nullptr) ads_->stop();
  subscription_.reset();
  // Workers first: they may still wake the main thread through live_fd_.
  workers_.clear();
  jwks_.reset();
  clusters_.reset();
  event_free(live_ev_);
  close(live_fd_);
  for (event* e : signal_events_) event_free(e);
  if (xds_ev_ != nullptr) event_free(xds_ev_);
  if (xds_fd_ >= 0) close(xds_fd_);
  if (shutdown_tick_ != nullptr) event_free(shutdown_tick_);
  if (tls_reload_ != nullptr) event_free(tls_reload_);
  if (admin_ != nullptr) evhttp_free(admin_);
  overload_.reset();
  event_base_free(base_);
}

absl::StatusOr<std::vector<int>> Server::bindListener(const config::v1::Listener& config) {
  struct {
    std::string name, address;
    uint32_t port;
  } listener{config.name(), listenerAddress(config), config.port()};
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, listener.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(listener.port));
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, listener.address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(listener.port));
    len = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("listener '", listener.name, "': address '",
                                                   listener.address, "' is not an IP address"));
  }
  std::vector<int> fds;
  auto fail = [&](const char* what) {
    std::string msg = absl::StrCat("listener '", listener.name, "': cannot ", what, " ",
                                   listener.address, ":", listener.port, ": ", strerror(errno));
    for (int fd : fds) close(fd);
    return absl::FailedPreconditionError(msg);
  };
  for (int i = 0; i < worker_count_; ++i) {
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("create a socket for");
    fds.push_back(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    // One socket per worker: the kernel spreads connections across them.
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) return fail("bind");
    if (listen(fd, 1024) < 0) return fail("listen on");
  }
  return fds;
}

absl::Status Server::apply(const config::ConfigSet& config, const xds::Versions& versions) {
  // Bind every new or moved listener before anything else, so that a port that cannot be bound
  // rejects the whole update before it leaves a trace (metrics, sockets).
  std::map<std::string, std::vector<int>> fresh;
  auto closeFresh = [&fresh] {
    for (auto& [n, f] : fresh) {
      for (int fd : f) close(fd);
    }
  };
  for (const auto& item : config.listeners) {
    const config::v1::Listener& l = item.resource;
    auto it = bound_.find(l.name());
    if (it != bound_.end() && it->second.bind_key == bindKey(l)) continue;
    auto fds = bindListener(l);
    if (!fds.ok()) {
      closeFresh();
      return fds.status();
    }
    fresh[l.name()] = *std::move(fds);
  }
  const Clock::time_point start = Clock::now();
  auto clusters = clusters_->prepare(config);
  if (!clusters.ok()) {
    closeFresh();
    return clusters.status();
  }
  auto compiled = compileGeneration(config, *std::move(clusters), current_.get(), store_.get());
  if (!compiled.ok()) {
    closeFresh();
    return compiled.status();
  }
  // Only now do health checks, outlier detection and DNS follow the new clusters: a rejected
  // update leaves them with the generation that keeps serving.
  clusters_->commit();
  std::shared_ptr<Generation> gen = *std::move(compiled);
  gen->versions = versions;
  std::vector<std::string> remove;
  for (const auto& [name, b] : bound_) {
    if (gen->listener(name) == nullptr) remove.push_back(name);
  }
  publish(std::move(gen), start, std::move(fresh), std::move(remove));
  // After publish: a fetch starting now finds the clusters of this config.
  jwks_->update(remoteJwksSources(config));
  return absl::OkStatus();
}

void Server::onJwks(const std::string& key, std::shared_ptr<const jwt_authn::KeySet> keys) {
  if (current_ == nullptr || shutting_down_) return;
  publish(withJwks(*current_, current_->jwks->with(key, std::move(keys))), Clock::now(), {}, {});
}

std::optional<authn::JwksTarget> Server::jwksEndpoint(const std::string& cluster) const {
  if (current_ == nullptr) return std::nullopt;
  for (const auto& c : current_->clusters) {
    if (c->name() != cluster || c->endpoints().empty()) continue;
    // A healthy endpoint if there is one: the document is small and fetched rarely.
    const upstream::Endpoint* pick = &c->endpoints().front();
    for (const upstream::Endpoint& e : c->endpoints()) {
      if (e.healthy) {
        pick = &e;
        break;
      }
    }
    return authn::JwksTarget{.address = pick->name, .host = pick->host, .tls = c->tls()};
  }
  return std::nullopt;
}

void Server::onHostsChanged() {
  upstream::ClusterManager::ClusterList clusters = clusters_->refresh();
  if (clusters.empty() || current_ == nullptr || shutting_down_) return;
  // Route tables name clusters by place: they can take these only in the same places.
  bool same = clusters.size() == current_->clusters.size();
  for (size_t i = 0; same && i < clusters.size(); ++i) {
    same = clusters[i]->name() == current_->clusters[i]->name();
  }
  if (!same) {
    log::error("cluster update does not match the live generation's clusters; not applied");
    return;
  }
  const Clock::time_point start = Clock::now();
  publish(withClusters(*current_, std::move(clusters)), start, {}, {});
}

void Server::onTlsReload(evutil_socket_t, short, void* arg) {
  static_cast<Server*>(arg)->reloadTls();
}

void Server::reloadTls() {
  if (current_ == nullptr || shutting_down_) return;
  // Clusters publish through onHostsChanged, like a health verdict.
  clusters_->reloadTls();
  auto listeners = current_->listeners;
  bool changed = false;
  for (auto& [name, listener] : listeners) {
    const std::shared_ptr<const tls::ServerContext>& old = listener->tls;
    if (old == nullptr || !old->readsFiles()) continue;
    auto ctx = tls::ServerContext::create(old->config(), old->name(), old);
    if (!ctx.ok()) {
      std::string& last = tls_reload_errors_[name];
      if (last != ctx.status().message()) {
        last = std::string(ctx.status().message());
        cells_->add(listener->tls_stats.reload_error);
        log::error("%s; still serving the certificates loaded before", last);
      }
      continue;
    }
    tls_reload_errors_.erase(name);
    if (*ctx == old) continue;
    auto next = std::make_shared<ListenerConfig>(*listener);
    next->tls = *std::move(ctx);
    listener = std::move(next);
    cells_->add(listener->tls_stats.reload);
    log::info("listener '%s': certificates reloaded from changed files", name);
    changed = true;
  }
  if (changed) publish(withListeners(*current_, std::move(listeners)), Clock::now(), {}, {});
}

void Server::publish(std::shared_ptr<Generation> gen, Clock::time_point start,
                     std::map<std::string, std::vector<int>> fresh,
                     std::vector<std::string> remove) {
  gen->id = next_generation_;
  auto rollout = std::make_shared<Rollout>();
  rollout->generation = gen->id;
  rollout->start = start;
  rollout->compile_seconds = secondsSince(start);
  for (const auto& [name, table] : gen->route_tables) rollout->routes += table->routeCount();
  rollout->clusters = gen->clusters.size();
  rollout->listeners = gen->listeners.size();
  rollout->pending.store(worker_count_, std::memory_order_relaxed);
  rollout->previous = current_;
  rollouts_.push_back(rollout);

  for (const std::string& name : remove) {
    log::info("listener '%s' removed", name);
    bound_.erase(name);
  }
  for (auto& [name, fds] : fresh) {
    const ListenerConfig* l = gen->listener(name);
    Bound& b = bound_[name];
    if (b.counter == nullptr) b.counter = std::make_shared<http::ListenerCounter>();
    b.bind_key = l->bindKey();
    log::info("listener '%s' accepting on %s:%d with %d workers", name, l->address, l->port,
              worker_count_);
  }
  ++next_generation_;
  for (int i = 0; i < worker_count_; ++i) {
    std::vector<ListenerSocket> add;
    for (auto& [name, fds] : fresh) add.push_back({name, fds[i], bound_[name].counter});
    workers_[i]->update(gen, std::move(add), remove,
                        [rollout, fd = live_fd_] { rollout->arrive(fd); });
  }
  current_ = std::move(gen);
  cells_->add(generations_);
}

absl::Status Server::loadConfigDir() {
  // config::loadDirectory's steps, timed one by one so that the log shows where a slow load of
  // a large directory goes.
  const Clock::time_point start = Clock::now();
  config::Diagnostics errors;
  std::vector<config::SourceFile> files = config::readConfigDirectory(options_.config_dir, &errors);
  const Clock::time_point read = Clock::now();
  config::ConfigSet parsed = config::parseConfig(files, &errors);
  const Clock::time_point parsed_at = Clock::now();
  config::Diagnostics semantic = config::validateConfig(parsed);
  errors.insert(errors.end(), semantic.begin(), semantic.end());
  if (!errors.empty()) return absl::InvalidArgumentError(config::formatDiagnostics(errors));
  log::info("loaded %s (%d files) in %.1f ms: read %.1f ms, parse %.1f ms, validate %.1f ms",
            options_.config_dir, files.size(), 1e3 * secondsSince(start),
            1e3 * secondsSince(start, read), 1e3 * secondsSince(read, parsed_at),
            1e3 * secondsSince(parsed_at));
  xds::Versions versions;
  std::string v = absl::StrCat("local-", next_generation_);
  versions.fill(v);
  absl::Status status = apply(parsed, versions);
  if (status.ok()) config_ready_ = true;
  return status;
}

bool Server::ready() const {
  if (shutting_down_) return false;
  if (subscription_ != nullptr) return subscription_->complete();
  return config_ready_;
}

absl::Status Server::startAdmin() {
  std::string host;
  int port = 0;
  if (!splitHostPort(options_.admin, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--admin '", options_.admin, "' is not HOST:PORT (e.g. 127.0.0.1:9901)"));
  }
  admin_ = evhttp_new(base_);
  evhttp_set_allowed_methods(admin_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_gencb(admin_, &Server::handleAdmin, this);
  if (evhttp_bind_socket_with_handle(admin_, host.c_str(), static_cast<uint16_t>(port)) ==
      nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot serve the admin endpoint on ", options_.admin, ": ", strerror(errno)));
  }
  log::info("admin endpoint on http://%s/ (/ready /metrics /config_dump /clusters)%s",
            options_.admin, options_.admin_token.empty() ? "" : ", token required but on /ready");
  return absl::OkStatus();
}

std::string Server::metricsText() const {
  std::string text = store_->prometheusText();
  prometheus::MetricFamily family;
  family.name = "sluice_xds_version_info";
  family.help = "The config version the proxy runs, by resource type (value 1).";
  family.type = prometheus::MetricType::Gauge;
  if (current_ != nullptr) {
    for (int k = 0; k < config::kKindCount; ++k) {
      prometheus::ClientMetric m;
      m.label.push_back({"type", std::string(config::kindInfo(static_cast<config::Kind>(k)).name)});
      m.label.push_back({"version", current_->versions[k]});
      m.gauge.value = 1;
      family.metric.push_back(std::move(m));
    }
  }
  prometheus::TextSerializer serializer;
  return text + serializer.Serialize({family});
}

std::string Server::configDump() const {
  if (current_ == nullptr) return "{\"generation\":0}\n";
  const Generation& g = *current_;
  std::vector<std::string> versions;
  for (int k = 0; k < config::kKindCount; ++k) {
    versions.push_back(absl::StrCat(jsonString(config::kindInfo(static_cast<config::Kind>(k)).name),
                                    ":", jsonString(g.versions[k])));
  }
  return absl::StrCat("{\"generation\":", g.id, ",\"versions\":{", absl::StrJoin(versions, ","),
                      "},\"listeners\":", jsonList<config::v1::Listener>(g.config->listeners),
                      ",\"route_configurations\":",
                      jsonList<config::v1::RouteConfiguration>(g.config->route_configs),
                      ",\"clusters\":", jsonList<config::v1::Cluster>(g.config->clusters),
                      ",\"cluster_load_assignments\":",
                      jsonList<config::v1::ClusterLoadAssignment>(g.config->assignments),
                      ",\"consumers\":", jsonList<config::v1::Consumer>(g.config->consumers),
                      "}\n");
}

void Server::handleAdmin(evhttp_request* req, void* arg) {
  auto* self = static_cast<Server*>(arg);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* p = evhttp_uri_get_path(uri);
  std::string path = p != nullptr ? p : "/";
  int code = 200;
  std::string body;
  const char* type = "application/json";
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  // /ready stays open: load balancers and orchestrators probe it without credentials, and it
  // tells no more than whether the proxy takes traffic.
  if (!self->options_.admin_token.empty() && path != "/ready") {
    const char* auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (auth == nullptr || !token::bearerMatches(auth, self->options_.admin_token)) {
      evhttp_add_header(headers, "WWW-Authenticate", "Bearer");
      evhttp_add_header(headers, "Content-Type", "text/plain");
      evbuffer* out = evbuffer_new();
      constexpr std::string_view kDenied = "a bearer token is required\n";
      evbuffer_add(out, kDenied.data(), kDenied.size());
      evhttp_send_reply(req, 401, "Unauthorized", out);
      evbuffer_free(out);
      return;
    }
  }
  if (path == "/ready") {
    type = "text/plain";
    if (self->ready()) {
      body = "ready\n";
    } else {
      code = 503;
      body = self->shutting_down_ ? "draining\n" : "not ready: waiting for a complete config\n";
    }
  } else if (path == "/metrics") {
    type = "text/plain; version=0.0.4";
    body = self->metricsText();
  } else if (path == "/config_dump") {
    body = self->configDump();
  } else if (path == "/clusters") {
    body = self->clusters_->json();
  } else {
    code = 404;
    type = "text/plain";
    body = "not found; try /ready, /metrics, /config_dump or /clusters\n";
  }
  evhttp_add_header(headers, "Content-Type", type);
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(req, code,
                    code == 200 ? "OK" : (code == 503 ? "Service Unavailable" : "Not Found"), out);
  evbuffer_free(out);
}

void Server::onXds(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  uint64_t n;
  (void)!read(fd, &n, sizeof(n));
  std::vector<xds::Update> updates;
  bool disconnected;
  {
    std::lock_guard<std::mutex> lock(self->xds_mu_);
    updates.swap(self->xds_queue_);
    disconnected = self->xds_disconnected_;
    self->xds_disconnected_ = false;
  }
  if (disconnected) self->subscription_->onDisconnected();
  if (self->shutting_down_) return;
  for (xds::Update& u : updates) self->subscription_->onUpdate(std::move(u));
}

void Server::onLive(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  uint64_t n;
  (void)!read(fd, &n, sizeof(n));
  auto& rollouts = self->rollouts_;
  size_t finished = 0;
  while (finished < rollouts.size() && rollouts[finished]->done.load(std::memory_order_acquire)) {
    Rollout& r = *rollouts[finished++];
    r.previous.reset();
    const double publish = secondsSince(r.start, r.live);
    self->cells_->observe(self->compile_seconds_, r.compile_seconds);
    self->cells_->observe(self->publish_seconds_, publish);
    self->cells_->gaugeSet(self->live_generation_, static_cast<int64_t>(r.generation));
    self->cells_->gaugeSet(self->live_routes_, static_cast<int64_t>(r.routes));
    self->cells_->gaugeSet(self->live_clusters_, static_cast<int64_t>(r.clusters));
    self->cells_->gaugeSet(self->live_listeners_, static_cast<int64_t>(r.listeners));
    log::info(
        "generation %d: compiled in %.1f ms, live on %d workers in %.1f ms (%d routes, %d "
        "clusters, %d listeners)",
        r.generation, 1e3 * r.compile_seconds, self->worker_count_, 1e3 * publish, r.routes,
        r.clusters, r.listeners);
  }
  rollouts.erase(rollouts.begin(), rollouts.begin() + finished);
  // Loading a large config frees megabytes of parse data (YAML nodes, messages) that malloc
  // keeps (10 MB after a reload of 10,000 routes); give them back once nothing is in flight, on
  // this thread (10-20 ms there), so that RSS shows what the config holds.
  if (finished > 0 && rollouts.empty()) malloc_trim(0);
}

void Server::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  if (sig == SIGHUP) {
    if (self->options_.config_dir.empty() || self->shutting_down_) return;
    absl::Status s = self->loadConfigDir();
    if (s.ok()) {
      log::info("reloaded %s", self->options_.config_dir);
    } else {
      log::error("reload of %s rejected, still serving the previous config:\n%s",
                 self->options_.config_dir, s.message());
    }
    return;
  }
  self->beginShutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

void Server::beginShutdown(const char* why) {
  if (shutting_down_) {
    log::warn("%s again: stopping now", why);
    shutdown_deadline_ = absl::Now();
    return;
  }
  shutting_down_ = true;
  absl::Duration drain = options_.drain_timeout;
  if (drain <= absl::ZeroDuration()) {
    drain = absl::Seconds(30);
    if (current_ != nullptr && !current_->listeners.empty()) {
      drain = absl::ZeroDuration();
      for (const auto& [name, l] : current_->listeners) drain = std::max(drain, l->drain_timeout);
    }
  }
  log::info("%s: draining (at most %s)", why, absl::FormatDuration(drain));
  shutdown_deadline_ = absl::Now() + drain;
  if (ads_ != nullptr) ads_->stop();
  for (auto& w : workers_) w->drain();
  shutdown_tick_ = event_new(base_, -1, EV_PERSIST, &Server::onShutdownTick, this);
  timeval tv{0, 50 * 1000};
  event_add(shutdown_tick_, &tv);
}

void Server::onShutdownTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  size_t open = 0;
  for (auto& w : self->workers_) open += w->openConnections();
  if (open > 0 && absl::Now() < self->shutdown_deadline_) return;
  if (open > 0) log::warn("drain timeout: closing %d connections", open);
  event_base_loopbreak(self->base_);
}

int Server::run() {
  signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    event* e = evsignal_new(base_, sig, &Server::onSignal, this);
    event_add(e, nullptr);
    signal_events_.push_back(e);
  }
  for (auto& w : workers_) w->start();
  if (absl::Status s = startAdmin(); !s.ok()) {
    log::error("%s", s.message());
    return 1;
  }
  if (overload_ != nullptr) overload_->start();
  if (!options_.config_dir.empty()) {
    if (absl::Status s = loadConfigDir(); !s.ok()) {
      log::error("config in %s is invalid:\n%s", options_.config_dir, s.message());
      return 1;
    }
    log::info("serving %s with %d workers", options_.config_dir, worker_count_);
  } else {
    xds_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    xds_ev_ = event_new(base_, xds_fd_, EV_READ | EV_PERSIST, &Server::onXds, this);
    event_add(xds_ev_, nullptr);
    xds::AdsClientOptions ads;
    ads.target = options_.xds;
    ads.node_id = options_.node_id;
    ads.node_group = options_.node_group;
    ads.user_agent = kUserAgent;
    auto wake = [this] {
      uint64_t one = 1;
      (void)!write(xds_fd_, &one, sizeof(one));
    };
    ads_ = xds::AdsClient::create(
        ads,
        [this, wake](xds::Update u) {
          {
            std::lock_guard<std::mutex> lock(xds_mu_);
            xds_queue_.push_back(std::move(u));
          }
          wake();
        },
        [this, wake](bool connected) {
          // The gauge is the main thread's cell; it is only ever set, from this thread too.
          cells_->gaugeSet(xds_connected_gauge_, connected ? 1 : 0);
          if (!connected) {
            std::lock_guard<std::mutex> lock(xds_mu_);
            xds_disconnected_ = true;
          }
          wake();
        });
    answerer_ = std::make_unique<AdsAnswerer>(ads_.get());
    subscription_ = std::make_unique<xds::Subscription>(
        base_, answerer_.get(),
        [this](const config::ConfigSet& c, const xds::Versions& v) { return apply(c, v); },
        store_.get(), cells_);
    log::info("node %s (group %s) subscribing to %s with %d workers", options_.node_id,
              options_.node_group, options_.xds, worker_count_);
    ads_->start();
  }
  event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  for (auto& w : workers_) w->stop();
  log::info("stopped");
  return 0;
}

}  // namespace sluice::server
