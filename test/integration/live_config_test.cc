// Live configuration end to end: sluice-cp watching a directory, a sluice proxy with two workers
// subscribed to it, and two sluice-echo upstreams (a, b), all on loopback; config is changed with
// sluicectl while requests flow.
#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "sluice/admin/v1/management.pb.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCp[] = "control-plane/sluice-cp";
constexpr char kCtl[] = "tools/sluicectl/sluicectl";
constexpr char kProxy[] = "proxy/server/sluice";
constexpr char kEcho[] = "tools/echo/sluice-echo";
constexpr char kNode[] = "proxy-1";

// The kind names /config_dump and the metrics use; sluicectl status names the type URL instead.
constexpr std::array<const char*, 4> kKinds = {"Listener", "RouteConfiguration", "Cluster",
                                               "ClusterLoadAssignment"};

// A direct_response route, listed before the others so it wins for /extra.
constexpr char kExtraRoute[] = R"(      - match: {path: /extra}
        direct_response: {status: 200, body: "extra\n"}
)";

constexpr char kWeighted30to70[] =
    "{weighted_clusters: {clusters: [{name: a, weight: 30}, {name: b, weight: 70}]}}";
constexpr char kWeighted70to30[] =
    "{weighted_clusters: {clusters: [{name: a, weight: 70}, {name: b, weight: 30}]}}";

absl::StatusOr<HttpResponse> get(int port, absl::string_view path, absl::string_view headers = "") {
  auto conn = HttpConnection::connect(port);
  if (!conn.ok()) return conn.status();
  return (*conn)->roundTrip(
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\n", headers, "\r\n"));
}

// Which upstream answered `path` on `port` ("a" or "b"), or what came instead.
std::string who(const absl::StatusOr<HttpResponse>& r) {
  if (!r.ok()) return std::string(r.status().message());
  if (r->status != 200) return absl::StrCat("status ", r->status, ": ", r->body);
  std::string name = r->header("x-echo-name");
  return name.empty() ? absl::StrCat("local reply: ", r->body) : name;
}
std::string who(int port, absl::string_view path) { return who(get(port, path)); }

// Whether a new connection to `port` is refused.
bool refused(int port) {
  auto conn = HttpConnection::connect(port);
  return !conn.ok() && absl::StrContains(conn.status().message(), "refused");
}

// Polls `check` for at most `limit` (nothing is checked after it, unlike waitFor). Used only
// where a change must be served within a deadline: a functional requirement, not a speed test.
bool within(absl::Duration limit, const std::function<bool()>& check) {
  absl::Time deadline = absl::Now() + limit;
  do {
    if (check()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < deadline);
  return false;
}

// The value of the sample `series` (name and labels as exposed), or -1 when it is absent.
std::string rejectedSeries(const std::string& kind) {
  return absl::StrCat("sluice_xds_update_rejected_total{type=\"", kind, "\"}");
}

std::string listenerYaml(const std::string& name, int port) {
  return absl::StrCat("kind: Listener\nname: ", name, "\naddress: 127.0.0.1\nport: ", port,
                      "\nroute_config: main\n");
}

bool exitedZero(int status) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

class LiveConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = makeTempDir("live-config");
    work_ = makeTempDir("live-apply");
    echo_a_ = startEcho("a", &port_a_);
    echo_b_ = startEcho("b", &port_b_);
    ASSERT_NE(port_a_, 0) << echo_a_->log();
    ASSERT_NE(port_b_, 0) << echo_b_->log();
    listen_port_ = freePort();
    xds_port_ = freePort();
    mgmt_port_ = freePort();
    cp_admin_port_ = freePort();
    admin_port_ = freePort();
    writeFile(dir_ + "/clusters.yaml", clustersYaml());
    writeFile(dir_ + "/routes.yaml", routesYaml("a"));
    writeFile(dir_ + "/listeners.yaml", listenerYaml("public", listen_port_));
  }

  std::unique_ptr<Process> startEcho(const std::string& name, int* port) {
    auto p = std::make_unique<Process>(
        kEcho, std::vector<std::string>{"--listen", "127.0.0.1:0", "--name", name}, "echo-" + name);
    const std::string prefix = "listening on 127.0.0.1:";
    *port = 0;
    waitFor(absl::Seconds(10), [&] {
      std::string log = p->log();
      size_t at = log.find(prefix);
      if (at == std::string::npos) return false;
      size_t end = log.find('\n', at);
      if (end == std::string::npos) return false;
      return absl::SimpleAtoi(log.substr(at + prefix.size(), end - at - prefix.size()), port);
    });
    return p;
  }

  // Clusters a and b, one endpoint each, then `extra` (YAML documents starting with "---").
  std::string clustersYaml(const std::string& extra = "") const {
    return absl::StrCat(
        "kind: Cluster\nname: a\nendpoints:\n  - {address: 127.0.0.1, port: ", port_a_,
        "}\n---\nkind: Cluster\nname: b\nendpoints:\n  - {address: 127.0.0.1, port: ", port_b_,
        "}\n", extra);
  }

  // Route configuration "main": `extra` routes, then /x to cluster `x`, then everything else
  // with the route action `rest`.
  static std::string routesYaml(const std::string& x, const std::string& rest = "{cluster: a}",
                                const std::string& extra = "") {
    return absl::StrCat(
        "kind: RouteConfiguration\nname: main\nvirtual_hosts:\n  - name: all\n"
        "    domains: [\"*\"]\n    routes:\n",
        extra, "      - match: {prefix: /x}\n        route: {cluster: ", x, "}\n",
        "      - match: {prefix: /}\n        route: ", rest, "\n");
  }

  std::vector<std::string> cpArgs() const {
    return {"--config-dir",   dir_,
            "--xds-listen",   absl::StrCat("127.0.0.1:", xds_port_),
            "--mgmt-listen",  absl::StrCat("127.0.0.1:", mgmt_port_),
            "--admin-listen", absl::StrCat("127.0.0.1:", cp_admin_port_),
            "--debounce",     "50ms"};
  }

  void startCp() {
    cp_ = std::make_unique<Process>(kCp, cpArgs(), "sluice-cp");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return ctl({"status"}).exit_code == 0; }))
        << cp_->log();
  }

  void startProxy(std::vector<std::string> source = {}) {
    if (source.empty()) {
      source = {"--xds", absl::StrCat("127.0.0.1:", xds_port_), "--node-id", kNode, "--node-group",
                "web"};
    }
    std::vector<std::string> args = {"--workers", "2", "--admin",
                                     absl::StrCat("127.0.0.1:", admin_port_)};
    args.insert(args.end(), source.begin(), source.end());
    proxy_ = std::make_unique<Process>(kProxy, args, "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return get(admin_port_, "/ready").ok(); }))
        << proxy_->log();
  }

  void waitReady() {
    ASSERT_TRUE(waitFor(absl::Seconds(10),
                        [&] {
                          auto r = get(admin_port_, "/ready");
                          return r.ok() && r->status == 200;
                        }))
        << proxy_->log() << (cp_ != nullptr ? cp_->log() : "");
  }

  void startAll() {
    ASSERT_NO_FATAL_FAILURE(startCp());
    ASSERT_NO_FATAL_FAILURE(startProxy());
    ASSERT_NO_FATAL_FAILURE(waitReady());
    ASSERT_EQ(who(listen_port_, "/x"), "a");
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", absl::StrCat("127.0.0.1:", mgmt_port_)});
    return run(kCtl, args);
  }

  // Writes `content` as `name` outside the served directory and applies it with sluicectl.
  void apply(const std::string& name, const std::string& content) {
    std::string path = absl::StrCat(work_, "/", name);
    writeFile(path, content);
    RunResult r = ctl({"apply", "-f", path});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ASSERT_THAT(r.out, HasSubstr("applied: version")) << r.out;
  }

  // This proxy's row of `sluicectl status -o json`, by kind name.
  std::map<std::string, admin::v1::TypeStatus> nodeStatus() {
    RunResult r = ctl({"status", "-o", "json"});
    admin::v1::StatusResponse s;
    std::map<std::string, admin::v1::TypeStatus> out;
    if (r.exit_code != 0 || !google::protobuf::util::JsonStringToMessage(r.out, &s).ok()) {
      return out;
    }
    for (const auto& p : s.proxies()) {
      if (p.node_id() != kNode) continue;
      for (const auto& t : p.types()) {
        out[t.type_url().substr(t.type_url().rfind('.') + 1)] = t;
      }
    }
    return out;
  }

  // The "versions" of the proxy's /config_dump, by kind name.
  std::map<std::string, std::string> proxyVersions() {
    google::protobuf::Struct dump;
    std::map<std::string, std::string> out;
    if (!google::protobuf::util::JsonStringToMessage(httpGet(admin_port_, "/config_dump"), &dump)
             .ok()) {
      return out;
    }
    auto it = dump.fields().find("versions");
    if (it == dump.fields().end()) return out;
    for (const auto& [kind, v] : it->second.struct_value().fields()) out[kind] = v.string_value();
    return out;
  }

  // "" when sluicectl shows the proxy ACKED for all four types with the versions the proxy's
  // /config_dump reports; otherwise what differs.
  std::string ackMismatch() {
    auto status = nodeStatus();
    auto running = proxyVersions();
    std::string why;
    for (const char* kind : kKinds) {
      auto it = status.find(kind);
      if (it == status.end()) {
        absl::StrAppend(&why, kind, ": not in sluicectl status; ");
        continue;
      }
      const admin::v1::TypeStatus& t = it->second;
      if (t.state() != admin::v1::TypeStatus::ACKED || t.version_acked().empty() ||
          t.version_acked() != running[kind]) {
        absl::StrAppend(&why, kind, ": ", admin::v1::TypeStatus::State_Name(t.state()), " acked '",
                        t.version_acked(), "' last_nack '", t.last_nack(), "', proxy runs '",
                        running[kind], "'; ");
      }
    }
    return why;
  }

  void expectAllAcked() {
    std::string why;
    EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return (why = ackMismatch()).empty(); }))
        << why << "\n"
        << proxy_->log();
  }

  std::string dir_, work_;
  int port_a_ = 0, port_b_ = 0;
  int listen_port_ = 0, xds_port_ = 0, mgmt_port_ = 0, cp_admin_port_ = 0, admin_port_ = 0;
  // Declared so the proxy stops first and the upstreams last.
  std::unique_ptr<Process> echo_a_, echo_b_, cp_, proxy_;
};

TEST_F(LiveConfigTest, NotReadyUntilTheControlPlaneServes) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  // The proxy has tried the control plane and failed, and has nothing to serve.
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
    return absl::StrContains(proxy_->log(), "cannot connect");
  })) << proxy_->log();
  auto ready = get(admin_port_, "/ready");
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->status, 503);
  EXPECT_TRUE(refused(listen_port_));
  EXPECT_EQ(metricSeries(admin_port_, "sluice_xds_connected"), 0);

  ASSERT_NO_FATAL_FAILURE(startCp());
  ASSERT_NO_FATAL_FAILURE(waitReady());
  EXPECT_EQ(who(listen_port_, "/x"), "a");
  EXPECT_EQ(who(listen_port_, "/elsewhere"), "a");
  EXPECT_EQ(metricSeries(admin_port_, "sluice_xds_connected"), 1);
  expectAllAcked();
  // The versions in status are the ones the proxy reports everywhere.
  std::map<std::string, std::string> running = proxyVersions();
  for (const char* kind : kKinds) {
    EXPECT_EQ(metricSeries(admin_port_, absl::StrCat("sluice_xds_version_info{type=\"", kind,
                                                     "\",version=\"", running[kind], "\"}")),
              1)
        << kind;
    EXPECT_GE(metricSeries(admin_port_,
                           absl::StrCat("sluice_xds_update_applied_total{type=\"", kind, "\"}")),
              1)
        << kind;
  }
  RunResult text = ctl({"status"});
  EXPECT_THAT(text.out, HasSubstr(kNode));
  EXPECT_THAT(text.out, HasSubstr("ACKED " + running["Listener"].substr(0, 8)));
  EXPECT_THAT(text.out, Not(HasSubstr("NACKED")));
}

TEST_F(LiveConfigTest, AppliedChangeIsServedWithinOneSecond) {
  ASSERT_NO_FATAL_FAILURE(startAll());
  ASSERT_NO_FATAL_FAILURE(apply("routes.yaml", routesYaml("b")));
  EXPECT_TRUE(within(absl::Seconds(1), [&] { return who(listen_port_, "/x") == "b"; }))
      << who(listen_port_, "/x");
  EXPECT_EQ(who(listen_port_, "/elsewhere"), "a");

  // Before the change /extra goes to upstream a; after it the proxy answers itself.
  ASSERT_EQ(who(listen_port_, "/extra"), "a");
  ASSERT_NO_FATAL_FAILURE(apply("routes.yaml", routesYaml("b", "{cluster: a}", kExtraRoute)));
  EXPECT_TRUE(within(absl::Seconds(1), [&] {
    auto r = get(listen_port_, "/extra");
    return r.ok() && r->status == 200 && r->body == "extra\n" && r->header("x-echo-name").empty();
  })) << who(listen_port_, "/extra");
  EXPECT_EQ(who(listen_port_, "/x"), "b");
  expectAllAcked();
}

TEST_F(LiveConfigTest, LoadAcrossTenChangesHasNoErrors) {
  ASSERT_NO_FATAL_FAILURE(startAll());
  const double rejected_before = metricSeries(admin_port_, rejectedSeries("Listener")) +
                                 metricSeries(admin_port_, rejectedSeries("RouteConfiguration")) +
                                 metricSeries(admin_port_, rejectedSeries("Cluster")) +
                                 metricSeries(admin_port_, rejectedSeries("ClusterLoadAssignment"));
  const std::string spare = absl::StrCat(
      "---\nkind: Cluster\nname: spare\nendpoints:\n  - {address: 127.0.0.1, port: ", port_a_,
      ", weight: 3}\n");
  const std::string canary = absl::StrCat(
      "kind: Cluster\nname: canary\ntype: EDS\n---\nkind: ClusterLoadAssignment\n"
      "cluster_name: canary\nendpoints:\n  - {address: 127.0.0.1, port: ",
      port_b_, ", weight: 1}\n");
  // Each is (file, content); none references the unused clusters, every route reaches a or b.
  const std::vector<std::pair<std::string, std::string>> changes = {
      {"routes.yaml", routesYaml("a", "{cluster: b}")},
      {"routes.yaml", routesYaml("b", "{cluster: a}", kExtraRoute)},
      {"routes.yaml", routesYaml("a", kWeighted30to70, kExtraRoute)},
      {"clusters.yaml", clustersYaml(spare)},
      {"extra.yaml", canary},
      {"routes.yaml", routesYaml("b", kWeighted70to30)},
      {"clusters.yaml", clustersYaml()},
      {"routes.yaml", routesYaml("a", "{cluster: b}")},
      {"extra.yaml", "# emptied: the canary cluster and its endpoints are removed\n"},
      {"routes.yaml", routesYaml("b", kWeighted30to70)},
  };
  constexpr int kConnections = 8;
  constexpr int kPerConnection = 250;  // 2,000 requests in all
  const int phase = kPerConnection / static_cast<int>(changes.size());

  std::atomic<int> applied{0};
  std::atomic<int> completed{0};
  std::atomic<bool> abort{false};
  std::mutex mu;
  std::map<std::string, int> answers;  // guarded by mu: "a", "b", or what came instead
  int connection_errors = 0;           // guarded by mu
  std::string first_error;             // guarded by mu
  std::vector<std::thread> clients;
  for (int c = 0; c < kConnections; ++c) {
    clients.emplace_back([&, c] {
      std::unique_ptr<HttpConnection> conn;
      std::map<std::string, int> mine;
      int errors = 0;
      std::string error;
      for (int i = 0; i < kPerConnection && !abort; ++i) {
        // Requests of phase k start once change k is applied, so the changes land while every
        // connection is open and busy.
        waitFor(absl::Seconds(30), [&] { return abort || applied >= i / phase; });
        if (conn == nullptr) {
          auto made = HttpConnection::connect(listen_port_);
          if (!made.ok()) {
            ++errors;
            if (error.empty()) error = std::string(made.status().message());
            ++completed;
            continue;
          }
          conn = *std::move(made);
        }
        // A short upstream delay keeps requests in flight while config changes.
        auto r = conn->roundTrip(absl::StrCat(
            "GET /load/", c, "/", i, " HTTP/1.1\r\nHost: test\r\nx-echo-delay-ms: 5\r\n\r\n"));
        if (!r.ok()) {
          ++errors;
          if (error.empty()) error = absl::StrCat("request ", i, ": ", r.status().message());
          conn.reset();
        } else {
          ++mine[who(r)];
        }
        ++completed;
      }
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [k, n] : mine) answers[k] += n;
      connection_errors += errors;
      if (first_error.empty()) first_error = error;
    });
  }
  for (size_t k = 0; k < changes.size(); ++k) {
    // Apply change k+1 halfway through the requests of phase k.
    bool progressed = waitFor(absl::Seconds(30), [&] {
      return completed >= static_cast<int>(k) * phase * kConnections + phase * kConnections / 2;
    });
    if (!progressed) {
      ADD_FAILURE() << "the load stalled before change " << k + 1;
      break;
    }
    apply(changes[k].first, changes[k].second);
    if (HasFailure()) break;
    ++applied;
  }
  if (HasFailure()) abort = true;
  for (std::thread& t : clients) t.join();
  ASSERT_FALSE(HasFailure());

  EXPECT_EQ(connection_errors, 0) << first_error;
  int total = 0;
  for (const auto& [k, n] : answers) total += n;
  EXPECT_EQ(total, kConnections * kPerConnection);
  EXPECT_GT(answers["a"], 0);
  EXPECT_GT(answers["b"], 0);
  EXPECT_EQ(answers["a"] + answers["b"], total) << [&] {
    std::string s;
    for (const auto& [k, n] : answers) absl::StrAppend(&s, n, " x ", k, "\n");
    return s;
  }();
  // The proxy counts the same: every request answered 2xx (and the one startAll sent).
  const std::string ok_series =
      "sluice_http_downstream_rq_total{listener=\"public\",code_class=\"2xx\"}";
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] {
    return metricSeries(admin_port_, ok_series) == total + 1;
  })) << metricSeries(admin_port_, ok_series);
  for (const char* c : {"1xx", "3xx", "4xx", "5xx"}) {
    EXPECT_EQ(metricSeries(admin_port_,
                           absl::StrCat("sluice_http_downstream_rq_total{listener=\"public\","
                                        "code_class=\"",
                                        c, "\"}")),
              0)
        << c;
  }
  // Every change was accepted: nothing rejected, and the proxy runs the last one.
  expectAllAcked();
  EXPECT_EQ(metricSeries(admin_port_, rejectedSeries("Listener")) +
                metricSeries(admin_port_, rejectedSeries("RouteConfiguration")) +
                metricSeries(admin_port_, rejectedSeries("Cluster")) +
                metricSeries(admin_port_, rejectedSeries("ClusterLoadAssignment")),
            rejected_before)
      << proxy_->log();
  EXPECT_EQ(who(listen_port_, "/x"), "b");
  EXPECT_THAT(who(listen_port_, "/extra"), ::testing::AnyOf("a", "b"));
}

TEST_F(LiveConfigTest, ListenerThatCannotBindIsNackedAndFixed) {
  ASSERT_NO_FATAL_FAILURE(startAll());
  auto keep = HttpConnection::connect(listen_port_);
  ASSERT_TRUE(keep.ok());
  const std::string request = "GET /x HTTP/1.1\r\nHost: test\r\n\r\n";
  ASSERT_EQ(who((*keep)->roundTrip(request)), "a");
  const double rejected_before = metricSeries(admin_port_, rejectedSeries("Listener"));
  ASSERT_GE(rejected_before, 0);
  std::map<std::string, std::string> before = proxyVersions();

  // Upstream a owns its port: the proxy cannot bind it.
  ASSERT_NO_FATAL_FAILURE(apply("listeners.yaml", listenerYaml("public", listen_port_) + "---\n" +
                                                      listenerYaml("clash", port_a_)));
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
    return nodeStatus()["Listener"].state() == admin::v1::TypeStatus::NACKED;
  })) << proxy_->log();
  admin::v1::TypeStatus listeners = nodeStatus()["Listener"];
  EXPECT_THAT(listeners.last_nack(), HasSubstr("cannot bind"));
  EXPECT_THAT(listeners.last_nack(), HasSubstr(absl::StrCat("127.0.0.1:", port_a_)));
  EXPECT_EQ(listeners.version_acked(), before["Listener"]);
  EXPECT_NE(listeners.version_sent(), before["Listener"]);
  RunResult text = ctl({"status"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_THAT(text.out, HasSubstr("NACKED"));
  EXPECT_THAT(text.out, HasSubstr("cannot bind"));
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] {
    return metricSeries(admin_port_, rejectedSeries("Listener")) > rejected_before;
  }));
  EXPECT_EQ(proxyVersions(), before);
  // The running listener keeps serving, on the open connection and on new ones; a is untouched.
  EXPECT_EQ(who((*keep)->roundTrip(request)), "a");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(who(listen_port_, "/x"), "a");
  EXPECT_EQ(who(port_a_, "/direct"), "a");

  ASSERT_NO_FATAL_FAILURE(apply("listeners.yaml", listenerYaml("public", listen_port_)));
  expectAllAcked();
  EXPECT_EQ(proxyVersions()["Listener"], before["Listener"]);
  EXPECT_EQ(who((*keep)->roundTrip(request)), "a");
  EXPECT_EQ(who(listen_port_, "/x"), "a");
}

TEST_F(LiveConfigTest, ServesThroughControlPlaneRestart) {
  ASSERT_NO_FATAL_FAILURE(startAll());
  std::atomic<bool> stop{false};
  std::atomic<bool> outage{false};
  std::atomic<int> served{0}, served_in_outage{0};
  std::mutex mu;
  std::vector<std::string> failures;  // guarded by mu
  // Requests on one keep-alive connection and on a new connection each round.
  std::thread traffic([&] {
    auto keep = HttpConnection::connect(listen_port_);
    while (!stop) {
      bool in_outage = outage;
      std::vector<std::string> got;
      if (keep.ok()) {
        got.push_back(who((*keep)->roundTrip("GET /x HTTP/1.1\r\nHost: test\r\n\r\n")));
      } else {
        got.push_back(std::string(keep.status().message()));
      }
      got.push_back(who(listen_port_, "/elsewhere"));
      for (const std::string& g : got) {
        if (g == "a" || g == "b") {
          ++served;
          if (in_outage) ++served_in_outage;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(g);
        }
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return served >= 20; }));

  outage = true;
  int killed = cp_->stop(SIGKILL);
  EXPECT_TRUE(killed != -1 && WIFSIGNALED(killed));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return metricSeries(admin_port_, "sluice_xds_connected") == 0;
  })) << proxy_->log();
  auto ready = get(admin_port_, "/ready");
  EXPECT_TRUE(ready.ok() && ready->status == 200);
  // The directory changes while nobody serves it; the restarted control plane publishes it.
  writeFile(dir_ + "/routes.yaml", routesYaml("b"));
  const int at_kill = served_in_outage;
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return served_in_outage >= at_kill + 20; }));
  EXPECT_EQ(who(listen_port_, "/x"), "a");  // still the old config

  ASSERT_NO_FATAL_FAILURE(startCp());
  EXPECT_TRUE(waitFor(absl::Seconds(15), [&] {
    return metricSeries(admin_port_, "sluice_xds_connected") == 1;
  })) << proxy_->log();
  outage = false;
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return who(listen_port_, "/x") == "b"; }))
      << proxy_->log();
  expectAllAcked();
  const int before_stop = served;
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return served >= before_stop + 10; }));
  stop = true;
  traffic.join();
  EXPECT_GT(served_in_outage, 0);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
}

TEST_F(LiveConfigTest, ListenerAddedAndRemovedLeavesTheOtherAlone) {
  ASSERT_NO_FATAL_FAILURE(startAll());
  const std::string request = "GET /x HTTP/1.1\r\nHost: test\r\n\r\n";
  auto keep = HttpConnection::connect(listen_port_);
  ASSERT_TRUE(keep.ok());
  ASSERT_EQ(who((*keep)->roundTrip(request)), "a");

  const int second = freePort();
  ASSERT_TRUE(refused(second));
  ASSERT_NO_FATAL_FAILURE(apply("listeners.yaml", listenerYaml("public", listen_port_) + "---\n" +
                                                      listenerYaml("second", second)));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return who(second, "/x") == "a"; }))
      << proxy_->log();
  EXPECT_EQ(who((*keep)->roundTrip(request)), "a");
  EXPECT_EQ(who(listen_port_, "/x"), "a");
  auto on_second = HttpConnection::connect(second);
  ASSERT_TRUE(on_second.ok());
  ASSERT_EQ(who((*on_second)->roundTrip(request)), "a");
  expectAllAcked();

  ASSERT_NO_FATAL_FAILURE(apply("listeners.yaml", listenerYaml("public", listen_port_)));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return refused(second); })) << proxy_->log();
  EXPECT_EQ(who((*keep)->roundTrip(request)), "a");
  EXPECT_EQ(who(listen_port_, "/x"), "a");
  // A connection accepted by the removed listener finishes on the config it started with.
  EXPECT_EQ(who((*on_second)->roundTrip(request)), "a");
  expectAllAcked();
}

TEST_F(LiveConfigTest, SigtermDrainsInFlightRequestAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(startAll());
  const std::string sent = "sluice_cluster_upstream_rq_total{cluster=\"a\"}";
  const double before = metricSeries(admin_port_, sent);
  ASSERT_GE(before, 1);
  auto slow = HttpConnection::connect(listen_port_);
  ASSERT_TRUE(slow.ok());
  ASSERT_TRUE(
      (*slow)->send("GET /x/slow HTTP/1.1\r\nHost: test\r\nx-echo-delay-ms: 1500\r\n\r\n").ok());
  // The request has reached the upstream, which holds it for 1.5 s.
  ASSERT_TRUE(waitFor(absl::Seconds(5), [&] { return metricSeries(admin_port_, sent) > before; }));

  ASSERT_EQ(kill(proxy_->pid(), SIGTERM), 0);
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] { return refused(listen_port_); }));
  auto ready = get(admin_port_, "/ready");
  EXPECT_TRUE(ready.ok() && ready->status == 503);
  auto r = (*slow)->read();
  ASSERT_TRUE(r.ok()) << r.status() << proxy_->log();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-echo-name"), "a");
  EXPECT_THAT(r->body, HasSubstr("GET /x/slow HTTP/1.1"));
  // Draining ends keep-alive: the connection is closed after its response.
  EXPECT_TRUE((*slow)->closedByPeer(absl::Seconds(5)));
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return !proxy_->running(); })) << proxy_->log();
  int status = proxy_->stop(SIGTERM);
  EXPECT_TRUE(exitedZero(status)) << status << "\n" << proxy_->log();
}

TEST_F(LiveConfigTest, ConfigDirModeServesAndReloadsOnSighup) {
  ASSERT_NO_FATAL_FAILURE(startProxy({"--config-dir", dir_}));
  ASSERT_NO_FATAL_FAILURE(waitReady());
  EXPECT_EQ(who(listen_port_, "/x"), "a");

  // A directory with bad YAML: nothing to serve, the file named in the log, a failed exit.
  {
    std::string bad = makeTempDir("bad-config");
    writeFile(bad + "/clusters.yaml", clustersYaml());
    writeFile(bad + "/broken.yaml",
              "kind: Cluster\nname: c\nendpoints: [{address: 127.0.0.1, port: 1}\n");
    Process broken(
        kProxy,
        {"--config-dir", bad, "--workers", "2", "--admin", absl::StrCat("127.0.0.1:", freePort())},
        "sluice-broken");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return !broken.running(); })) << broken.log();
    int status = broken.stop(SIGKILL);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
    EXPECT_THAT(broken.log(), HasSubstr("broken.yaml"));
  }

  // An edit, then SIGHUP: the new routes are served.
  writeFile(dir_ + "/routes.yaml", routesYaml("b", "{cluster: a}", kExtraRoute));
  ASSERT_EQ(kill(proxy_->pid(), SIGHUP), 0);
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return who(listen_port_, "/x") == "b"; }))
      << proxy_->log();
  auto extra = get(listen_port_, "/extra");
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ(extra->body, "extra\n");
  const std::map<std::string, std::string> good = proxyVersions();
  EXPECT_FALSE(good.empty());

  // A broken edit, then SIGHUP: the error is logged and the previous config keeps serving.
  const std::string broken_routes = routesYaml("b", "{cluster: a}", kExtraRoute) + "  - [\n";
  writeFile(dir_ + "/routes.yaml", broken_routes);
  ASSERT_EQ(kill(proxy_->pid(), SIGHUP), 0);
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return absl::StrContains(proxy_->log(), "reload of");
  })) << proxy_->log();
  EXPECT_THAT(proxy_->log(), HasSubstr("routes.yaml:"));
  // A valid file naming a cluster that does not exist is rejected the same way.
  writeFile(dir_ + "/routes.yaml", routesYaml("nope"));
  ASSERT_EQ(kill(proxy_->pid(), SIGHUP), 0);
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return absl::StrContains(proxy_->log(), "'nope' which does not exist");
  })) << proxy_->log();
  EXPECT_TRUE(proxy_->running());
  EXPECT_EQ(who(listen_port_, "/x"), "b");
  extra = get(listen_port_, "/extra");
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ(extra->body, "extra\n");
  EXPECT_EQ(proxyVersions(), good);
  auto ready = get(admin_port_, "/ready");
  EXPECT_TRUE(ready.ok() && ready->status == 200);
}

}  // namespace
}  // namespace sluice::testing
