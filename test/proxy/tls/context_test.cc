// TLS contexts and connections in one process: handshakes over a socketpair between a
// ServerContext or ClientContext and a client or server made here, with certificates made at
// test time (test/common/test_pki.h).
#include "proxy/tls/context.h"

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proxy/tls/connection.h"
#include "test/common/test_pki.h"
#include "test/integration/process.h"

namespace sluice::tls {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Step = Connection::Step;
using testing::TestPki;

class TlsContextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pki = testing::makeTestPki(testing::makeTempDir("pki"));
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new TestPki(*pki);
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    server_fd_ = fds[0];
    client_fd_ = fds[1];
  }
  void TearDown() override {
    close(server_fd_);
    close(client_fd_);
    for (SSL_CTX* c : raw_contexts_) SSL_CTX_free(c);
    raw_contexts_.clear();
    EXPECT_EQ(ERR_peek_error(), 0u) << "an error left in the thread's OpenSSL queue";
  }

  // "$a.pem" -> the file's path, in a text-format config.
  static std::string paths(std::string text) {
    for (const char* name : {"other-client", "other-ca", "upstream", "client", "ca", "a", "b"}) {
      text = absl::StrReplaceAll(text, {{absl::StrCat("$", name, ".pem"), pki_->cert(name)},
                                        {absl::StrCat("$", name, ".key"), pki_->key(name)}});
    }
    return text;
  }
  template <class Proto>
  static Proto parse(const std::string& text) {
    Proto p;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(paths(text), &p)) << text;
    return p;
  }
  static std::shared_ptr<const ServerContext> server(const std::string& text) {
    auto ctx = ServerContext::create(parse<config::v1::DownstreamTls>(text), "listener 'l'");
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *ctx : nullptr;
  }
  static std::shared_ptr<const ClientContext> client(const std::string& text) {
    auto ctx = ClientContext::create(parse<config::v1::UpstreamTls>(text), "cluster 'c'");
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *ctx : nullptr;
  }

  // A plain OpenSSL client on client_fd_ (no verification unless `ca` is given).
  std::unique_ptr<Connection> rawClient(const char* sni, const std::string& alpn = "",
                                        const std::string& cert = "", const std::string& ca = "") {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    raw_contexts_.push_back(c);
    if (!cert.empty()) {
      EXPECT_EQ(SSL_CTX_use_certificate_chain_file(c, pki_->cert(cert).c_str()), 1);
      EXPECT_EQ(SSL_CTX_use_PrivateKey_file(c, pki_->key(cert).c_str(), SSL_FILETYPE_PEM), 1);
    }
    if (!ca.empty()) {
      EXPECT_EQ(SSL_CTX_load_verify_locations(c, pki_->cert(ca).c_str(), nullptr), 1);
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    }
    SSL* ssl = SSL_new(c);
    if (sni != nullptr) SSL_set_tlsext_host_name(ssl, sni);
    if (!alpn.empty()) {
      SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()), alpn.size());
    }
    SSL_set_fd(ssl, client_fd_);
    SSL_set_connect_state(ssl);
    return std::make_unique<Connection>(ssl, nullptr);
  }

  // A plain OpenSSL server on server_fd_ serving certificate `cert`.
  std::unique_ptr<Connection> rawServer(const std::string& cert) {
    SSL_CTX* c = SSL_CTX_new(TLS_server_method());
    raw_contexts_.push_back(c);
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(c, pki_->cert(cert).c_str()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(c, pki_->key(cert).c_str(), SSL_FILETYPE_PEM), 1);
    SSL* ssl = SSL_new(c);
    SSL_set_fd(ssl, server_fd_);
    SSL_set_accept_state(ssl);
    return std::make_unique<Connection>(ssl, nullptr);
  }

  // Runs both sides until each is done or failed (or stuck waiting for the other).
  static std::pair<Step, Step> handshake(Connection& server, Connection& client) {
    Step s = Step::kWantRead, c = Step::kWantRead;
    auto over = [](Step x) { return x == Step::kDone || x == Step::kFailed; };
    for (int i = 0; i < 50 && !(over(s) && over(c)); ++i) {
      if (!over(c)) c = client.handshake();
      if (!over(s)) s = server.handshake();
    }
    return {s, c};
  }

  // The subject of the certificate `client` got.
  static std::string servedSubject(Connection& client) { return peerInfo(sslOf(client)).subject; }
  static SSL* sslOf(Connection& c) { return c.ssl(); }

  static TestPki* pki_;
  int server_fd_ = -1;
  int client_fd_ = -1;
  std::vector<SSL_CTX*> raw_contexts_;
};

TestPki* TlsContextTest::pki_ = nullptr;

// The certificates of a listener for SNI tests: a.test by its SAN, b by its names.
constexpr char kTwoCertificates[] = R"(
  certificates { certificate_chain { filename: "$a.pem" } private_key { filename: "$a.key" } }
  certificates {
    certificate_chain { filename: "$b.pem" } private_key { filename: "$b.key" }
    server_names: "b.test" server_names: "*.wild.test"
  })";

TEST_F(TlsContextTest, SniPicksExactNamesThenOneLabelWildcardsElseTheFirst) {
  auto ctx = server(kTwoCertificates);
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(ctx->certificateCount(), 2u);
  EXPECT_EQ(ctx->certificateFor("a.test"), 0u);  // from a.pem's subjectAltName
  EXPECT_EQ(ctx->certificateFor("b.test"), 1u);
  EXPECT_EQ(ctx->certificateFor("B.Test."), 1u);  // case and a trailing dot do not matter
  EXPECT_EQ(ctx->certificateFor("x.wild.test"), 1u);
  EXPECT_EQ(ctx->certificateFor("x.y.wild.test"), 0u);  // a wildcard covers one label
  EXPECT_EQ(ctx->certificateFor("wild.test"), 0u);
  EXPECT_EQ(ctx->certificateFor("x.b.test"), 0u);  // b.pem says *.b.test, but names replace it
  EXPECT_EQ(ctx->certificateFor("unknown.test"), 0u);
  EXPECT_EQ(ctx->certificateFor(""), 0u);
}

TEST_F(TlsContextTest, HandshakeServesTheCertificateTheClientNamed) {
  auto ctx = server(kTwoCertificates);
  ASSERT_NE(ctx, nullptr);
  for (auto [sni, subject] : {std::pair<const char*, const char*>{"b.test", "CN=b.test"},
                              {"x.wild.test", "CN=b.test"},
                              {"a.test", "CN=a.test"},
                              {"nobody.test", "CN=a.test"},
                              {nullptr, "CN=a.test"}}) {
    SCOPED_TRACE(sni != nullptr ? sni : "(no SNI)");
    TearDown();
    SetUp();
    auto s = ctx->accept(server_fd_);
    auto c = rawClient(sni);
    EXPECT_EQ(handshake(*s, *c), std::make_pair(Step::kDone, Step::kDone));
    EXPECT_EQ(servedSubject(*c), subject);
  }
}

TEST_F(TlsContextTest, AlpnOffersTheConfiguredProtocolsAndFailsWithoutOneInCommon) {
  auto ctx = server(absl::StrCat(kTwoCertificates, R"(alpn_protocols: "http/1.1")"));
  ASSERT_NE(ctx, nullptr);
  auto s = ctx->accept(server_fd_);
  auto c = rawClient("a.test", std::string("\x02h2\x08http/1.1", 12));
  ASSERT_EQ(handshake(*s, *c), std::make_pair(Step::kDone, Step::kDone));
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(sslOf(*c), &proto, &len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), len), "http/1.1");

  TearDown();
  SetUp();
  s = ctx->accept(server_fd_);
  c = rawClient("a.test", std::string("\x02h2", 3));
  EXPECT_EQ(handshake(*s, *c), std::make_pair(Step::kFailed, Step::kFailed));
  EXPECT_EQ(s->failure(), HandshakeFailure::kAlpn);

  // A client that offers nothing gets HTTP/1.1 anyway.
  TearDown();
  SetUp();
  s = ctx->accept(server_fd_);
  c = rawClient("a.test");
  EXPECT_EQ(handshake(*s, *c), std::make_pair(Step::kDone, Step::kDone));
}

TEST_F(TlsContextTest, ErrorsNameTheListenerAndTheFieldButNoKeyBytes) {
  auto error = [&](const std::string& text) {
    auto ctx = ServerContext::create(parse<config::v1::DownstreamTls>(text), "listener 'l'");
    return ctx.ok() ? std::string("ok") : std::string(ctx.status().message());
  };
  const std::string key = testing::readFile(pki_->key("b"));
  EXPECT_THAT(error(R"(certificates { certificate_chain { filename: "/nonexistent/a.pem" }
                                      private_key { filename: "$a.key" } })"),
              HasSubstr("listener 'l' tls.certificates[0].certificate_chain: cannot read "
                        "'/nonexistent/a.pem'"));
  // b's key with a's certificate.
  std::string mismatch = error(R"(certificates { certificate_chain { filename: "$a.pem" }
                                                 private_key { filename: "$b.key" } })");
  EXPECT_THAT(mismatch, HasSubstr("listener 'l' tls.certificates[0]: private_key does not match"));
  EXPECT_THAT(error(R"(certificates { certificate_chain { inline_string: "garbage" }
                                      private_key { filename: "$a.key" } })"),
              HasSubstr("tls.certificates[0].certificate_chain: no PEM certificate"));
  // A broken key given inline: the message must not repeat it.
  std::string broken = key.substr(0, key.size() / 2);
  std::string bad_key = error(absl::StrCat(
      R"(certificates { certificate_chain { filename: "$a.pem" } private_key { inline_string: ")",
      absl::StrReplaceAll(broken, {{"\n", "\\n"}}), R"(" } })"));
  EXPECT_THAT(bad_key, HasSubstr("tls.certificates[0].private_key: no PEM private key"));
  for (const std::string& message : {mismatch, bad_key}) {
    EXPECT_THAT(message, Not(HasSubstr(key.substr(40, 20))));
  }
  EXPECT_THAT(error(R"(certificates { certificate_chain { filename: "$a.pem" }
                                      private_key { filename: "$a.key" } }
                       client_certificate: REQUIRE
                       client_validation { trusted_ca { inline_string: "not a pem" } })"),
              HasSubstr("tls.client_validation.trusted_ca: no PEM certificate"));
  EXPECT_THAT(error(absl::StrCat(kTwoCertificates, R"(params { cipher_suites: "NO-SUCH" })")),
              HasSubstr("tls.params.cipher_suites[0]: 'NO-SUCH' is not"));
}

TEST_F(TlsContextTest, UnchangedConfigAndBytesShareTheContext) {
  const std::string dir = testing::makeTempDir("reuse");
  testing::writeFile(dir + "/cert.pem", testing::readFile(pki_->cert("a")));
  testing::writeFile(dir + "/key.pem", testing::readFile(pki_->key("a")));
  auto config = parse<config::v1::DownstreamTls>(
      absl::StrCat(R"(certificates { certificate_chain { filename: ")", dir, R"(/cert.pem" }
                        private_key { filename: ")",
                   dir, R"(/key.pem" } })"));
  auto first = ServerContext::create(config, "listener 'l'");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE((*first)->readsFiles());
  auto again = ServerContext::create(config, "listener 'l'", *first);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), first->get());
  // The same file names with other bytes: a new context.
  testing::writeFile(dir + "/cert.pem", testing::readFile(pki_->cert("b")));
  testing::writeFile(dir + "/key.pem", testing::readFile(pki_->key("b")));
  auto changed = ServerContext::create(config, "listener 'l'", *first);
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->get(), first->get());
  // Another config with the same bytes: a new context too.
  config.add_alpn_protocols("http/1.0");
  config.add_alpn_protocols("http/1.1");
  auto other = ServerContext::create(config, "listener 'l'", *changed);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->get(), changed->get());
}

constexpr char kMutualTls[] = R"(
  certificates { certificate_chain { filename: "$a.pem" } private_key { filename: "$a.key" } }
  client_validation { trusted_ca { filename: "$ca.pem" } }
)";

TEST_F(TlsContextTest, PeerInfoOfAVerifiedClientCertificate) {
  auto ctx = server(absl::StrCat(kMutualTls, "client_certificate: REQUIRE"));
  ASSERT_NE(ctx, nullptr);
  EXPECT_TRUE(ctx->asksClientCertificate());
  auto s = ctx->accept(server_fd_);
  auto c = rawClient("a.test", "", "client");
  ASSERT_EQ(handshake(*s, *c), std::make_pair(Step::kDone, Step::kDone));
  const PeerInfo& peer = s->peer();
  EXPECT_TRUE(peer.presented);
  EXPECT_TRUE(peer.verified);
  EXPECT_EQ(peer.subject, "CN=client,O=Sluice Test");
  EXPECT_THAT(peer.sans,
              ElementsAre("client.test", "spiffe://sluice.test/client", "client@sluice.test"));
}

TEST_F(TlsContextTest, ClientCertificateModes) {
  struct Case {
    const char* mode;
    const char* cert;  // "" for none
    Step server;
    HandshakeFailure failure;
    bool presented;
  };
  const Case cases[] = {
      {"REQUIRE", "", Step::kFailed, HandshakeFailure::kNoCertificate, false},
      {"REQUIRE", "other-client", Step::kFailed, HandshakeFailure::kVerify, false},
      {"OPTIONAL", "", Step::kDone, HandshakeFailure::kProtocol, false},
      {"OPTIONAL", "client", Step::kDone, HandshakeFailure::kProtocol, true},
      {"OPTIONAL", "other-client", Step::kFailed, HandshakeFailure::kVerify, false},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(absl::StrCat(k.mode, " with '", k.cert, "'"));
    TearDown();
    SetUp();
    auto ctx = server(absl::StrCat(kMutualTls, "client_certificate: ", k.mode));
    ASSERT_NE(ctx, nullptr);
    auto s = ctx->accept(server_fd_);
    auto c = rawClient("a.test", "", k.cert);
    EXPECT_EQ(handshake(*s, *c).first, k.server);
    if (k.server == Step::kFailed) {
      EXPECT_EQ(s->failure(), k.failure) << handshakeFailureName(s->failure());
    } else {
      EXPECT_EQ(s->peer().presented, k.presented);
      EXPECT_EQ(s->peer().verified, k.presented);
    }
  }
}

TEST_F(TlsContextTest, MatchSubjectAltNames) {
  for (auto [accepted, ok] : {std::pair<const char*, bool>{"spiffe://sluice.test/client", true},
                              {"*.test", true},
                              {"CLIENT.test", true},
                              {"client@sluice.test", true},
                              {"spiffe://sluice.test/other", false},
                              {"*.client.test", false}}) {
    SCOPED_TRACE(accepted);
    TearDown();
    SetUp();
    auto ctx = server(absl::StrCat(R"(
      certificates { certificate_chain { filename: "$a.pem" } private_key { filename: "$a.key" } }
      client_certificate: REQUIRE
      client_validation { trusted_ca { filename: "$ca.pem" } match_subject_alt_names: ")",
                                   accepted, "\" }"));
    ASSERT_NE(ctx, nullptr);
    auto s = ctx->accept(server_fd_);
    auto c = rawClient("a.test", "", "client");
    if (ok) {
      EXPECT_EQ(handshake(*s, *c).first, Step::kDone);
    } else {
      EXPECT_EQ(handshake(*s, *c).first, Step::kFailed);
      EXPECT_EQ(s->failure(), HandshakeFailure::kVerifySan);
    }
  }
}

TEST_F(TlsContextTest, OldProtocolVersionsAreRefused) {
  auto ctx = server(kTwoCertificates);
  ASSERT_NE(ctx, nullptr);
  auto s = ctx->accept(server_fd_);
  auto c = rawClient("a.test");
  SSL_set_security_level(sslOf(*c), 0);  // let this client offer TLS 1.1 at all
  SSL_set_min_proto_version(sslOf(*c), TLS1_VERSION);
  SSL_set_max_proto_version(sslOf(*c), TLS1_1_VERSION);
  EXPECT_EQ(handshake(*s, *c), std::make_pair(Step::kFailed, Step::kFailed));
  EXPECT_EQ(s->failure(), HandshakeFailure::kProtocol);
}

TEST_F(TlsContextTest, ClientVerifiesTheChainAndTheName) {
  struct Case {
    std::string config;
    std::string host;
    Step step;
    HandshakeFailure failure;
  };
  const Case cases[] = {
      {R"(validation { trusted_ca { filename: "$ca.pem" } })", "upstream.test", Step::kDone,
       HandshakeFailure::kProtocol},
      // The endpoint's address when nothing names it: the IP subjectAltName.
      {R"(validation { trusted_ca { filename: "$ca.pem" } })", "127.0.0.1", Step::kDone,
       HandshakeFailure::kProtocol},
      {R"(validation { trusted_ca { filename: "$other-ca.pem" } })", "upstream.test", Step::kFailed,
       HandshakeFailure::kVerify},
      {R"(sni: "wrong.test" validation { trusted_ca { filename: "$ca.pem" } })", "upstream.test",
       Step::kFailed, HandshakeFailure::kVerifySan},
      {R"(validation { trusted_ca { filename: "$ca.pem" }
                       match_subject_alt_names: "nobody.test" })",
       "", Step::kFailed, HandshakeFailure::kVerifySan},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.config);
    TearDown();
    SetUp();
    auto ctx = client(k.config);
    ASSERT_NE(ctx, nullptr);
    auto c = ctx->connect(client_fd_, k.host, nullptr);
    auto s = rawServer("upstream");
    EXPECT_EQ(handshake(*s, *c).second, k.step);
    if (k.step == Step::kFailed) {
      EXPECT_EQ(c->failure(), k.failure) << handshakeFailureName(c->failure());
    }
  }
}

TEST_F(TlsContextTest, ClientPresentsItsCertificateAndResumesSessions) {
  auto ctx = client(R"(validation { trusted_ca { filename: "$ca.pem" } }
                       client_certificate { certificate_chain { filename: "$client.pem" }
                                            private_key { filename: "$client.key" } })");
  ASSERT_NE(ctx, nullptr);
  auto srv = server(absl::StrCat(kMutualTls, "client_certificate: REQUIRE"));
  ASSERT_NE(srv, nullptr);
  SSL_SESSION* session = nullptr;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    TearDown();
    SetUp();
    auto c = ctx->connect(client_fd_, "a.test", session);
    auto s = srv->accept(server_fd_);
    ASSERT_EQ(handshake(*s, *c), std::make_pair(Step::kDone, Step::kDone));
    EXPECT_EQ(s->peer().subject, "CN=client,O=Sluice Test");
    EXPECT_EQ(c->sessionReused(), round == 1);
    EXPECT_EQ(s->sessionReused(), round == 1);
    // TLS 1.3 sends its tickets after the handshake: a read takes them in.
    evbuffer* out = evbuffer_new();
    evbuffer_add(out, "ping", 4);
    EXPECT_EQ(s->writeFrom(out), 4);
    evbuffer* in = evbuffer_new();
    EXPECT_EQ(c->readInto(in), 4);
    evbuffer_free(in);
    evbuffer_free(out);
    if (session != nullptr) SSL_SESSION_free(session);
    session = c->takeSession();
    EXPECT_NE(session, nullptr);
  }
  SSL_SESSION_free(session);
}

TEST_F(TlsContextTest, ReadsAndWritesLargeBodiesThroughFullSockets) {
  auto ctx = server(kTwoCertificates);
  ASSERT_NE(ctx, nullptr);
  auto s = ctx->accept(server_fd_);
  auto c = rawClient("a.test");
  ASSERT_EQ(handshake(*s, *c), std::make_pair(Step::kDone, Step::kDone));
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  evbuffer* out = evbuffer_new();
  // Many small segments, as a proxied body arrives.
  for (size_t i = 0; i < body.size(); i += 1000) {
    evbuffer_add(out, body.data() + i, std::min<size_t>(1000, body.size() - i));
  }
  evbuffer* in = evbuffer_new();
  int eagain = 0;
  for (int i = 0; i < 100000 && evbuffer_get_length(in) < body.size(); ++i) {
    // Write until the socket is full, then read some.
    while (evbuffer_get_length(out) > 0) {
      ssize_t n = s->writeFrom(out);
      if (n < 0) {
        ASSERT_EQ(errno, EAGAIN);
        ++eagain;
        break;
      }
    }
    ssize_t n = c->readInto(in);
    ASSERT_TRUE(n > 0 || (n < 0 && errno == EAGAIN)) << n;
  }
  EXPECT_GT(eagain, 0) << "the socket never filled: the test did not test retries";
  ASSERT_EQ(evbuffer_get_length(in), body.size());
  std::string got(evbuffer_get_length(in), '\0');
  evbuffer_copyout(in, got.data(), got.size());
  EXPECT_TRUE(got == body);
  // close_notify ends the reader's stream: EOF, and it stays EOF.
  s->shutdown();
  EXPECT_EQ(c->readInto(in), 0);
  EXPECT_TRUE(c->peerClosed());
  EXPECT_EQ(c->readInto(in), 0);
  evbuffer_free(in);
  evbuffer_free(out);
}

TEST_F(TlsContextTest, PeerClosingMidHandshakeIsClosed) {
  auto ctx = server(kTwoCertificates);
  ASSERT_NE(ctx, nullptr);
  auto s = ctx->accept(server_fd_);
  EXPECT_EQ(s->handshake(), Step::kWantRead);
  ::shutdown(client_fd_, SHUT_WR);
  EXPECT_EQ(s->handshake(), Step::kFailed);
  EXPECT_EQ(s->failure(), HandshakeFailure::kClosed);
}

}  // namespace
}  // namespace sluice::tls
