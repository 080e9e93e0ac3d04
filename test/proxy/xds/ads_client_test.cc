#include "proxy/xds/ads_client.h"

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "sluice/discovery/v1/ads.grpc.pb.h"

namespace sluice::xds {
namespace {

using discovery::v1::AggregatedDiscoveryService;
using discovery::v1::DiscoveryRequest;
using discovery::v1::DiscoveryResponse;

// Every wait in these tests is bounded by this; it only matters when a test fails.
constexpr absl::Duration kWait = absl::Seconds(10);

std::string typeUrl(config::Kind kind) { return std::string(config::kindInfo(kind).type_url); }

// A control plane the test drives: records every request, sends what the test tells it to on
// the current stream.
class FakeAds final : public AggregatedDiscoveryService::Service {
 public:
  grpc::Status StreamResources(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<DiscoveryResponse, DiscoveryRequest>* stream) override {
    {
      absl::MutexLock lock(&mu_);
      current_ = stream;
      ++streams_;
    }
    DiscoveryRequest request;
    while (stream->Read(&request)) {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
    }
    absl::MutexLock lock(&mu_);  // waits for a send() in progress
    if (current_ == stream) current_ = nullptr;
    ended_ = true;
    return grpc::Status::OK;
  }

  bool send(const DiscoveryResponse& response) {
    absl::MutexLock lock(&mu_);
    return current_ != nullptr && current_->Write(response);
  }

  std::optional<DiscoveryRequest> next() {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !requests_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), kWait)) return std::nullopt;
    DiscoveryRequest request = std::move(requests_.front());
    requests_.pop_front();
    return request;
  }

  // The four subscriptions a stream starts with.
  std::vector<DiscoveryRequest> subscriptions() {
    std::vector<DiscoveryRequest> out;
    for (int k = 0; k < config::kKindCount; ++k) {
      std::optional<DiscoveryRequest> request = next();
      if (!request) break;
      out.push_back(*request);
    }
    return out;
  }

  bool waitStreamEnded() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&ended_), kWait);
  }

  int streams() {
    absl::MutexLock lock(&mu_);
    return streams_;
  }

 private:
  absl::Mutex mu_;
  grpc::ServerReaderWriter<DiscoveryResponse, DiscoveryRequest>* current_ ABSL_GUARDED_BY(mu_) =
      nullptr;
  std::deque<DiscoveryRequest> requests_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

// A gRPC server on 127.0.0.1 serving a FakeAds; port 0 picks a free port.
class TestServer {
 public:
  explicit TestServer(int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() { shutdown(); }

  // Ends every stream at once, as a crashing control plane would.
  void shutdown() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }

  bool ok() const { return server_ != nullptr && port_ != 0; }
  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  FakeAds& fake() { return fake_; }

 private:
  FakeAds fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// What the client's callbacks saw. After `closed`, any callback is a violation.
class Recorder {
 public:
  void onUpdate(Update update) {
    if (closed_) violations_++;
    absl::MutexLock lock(&mu_);
    updates_.push_back(std::move(update));
  }
  void onState(bool connected) {
    if (closed_) violations_++;
    absl::MutexLock lock(&mu_);
    states_.push_back(connected);
  }

  std::optional<Update> nextUpdate() {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !updates_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), kWait)) return std::nullopt;
    Update update = std::move(updates_.front());
    updates_.pop_front();
    return update;
  }

  // Waits until `n` state changes were reported; returns them.
  std::vector<bool> waitStates(size_t n) {
    absl::MutexLock lock(&mu_);
    auto ready = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return states_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), kWait);
    return states_;
  }

  size_t pendingUpdates() {
    absl::MutexLock lock(&mu_);
    return updates_.size();
  }

  void close() { closed_ = true; }
  int violations() const { return violations_; }

 private:
  absl::Mutex mu_;
  std::deque<Update> updates_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> states_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> closed_{false};
  std::atomic<int> violations_{0};
};

google::protobuf::Any resource(const std::string& type_url, const std::string& value) {
  google::protobuf::Any any;
  any.set_type_url(type_url);
  any.set_value(value);
  return any;
}

DiscoveryResponse response(config::Kind kind, const std::string& version, const std::string& nonce,
                           int resources = 1) {
  DiscoveryResponse out;
  out.set_type_url(typeUrl(kind));
  out.set_version_info(version);
  out.set_nonce(nonce);
  for (int i = 0; i < resources; ++i) {
    *out.add_resources() = resource(typeUrl(kind), absl::StrCat("resource-", i));
  }
  return out;
}

class AdsClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_->ok()); }

  void TearDown() override {
    if (client_ != nullptr) client_->stop();
    recorder_.close();
    client_.reset();
    server_.reset();
    EXPECT_EQ(recorder_.violations(), 0) << "a callback ran after stop() returned";
  }

  AdsClientOptions options() {
    AdsClientOptions options;
    options.target = server_->address();
    options.node_id = "proxy-1";
    options.node_group = "web";
    options.user_agent = "sluice/test";
    options.initial_backoff = absl::Milliseconds(10);
    options.max_backoff = absl::Milliseconds(100);
    return options;
  }

  void startClient(AdsClientOptions options) {
    client_ = AdsClient::create(
        std::move(options), [this](Update update) { recorder_.onUpdate(std::move(update)); },
        [this](bool connected) { recorder_.onState(connected); });
    client_->start();
  }

  // Starts the client and consumes its first four subscriptions.
  void connect() {
    startClient(options());
    ASSERT_EQ(server_->fake().subscriptions().size(), config::kKindCount);
    ASSERT_EQ(recorder_.waitStates(1), std::vector<bool>{true});
  }

  // Delivers `sent` and returns the update it became.
  Update deliver(const DiscoveryResponse& sent) {
    EXPECT_TRUE(server_->fake().send(sent));
    std::optional<Update> update = recorder_.nextUpdate();
    EXPECT_TRUE(update.has_value());
    return update.value_or(Update{});
  }

  // Ends the server's streams, waits for the client to notice, and listens again on the port.
  // The client must be connected (its on_state(true) seen).
  void restartServer() {
    const int port = server_->port();
    const size_t before = recorder_.waitStates(0).size();
    server_->shutdown();
    std::vector<bool> states = recorder_.waitStates(before + 1);
    ASSERT_EQ(states.size(), before + 1);
    ASSERT_FALSE(states.back());
    server_ = std::make_unique<TestServer>(port);
    ASSERT_TRUE(server_->ok()) << "port " << port << " could not be bound again";
  }

  Recorder recorder_;
  std::unique_ptr<TestServer> server_ = std::make_unique<TestServer>();
  std::unique_ptr<AdsClient> client_;
};

TEST_F(AdsClientTest, SubscribesToEveryTypeWithNodeOnFirstRequest) {
  startClient(options());
  std::vector<DiscoveryRequest> subscriptions = server_->fake().subscriptions();
  ASSERT_EQ(subscriptions.size(), config::kKindCount);
  for (int k = 0; k < config::kKindCount; ++k) {
    const DiscoveryRequest& request = subscriptions[k];
    EXPECT_EQ(request.type_url(), typeUrl(static_cast<config::Kind>(k)));
    EXPECT_EQ(request.version_info(), "");
    EXPECT_EQ(request.response_nonce(), "");
    EXPECT_FALSE(request.has_error_detail());
    EXPECT_EQ(request.has_node(), k == 0);
  }
  EXPECT_EQ(subscriptions[0].node().id(), "proxy-1");
  EXPECT_EQ(subscriptions[0].node().group(), "web");
  EXPECT_EQ(subscriptions[0].node().user_agent(), "sluice/test");
  EXPECT_EQ(recorder_.waitStates(1), std::vector<bool>{true});
}

TEST_F(AdsClientTest, DeliversResponsesAsUpdates) {
  connect();
  Update update = deliver(response(config::Kind::kRouteConfiguration, "v1", "n1", 2));
  EXPECT_EQ(update.kind, config::Kind::kRouteConfiguration);
  EXPECT_EQ(update.version, "v1");
  EXPECT_EQ(update.nonce, "n1");
  EXPECT_EQ(update.stream_id, 1u);
  ASSERT_EQ(update.resources.size(), 2u);
  EXPECT_EQ(update.resources[0].type_url(), typeUrl(config::Kind::kRouteConfiguration));
  EXPECT_EQ(update.resources[0].value(), "resource-0");
  EXPECT_EQ(update.resources[1].value(), "resource-1");
}

TEST_F(AdsClientTest, IgnoresUnknownTypes) {
  connect();
  DiscoveryResponse unknown = response(config::Kind::kCluster, "v1", "n1");
  unknown.set_type_url("type.googleapis.com/sluice.config.v1.Secret");
  ASSERT_TRUE(server_->fake().send(unknown));
  // Responses arrive in order: once the next one is seen, the unknown one was skipped.
  Update update = deliver(response(config::Kind::kListener, "v2", "n2"));
  EXPECT_EQ(update.kind, config::Kind::kListener);
  EXPECT_EQ(update.nonce, "n2");
  EXPECT_EQ(recorder_.pendingUpdates(), 0u);
}

TEST_F(AdsClientTest, AckSendsVersionAndNonce) {
  connect();
  Update update = deliver(response(config::Kind::kCluster, "v1", "n1"));
  client_->ack(update);
  std::optional<DiscoveryRequest> ack = server_->fake().next();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->type_url(), typeUrl(config::Kind::kCluster));
  EXPECT_EQ(ack->version_info(), "v1");
  EXPECT_EQ(ack->response_nonce(), "n1");
  EXPECT_FALSE(ack->has_error_detail());
}

TEST_F(AdsClientTest, NackSendsErrorAndRunningVersion) {
  connect();
  client_->ack(deliver(response(config::Kind::kListener, "v1", "n1")));
  ASSERT_TRUE(server_->fake().next().has_value());

  Update bad = deliver(response(config::Kind::kListener, "v2", "n2"));
  client_->nack(bad, "v1", "listener 'main' names route 'api' which does not exist");
  std::optional<DiscoveryRequest> nack = server_->fake().next();
  ASSERT_TRUE(nack.has_value());
  EXPECT_EQ(nack->type_url(), typeUrl(config::Kind::kListener));
  EXPECT_EQ(nack->version_info(), "v1");
  EXPECT_EQ(nack->response_nonce(), "n2");
  ASSERT_TRUE(nack->has_error_detail());
  EXPECT_EQ(nack->error_detail().code(), 3);
  EXPECT_EQ(nack->error_detail().message(),
            "listener 'main' names route 'api' which does not exist");
}

TEST_F(AdsClientTest, ReconnectsAndResubscribesWithAckedVersions) {
  connect();
  client_->ack(deliver(response(config::Kind::kCluster, "c1", "n1")));
  Update rejected = deliver(response(config::Kind::kRouteConfiguration, "r2", "n2"));
  client_->nack(rejected, "", "bad route");
  ASSERT_TRUE(server_->fake().next().has_value());
  ASSERT_TRUE(server_->fake().next().has_value());

  restartServer();
  std::vector<DiscoveryRequest> subscriptions = server_->fake().subscriptions();
  ASSERT_EQ(subscriptions.size(), config::kKindCount);
  EXPECT_TRUE(subscriptions[0].has_node());
  EXPECT_EQ(subscriptions[0].node().id(), "proxy-1");
  EXPECT_EQ(subscriptions[0].type_url(), typeUrl(config::Kind::kCluster));
  EXPECT_EQ(subscriptions[0].version_info(), "c1");
  for (int k = 1; k < config::kKindCount; ++k) {
    EXPECT_EQ(subscriptions[k].type_url(), typeUrl(static_cast<config::Kind>(k)));
    EXPECT_EQ(subscriptions[k].version_info(), "") << subscriptions[k].type_url();
    EXPECT_EQ(subscriptions[k].response_nonce(), "");
  }
  EXPECT_EQ(recorder_.waitStates(3), (std::vector<bool>{true, false, true}));

  Update update = deliver(response(config::Kind::kCluster, "c2", "n1"));
  EXPECT_EQ(update.stream_id, 2u);
}

TEST_F(AdsClientTest, DropsAnswersForAnEndedStream) {
  connect();
  Update old = deliver(response(config::Kind::kCluster, "c1", "n1"));
  restartServer();
  ASSERT_EQ(server_->fake().subscriptions().size(), config::kKindCount);
  ASSERT_EQ(recorder_.waitStates(3), (std::vector<bool>{true, false, true}));

  client_->ack(old);
  client_->nack(old, "", "too late");
  Update current = deliver(response(config::Kind::kListener, "l1", "n7"));
  EXPECT_NE(current.stream_id, old.stream_id);
  client_->ack(current);
  // The stream is ordered: had the old answers been sent, they would come first.
  std::optional<DiscoveryRequest> next = server_->fake().next();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->response_nonce(), "n7");
  EXPECT_EQ(next->version_info(), "l1");
}

TEST_F(AdsClientTest, StaleAckStillReportsTheRunningVersionOnReconnect) {
  connect();
  Update old = deliver(response(config::Kind::kCluster, "c1", "n1"));
  restartServer();
  ASSERT_EQ(server_->fake().subscriptions().size(), config::kKindCount);
  ASSERT_EQ(recorder_.waitStates(3), (std::vector<bool>{true, false, true}));
  client_->ack(old);  // applied after its stream ended

  restartServer();
  ASSERT_EQ(recorder_.waitStates(4), (std::vector<bool>{true, false, true, false}));
  std::vector<DiscoveryRequest> subscriptions = server_->fake().subscriptions();
  ASSERT_EQ(subscriptions.size(), config::kKindCount);
  EXPECT_EQ(subscriptions[0].version_info(), "c1");
}

TEST_F(AdsClientTest, StopWhileConnectedEndsTheStream) {
  connect();
  client_->stop();
  recorder_.close();
  EXPECT_TRUE(server_->fake().waitStreamEnded());
  EXPECT_FALSE(server_->fake().send(response(config::Kind::kCluster, "v1", "n1")));
  client_->stop();  // idempotent
}

TEST_F(AdsClientTest, StopWhileBackingOff) {
  AdsClientOptions slow = options();
  slow.initial_backoff = absl::Hours(1);
  slow.max_backoff = absl::Hours(1);
  startClient(slow);
  ASSERT_EQ(server_->fake().subscriptions().size(), config::kKindCount);
  ASSERT_EQ(recorder_.waitStates(1), std::vector<bool>{true});
  server_->shutdown();
  // on_state(false) runs just before the hour-long wait; stop() must cut it short.
  ASSERT_EQ(recorder_.waitStates(2), (std::vector<bool>{true, false}));
  client_->stop();
  recorder_.close();
}

TEST_F(AdsClientTest, StopWhileNoServerListens) {
  AdsClientOptions options = this->options();
  options.initial_backoff = absl::Hours(1);  // stop() interrupts the connect or this wait
  options.max_backoff = absl::Hours(1);
  server_->shutdown();  // nothing listens on the port any more: every attempt is refused
  startClient(options);
  client_->stop();
  recorder_.close();
  EXPECT_EQ(recorder_.waitStates(0), std::vector<bool>{});
}

TEST_F(AdsClientTest, DestructorStopsAndStopBeforeStartIsHarmless) {
  connect();
  recorder_.close();  // the destructor stops without calling back
  client_.reset();
  EXPECT_TRUE(server_->fake().waitStreamEnded());

  std::unique_ptr<AdsClient> never = AdsClient::create(
      options(), [this](Update update) { recorder_.onUpdate(std::move(update)); },
      [this](bool connected) { recorder_.onState(connected); });
  never->stop();
  never->start();  // after stop(): does nothing
}

}  // namespace
}  // namespace sluice::xds
