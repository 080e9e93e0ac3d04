// The subscription: per-type updates assembled into validated generations, ACK/NACK decisions,
// holding updates whose cross-kind reference another type resolves, and its metrics.
#include "proxy/xds/subscription.h"

#include <event2/event.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "sluice/config/v1/cluster.pb.h"
#include "sluice/config/v1/listener.pb.h"
#include "sluice/config/v1/route.pb.h"

namespace sluice::xds {
namespace {

namespace v1 = config::v1;
using config::Kind;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kHold = absl::Milliseconds(50);

template <class T>
T parse(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

google::protobuf::Any pack(const google::protobuf::Message& message) {
  google::protobuf::Any any;
  any.PackFrom(message);
  return any;
}

Update update(Kind kind, const std::string& version, std::vector<google::protobuf::Any> resources) {
  Update u;
  u.kind = kind;
  u.version = version;
  u.nonce = absl::StrCat("nonce-", config::kindInfo(kind).name, "-", version);
  u.resources = std::move(resources);
  u.stream_id = 1;
  return u;
}

// The running config's resources: a static cluster "web", an EDS cluster "api" with its
// assignment, a route table naming both, and a listener naming the route table.
google::protobuf::Any webCluster() {
  return pack(parse<v1::Cluster>(R"pb(
    name: "web"
    type: STATIC
    endpoints { address: "127.0.0.1" port: 8080 }
  )pb"));
}
google::protobuf::Any apiCluster() {
  return pack(parse<v1::Cluster>(R"pb(name: "api" type: EDS)pb"));
}
google::protobuf::Any apiAssignment() {
  return pack(parse<v1::ClusterLoadAssignment>(R"pb(
    cluster_name: "api"
    endpoints { address: "127.0.0.1" port: 9000 }
  )pb"));
}
// Routes /api to "api" and, when `with_web`, everything else to "web".
google::protobuf::Any mainRoutes(bool with_web = true) {
  auto routes = parse<v1::RouteConfiguration>(R"pb(
    name: "main"
    virtual_hosts {
      name: "all"
      domains: "*"
      routes {
        match { prefix: "/api" }
        route { cluster: "api" }
      }
      routes {
        match { prefix: "/" }
        route { cluster: "web" }
      }
    }
  )pb");
  if (!with_web) routes.mutable_virtual_hosts(0)->mutable_routes()->RemoveLast();
  return pack(routes);
}
google::protobuf::Any httpListener(uint32_t port = 10080) {
  v1::Listener l =
      parse<v1::Listener>(R"pb(name: "http" address: "127.0.0.1" route_config: "main")pb");
  l.set_port(port);
  return pack(l);
}

// Records the subscription's answers.
class FakeAnswerer : public Answerer {
 public:
  struct Answer {
    bool ack;
    Kind kind;
    std::string version;  // the update's
    std::string nonce;
    std::string running_version;  // NACK only
    std::string message;          // NACK only

    // "ACK Cluster c1" / "NACK Cluster c2": compact for ElementsAre.
    std::string summary() const {
      return absl::StrCat(ack ? "ACK " : "NACK ", config::kindInfo(kind).name, " ", version);
    }
  };

  void ack(const Update& u) override { answers.push_back({true, u.kind, u.version, u.nonce}); }
  void nack(const Update& u, const std::string& running_version,
            const std::string& message) override {
    answers.push_back({false, u.kind, u.version, u.nonce, running_version, message});
  }

  std::vector<std::string> summaries() const {
    std::vector<std::string> out;
    for (const Answer& a : answers) out.push_back(a.summary());
    return out;
  }

  std::vector<Answer> answers;
};

struct ApplyCall {
  size_t clusters, assignments, route_configs, listeners;
  std::vector<std::string> cluster_names;
  Versions versions;
};

class SubscriptionTest : public ::testing::Test {
 protected:
  SubscriptionTest()
      : base_(event_base_new()),
        store_(stats::Store::create(1)),
        subscription_(std::make_unique<Subscription>(
            base_, &answerer_,
            [this](const config::ConfigSet& c, const Versions& v) {
              ApplyCall call{c.clusters.size(),
                             c.assignments.size(),
                             c.route_configs.size(),
                             c.listeners.size(),
                             {},
                             v};
              for (const auto& cl : c.clusters) call.cluster_names.push_back(cl.resource.name());
              calls_.push_back(std::move(call));
              return apply_status_;
            },
            store_.get(), store_->cells(0), kHold)) {}

  ~SubscriptionTest() override {
    subscription_.reset();
    event_base_free(base_);
  }

  // Sends the first config, one type at a time in the control plane's order.
  void sendInitial() {
    subscription_->onUpdate(update(Kind::kCluster, "c1", {webCluster(), apiCluster()}));
    subscription_->onUpdate(update(Kind::kClusterLoadAssignment, "e1", {apiAssignment()}));
    subscription_->onUpdate(update(Kind::kConsumer, "u1", {}));
    subscription_->onUpdate(update(Kind::kRouteConfiguration, "r1", {mainRoutes()}));
    subscription_->onUpdate(update(Kind::kListener, "l1", {httpListener()}));
    ASSERT_TRUE(subscription_->complete());
    answerer_.answers.clear();
    calls_.clear();
  }

  // Runs the main loop for `d`; the subscription's hold timer fires within it when due.
  void runLoopFor(absl::Duration d) {
    timeval tv = absl::ToTimeval(d);
    event_base_loopexit(base_, &tv);
    event_base_dispatch(base_);
  }

  int64_t counter(const std::string& name, Kind kind) {
    return store_->value(
        store_->counter(name, "", {{"type", std::string(config::kindInfo(kind).name)}}));
  }
  int64_t applied(Kind kind) { return counter("sluice_xds_update_applied_total", kind); }
  int64_t rejected(Kind kind) { return counter("sluice_xds_update_rejected_total", kind); }

  static Versions running() { return {"c1", "e1", "u1", "r1", "l1"}; }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  FakeAnswerer answerer_;
  std::vector<ApplyCall> calls_;
  absl::Status apply_status_;
  std::unique_ptr<Subscription> subscription_;
};

TEST_F(SubscriptionTest, InitialSequenceAppliesAndAcksEachTypeAndCompletesAfterAllFive) {
  EXPECT_FALSE(subscription_->complete());

  subscription_->onUpdate(update(Kind::kCluster, "c1", {webCluster(), apiCluster()}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].clusters, 2u);
  EXPECT_EQ(calls_[0].route_configs, 0u);
  EXPECT_EQ(calls_[0].versions, (Versions{"c1", "", "", "", ""}));
  EXPECT_THAT(answerer_.summaries(), ElementsAre("ACK Cluster c1"));
  EXPECT_EQ(answerer_.answers[0].nonce, "nonce-Cluster-c1");
  EXPECT_FALSE(subscription_->complete());

  subscription_->onUpdate(update(Kind::kClusterLoadAssignment, "e1", {apiAssignment()}));
  EXPECT_FALSE(subscription_->complete());
  subscription_->onUpdate(update(Kind::kConsumer, "u1", {}));
  EXPECT_FALSE(subscription_->complete());
  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r1", {mainRoutes()}));
  EXPECT_FALSE(subscription_->complete());
  subscription_->onUpdate(update(Kind::kListener, "l1", {httpListener()}));
  EXPECT_TRUE(subscription_->complete());

  EXPECT_THAT(answerer_.summaries(),
              ElementsAre("ACK Cluster c1", "ACK ClusterLoadAssignment e1", "ACK Consumer u1",
                          "ACK RouteConfiguration r1", "ACK Listener l1"));
  ASSERT_EQ(calls_.size(), 5u);
  // Each apply gets the whole candidate: the running resources of the other types too.
  const ApplyCall& last = calls_.back();
  EXPECT_EQ(last.clusters, 2u);
  EXPECT_EQ(last.assignments, 1u);
  EXPECT_EQ(last.route_configs, 1u);
  EXPECT_EQ(last.listeners, 1u);
  EXPECT_EQ(last.versions, running());
  EXPECT_EQ(subscription_->versions(), running());
  EXPECT_THAT(subscription_->lastError(), IsEmpty());
}

TEST_F(SubscriptionTest, InvalidRegexIsNackedWithTheValidatorsMessageAndNotApplied) {
  sendInitial();
  subscription_->onUpdate(
      update(Kind::kRouteConfiguration, "r2", {pack(parse<v1::RouteConfiguration>(R"pb(
               name: "main"
               virtual_hosts {
                 name: "all"
                 domains: "*"
                 routes {
                   match { regex: "/users/(" }
                   route { cluster: "web" }
                 }
               }
             )pb"))}));

  EXPECT_THAT(calls_, IsEmpty());
  ASSERT_EQ(answerer_.answers.size(), 1u);
  const auto& nack = answerer_.answers[0];
  EXPECT_EQ(nack.summary(), "NACK RouteConfiguration r2");
  EXPECT_EQ(nack.running_version, "r1");
  EXPECT_THAT(nack.message, HasSubstr("RouteConfiguration 'main'"));
  EXPECT_THAT(nack.message, HasSubstr("virtual_hosts[0].routes[0].match.regex"));
  EXPECT_THAT(nack.message, HasSubstr("invalid RE2 regex '/users/('"));
  EXPECT_EQ(subscription_->lastError(), nack.message);
  EXPECT_EQ(subscription_->versions(), running());

  // The rejected update is gone: the next valid update is applied on the old routes.
  subscription_->onUpdate(update(Kind::kListener, "l2", {httpListener(10081)}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].versions, (Versions{"c1", "e1", "u1", "r1", "l2"}));
  EXPECT_THAT(subscription_->lastError(), IsEmpty());
}

TEST_F(SubscriptionTest, DuplicateNamesAreNacked) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {webCluster(), apiCluster(), webCluster()}));

  EXPECT_THAT(calls_, IsEmpty());
  ASSERT_EQ(answerer_.answers.size(), 1u);
  EXPECT_EQ(answerer_.answers[0].summary(), "NACK Cluster c2");
  EXPECT_EQ(answerer_.answers[0].running_version, "c1");
  EXPECT_THAT(answerer_.answers[0].message, HasSubstr("Cluster name 'web' is already used"));
  EXPECT_EQ(subscription_->versions(), running());
}

TEST_F(SubscriptionTest, ApplyFailureNacksTheTriggerWithItsMessageAndKeepsVersions) {
  sendInitial();
  apply_status_ = absl::UnavailableError("cannot bind 127.0.0.1:80: Permission denied");
  subscription_->onUpdate(update(Kind::kListener, "l2", {httpListener(80)}));

  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].versions, (Versions{"c1", "e1", "u1", "r1", "l2"}));
  ASSERT_EQ(answerer_.answers.size(), 1u);
  EXPECT_EQ(answerer_.answers[0].summary(), "NACK Listener l2");
  EXPECT_EQ(answerer_.answers[0].running_version, "l1");
  EXPECT_EQ(answerer_.answers[0].message, "cannot bind 127.0.0.1:80: Permission denied");
  EXPECT_EQ(subscription_->lastError(), "cannot bind 127.0.0.1:80: Permission denied");
  EXPECT_EQ(subscription_->versions(), running());
  EXPECT_EQ(rejected(Kind::kListener), 1);
  EXPECT_EQ(applied(Kind::kListener), 1);

  // The failed update is not retried with the next one.
  apply_status_ = absl::OkStatus();
  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {mainRoutes()}));
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[1].versions, (Versions{"c1", "e1", "u1", "r2", "l1"}));
  EXPECT_THAT(answerer_.summaries(), ElementsAre("NACK Listener l2", "ACK RouteConfiguration r2"));
}

TEST_F(SubscriptionTest, DanglingReferenceIsHeldUntilTheRouteUpdateResolvesIt) {
  sendInitial();
  // The control plane removes cluster "web" first, then the route naming it.
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  EXPECT_THAT(answerer_.answers, IsEmpty());
  EXPECT_THAT(calls_, IsEmpty());
  EXPECT_EQ(subscription_->versions(), running());

  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {mainRoutes(false)}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_THAT(calls_[0].cluster_names, ElementsAre("api"));
  EXPECT_EQ(calls_[0].versions, (Versions{"c2", "e1", "u1", "r2", "l1"}));
  EXPECT_THAT(answerer_.summaries(), ElementsAre("ACK Cluster c2", "ACK RouteConfiguration r2"));
  EXPECT_EQ(subscription_->versions(), (Versions{"c2", "e1", "u1", "r2", "l1"}));

  // Nothing is left held: the hold timer does not NACK anything later.
  runLoopFor(kHold * 4);
  EXPECT_EQ(answerer_.answers.size(), 2u);
}

TEST_F(SubscriptionTest, RemovingAnEdsClusterHoldsClusterAndAssignmentUntilRoutesFollow) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {webCluster()}));
  subscription_->onUpdate(update(Kind::kClusterLoadAssignment, "e2", {}));
  EXPECT_THAT(answerer_.answers, IsEmpty());
  EXPECT_THAT(calls_, IsEmpty());

  subscription_->onUpdate(
      update(Kind::kRouteConfiguration, "r2", {pack(parse<v1::RouteConfiguration>(R"pb(
               name: "main"
               virtual_hosts {
                 name: "all"
                 domains: "*"
                 routes {
                   match { prefix: "/" }
                   route { cluster: "web" }
                 }
               }
             )pb"))}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].assignments, 0u);
  EXPECT_THAT(answerer_.summaries(), ElementsAre("ACK Cluster c2", "ACK ClusterLoadAssignment e2",
                                                 "ACK RouteConfiguration r2"));
}

TEST_F(SubscriptionTest, HeldUpdateIsNackedWithTheDanglingReferenceAfterTheHoldTimeout) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  EXPECT_THAT(answerer_.answers, IsEmpty());

  runLoopFor(kHold * 6);

  EXPECT_THAT(calls_, IsEmpty());
  ASSERT_EQ(answerer_.answers.size(), 1u);
  const auto& nack = answerer_.answers[0];
  EXPECT_EQ(nack.summary(), "NACK Cluster c2");
  EXPECT_EQ(nack.running_version, "c1");
  EXPECT_THAT(nack.message, HasSubstr("RouteConfiguration 'main'"));
  EXPECT_THAT(nack.message, HasSubstr("names Cluster 'web' which does not exist"));
  EXPECT_EQ(subscription_->lastError(), nack.message);
  EXPECT_EQ(subscription_->versions(), running());
  EXPECT_EQ(rejected(Kind::kCluster), 1);

  // Dropped: a later route update is validated against the running clusters again.
  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {mainRoutes(false)}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_THAT(calls_[0].cluster_names, ElementsAre("web", "api"));
  EXPECT_EQ(calls_[0].versions, (Versions{"c1", "e1", "u1", "r2", "l1"}));
}

TEST_F(SubscriptionTest, HoldTimeoutNacksOnlyTheCulpritAndAppliesUpdatesHeldForCompany) {
  sendInitial();
  // c2 drops 'web', which the routes name: held. l2 is valid on its own, but the candidate
  // with both still dangles, so it waits too.
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  subscription_->onUpdate(update(Kind::kListener, "l2", {httpListener(10081)}));
  EXPECT_THAT(answerer_.answers, IsEmpty());

  runLoopFor(kHold * 6);

  EXPECT_THAT(answerer_.summaries(), ElementsAre("NACK Cluster c2", "ACK Listener l2"));
  EXPECT_THAT(answerer_.answers[0].message, HasSubstr("names Cluster 'web' which does not exist"));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].versions, (Versions{"c1", "e1", "u1", "r1", "l2"}));
  EXPECT_EQ(subscription_->versions(), (Versions{"c1", "e1", "u1", "r1", "l2"}));
}

TEST_F(SubscriptionTest, NewerUpdateOfTheSameTypeReplacesAHeldOne) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  subscription_->onUpdate(update(Kind::kCluster, "c3", {apiCluster()}));
  EXPECT_THAT(answerer_.answers, IsEmpty());

  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {mainRoutes(false)}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].versions, (Versions{"c3", "e1", "u1", "r2", "l1"}));
  // c2 is never answered: the server ignores answers to nonces it has superseded.
  EXPECT_THAT(answerer_.summaries(), ElementsAre("ACK Cluster c3", "ACK RouteConfiguration r2"));
}

TEST_F(SubscriptionTest, NewerValidUpdateReplacingAHeldOneIsAppliedAndCancelsTheHold) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  subscription_->onUpdate(
      update(Kind::kCluster, "c3",
             {webCluster(), apiCluster(),
              pack(parse<v1::Cluster>(R"pb(name: "extra"
                                           endpoints { address: "::1" port: 8081 })pb"))}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_THAT(calls_[0].cluster_names, ElementsAre("web", "api", "extra"));
  EXPECT_THAT(answerer_.summaries(), ElementsAre("ACK Cluster c3"));

  runLoopFor(kHold * 4);
  EXPECT_THAT(answerer_.summaries(), ElementsAre("ACK Cluster c3"));
}

TEST_F(SubscriptionTest, InvalidUpdateWhileAnotherIsHeldIsNackedAndTheHeldOneStays) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  // Drops the reference to "web" but has an error of its own: NACKed at once, not held.
  subscription_->onUpdate(
      update(Kind::kRouteConfiguration, "r2", {pack(parse<v1::RouteConfiguration>(R"pb(
               name: "main"
               virtual_hosts {
                 name: "all"
                 domains: "*"
                 routes {
                   match { prefix: "api" }
                   route { cluster: "api" }
                 }
               }
             )pb"))}));
  ASSERT_EQ(answerer_.answers.size(), 1u);
  EXPECT_EQ(answerer_.answers[0].summary(), "NACK RouteConfiguration r2");
  EXPECT_THAT(answerer_.answers[0].message, HasSubstr("must start with '/'"));
  EXPECT_THAT(calls_, IsEmpty());

  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r3", {mainRoutes(false)}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].versions, (Versions{"c2", "e1", "u1", "r3", "l1"}));
  EXPECT_THAT(answerer_.summaries(), ElementsAre("NACK RouteConfiguration r2", "ACK Cluster c2",
                                                 "ACK RouteConfiguration r3"));
}

TEST_F(SubscriptionTest, ApplyFailureWhileAnotherIsHeldNacksOnlyTheTrigger) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  apply_status_ = absl::InternalError("compile failed");
  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {mainRoutes(false)}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_THAT(answerer_.summaries(), ElementsAre("NACK RouteConfiguration r2"));
  EXPECT_EQ(answerer_.answers[0].message, "compile failed");

  // The cluster update is still held, and its hold still times out.
  runLoopFor(kHold * 6);
  EXPECT_THAT(answerer_.summaries(), ElementsAre("NACK RouteConfiguration r2", "NACK Cluster c2"));
  EXPECT_THAT(answerer_.answers[1].message, HasSubstr("names Cluster 'web' which does not exist"));
  EXPECT_EQ(subscription_->versions(), running());
}

TEST_F(SubscriptionTest, UndecodableResourcesAreNacked) {
  sendInitial();
  // A cluster where a listener belongs.
  subscription_->onUpdate(update(Kind::kListener, "l2", {httpListener(), webCluster()}));
  ASSERT_EQ(answerer_.answers.size(), 1u);
  EXPECT_EQ(answerer_.answers[0].summary(), "NACK Listener l2");
  EXPECT_EQ(answerer_.answers[0].running_version, "l1");
  EXPECT_EQ(answerer_.answers[0].message,
            "Listener resource #1 (type 'type.googleapis.com/sluice.config.v1.Cluster') cannot "
            "be decoded as Listener");

  // The right type URL over bytes that are no protobuf.
  google::protobuf::Any garbage;
  garbage.set_type_url(std::string(config::kindInfo(Kind::kRouteConfiguration).type_url));
  garbage.set_value("\xff\xff\xff\xff");
  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {garbage}));
  ASSERT_EQ(answerer_.answers.size(), 2u);
  EXPECT_EQ(answerer_.answers[1].summary(), "NACK RouteConfiguration r2");
  EXPECT_THAT(answerer_.answers[1].message,
              HasSubstr("RouteConfiguration resource #0 (type "
                        "'type.googleapis.com/sluice.config.v1.RouteConfiguration') cannot be "
                        "decoded"));

  EXPECT_THAT(calls_, IsEmpty());
  EXPECT_EQ(subscription_->versions(), running());
  EXPECT_EQ(rejected(Kind::kListener), 1);
  EXPECT_EQ(rejected(Kind::kRouteConfiguration), 1);
}

TEST_F(SubscriptionTest, DisconnectDropsHeldUpdates) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kCluster, "c2", {apiCluster()}));
  subscription_->onDisconnected();

  // Never answered: the stream it came on is gone.
  runLoopFor(kHold * 4);
  EXPECT_THAT(answerer_.answers, IsEmpty());
  EXPECT_EQ(rejected(Kind::kCluster), 0);

  // On the new stream, an update is validated against the running clusters alone.
  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {mainRoutes()}));
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_THAT(calls_[0].cluster_names, ElementsAre("web", "api"));
  EXPECT_EQ(calls_[0].versions, (Versions{"c1", "e1", "u1", "r2", "l1"}));
  EXPECT_THAT(answerer_.summaries(), ElementsAre("ACK RouteConfiguration r2"));
}

TEST_F(SubscriptionTest, CountsAppliedAndRejectedUpdatesByType) {
  sendInitial();
  subscription_->onUpdate(update(Kind::kRouteConfiguration, "r2", {mainRoutes()}));
  subscription_->onUpdate(update(Kind::kCluster, "c2", {webCluster(), webCluster()}));
  subscription_->onUpdate(update(Kind::kCluster, "c3", {apiCluster(), apiCluster()}));

  EXPECT_EQ(applied(Kind::kCluster), 1);
  EXPECT_EQ(applied(Kind::kClusterLoadAssignment), 1);
  EXPECT_EQ(applied(Kind::kRouteConfiguration), 2);
  EXPECT_EQ(applied(Kind::kListener), 1);
  EXPECT_EQ(rejected(Kind::kCluster), 2);
  EXPECT_EQ(rejected(Kind::kRouteConfiguration), 0);

  const std::string text = store_->prometheusText();
  EXPECT_THAT(text, HasSubstr("sluice_xds_update_applied_total{type=\"RouteConfiguration\"} 2"));
  EXPECT_THAT(text, HasSubstr("sluice_xds_update_rejected_total{type=\"Cluster\"} 2"));
  EXPECT_THAT(text, HasSubstr("sluice_xds_update_rejected_total{type=\"Listener\"} 0"));
}

}  // namespace
}  // namespace sluice::xds
