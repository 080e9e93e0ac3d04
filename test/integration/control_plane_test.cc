// sluice-cp end to end: a real control plane on loopback, a real gRPC ADS client, and sluicectl.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "sluice/admin/v1/management.grpc.pb.h"
#include "sluice/config/v1/cluster.pb.h"
#include "sluice/config/v1/listener.pb.h"
#include "test/integration/ads_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using discovery::v1::DiscoveryResponse;
using ::testing::HasSubstr;

constexpr char kCp[] = "control-plane/sluice-cp";
constexpr char kCtl[] = "tools/sluicectl/sluicectl";
constexpr char kListenerType[] = "type.googleapis.com/sluice.config.v1.Listener";
constexpr char kRouteType[] = "type.googleapis.com/sluice.config.v1.RouteConfiguration";
constexpr char kClusterType[] = "type.googleapis.com/sluice.config.v1.Cluster";
constexpr char kEndpointType[] = "type.googleapis.com/sluice.config.v1.ClusterLoadAssignment";

constexpr char kClusters[] = R"(kind: Cluster
name: echo
endpoints:
  - {address: 127.0.0.1, port: 9001}
)";

constexpr char kRoutes[] = R"(kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: echo}
)";

constexpr char kListeners[] = R"(kind: Listener
name: public
port: 8080
route_config: main
---
kind: Listener
name: mobile-only
node_groups: [mobile]
port: 8081
route_config: main
)";

// Writes like an editor that saves through a rename.
void saveViaRename(const std::string& dir, const std::string& name, const std::string& content) {
  std::string tmp = absl::StrCat(dir, "/.", name, ".swp");
  writeFile(tmp, content);
  std::rename(tmp.c_str(), absl::StrCat(dir, "/", name).c_str());
}

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = makeTempDir("cp-config");
    writeFile(dir_ + "/clusters.yaml", kClusters);
    writeFile(dir_ + "/routes.yaml", kRoutes);
    writeFile(dir_ + "/listeners.yaml", kListeners);
    start({});
  }

  void start(std::vector<std::string> extra) {
    xds_port_ = freePort();
    mgmt_port_ = freePort();
    admin_port_ = freePort();
    std::vector<std::string> args = {"--config-dir",   dir_,
                                     "--xds-listen",   absl::StrCat("127.0.0.1:", xds_port_),
                                     "--mgmt-listen",  absl::StrCat("127.0.0.1:", mgmt_port_),
                                     "--admin-listen", absl::StrCat("127.0.0.1:", admin_port_),
                                     "--debounce",     "50ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    cp_ = std::make_unique<Process>(kCp, args, "sluice-cp");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
      return !httpGet(admin_port_, "/metrics").empty();
    })) << cp_->log();
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
      return ctl({"status"}).exit_code == 0 || !extra.empty();
    })) << cp_->log();
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", absl::StrCat("127.0.0.1:", mgmt_port_)});
    return run(kCtl, args);
  }

  admin::v1::StatusResponse status() {
    RunResult r = ctl({"status", "-o", "json"});
    admin::v1::StatusResponse s;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &s).ok()) << r.out;
    return s;
  }

  // The status of `type_url` for proxy `node`, or an empty one.
  admin::v1::TypeStatus typeStatus(const std::string& node, const std::string& type_url) {
    admin::v1::StatusResponse s = status();
    for (const auto& p : s.proxies()) {
      if (p.node_id() != node) continue;
      for (const auto& t : p.types()) {
        if (t.type_url() == type_url) return t;
      }
    }
    return {};
  }

  double metric(const std::string& line_prefix) {
    std::string text = httpGet(admin_port_, "/metrics");
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (absl::StartsWith(line, line_prefix + " ")) {
        return std::stod(std::string(line.substr(line_prefix.size() + 1)));
      }
    }
    return -1;
  }

  std::string xds() const { return absl::StrCat("127.0.0.1:", xds_port_); }

  // Subscribes to all four types and returns the first response of each, ACKed.
  std::map<std::string, DiscoveryResponse> subscribeAll(AdsClient& client) {
    std::map<std::string, DiscoveryResponse> got;
    for (const char* type : {kClusterType, kEndpointType, kListenerType, kRouteType}) {
      EXPECT_TRUE(client.subscribe(type));
    }
    for (int i = 0; i < 4; ++i) {
      auto r = client.next(absl::Seconds(10));
      if (!r.has_value()) {
        ADD_FAILURE() << "missing response " << i;
        break;
      }
      got[r->type_url()] = *r;
      EXPECT_TRUE(client.ack(*r));
    }
    return got;
  }

  std::string dir_;
  int xds_port_ = 0, mgmt_port_ = 0, admin_port_ = 0;
  std::unique_ptr<Process> cp_;
};

TEST_F(ControlPlaneTest, ServesSnapshotAndTracksAcks) {
  AdsClient client(xds(), "proxy-1", "web");
  auto got = subscribeAll(client);
  ASSERT_EQ(got.size(), 4u);
  // node_groups: [mobile] keeps "mobile-only" from the web group.
  const DiscoveryResponse& listeners = got[kListenerType];
  ASSERT_EQ(listeners.resources_size(), 1);
  config::v1::Listener l;
  ASSERT_TRUE(listeners.resources(0).UnpackTo(&l));
  EXPECT_EQ(l.name(), "public");
  EXPECT_EQ(got[kClusterType].resources_size(), 1);
  EXPECT_EQ(got[kEndpointType].resources_size(), 0);
  EXPECT_FALSE(listeners.version_info().empty());
  EXPECT_FALSE(listeners.nonce().empty());

  ASSERT_TRUE(waitFor(absl::Seconds(5), [&] {
    return typeStatus("proxy-1", kListenerType).state() == admin::v1::TypeStatus::ACKED;
  }));
  admin::v1::TypeStatus ts = typeStatus("proxy-1", kListenerType);
  EXPECT_EQ(ts.version_acked(), listeners.version_info());
  EXPECT_EQ(metric("sluice_cp_connected_proxies"), 1);
  EXPECT_GE(metric("sluice_cp_xds_ack_total{type=\"Listener\"}"), 1);

  RunResult text = ctl({"status"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_THAT(text.out, HasSubstr("proxy-1"));
  EXPECT_THAT(text.out, HasSubstr("web"));
  EXPECT_THAT(text.out, HasSubstr("ACKED " + listeners.version_info().substr(0, 8)));

  // A mobile proxy gets both listeners.
  AdsClient mobile(xds(), "proxy-m", "mobile");
  ASSERT_TRUE(mobile.subscribe(kListenerType));
  auto ml = mobile.next(absl::Seconds(10));
  ASSERT_TRUE(ml.has_value());
  EXPECT_EQ(ml->resources_size(), 2);
  EXPECT_NE(ml->version_info(), listeners.version_info());
}

TEST_F(ControlPlaneTest, EditPublishesOnlyChangedTypes) {
  AdsClient client(xds(), "proxy-1", "web");
  auto got = subscribeAll(client);
  ASSERT_EQ(got.size(), 4u);
  saveViaRename(dir_, "clusters.yaml",
                absl::StrCat(kClusters, "  - {address: 127.0.0.1, port: 9002}\n"));
  auto update = client.next(absl::Seconds(10));
  ASSERT_TRUE(update.has_value()) << cp_->log();
  EXPECT_EQ(update->type_url(), kClusterType);
  EXPECT_NE(update->version_info(), got[kClusterType].version_info());
  config::v1::Cluster c;
  ASSERT_TRUE(update->resources(0).UnpackTo(&c));
  EXPECT_EQ(c.endpoints_size(), 2);
  ASSERT_TRUE(client.ack(*update));
  // Listeners, routes and endpoints did not change: nothing else is sent.
  EXPECT_FALSE(client.next(absl::Milliseconds(800)).has_value());
  EXPECT_EQ(metric("sluice_cp_snapshots_published_total"), 2);
}

TEST_F(ControlPlaneTest, InvalidChangeKeepsServingAndShowsError) {
  AdsClient client(xds(), "proxy-1", "web");
  auto got = subscribeAll(client);
  ASSERT_EQ(got.size(), 4u);
  std::string version = status().config().version();
  writeFile(dir_ + "/bad.yaml",
            "kind: Cluster\nname: broken\nendpoints:\n  - {address: nowhere, port: 80}\n");
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return !status().config().errors().empty(); }));
  EXPECT_FALSE(client.next(absl::Milliseconds(500)).has_value());
  admin::v1::StatusResponse s = status();
  EXPECT_EQ(s.config().version(), version);
  ASSERT_GE(s.config().errors_size(), 1);
  EXPECT_EQ(s.config().errors(0).file(), "bad.yaml");
  EXPECT_EQ(s.config().errors(0).line(), 4);
  EXPECT_EQ(s.config().errors(0).field(), "endpoints[0].address");
  EXPECT_EQ(metric("sluice_cp_config_valid"), 0);
  EXPECT_GE(metric("sluice_cp_snapshots_rejected_total"), 1);
  RunResult text = ctl({"status"});
  EXPECT_THAT(text.out, HasSubstr("bad.yaml:4: Cluster 'broken': field 'endpoints[0].address'"));
  EXPECT_THAT(cp_->log(), HasSubstr("bad.yaml:4"));

  // Fixing the directory clears the error without a new version.
  std::remove((dir_ + "/bad.yaml").c_str());
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return status().config().errors().empty(); }));
  EXPECT_EQ(status().config().version(), version);
  EXPECT_EQ(metric("sluice_cp_config_valid"), 1);
}

TEST_F(ControlPlaneTest, NackIsVisibleInStatus) {
  AdsClient client(xds(), "proxy-1", "web");
  auto got = subscribeAll(client);
  ASSERT_EQ(got.size(), 4u);
  saveViaRename(dir_, "listeners.yaml",
                "kind: Listener\nname: public\nport: 9090\nroute_config: main\n");
  auto update = client.next(absl::Seconds(10));
  ASSERT_TRUE(update.has_value());
  ASSERT_EQ(update->type_url(), kListenerType);
  ASSERT_TRUE(client.nack(*update, got[kListenerType].version_info(),
                          "listener 'public': cannot bind 0.0.0.0:9090: Address already in use"));
  ASSERT_TRUE(waitFor(absl::Seconds(5), [&] {
    return typeStatus("proxy-1", kListenerType).state() == admin::v1::TypeStatus::NACKED;
  }));
  admin::v1::TypeStatus ts = typeStatus("proxy-1", kListenerType);
  EXPECT_THAT(ts.last_nack(), HasSubstr("Address already in use"));
  EXPECT_EQ(ts.version_sent(), update->version_info());
  EXPECT_EQ(ts.version_acked(), got[kListenerType].version_info());
  EXPECT_EQ(metric("sluice_cp_xds_nack_total{type=\"Listener\"}"), 1);
  RunResult text = ctl({"status"});
  EXPECT_THAT(text.out, HasSubstr("NACKED"));
  EXPECT_THAT(text.out, HasSubstr("cannot bind 0.0.0.0:9090"));
  // The same version is not sent again after a NACK.
  EXPECT_FALSE(client.next(absl::Milliseconds(500)).has_value());
}

TEST_F(ControlPlaneTest, ReconnectWithCurrentVersionGetsNothing) {
  std::map<std::string, DiscoveryResponse> got;
  {
    AdsClient first(xds(), "proxy-1", "web");
    got = subscribeAll(first);
  }
  ASSERT_EQ(got.size(), 4u);
  AdsClient again(xds(), "proxy-1", "web");
  ASSERT_TRUE(again.subscribe(kListenerType, got[kListenerType].version_info()));
  ASSERT_TRUE(again.subscribe(kClusterType, "stale-version"));
  auto r = again.next(absl::Seconds(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type_url(), kClusterType);
  EXPECT_FALSE(again.next(absl::Milliseconds(500)).has_value());
}

TEST_F(ControlPlaneTest, NonsenseOnTheStreamClosesOnlyThatStream) {
  {
    AdsClient nameless(xds(), "", "web");
    ASSERT_TRUE(nameless.subscribe(kListenerType));
    grpc::Status s = nameless.finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("node.id"));
  }
  {
    AdsClient unknown(xds(), "proxy-x", "web");
    ASSERT_TRUE(unknown.subscribe("type.googleapis.com/not.a.Type"));
    grpc::Status s = unknown.finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("unknown type_url"));
  }
  {
    // Bytes that are not a protobuf message at all, through the generic API.
    auto channel = grpc::CreateChannel(xds(), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto call = stub.PrepareCall(
        &context, "/sluice.discovery.v1.AggregatedDiscoveryService/StreamResources", &cq);
    void* tag;
    bool ok;
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
    const char garbage[] = "\xff\xff\xff\xff\xff\x0f garbage";
    grpc::Slice slice(garbage, sizeof garbage - 1);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, reinterpret_cast<void*>(2));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(3));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }
  // The control plane is still serving.
  AdsClient client(xds(), "proxy-1", "web");
  EXPECT_EQ(subscribeAll(client).size(), 4u);
  EXPECT_TRUE(cp_->running());
}

TEST_F(ControlPlaneTest, SluicectlValidateApplyGet) {
  AdsClient client(xds(), "proxy-1", "web");
  auto got = subscribeAll(client);
  ASSERT_EQ(got.size(), 4u);
  std::string work = makeTempDir("ctl");

  // validate: offline, with file and field in the message.
  writeFile(work + "/bad.yaml", "kind: Listener\nname: x\nport: 70000\nroute_config: main\n");
  RunResult v = run(kCtl, {"validate", work + "/bad.yaml"});
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_THAT(v.out, HasSubstr("bad.yaml:3: Listener 'x': field 'port'"));

  // apply of a file that only makes sense with the served directory: route to a new cluster.
  writeFile(work + "/extra.yaml",
            "kind: Cluster\nname: extra\nendpoints: [{address: 127.0.0.1, port: 9100}]\n");
  RunResult a = ctl({"apply", "-f", work + "/extra.yaml"});
  EXPECT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("applied"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/extra.yaml"));
  auto update = client.next(absl::Seconds(10));
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ(update->type_url(), kClusterType);
  EXPECT_EQ(update->resources_size(), 2);
  EXPECT_EQ(update->version_info(), update->version_info());
  std::string served = status().config().version();
  EXPECT_THAT(a.out, HasSubstr(served));

  // Applying the same again writes nothing.
  RunResult same = ctl({"apply", "-f", work + "/extra.yaml"});
  EXPECT_EQ(same.exit_code, 0);
  EXPECT_THAT(same.out, HasSubstr("unchanged"));

  // An invalid apply is rejected and writes nothing.
  writeFile(work + "/routes2.yaml",
            "kind: RouteConfiguration\nname: second\nvirtual_hosts:\n  - name: v\n    domains: "
            "[a.example]\n"
            "    routes:\n      - match: {prefix: /}\n        route: {cluster: nope}\n");
  RunResult bad = ctl({"apply", "-f", work + "/routes2.yaml"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.out, HasSubstr("routes2.yaml:8: RouteConfiguration 'second'"));
  EXPECT_THAT(bad.out, HasSubstr("'nope' which does not exist"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/routes2.yaml"));
  EXPECT_EQ(status().config().version(), served);

  // get: text, json and yaml; the yaml validates and re-applies unchanged.
  RunResult text = ctl({"get", "clusters"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_THAT(text.out, HasSubstr("extra"));
  RunResult json = ctl({"get", "listeners", "-o", "json"});
  admin::v1::GetResponse gr;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &gr).ok()) << json.out;
  ASSERT_EQ(gr.resources_size(), 2);
  EXPECT_EQ(gr.resources(0).listener().name(), "public");
  RunResult web = ctl({"get", "listeners", "--group", "web", "-o", "json"});
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(web.out, &gr).ok());
  EXPECT_EQ(gr.resources_size(), 1);
  RunResult yaml = ctl({"get", "all", "-o", "yaml"});
  EXPECT_EQ(yaml.exit_code, 0);
  std::string dump = makeTempDir("dump");
  writeFile(dump + "/all.yaml", yaml.out);
  RunResult revalidate = run(kCtl, {"validate", dump});
  EXPECT_EQ(revalidate.exit_code, 0) << revalidate.out << yaml.out;

  RunResult history = ctl({"history"});
  EXPECT_EQ(history.exit_code, 0);
  EXPECT_THAT(history.out, HasSubstr(served));

  // Usage and connection errors exit 2.
  EXPECT_EQ(ctl({"get", "widgets"}).exit_code, 2);
  EXPECT_EQ(run(kCtl, {"--server", "127.0.0.1:1", "--timeout", "2s", "status"}).exit_code, 2);
}

TEST_F(ControlPlaneTest, SurvivesBadDirectories) {
  std::string version = status().config().version();
  // A 50 MB file is refused by size, not read.
  {
    std::string big(50 << 20, '#');
    writeFile(dir_ + "/huge.yaml", big);
  }
  // Writing 50 MB takes a while on a loaded machine: the bound is generous.
  ASSERT_TRUE(waitFor(absl::Seconds(60), [&] {
    auto s = status();
    return s.config().errors_size() > 0 && s.config().errors(0).file() == "huge.yaml";
  }));
  EXPECT_THAT(status().config().errors(0).message(), HasSubstr("50 MiB"));
  std::remove((dir_ + "/huge.yaml").c_str());
  // Binary garbage.
  writeFile(dir_ + "/garbage.yaml", std::string("\x7f"
                                                "ELF\x02\x01\x00\x00garbage",
                                                16));
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
    auto s = status();
    return s.config().errors_size() > 0 && s.config().errors(0).file() == "garbage.yaml";
  }));
  std::remove((dir_ + "/garbage.yaml").c_str());
  // Unreadable file (skipped as root, who can read anything).
  if (geteuid() != 0) {
    writeFile(dir_ + "/secret.yaml", kClusters);
    chmod((dir_ + "/secret.yaml").c_str(), 0);
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return status().config().errors_size() > 0; }));
    std::remove((dir_ + "/secret.yaml").c_str());
  }
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return status().config().errors().empty(); }));
  // The whole directory deleted, then restored.
  std::filesystem::rename(dir_, dir_ + ".moved");
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
    auto s = status();
    return s.config().errors_size() > 0 &&
           absl::StrContains(s.config().errors(0).message(), "does not exist");
  }));
  EXPECT_EQ(status().config().version(), version);
  std::filesystem::rename(dir_ + ".moved", dir_);
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return status().config().errors().empty(); }))
      << cp_->log();
  EXPECT_TRUE(cp_->running());
  EXPECT_EQ(status().config().version(), version);
}

TEST(ControlPlaneTokenTest, ManagementRequiresToken) {
  std::string dir = makeTempDir("cp-token");
  writeFile(dir + "/c.yaml", kClusters);
  writeFile(dir + "/token", "s3cret\n");
  int mgmt = freePort();
  Process cp(kCp,
             {"--config-dir", dir, "--xds-listen", absl::StrCat("127.0.0.1:", freePort()),
              "--mgmt-listen", absl::StrCat("127.0.0.1:", mgmt), "--admin-listen",
              absl::StrCat("127.0.0.1:", freePort()), "--token-file", dir + "/token"},
             "sluice-cp-token");
  std::string server = absl::StrCat("127.0.0.1:", mgmt);
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
    return run(kCtl, {"--server", server, "--token", "s3cret", "status"}).exit_code == 0;
  })) << cp.log();
  RunResult denied = run(kCtl, {"--server", server, "status"});
  EXPECT_EQ(denied.exit_code, 2);
  EXPECT_THAT(denied.err, HasSubstr("requires a token"));
  EXPECT_EQ(run(kCtl, {"--server", server, "--token", "wrong", "status"}).exit_code, 2);
  // The token never shows up in the log.
  EXPECT_THAT(cp.log(), ::testing::Not(HasSubstr("s3cret")));
}

TEST(QuickstartTest, ExampleValidates) {
  RunResult r = run(kCtl, {"validate", "examples/quickstart"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("valid: 3 files"));
}

TEST(ControlPlaneSignalTest, SigtermExitsCleanly) {
  std::string dir = makeTempDir("cp-sig");
  writeFile(dir + "/c.yaml", kClusters);
  int admin = freePort();
  Process cp(
      kCp,
      {"--config-dir", dir, "--xds-listen", absl::StrCat("127.0.0.1:", freePort()), "--mgmt-listen",
       absl::StrCat("127.0.0.1:", freePort()), "--admin-listen", absl::StrCat("127.0.0.1:", admin)},
      "sluice-cp-sig");
  ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return !httpGet(admin, "/metrics").empty(); }));
  int status = cp.stop(SIGTERM);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace sluice::testing
