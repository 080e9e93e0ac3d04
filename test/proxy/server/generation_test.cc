// compileGeneration's TLS: contexts shared while a listener's TLS config and certificate bytes
// stay the same (so that session tickets survive unrelated updates), rebuilt when the bytes
// change, and what a file that went bad does to an update.
#include "proxy/server/generation.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "test/common/test_pki.h"
#include "test/integration/process.h"

namespace sluice::server {
namespace {

using ::testing::HasSubstr;
namespace v1 = config::v1;

class GenerationTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::makeTestPki(testing::makeTempDir("pki"));
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    dir_ = testing::makeTempDir("certs");
    useCertificate("a");
    store_ = stats::Store::create(1);
  }

  // The listener's certificate files get `name`'s bytes.
  void useCertificate(const std::string& name) {
    testing::writeFile(dir_ + "/cert.pem", testing::readFile(pki_.cert(name)));
    testing::writeFile(dir_ + "/key.pem", testing::readFile(pki_.key(name)));
  }

  // A TLS listener "https" (idle timeout `idle_seconds`) and a route configuration "main"
  // answering `body`.
  config::ConfigSet configSet(const std::string& body, int idle_seconds = 60) {
    config::ConfigSet set;
    auto& listener = set.listeners.emplace_back().resource;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
        absl::StrCat(R"(name: "https" address: "127.0.0.1" port: 8443 route_config: "main"
          timeouts { idle { seconds: )",
                     idle_seconds, R"( } }
          tls { certificates { certificate_chain { filename: ")",
                     dir_, R"(/cert.pem" } private_key { filename: ")", dir_, R"(/key.pem" } } })"),
        &listener));
    auto& routes = set.route_configs.emplace_back().resource;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
        absl::StrCat(R"(name: "main" virtual_hosts { name: "all" domains: "*"
          routes { match { prefix: "/" } direct_response { status: 200 body: ")",
                     body, R"(" } } })"),
        &routes));
    return set;
  }

  absl::StatusOr<std::shared_ptr<Generation>> compile(const config::ConfigSet& set,
                                                      const Generation* previous) {
    return compileGeneration(set, {}, previous, store_.get());
  }

  testing::TestPki pki_;
  std::string dir_;
  std::unique_ptr<stats::Store> store_;
};

TEST_F(GenerationTlsTest, ContextsAreSharedWhileConfigAndBytesStayTheSame) {
  auto first = compile(configSet("one"), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  const ListenerConfig* l1 = (*first)->listener("https");
  ASSERT_NE(l1->tls, nullptr);

  // An unrelated change (the routes): the listener, and with it its context, is shared.
  auto second = compile(configSet("two"), first->get());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->listener("https"), l1);

  // The listener changes, its TLS does not: a new listener config with the same context.
  auto third = compile(configSet("two", 30), second->get());
  ASSERT_TRUE(third.ok()) << third.status();
  const ListenerConfig* l3 = (*third)->listener("https");
  EXPECT_NE(l3, l1);
  EXPECT_EQ(l3->tls, l1->tls);

  // The same file names with other bytes: a new context, even for an unchanged listener.
  useCertificate("b");
  auto fourth = compile(configSet("two", 30), third->get());
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_NE((*fourth)->listener("https")->tls, l3->tls);
}

TEST_F(GenerationTlsTest, BadFilesRejectAChangedListenerButNotAnUnchangedOne) {
  auto first = compile(configSet("one"), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  testing::writeFile(dir_ + "/cert.pem", "not a certificate\n");

  // The listener is unchanged: it keeps its certificates (the reload timer reports the file).
  auto routes_only = compile(configSet("two"), first->get());
  ASSERT_TRUE(routes_only.ok()) << routes_only.status();
  EXPECT_EQ((*routes_only)->listener("https")->tls, (*first)->listener("https")->tls);

  // The listener changes: the update is rejected with the listener and the field.
  auto changed = compile(configSet("two", 30), routes_only->get());
  ASSERT_FALSE(changed.ok());
  EXPECT_THAT(changed.status().message(),
              HasSubstr("listener 'https' tls.certificates[0].certificate_chain: no PEM"));
}

TEST_F(GenerationTlsTest, WithListenersKeepsEverythingElse) {
  auto first = compile(configSet("one"), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  auto listeners = (*first)->listeners;
  auto copy = std::make_shared<ListenerConfig>(*listeners.at("https"));
  useCertificate("b");
  auto ctx = tls::ServerContext::create(copy->tls->config(), copy->tls->name(), copy->tls);
  ASSERT_TRUE(ctx.ok());
  copy->tls = *ctx;
  listeners["https"] = copy;
  auto next = withListeners(**first, listeners);
  EXPECT_EQ(next->listener("https")->tls, *ctx);
  EXPECT_EQ(next->routeTable("main"), (*first)->routeTable("main"));
  EXPECT_EQ(next->config, (*first)->config);
}

}  // namespace
}  // namespace sluice::server
