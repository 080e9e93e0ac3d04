// Health and load balancing end to end (issue 5): a real sluice proxy with two workers in front
// of sluice-echo upstreams, all on loopback, with upstreams stopped and started again under
// bounded load: outlier detection, active health checks, panic, priorities, an EDS weight change
// over ADS, STRICT_DNS through a hosts file, and consistent hashing.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "test/integration/echo.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

constexpr char kSluice[] = "proxy/server/sluice";
constexpr char kCp[] = "control-plane/sluice-cp";

// --- Helpers ----------------------------------------------------------------------------------

// A keep-alive client connection to the proxy, opened again after a failure or a close.
class Client {
 public:
  explicit Client(int port) : port_(port) {}

  absl::StatusOr<HttpResponse> get(absl::string_view path, absl::string_view headers = "") {
    if (conn_ == nullptr) {
      auto made = HttpConnection::connect(port_);
      if (!made.ok()) return made.status();
      conn_ = *std::move(made);
    }
    auto r = conn_->roundTrip(
        absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\n", headers, "\r\n"));
    if (!r.ok() || absl::EqualsIgnoreCase(r->header("connection"), "close")) conn_.reset();
    return r;
  }

 private:
  int port_;
  std::unique_ptr<HttpConnection> conn_;
};

// Which upstream answered (its x-echo-name), or what came instead.
std::string who(const absl::StatusOr<HttpResponse>& r) {
  if (!r.ok()) return std::string(r.status().message());
  if (r->status != 200) return absl::StrCat("status ", r->status, ": ", r->body);
  std::string name = r->header("x-echo-name");
  return name.empty() ? absl::StrCat("local reply: ", r->body) : name;
}

// `n` GETs of `path` on `client`: how many each upstream answered (or each kind of failure).
std::map<std::string, int> spread(Client& client, const std::string& path, int n,
                                  const std::string& headers = "") {
  std::map<std::string, int> out;
  for (int i = 0; i < n; ++i) ++out[who(client.get(absl::StrCat(path, "/", i), headers))];
  return out;
}

std::string describe(const std::map<std::string, int>& counts) {
  std::vector<std::string> parts;
  for (const auto& [k, n] : counts) parts.push_back(absl::StrCat(n, " x ", k));
  return absl::StrJoin(parts, "; ");
}

int total(const std::map<std::string, int>& counts) {
  int n = 0;
  for (const auto& [k, v] : counts) n += v;
  return n;
}

// One endpoint of the proxy's /clusters.
struct EndpointView {
  std::string address, host, health, active_health_check, ejection_reason;
  bool ejected = false;
  double weight = 0, priority = 0, times_ejected = 0, rq_total = 0;
};

// One cluster of the proxy's /clusters.
struct ClusterView {
  bool found = false;  // in /clusters
  std::string lb_policy;
  bool panic = false;
  std::vector<int> priority_load;
  std::vector<EndpointView> endpoints;

  // The endpoint with `address`; an empty one (address "") when there is none.
  EndpointView endpoint(const std::string& address) const {
    for (const EndpointView& e : endpoints) {
      if (e.address == address) return e;
    }
    return {};
  }
  int healthyCount() const {
    int n = 0;
    for (const EndpointView& e : endpoints) n += e.health == "healthy" ? 1 : 0;
    return n;
  }
};

std::string str(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "" : it->second.string_value();
}
double num(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? -1 : it->second.number_value();
}

// Cluster `name` in a /clusters document; not `found` when the document or the cluster is missing.
ClusterView parseCluster(const std::string& json, const std::string& name) {
  google::protobuf::Struct doc;
  if (!google::protobuf::util::JsonStringToMessage(json, &doc).ok()) return {};
  auto clusters = doc.fields().find("clusters");
  if (clusters == doc.fields().end()) return {};
  for (const auto& c : clusters->second.list_value().values()) {
    const google::protobuf::Struct& cs = c.struct_value();
    if (str(cs, "name") != name) continue;
    ClusterView view;
    view.found = true;
    view.lb_policy = str(cs, "lb_policy");
    view.panic = cs.fields().count("panic") != 0 && cs.fields().at("panic").bool_value();
    if (cs.fields().count("priority_load") != 0) {
      for (const auto& v : cs.fields().at("priority_load").list_value().values()) {
        view.priority_load.push_back(static_cast<int>(v.number_value()));
      }
    }
    if (cs.fields().count("endpoints") != 0) {
      for (const auto& e : cs.fields().at("endpoints").list_value().values()) {
        const google::protobuf::Struct& es = e.struct_value();
        EndpointView ev;
        ev.address = str(es, "address");
        ev.host = str(es, "host");
        ev.health = str(es, "health");
        ev.active_health_check = str(es, "active_health_check");
        ev.ejected = es.fields().count("ejected") != 0 && es.fields().at("ejected").bool_value();
        if (es.fields().count("ejection") != 0 && es.fields().at("ejection").has_struct_value()) {
          ev.ejection_reason = str(es.fields().at("ejection").struct_value(), "reason");
        }
        ev.weight = num(es, "weight");
        ev.priority = num(es, "priority");
        ev.times_ejected = num(es, "times_ejected");
        ev.rq_total = num(es, "rq_total");
        view.endpoints.push_back(std::move(ev));
      }
    }
    return view;
  }
  return {};
}

// The sum of the samples of metric `name` (exact, no suffix) whose labels include `labels`, in
// Prometheus text; -1 when no sample matches.
double metricIn(const std::string& text, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  double sum = 0;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name)) continue;
    std::map<std::string, std::string> have;
    if (absl::ConsumePrefix(&line, "{")) {
      size_t close = line.find("} ");
      if (close == absl::string_view::npos) continue;
      // Our label values hold no quotes or commas.
      for (absl::string_view pair : absl::StrSplit(line.substr(0, close), ',', absl::SkipEmpty())) {
        size_t eq = pair.find("=\"");
        if (eq == absl::string_view::npos || !absl::EndsWith(pair, "\"")) continue;
        have[std::string(pair.substr(0, eq))] =
            std::string(pair.substr(eq + 2, pair.size() - eq - 3));
      }
      line.remove_prefix(close + 1);
    }
    if (!absl::ConsumePrefix(&line, " ")) continue;  // another metric whose name starts so
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = have.find(k);
      match = match && it != have.end() && it->second == v;
    }
    double value = 0;
    if (!match || !absl::SimpleAtod(line, &value)) continue;
    sum += value;
    found = true;
  }
  return found ? sum : -1;
}

// Writes `content` to `path` through a rename, so that a watcher never reads half of it.
bool replaceFile(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  writeFile(tmp, content);
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// A listener on {LISTEN} with route configuration "main": one virtual host with `routes` (YAML
// list items indented by six spaces).
std::string frontYaml(const std::string& routes) {
  return absl::StrCat(
      "kind: Listener\nname: main\naddress: 127.0.0.1\nport: {LISTEN}\nroute_config: main\n"
      "---\nkind: RouteConfiguration\nname: main\nvirtual_hosts:\n  - name: all\n"
      "    domains: [\"*\"]\n    routes:\n",
      routes);
}

// A route for every path to `cluster`.
std::string catchAll(const std::string& cluster) {
  return absl::StrCat("      - match: {prefix: /}\n        route: {cluster: ", cluster, "}\n");
}

// --- Fixture ----------------------------------------------------------------------------------

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listen_port_ = freePort();
    admin_port_ = freePort();
    dir_ = makeTempDir("health-config");
  }

  void TearDown() override {
    if (proxy_ == nullptr) return;
    // Whatever the test did to its upstreams, the proxy is still up and stops cleanly.
    EXPECT_TRUE(proxy_->running()) << "sluice exited during the test";
    int status = proxy_->stop(SIGTERM);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "exit status " << status;
    if (HasFailure()) std::cerr << "--- sluice log ---\n" << proxy_->log();
  }

  // Starts sluice-echo `name` on `ip` (any free port unless `port`); its port fills "{name}" in
  // configs.
  void startEcho(const std::string& name, const std::string& ip = "127.0.0.1", int port = 0) {
    auto e = std::make_unique<Echo>(name, ip);
    ASSERT_TRUE(e->start(port)) << e->log();
    echoes_[name] = std::move(e);
  }
  void startEchoes(const std::vector<std::string>& names) {
    for (const std::string& n : names) ASSERT_NO_FATAL_FAILURE(startEcho(n));
  }
  Echo& echo(const std::string& name) { return *echoes_.at(name); }

  // `yaml` with {LISTEN} and every echo's {name} filled in.
  std::string fill(const std::string& yaml) const {
    std::vector<std::pair<std::string, std::string>> subs = {
        {"{LISTEN}", absl::StrCat(listen_port_)}};
    for (const auto& [name, e] : echoes_) {
      subs.emplace_back("{" + name + "}", absl::StrCat(e->port()));
    }
    return absl::StrReplaceAll(yaml, subs);
  }

  std::vector<std::string> proxyArgs() const {
    return {"--workers", "2", "--admin", absl::StrCat("127.0.0.1:", admin_port_)};
  }

  // Serves `clusters` and frontYaml(`routes`), filled in, from a config directory.
  void startProxy(const std::string& clusters, const std::string& routes,
                  const std::vector<std::string>& extra = {}) {
    writeFile(dir_ + "/config.yaml", fill(absl::StrCat(clusters, frontYaml(routes))));
    std::vector<std::string> args = proxyArgs();
    args.insert(args.end(), {"--config-dir", dir_});
    args.insert(args.end(), extra.begin(), extra.end());
    proxy_ = std::make_unique<Process>(kSluice, args, "sluice");
    waitServing();
  }

  void waitServing() {
    ASSERT_TRUE(waitFor(absl::Seconds(15), [&] {
      return !proxy_->running() || (httpGet(admin_port_, "/ready") == "ready\n" &&
                                    HttpConnection::connect(listen_port_).ok());
    })) << proxy_->log();
    ASSERT_TRUE(proxy_->running()) << "sluice exited while starting:\n" << proxy_->log();
  }

  ClusterView cluster(const std::string& name) {
    return parseCluster(httpGet(admin_port_, "/clusters"), name);
  }
  // Echo `echo_name`'s endpoint in cluster `cluster_name`.
  EndpointView endpoint(const std::string& cluster_name, const std::string& echo_name) {
    return cluster(cluster_name).endpoint(echo(echo_name).address());
  }
  // Waits until every endpoint of `name` is healthy by its active health check and to the
  // balancer.
  void waitAllHealthy(const std::string& name, size_t count) {
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
      ClusterView c = cluster(name);
      if (c.endpoints.size() != count) return false;
      for (const EndpointView& e : c.endpoints) {
        if (e.health != "healthy" || e.active_health_check == "unhealthy") return false;
      }
      return true;
    })) << httpGet(admin_port_, "/clusters");
  }

  double metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return metricIn(httpGet(admin_port_, "/metrics"), name, labels);
  }

  std::string dir_;
  int listen_port_ = 0, admin_port_ = 0;
  // Declared so that the proxy stops first, then the control plane, then the upstreams.
  std::map<std::string, std::unique_ptr<Echo>> echoes_;
  std::unique_ptr<Process> cp_;
  std::unique_ptr<Process> proxy_;
};

// --- 1. Outlier detection ---------------------------------------------------------------------

constexpr char kOutlierConfig[] = R"(kind: Cluster
name: web
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
outlier_detection:
  consecutive_gateway_failure: 3
  base_ejection_time: 2s
  max_ejection_percent: 50
---
)";
constexpr char kOutlierRoutes[] = R"(      - match: {prefix: /}
        route:
          cluster: web
          retry_policy: {retry_on: [connect-failure, reset, 5xx], num_retries: 2}
)";

TEST_F(HealthTest, OutlierDetectionEjectsAKilledUpstreamAndReturnsItAfterItsEjection) {
  ASSERT_NO_FATAL_FAILURE(startEchoes({"a", "b", "c"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(kOutlierConfig, kOutlierRoutes));
  Client client(listen_port_);
  std::map<std::string, int> warm = spread(client, "/warm", 30);
  EXPECT_GT(warm["a"], 0) << describe(warm);
  EXPECT_GT(warm["b"], 0) << describe(warm);
  EXPECT_GT(warm["c"], 0) << describe(warm);
  EXPECT_EQ(warm["a"] + warm["b"] + warm["c"], 30) << describe(warm);
  const std::string reason_label = "consecutive_gateway_failure";
  const std::map<std::string, std::string> ejection_series = {{"cluster", "web"},
                                                              {"reason", reason_label}};
  ASSERT_EQ(metric("sluice_cluster_outlier_detection_ejections_total", ejection_series), 0);

  ASSERT_TRUE(echo("c").stop());
  // Retries hide the dead endpoint from the client until outlier detection ejects it.
  std::map<std::string, int> load;
  std::optional<EndpointView> seen_ejected;
  for (int i = 0; i < 300; ++i) {
    ++load[who(client.get(absl::StrCat("/load/", i)))];
    if (!seen_ejected.has_value() && i % 5 == 4) {
      EndpointView c = endpoint("web", "c");
      if (c.ejected) seen_ejected = c;
    }
  }
  EXPECT_EQ(load["a"] + load["b"], 300) << describe(load);
  ASSERT_TRUE(seen_ejected.has_value()) << httpGet(admin_port_, "/clusters");
  EXPECT_EQ(seen_ejected->health, "unhealthy");
  EXPECT_EQ(seen_ejected->ejection_reason, reason_label);
  EXPECT_GE(seen_ejected->times_ejected, 1);
  EXPECT_GE(metric("sluice_cluster_outlier_detection_ejections_total", ejection_series), 1);
  EXPECT_GE(metric("sluice_cluster_upstream_rq_retry_total", {{"cluster", "web"}}), 1);
  // The live endpoints were never ejected.
  EXPECT_EQ(endpoint("web", "a").times_ejected, 0);
  EXPECT_EQ(endpoint("web", "b").times_ejected, 0);

  // Back on the same port: once its ejection time is over it returns and gets requests again.
  ASSERT_TRUE(echo("c").start(echo("c").port())) << echo("c").log();
  EXPECT_TRUE(waitFor(absl::Seconds(20), [&] {
    EndpointView c = endpoint("web", "c");
    return !c.address.empty() && !c.ejected && c.health == "healthy";
  })) << httpGet(admin_port_, "/clusters");
  const double before = endpoint("web", "c").rq_total;
  std::map<std::string, int> back = spread(client, "/back", 30);
  EXPECT_GT(back["c"], 0) << describe(back);
  EXPECT_EQ(back["a"] + back["b"] + back["c"], 30) << describe(back);
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] { return endpoint("web", "c").rq_total > before; }))
      << httpGet(admin_port_, "/clusters");
}

// Endpoint state is kept per (cluster, endpoint) key. On 6f825ae Registry::host(key) indexed an
// empty std::deque (fixed in 71cf7dc): outlier state was uninitialized memory (the test above
// failed: live endpoints "ejected", the dead one never), and the 9th key, past the deque's first
// block, crashed the proxy (SIGSEGV) while loading this config. Four clusters over the same three
// upstreams make twelve keys.
constexpr char kTwelveKeysConfig[] = R"(kind: Cluster
name: c1
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
outlier_detection: {consecutive_gateway_failure: 3}
---
kind: Cluster
name: c2
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
outlier_detection: {consecutive_gateway_failure: 3}
---
kind: Cluster
name: c3
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
---
kind: Cluster
name: c4
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
---
)";
constexpr char kTwelveKeysRoutes[] = R"(      - match: {prefix: /c1}
        route: {cluster: c1}
      - match: {prefix: /c2}
        route: {cluster: c2}
      - match: {prefix: /c3}
        route: {cluster: c3}
      - match: {prefix: /c4}
        route: {cluster: c4}
)";

TEST_F(HealthTest, MoreThanEightEndpointsInAllStartCleanAndServe) {
  ASSERT_NO_FATAL_FAILURE(startEchoes({"a", "b", "c"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(kTwelveKeysConfig, kTwelveKeysRoutes));
  Client client(listen_port_);
  for (const std::string name : {"c1", "c2", "c3", "c4"}) {
    SCOPED_TRACE(name);
    ClusterView c = cluster(name);
    ASSERT_EQ(c.endpoints.size(), 3u) << httpGet(admin_port_, "/clusters");
    for (const EndpointView& e : c.endpoints) {
      EXPECT_EQ(e.health, "healthy") << e.address;
      EXPECT_FALSE(e.ejected) << e.address;
      EXPECT_EQ(e.times_ejected, 0) << e.address;
    }
    std::map<std::string, int> served = spread(client, "/" + name, 9);
    EXPECT_EQ(served["a"] + served["b"] + served["c"], 9) << describe(served);
    EXPECT_GT(served["c"], 0) << describe(served);
  }
}

// --- 2. Active HTTP health checks -------------------------------------------------------------

constexpr char kHttpCheckConfig[] = R"(kind: Cluster
name: checked
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
# The timeout may not exceed the interval (config reference, HealthCheck).
health_check:
  interval: 100ms
  timeout: 100ms
  unhealthy_threshold: 2
  healthy_threshold: 2
  http: {path: /healthz}
---
)";

TEST_F(HealthTest, HttpHealthCheckTakesA500EndpointOutAndBringsItBack) {
  ASSERT_NO_FATAL_FAILURE(startEchoes({"a", "b"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(kHttpCheckConfig, catchAll("checked")));
  ASSERT_NO_FATAL_FAILURE(waitAllHealthy("checked", 2));
  EXPECT_EQ(endpoint("checked", "b").active_health_check, "healthy");
  Client client(listen_port_);
  std::map<std::string, int> before = spread(client, "/before", 20);
  EXPECT_GT(before["a"], 0) << describe(before);
  EXPECT_GT(before["b"], 0) << describe(before);
  EXPECT_EQ(before["a"] + before["b"], 20) << describe(before);

  const std::map<std::string, std::string> status_failures = {{"cluster", "checked"},
                                                              {"reason", "status"}};
  const double failures_before =
      metric("sluice_cluster_health_check_failure_total", status_failures);
  ASSERT_GE(failures_before, 0);
  // b answers everything, /healthz included, with 500.
  ASSERT_TRUE(echo("b").restart({"--status", "500"})) << echo("b").log();
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    EndpointView b = endpoint("checked", "b");
    return b.active_health_check == "unhealthy" && b.health == "unhealthy" &&
           metric("sluice_cluster_health_check_failure_total", status_failures) >
               failures_before + 2;
  })) << httpGet(admin_port_, "/clusters");
  EXPECT_EQ(endpoint("checked", "a").health, "healthy");
  std::map<std::string, int> during = spread(client, "/during", 30);
  EXPECT_EQ(during["a"], 30) << describe(during);

  // Healthy again after two passed checks, and balanced to again.
  ASSERT_TRUE(echo("b").restart()) << echo("b").log();
  ASSERT_NO_FATAL_FAILURE(waitAllHealthy("checked", 2));
  std::map<std::string, int> after = spread(client, "/after", 20);
  EXPECT_GT(after["b"], 0) << describe(after);
  EXPECT_EQ(after["a"] + after["b"], 20) << describe(after);
}

// --- 3. Panic ---------------------------------------------------------------------------------

// The same four endpoints twice: with the default panic threshold (50) and with panic off.
constexpr char kPanicConfig[] = R"(kind: Cluster
name: four
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
  - {address: 127.0.0.1, port: {d}}
health_check:
  interval: 100ms
  timeout: 100ms
  unhealthy_threshold: 2
  healthy_threshold: 1
  tcp: {}
---
kind: Cluster
name: four-no-panic
healthy_panic_threshold: 0
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
  - {address: 127.0.0.1, port: {d}}
health_check:
  interval: 100ms
  timeout: 100ms
  unhealthy_threshold: 2
  healthy_threshold: 1
  tcp: {}
---
)";
constexpr char kPanicRoutes[] = R"(      - match: {prefix: /panic}
        route: {cluster: four}
      - match: {prefix: /calm}
        route: {cluster: four-no-panic}
)";

TEST_F(HealthTest, PanicBalancesOverAllEndpointsUnlessTheThresholdIsZero) {
  ASSERT_NO_FATAL_FAILURE(startEchoes({"a", "b", "c", "d"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(kPanicConfig, kPanicRoutes));
  ASSERT_NO_FATAL_FAILURE(waitAllHealthy("four", 4));
  ASSERT_NO_FATAL_FAILURE(waitAllHealthy("four-no-panic", 4));
  EXPECT_FALSE(cluster("four").panic);
  EXPECT_EQ(metric("sluice_cluster_lb_healthy_panic", {{"cluster", "four"}}), 0);

  for (const char* name : {"b", "c", "d"}) ASSERT_TRUE(echo(name).stop());
  for (const char* name : {"four", "four-no-panic"}) {
    EXPECT_TRUE(waitFor(absl::Seconds(10),
                        [&] {
                          ClusterView c = cluster(name);
                          return c.found && c.healthyCount() == 1;
                        }))
        << name << ": " << httpGet(admin_port_, "/clusters");
  }
  // 1 of 4 healthy is under 50%: panic, and requests go to all four, the dead ones too.
  ClusterView four = cluster("four");
  ASSERT_TRUE(four.found);
  EXPECT_TRUE(four.panic);
  EXPECT_EQ(metric("sluice_cluster_lb_healthy_panic", {{"cluster", "four"}}), 1);
  const double panic_picks = metric("sluice_cluster_lb_healthy_panic_total", {{"cluster", "four"}});
  const double connect_fails =
      metric("sluice_cluster_upstream_cx_connect_fail_total", {{"cluster", "four"}});
  Client client(listen_port_);
  std::map<std::string, int> panicked = spread(client, "/panic", 40);
  EXPECT_GT(panicked["a"], 0) << describe(panicked);
  EXPECT_LT(panicked["a"], 40) << describe(panicked);
  EXPECT_GE(metric("sluice_cluster_lb_healthy_panic_total", {{"cluster", "four"}}),
            panic_picks + 40);
  EXPECT_GT(metric("sluice_cluster_upstream_cx_connect_fail_total", {{"cluster", "four"}}),
            connect_fails);
  four = cluster("four");
  ASSERT_EQ(four.endpoints.size(), 4u);
  for (const EndpointView& e : four.endpoints) EXPECT_GT(e.rq_total, 0) << e.address;

  // Threshold 0: never panic; everything goes to the one healthy endpoint.
  ClusterView calm = cluster("four-no-panic");
  ASSERT_TRUE(calm.found);
  EXPECT_FALSE(calm.panic);
  EXPECT_EQ(metric("sluice_cluster_lb_healthy_panic", {{"cluster", "four-no-panic"}}), 0);
  std::map<std::string, int> no_panic = spread(client, "/calm", 40);
  EXPECT_EQ(no_panic["a"], 40) << describe(no_panic);
  EXPECT_EQ(metric("sluice_cluster_lb_healthy_panic_total", {{"cluster", "four-no-panic"}}), 0);
  EXPECT_EQ(metric("sluice_cluster_upstream_cx_connect_fail_total", {{"cluster", "four-no-panic"}}),
            0);
}

// --- 4. EDS weights over ADS ------------------------------------------------------------------

std::string assignmentYaml(int port_a, int weight_a, int port_b, int weight_b) {
  return absl::StrCat("kind: ClusterLoadAssignment\ncluster_name: web\nendpoints:\n",
                      "  - {address: 127.0.0.1, port: ", port_a, ", weight: ", weight_a, "}\n",
                      "  - {address: 127.0.0.1, port: ", port_b, ", weight: ", weight_b, "}\n");
}

// The "versions" of the proxy's /config_dump, by kind name.
std::map<std::string, std::string> proxyVersions(int admin_port) {
  google::protobuf::Struct dump;
  std::map<std::string, std::string> out;
  if (!google::protobuf::util::JsonStringToMessage(httpGet(admin_port, "/config_dump"), &dump)
           .ok()) {
    return out;
  }
  auto it = dump.fields().find("versions");
  if (it == dump.fields().end()) return out;
  for (const auto& [kind, v] : it->second.struct_value().fields()) out[kind] = v.string_value();
  return out;
}

TEST_F(HealthTest, EdsWeightChangeOverAdsFailsNoRequest) {
  ASSERT_NO_FATAL_FAILURE(startEchoes({"a", "b"}));
  const int xds_port = freePort(), mgmt_port = freePort(), cp_admin_port = freePort();
  writeFile(dir_ + "/front.yaml", fill(frontYaml(catchAll("web"))));
  writeFile(dir_ + "/cluster.yaml", "kind: Cluster\nname: web\ntype: EDS\n");
  const std::string assignment = dir_ + "/assignment.yaml";
  writeFile(assignment, assignmentYaml(echo("a").port(), 1, echo("b").port(), 1));
  cp_ = std::make_unique<Process>(
      kCp,
      std::vector<std::string>{"--config-dir", dir_, "--xds-listen",
                               absl::StrCat("127.0.0.1:", xds_port), "--mgmt-listen",
                               absl::StrCat("127.0.0.1:", mgmt_port), "--admin-listen",
                               absl::StrCat("127.0.0.1:", cp_admin_port), "--debounce", "50ms"},
      "sluice-cp");
  std::vector<std::string> args = proxyArgs();
  args.insert(args.end(), {"--xds", absl::StrCat("127.0.0.1:", xds_port), "--node-id", "proxy-1",
                           "--node-group", "web"});
  proxy_ = std::make_unique<Process>(kSluice, args, "sluice");
  ASSERT_NO_FATAL_FAILURE(waitServing()) << cp_->log();

  Client warm_client(listen_port_);
  std::map<std::string, int> even = spread(warm_client, "/even", 20);
  EXPECT_GT(even["a"], 0) << describe(even);
  EXPECT_GT(even["b"], 0) << describe(even);
  EXPECT_EQ(even["a"] + even["b"], 20) << describe(even);
  std::map<std::string, std::string> before = proxyVersions(admin_port_);
  ASSERT_FALSE(before["ClusterLoadAssignment"].empty()) << httpGet(admin_port_, "/config_dump");

  // Requests on a keep-alive connection and on a new connection each round, paced, for at
  // most 20 s, while the weights change.
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::map<std::string, int> answers;  // written by the thread, read after join
  std::thread traffic([&] {
    Client keep(listen_port_);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    for (int i = 0; !stop && absl::Now() < deadline; ++i) {
      ++answers[who(keep.get(absl::StrCat("/loop/keep/", i)))];
      Client fresh(listen_port_);
      ++answers[who(fresh.get(absl::StrCat("/loop/new/", i)))];
      sent += 2;
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return sent >= 40; }));

  // No ASSERT until the thread is joined.
  EXPECT_TRUE(replaceFile(assignment, assignmentYaml(echo("a").port(), 9, echo("b").port(), 1)));
  EXPECT_TRUE(waitFor(absl::Seconds(10),
                      [&] {
                        auto v = proxyVersions(admin_port_);
                        return !v["ClusterLoadAssignment"].empty() &&
                               v["ClusterLoadAssignment"] != before["ClusterLoadAssignment"];
                      }))
      << proxy_->log() << cp_->log();
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] { return endpoint("web", "a").weight == 9; }))
      << httpGet(admin_port_, "/clusters");
  // Only the assignment changed.
  std::map<std::string, std::string> after = proxyVersions(admin_port_);
  for (const char* kind : {"Listener", "RouteConfiguration", "Cluster"}) {
    EXPECT_EQ(after[kind], before[kind]) << kind;
  }

  Client measure(listen_port_);
  std::map<std::string, int> weighted = spread(measure, "/weighted", 200);
  EXPECT_GT(weighted["a"], 150) << describe(weighted);
  EXPECT_EQ(weighted["a"] + weighted["b"], 200) << describe(weighted);

  const int at_measure = sent;
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] { return sent >= at_measure + 20; }));
  stop = true;
  traffic.join();
  EXPECT_GT(sent, 40);
  EXPECT_EQ(answers["a"] + answers["b"], total(answers)) << describe(answers);
  EXPECT_GT(answers["b"], 0) << describe(answers);
}

// --- 5. Priorities ----------------------------------------------------------------------------

constexpr char kPriorityConfig[] = R"(kind: Cluster
name: tiered
endpoints:
  - {address: 127.0.0.1, port: {a}, priority: 0}
  - {address: 127.0.0.1, port: {b}, priority: 0}
  - {address: 127.0.0.1, port: {standby}, priority: 1}
health_check:
  interval: 100ms
  timeout: 100ms
  unhealthy_threshold: 2
  healthy_threshold: 1
  tcp: {}
---
)";

TEST_F(HealthTest, PriorityOneTakesOverAsPriorityZeroFails) {
  ASSERT_NO_FATAL_FAILURE(startEchoes({"a", "b", "standby"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(kPriorityConfig, catchAll("tiered")));
  ASSERT_NO_FATAL_FAILURE(waitAllHealthy("tiered", 3));
  EXPECT_EQ(cluster("tiered").priority_load, (std::vector<int>{100, 0}));
  EXPECT_EQ(endpoint("tiered", "standby").priority, 1);
  Client client(listen_port_);
  std::map<std::string, int> normal = spread(client, "/normal", 20);
  EXPECT_EQ(normal["a"] + normal["b"], 20) << describe(normal);

  // Half of priority 0 healthy: 50% x 1.4 (Envoy's overprovisioning factor) = 70% stays there.
  ASSERT_TRUE(echo("a").stop());
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return endpoint("tiered", "a").health == "unhealthy";
  })) << httpGet(admin_port_, "/clusters");
  ClusterView tiered = cluster("tiered");
  EXPECT_EQ(tiered.priority_load, (std::vector<int>{70, 30}));
  EXPECT_FALSE(tiered.panic);
  std::map<std::string, int> split = spread(client, "/split", 40);
  EXPECT_GT(split["b"], 0) << describe(split);
  EXPECT_GT(split["standby"], 0) << describe(split);
  EXPECT_EQ(split["b"] + split["standby"], 40) << describe(split);

  // None of priority 0 healthy: everything to priority 1.
  ASSERT_TRUE(echo("b").stop());
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return cluster("tiered").priority_load == std::vector<int>{0, 100};
  })) << httpGet(admin_port_, "/clusters");
  EXPECT_FALSE(cluster("tiered").panic);
  std::map<std::string, int> failover = spread(client, "/failover", 30);
  EXPECT_EQ(failover["standby"], 30) << describe(failover);
}

// --- 6. STRICT_DNS ----------------------------------------------------------------------------

constexpr char kDnsConfig[] = R"(kind: Cluster
name: named
type: STRICT_DNS
dns_refresh_rate: 200ms
endpoints:
  - {address: web.sluice.test, port: {one}}
---
)";

TEST_F(HealthTest, StrictDnsClusterFollowsTheHostsFile) {
  ASSERT_NO_FATAL_FAILURE(startEcho("one", "127.0.0.1"));
  const int port = echo("one").port();
  const std::string hosts = dir_ + "-hosts";
  writeFile(hosts, "127.0.0.1 web.sluice.test\n");
  ASSERT_NO_FATAL_FAILURE(startProxy(kDnsConfig, catchAll("named"), {"--dns-hosts-file", hosts}));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return cluster("named").endpoints.size() == 1; }))
      << httpGet(admin_port_, "/clusters");
  EndpointView one = endpoint("named", "one");
  ASSERT_FALSE(one.address.empty()) << httpGet(admin_port_, "/clusters");
  EXPECT_EQ(one.host, "web.sluice.test");
  Client client(listen_port_);
  std::map<std::string, int> first = spread(client, "/first", 10);
  EXPECT_EQ(first["one"], 10) << describe(first);

  // The name gains a second address, where a second upstream listens on the same port.
  ASSERT_NO_FATAL_FAILURE(startEcho("two", "127.0.0.2", port));
  ASSERT_TRUE(replaceFile(hosts, "127.0.0.1 web.sluice.test\n127.0.0.2 web.sluice.test\n"));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return cluster("named").endpoints.size() == 2; }))
      << httpGet(admin_port_, "/clusters");
  EndpointView two = endpoint("named", "two");
  ASSERT_FALSE(two.address.empty()) << httpGet(admin_port_, "/clusters");
  EXPECT_EQ(two.host, "web.sluice.test");
  std::map<std::string, int> both = spread(client, "/both", 20);
  EXPECT_GT(both["one"], 0) << describe(both);
  EXPECT_GT(both["two"], 0) << describe(both);
  EXPECT_EQ(both["one"] + both["two"], 20) << describe(both);
}

// --- 7. Consistent hashing --------------------------------------------------------------------

constexpr char kHashConfig[] = R"(kind: Cluster
name: ring
lb_policy: RING_HASH
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
---
kind: Cluster
name: maglev
lb_policy: MAGLEV
endpoints:
  - {address: 127.0.0.1, port: {a}}
  - {address: 127.0.0.1, port: {b}}
  - {address: 127.0.0.1, port: {c}}
---
)";
constexpr char kHashRoutes[] = R"(      - match: {prefix: /ring}
        route: {cluster: ring, hash_policy: [{header: x-user}]}
      - match: {prefix: /maglev}
        route: {cluster: maglev, hash_policy: [{header: x-user}]}
)";

TEST_F(HealthTest, RingHashAndMaglevKeepAUserOnOneEndpoint) {
  ASSERT_NO_FATAL_FAILURE(startEchoes({"a", "b", "c"}));
  ASSERT_NO_FATAL_FAILURE(startProxy(kHashConfig, kHashRoutes));
  EXPECT_EQ(cluster("ring").lb_policy, "RING_HASH");
  EXPECT_EQ(cluster("maglev").lb_policy, "MAGLEV");
  for (const std::string path : {"/ring", "/maglev"}) {
    SCOPED_TRACE(path);
    // One user, on new connections (so on both workers): always the same endpoint.
    std::map<std::string, int> alice;
    for (int i = 0; i < 20; ++i) {
      Client fresh(listen_port_);
      ++alice[who(fresh.get(absl::StrCat(path, "/", i), "x-user: alice\r\n"))];
    }
    EXPECT_EQ(alice.size(), 1u) << describe(alice);
    EXPECT_TRUE(alice.count("a") + alice.count("b") + alice.count("c") == 1) << describe(alice);
    // Twenty users spread over more than one endpoint.
    Client client(listen_port_);
    std::map<std::string, int> users;
    for (int u = 0; u < 20; ++u) {
      ++users[who(client.get(absl::StrCat(path, "/u"), absl::StrCat("x-user: user-", u, "\r\n")))];
    }
    EXPECT_GT(users.size(), 1u) << describe(users);
    EXPECT_EQ(users["a"] + users["b"] + users["c"], 20) << describe(users);
  }
}

// --- 8. Request mirroring: not on main yet (proxy/http/mirror.h is on branch 'mirror'). --------

}  // namespace
}  // namespace sluice::testing
