// TLS end to end: a real sluice on loopback with TLS listeners (SNI, ALPN, versions, resumption,
// mTLS), an HTTPS redirect listener, and upstream TLS to sluice-echo serving HTTPS; certificates
// rotated on disk and over the control plane. The certificates are made when the suite starts
// (test/common/test_pki.h); the client is OpenSSL, in this file.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/common/test_pki.h"
#include "test/integration/echo.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSluice[] = "proxy/server/sluice";
constexpr char kCp[] = "control-plane/sluice-cp";

struct TlsOptions {
  std::string sni;   // empty: none sent
  std::string alpn;  // ALPN wire format; empty: none offered
  std::string cert;  // a client certificate of the PKI ("client"); empty: none
  int max_version = 0;
  SSL_SESSION* session = nullptr;  // to resume (not taken)
};

// A blocking TLS client on 127.0.0.1 that trusts the test CA (verification is not enforced:
// tests look at what the server sent).
class TlsClient {
 public:
  static absl::StatusOr<std::unique_ptr<TlsClient>> connect(const TestPki& pki, int port,
                                                            const TlsOptions& o) {
    auto c = std::unique_ptr<TlsClient>(new TlsClient());
    c->ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(c->ctx_, pki.cert("ca").c_str(), nullptr);
    if (!o.cert.empty()) {
      SSL_CTX_use_certificate_chain_file(c->ctx_, pki.cert(o.cert).c_str());
      SSL_CTX_use_PrivateKey_file(c->ctx_, pki.key(o.cert).c_str(), SSL_FILETYPE_PEM);
    }
    if (o.max_version != 0) {
      SSL_CTX_set_security_level(c->ctx_, 0);  // lets it offer TLS 1.1 at all
      SSL_CTX_set_min_proto_version(c->ctx_, TLS1_VERSION);
      SSL_CTX_set_max_proto_version(c->ctx_, o.max_version);
    }
    // Sessions for resumption arrive in new_session callbacks (TLS 1.3 after the handshake).
    SSL_CTX_set_session_cache_mode(c->ctx_,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx_, [](SSL* ssl, SSL_SESSION* s) {
      auto* self = static_cast<TlsClient*>(SSL_get_app_data(ssl));
      if (self->session_ != nullptr) SSL_SESSION_free(self->session_);
      self->session_ = s;
      return 1;
    });
    c->fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv = {5, 0};
    setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(c->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
    }
    c->ssl_ = SSL_new(c->ctx_);
    SSL_set_app_data(c->ssl_, c.get());
    if (!o.sni.empty()) SSL_set_tlsext_host_name(c->ssl_, o.sni.c_str());
    if (!o.alpn.empty()) {
      SSL_set_alpn_protos(c->ssl_, reinterpret_cast<const unsigned char*>(o.alpn.data()),
                          o.alpn.size());
    }
    if (o.session != nullptr) SSL_set_session(c->ssl_, o.session);
    SSL_set_fd(c->ssl_, c->fd_);
    if (SSL_connect(c->ssl_) != 1) {
      ERR_clear_error();
      return absl::UnavailableError("TLS handshake failed");
    }
    return c;
  }

  ~TlsClient() {
    if (ssl_ != nullptr) {
      // close_notify: OpenSSL makes the session of a connection freed without it unresumable.
      SSL_shutdown(ssl_);
      ERR_clear_error();
      SSL_free(ssl_);
    }
    if (session_ != nullptr) SSL_SESSION_free(session_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) close(fd_);
  }

  // The server certificate's subject, RFC 2253.
  std::string subject() const {
    X509* cert = SSL_get_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, len);
    BIO_free(bio);
    X509_free(cert);
    return out;
  }
  bool verified() const { return SSL_get_verify_result(ssl_) == X509_V_OK; }
  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl_, &p, &len);
    return std::string(reinterpret_cast<const char*>(p), len);
  }
  bool reused() const { return SSL_session_reused(ssl_) == 1; }
  // Sends close_notify: the client's half of the connection ends (TLS half-close).
  void closeNotify() { SSL_shutdown(ssl_); }
  // Whether the server closed the connection (close_notify or EOF), with no bytes before it.
  bool closed() {
    char c;
    const int n = SSL_read(ssl_, &c, 1);
    ERR_clear_error();
    return n <= 0;
  }
  // The newest session the server issued, for another connection (still owned here).
  SSL_SESSION* session() const { return session_; }

  // Sends `request` and reads one response with a Content-Length body.
  absl::StatusOr<HttpResponse> roundTrip(const std::string& request) {
    return roundTripAfter(request, [] {});
  }
  // The same, running `sent` between sending and reading.
  template <class Fn>
  absl::StatusOr<HttpResponse> roundTripAfter(const std::string& request, const Fn& sent) {
    if (SSL_write(ssl_, request.data(), static_cast<int>(request.size())) <= 0) {
      ERR_clear_error();
      return absl::UnavailableError("write failed");
    }
    sent();
    std::string buf;
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(&buf)) return absl::UnavailableError("closed before a response head");
    }
    HttpResponse r;
    std::vector<std::string> lines = absl::StrSplit(buf.substr(0, head_end), "\r\n");
    std::vector<std::string> status = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
    if (status.size() < 2 || !absl::SimpleAtoi(status[1], &r.status)) {
      return absl::DataLossError(absl::StrCat("bad status line: ", lines[0]));
    }
    r.version = status[0];
    size_t length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      std::string name = lines[i].substr(0, colon);
      std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
      if (absl::EqualsIgnoreCase(name, "content-length")) absl::SimpleAtoi(value, &length);
      r.headers.emplace_back(std::move(name), std::move(value));
    }
    buf.erase(0, head_end + 4);
    while (buf.size() < length) {
      if (!fill(&buf)) return absl::UnavailableError("closed in the body");
    }
    r.body = buf.substr(0, length);
    return r;
  }
  absl::StatusOr<HttpResponse> get(const std::string& path, const std::string& host = "test") {
    return roundTrip(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", host, "\r\n\r\n"));
  }

 private:
  TlsClient() = default;
  bool fill(std::string* buf) {
    char data[16384];
    const int n = SSL_read(ssl_, data, sizeof data);
    if (n <= 0) {
      ERR_clear_error();
      return false;
    }
    buf->append(data, n);
    return true;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  SSL_SESSION* session_ = nullptr;
  int fd_ = -1;
};

// Every listener and cluster of the tests; {X} are filled in: ports and the PKI's files.
constexpr char kConfig[] = R"(kind: Cluster
name: plain
endpoints: [{address: 127.0.0.1, port: {PLAIN}}]
---
kind: Cluster
name: secure
endpoints: [{address: 127.0.0.1, port: {SECURE}}]
health_check: {interval: 1s, healthy_threshold: 1, http: {path: /health}}
tls:
  sni: upstream.test
  validation: {trusted_ca: {filename: "{PKI}/ca.pem"}}
  client_certificate:
    certificate_chain: {filename: "{PKI}/client.pem"}
    private_key: {filename: "{PKI}/client.key"}
---
# The upstream's certificate does not chain to this CA (other-ca's, until the rotation test
# replaces it). The key inline: /config_dump hides it.
kind: Cluster
name: wrong-ca
endpoints: [{address: 127.0.0.1, port: {SECURE}}]
tls:
  validation: {trusted_ca: {filename: "{DIR}/upstream-ca.pem"}}
  client_certificate:
    certificate_chain: {filename: "{PKI}/client.pem"}
    private_key: {inline_string: "{CLIENT_KEY}"}
---
# ... and this name is not the certificate's.
kind: Cluster
name: wrong-name
endpoints: [{address: 127.0.0.1, port: {SECURE}}]
tls:
  sni: wrong.test
  validation: {trusted_ca: {filename: "{PKI}/ca.pem"}}
  client_certificate:
    certificate_chain: {filename: "{PKI}/client.pem"}
    private_key: {filename: "{PKI}/client.key"}
---
kind: Listener
name: https
address: 127.0.0.1
port: {HTTPS}
route_config: main
tls:
  certificates:
    - certificate_chain: {filename: "{DIR}/a.pem"}
      private_key: {filename: "{DIR}/a.key"}
    - certificate_chain: {filename: "{PKI}/b.pem"}
      private_key: {filename: "{PKI}/b.key"}
  alpn_protocols: [http/1.1]
---
kind: Listener
name: mtls
address: 127.0.0.1
port: {MTLS}
route_config: main
tls:
  certificates:
    - certificate_chain: {filename: "{PKI}/a.pem"}
      private_key: {filename: "{PKI}/a.key"}
  client_certificate: REQUIRE
  client_validation: {trusted_ca: {filename: "{PKI}/ca.pem"}}
---
kind: Listener
name: optional
address: 127.0.0.1
port: {OPTIONAL}
route_config: main
tls:
  certificates:
    - certificate_chain: {filename: "{PKI}/a.pem"}
      private_key: {filename: "{PKI}/a.key"}
  client_certificate: OPTIONAL
  client_validation: {trusted_ca: {filename: "{PKI}/ca.pem"}}
  session_timeout: 0s
timeouts: {request_headers: 300ms}
---
kind: Listener
name: plain
address: 127.0.0.1
port: {HTTP}
route_config: main
---
kind: Listener
name: redirect
address: 127.0.0.1
port: {REDIRECT}
route_config: main
https_redirect: {port: 8443, response_code: 308}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /direct}
        direct_response: {status: 200, body: "direct\n"}
      # Authorization by the verified client certificate: a SAN, or the subject.
      - match: {prefix: /billing}
        direct_response: {status: 200, body: "billing\n"}
        access:
          rbac:
            rules: [{name: billing, action: ALLOW, client_certificates: [{exact: "spiffe://sluice.test/client"}]}]
            default_action: DENY
      - match: {prefix: /by-subject}
        direct_response: {status: 200, body: "subject\n"}
        access:
          rbac:
            rules: [{action: ALLOW, client_certificates: [{prefix: "CN=client,"}]}]
            default_action: DENY
      - match: {prefix: /to-https}
        redirect: {scheme_redirect: https}
      - match: {prefix: /same-scheme}
        redirect: {host_redirect: elsewhere.test}
      - match: {prefix: /secure}
        route:
          cluster: secure
          request_mirror_policies: [{cluster: secure}]
      - match: {prefix: /wrong-ca}
        route: {cluster: wrong-ca}
      - match: {prefix: /wrong-name}
        route: {cluster: wrong-name}
      - match: {prefix: /}
        route: {cluster: plain}
)";

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    signal(SIGPIPE, SIG_IGN);  // a write to a connection the proxy closed after a failed handshake
    auto pki = makeTestPki(makeTempDir("pki"));
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new TestPki(*pki);
    ASSERT_TRUE(issueCertificate(*pki_, "a-rotated", "/O=Rotated/CN=a.test", "DNS:a.test").ok());
    // Trusted like "client", with other names.
    ASSERT_TRUE(issueCertificate(*pki_, "client2", "/O=Sluice Test/CN=client2",
                                 "URI:spiffe://sluice.test/other")
                    .ok());
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    dir_ = makeTempDir("tls");
    // The https listener's first certificate is a copy that the rotation test replaces.
    writeFile(dir_ + "/a.pem", readFile(pki_->cert("a")));
    writeFile(dir_ + "/a.key", readFile(pki_->key("a")));
    writeFile(dir_ + "/upstream-ca.pem", readFile(pki_->cert("other-ca")));
    ASSERT_TRUE(plain_.start());
    ASSERT_TRUE(secure_.start(0, {"--tls-cert", pki_->cert("upstream"), "--tls-key",
                                  pki_->key("upstream"), "--tls-client-ca", pki_->cert("ca")}));
    for (int* port : {&https_, &mtls_, &optional_, &http_, &redirect_, &admin_}) {
      *port = freePort();
    }
  }

  std::string config() const {
    return absl::StrReplaceAll(
        kConfig,
        {{"{PLAIN}", absl::StrCat(plain_.port())},
         {"{SECURE}", absl::StrCat(secure_.port())},
         {"{HTTPS}", absl::StrCat(https_)},
         {"{MTLS}", absl::StrCat(mtls_)},
         {"{OPTIONAL}", absl::StrCat(optional_)},
         {"{HTTP}", absl::StrCat(http_)},
         {"{REDIRECT}", absl::StrCat(redirect_)},
         {"{PKI}", pki_->dir},
         {"{CLIENT_KEY}", absl::StrReplaceAll(readFile(pki_->key("client")), {{"\n", "\\n"}})},
         {"{DIR}", dir_}});
  }

  void startProxy() {
    const std::string config_dir = makeTempDir("tls-config");
    writeFile(config_dir + "/config.yaml", config());
    proxy_ = std::make_unique<Process>(
        kSluice,
        std::vector<std::string>{"--config-dir", config_dir, "--workers", "2", "--admin",
                                 absl::StrCat("127.0.0.1:", admin_), "--tls-reload-interval",
                                 "200ms"},
        "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] { return httpGet(admin_, "/ready") == "ready\n"; }))
        << proxy_->log();
  }

  absl::StatusOr<std::unique_ptr<TlsClient>> tls(int port, TlsOptions o = {}) {
    return TlsClient::connect(*pki_, port, o);
  }

  double listenerMetric(const std::string& name, const std::string& listener,
                        const std::string& reason = "") {
    return metricSeries(admin_,
                        absl::StrCat("sluice_listener_ssl_", name, "{listener=\"", listener, "\"",
                                     reason.empty() ? "" : ",reason=\"" + reason + "\"", "}"));
  }
  double clusterMetric(const std::string& name, const std::string& cluster,
                       const std::string& reason = "") {
    return metricSeries(admin_,
                        absl::StrCat("sluice_cluster_upstream_", name, "{cluster=\"", cluster, "\"",
                                     reason.empty() ? "" : ",reason=\"" + reason + "\"", "}"));
  }

  static TestPki* pki_;
  std::string dir_;
  Echo plain_{"plain"};
  Echo secure_{"secure"};
  int https_ = 0, mtls_ = 0, optional_ = 0, http_ = 0, redirect_ = 0, admin_ = 0;
  std::unique_ptr<Process> proxy_;
};

TestPki* TlsTest::pki_ = nullptr;

TEST_F(TlsTest, SniChoosesTheCertificate) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  struct Case {
    std::string sni;
    std::string subject;
  };
  for (const Case& c :
       {Case{"a.test", "CN=a.test"}, Case{"b.test", "CN=b.test"}, Case{"x.b.test", "CN=b.test"},
        Case{"B.TEST", "CN=b.test"}, Case{"", "CN=a.test"}, Case{"unknown.test", "CN=a.test"}}) {
    SCOPED_TRACE(c.sni.empty() ? "(no SNI)" : c.sni);
    auto client = tls(https_, {.sni = c.sni});
    ASSERT_TRUE(client.ok()) << client.status();
    EXPECT_EQ((*client)->subject(), c.subject);
    EXPECT_TRUE((*client)->verified());
    auto r = (*client)->get("/direct");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "direct\n");
  }
  EXPECT_EQ(listenerMetric("handshake_total", "https"), 6);
}

TEST_F(TlsTest, VersionsAndAlpn) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  // TLS 1.1 is refused: TLS 1.2 is the minimum.
  EXPECT_FALSE(tls(https_, {.sni = "a.test", .max_version = TLS1_1_VERSION}).ok());
  auto tls12 = tls(https_, {.sni = "a.test", .max_version = TLS1_2_VERSION});
  ASSERT_TRUE(tls12.ok()) << tls12.status();
  EXPECT_EQ((*tls12)->get("/direct")->status, 200);

  auto http11 = tls(https_, {.sni = "a.test", .alpn = std::string("\x02h2\x08http/1.1", 12)});
  ASSERT_TRUE(http11.ok()) << http11.status();
  EXPECT_EQ((*http11)->alpn(), "http/1.1");
  EXPECT_EQ((*http11)->get("/direct")->status, 200);
  // Only a protocol the proxy does not speak: no_application_protocol.
  EXPECT_FALSE(tls(https_, {.sni = "a.test", .alpn = std::string("\x02h2", 3)}).ok());

  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] {
    return listenerMetric("handshake_error_total", "https", "protocol") == 1 &&
           listenerMetric("handshake_error_total", "https", "alpn") == 1;
  })) << httpGet(admin_, "/metrics");
}

TEST_F(TlsTest, FailedHandshakesCloseWithoutAnAnswer) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  // Plain HTTP to a TLS listener: not a TLS record.
  auto plain = HttpConnection::connect(https_);
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE((*plain)->send("GET /direct HTTP/1.1\r\nHost: test\r\n\r\n").ok());
  auto answer = (*plain)->read();  // a TLS alert at most, then the close
  EXPECT_FALSE(answer.ok()) << answer->status;
  // Nothing at all: the handshake counts against the request head's timeout (300ms here).
  auto silent = HttpConnection::connect(optional_);
  ASSERT_TRUE(silent.ok());
  EXPECT_TRUE((*silent)->closedByPeer(absl::Seconds(5)));
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] {
    return listenerMetric("handshake_error_total", "https", "protocol") == 1 &&
           listenerMetric("handshake_error_total", "optional", "timeout") == 1;
  })) << httpGet(admin_, "/metrics");
  EXPECT_EQ(metricSeries(admin_,
                         "sluice_http_downstream_rq_total{listener=\"https\",code_class=\"4xx\"}"),
            0);
}

TEST_F(TlsTest, ClientCloseNotifyAfterItsRequestStillGetsTheAnswer) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  auto client = tls(https_, {.sni = "a.test"});
  ASSERT_TRUE(client.ok());
  // The request, then close_notify at once: the answer comes back, then the server's close.
  std::string request = "GET /echo HTTP/1.1\r\nHost: test\r\n\r\n";
  auto r = (*client)->roundTripAfter(request, [&] { (*client)->closeNotify(); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-echo-name"), "plain");
  EXPECT_TRUE((*client)->closed());
}

TEST_F(TlsTest, SessionsResumeAcrossConnectionsAndWorkers) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  auto first = tls(https_, {.sni = "a.test"});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE((*first)->reused());
  // TLS 1.3 tickets come after the handshake: a response brings them.
  ASSERT_EQ((*first)->get("/direct")->status, 200);
  ASSERT_NE((*first)->session(), nullptr);
  // Several connections: the kernel spreads them over both workers, which share the ticket
  // keys. An OpenSSL client uses a TLS 1.3 session once: each connection passes on the ticket
  // it got.
  SSL_SESSION* session = (*first)->session();
  SSL_SESSION_up_ref(session);
  for (int i = 0; i < 4; ++i) {
    auto again = tls(https_, {.sni = "a.test", .session = session});
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE((*again)->reused());
    EXPECT_EQ((*again)->get("/direct")->status, 200);
    SSL_SESSION_free(session);
    session = (*again)->session();
    ASSERT_NE(session, nullptr);
    SSL_SESSION_up_ref(session);
  }
  SSL_SESSION_free(session);
  EXPECT_EQ(listenerMetric("session_reused_total", "https"), 4);

  // session_timeout 0s: no resumption.
  auto off = tls(optional_, {.sni = "a.test"});
  ASSERT_TRUE(off.ok());
  ASSERT_EQ((*off)->get("/direct")->status, 200);
  // A ticket may still be sent (OpenSSL's TLS 1.3 without tickets issues stateful ones), but
  // nothing resumes it.
  if (SSL_SESSION* ticket = (*off)->session(); ticket != nullptr) {
    auto again = tls(optional_, {.sni = "a.test", .session = ticket});
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE((*again)->reused());
  }
}

TEST_F(TlsTest, MutualTlsRequiresACertificateFromTheTrustedCa) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  auto good = tls(mtls_, {.sni = "a.test", .cert = "client"});
  ASSERT_TRUE(good.ok()) << good.status();
  auto r = (*good)->get("/echo");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-echo-name"), "plain");  // it reached the upstream
  EXPECT_THAT(r->body, HasSubstr("x-forwarded-proto: https"));

  // Rejected in the handshake: with TLS 1.3 the client learns it at its first read.
  for (const char* cert : {"", "other-client"}) {
    SCOPED_TRACE(cert);
    auto bad = tls(mtls_, {.sni = "a.test", .cert = cert});
    if (bad.ok()) EXPECT_FALSE((*bad)->get("/echo").ok());
  }
  EXPECT_TRUE(waitFor(absl::Seconds(5), [&] {
    return listenerMetric("handshake_error_total", "mtls", "no_certificate") == 1 &&
           listenerMetric("handshake_error_total", "mtls", "fail_verify") == 1;
  })) << httpGet(admin_, "/metrics");
  EXPECT_EQ(plain_.requests(), 1);

  // OPTIONAL: served without one, and counted.
  auto without = tls(optional_, {.sni = "a.test"});
  ASSERT_TRUE(without.ok());
  EXPECT_EQ((*without)->get("/echo")->status, 200);
  auto with = tls(optional_, {.sni = "a.test", .cert = "client"});
  ASSERT_TRUE(with.ok());
  EXPECT_EQ((*with)->get("/echo")->status, 200);
  EXPECT_EQ(listenerMetric("no_certificate_total", "optional"), 1);
}

TEST_F(TlsTest, AuthorizationRulesMatchTheVerifiedClientCertificate) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  struct Case {
    int port;
    const char* cert;
    const char* path;
    int status;
  };
  const Case cases[] = {
      {optional_, "client", "/billing", 200},      // its URI SAN
      {optional_, "client", "/by-subject", 200},   // its subject, CN=client,O=Sluice Test
      {optional_, "client2", "/billing", 403},     // trusted, but other names
      {optional_, "client2", "/by-subject", 403},  // CN=client2,...
      {optional_, "", "/billing", 403},            // no certificate
      {mtls_, "client", "/billing", 200},         {mtls_, "client2", "/by-subject", 403},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.port == mtls_ ? "mtls " : "optional ", c.cert, " ", c.path));
    auto conn = tls(c.port, {.sni = "a.test", .cert = c.cert});
    ASSERT_TRUE(conn.ok()) << conn.status();
    auto r = (*conn)->get(c.path);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, c.status);
  }
  // Without TLS there is no certificate: denied.
  auto plain = HttpConnection::connect(http_);
  ASSERT_TRUE(plain.ok());
  auto r = (*plain)->roundTrip("GET /billing HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(metricSeries(admin_, "sluice_rbac_allowed_total"), 3);
  EXPECT_EQ(metricSeries(admin_, "sluice_rbac_denied_total"), 5);
}

TEST_F(TlsTest, UpstreamTlsVerifiesTheUpstreamAndPresentsTheClientCertificate) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  // The health checks go over TLS too; the endpoint takes requests after its first pass.
  ASSERT_TRUE(waitFor(
      absl::Seconds(10),
      [&] {
        return metricSeries(admin_,
                            "sluice_cluster_health_check_success_total{cluster=\"secure\"}") >= 1;
      }))
      << httpGet(admin_, "/metrics") << proxy_->log();
  auto conn = HttpConnection::connect(http_);
  ASSERT_TRUE(conn.ok());
  auto r = (*conn)->roundTrip("GET /secure HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->header("x-echo-name"), "secure");
  EXPECT_THAT(r->header("x-echo-client-subject"), HasSubstr("CN=client"));
  EXPECT_THAT(r->body, HasSubstr("x-forwarded-proto: http\n"));
  // Upstream connections that close after each answer: a worker's next connection to the
  // endpoint resumes the session its last one got. Four downstream connections over two
  // workers: one of them has at least two.
  for (int i = 0; i < 4; ++i) {
    auto c = HttpConnection::connect(http_);
    ASSERT_TRUE(c.ok());
    r = (*c)->roundTrip("GET /secure HTTP/1.1\r\nHost: test\r\nx-echo-close: 1\r\n\r\n");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_GE(clusterMetric("ssl_session_reused_total", "secure"), 1);

  for (const char* path : {"/wrong-ca", "/wrong-name"}) {
    SCOPED_TRACE(path);
    auto c = HttpConnection::connect(http_);
    ASSERT_TRUE(c.ok());
    r = (*c)->roundTrip(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\n\r\n"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 502);
    EXPECT_EQ(r->body, "upstream TLS handshake failed\n");
  }
  EXPECT_EQ(clusterMetric("ssl_handshake_error_total", "wrong-ca", "fail_verify"), 1);
  const std::string dump = httpGet(admin_, "/config_dump");
  EXPECT_THAT(dump, HasSubstr(R"("private_key":{"inline_string":"[redacted]"})"));
  EXPECT_THAT(dump, Not(HasSubstr("PRIVATE KEY")));
  EXPECT_EQ(clusterMetric("ssl_handshake_error_total", "wrong-name", "fail_verify_san"), 1);

  // The mirrored copies went over TLS too.
  EXPECT_TRUE(
      waitFor(absl::Seconds(5), [&] { return clusterMetric("rq_mirror_total", "secure") == 5; }));
  EXPECT_EQ(clusterMetric("rq_mirror_failed_total", "secure"), 0);
  EXPECT_EQ(clusterMetric("ssl_handshake_error_total", "secure", "fail_verify"), 0);
}

TEST_F(TlsTest, HttpsRedirects) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  auto conn = HttpConnection::connect(redirect_);
  ASSERT_TRUE(conn.ok());
  // Every request on the redirect listener, before routing (/direct would answer 200).
  auto r = (*conn)->roundTrip("GET /direct/a?x=1&y=2 HTTP/1.1\r\nHost: shop.test:8080\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 308);
  EXPECT_EQ(r->header("location"), "https://shop.test:8443/direct/a?x=1&y=2");
  r = (*conn)->roundTrip("GET /b HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header("location"), "https://[::1]:8443/b");

  // A route's scheme_redirect, and a redirect that keeps the request's scheme.
  auto plain = HttpConnection::connect(http_);
  ASSERT_TRUE(plain.ok());
  r = (*plain)->roundTrip("GET /to-https/x HTTP/1.1\r\nHost: shop.test\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 301);
  EXPECT_EQ(r->header("location"), "https://shop.test/to-https/x");
  r = (*plain)->roundTrip("GET /same-scheme HTTP/1.1\r\nHost: shop.test\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header("location"), "http://elsewhere.test/same-scheme");
  auto secure = tls(https_, {.sni = "a.test"});
  ASSERT_TRUE(secure.ok());
  r = (*secure)->get("/same-scheme", "shop.test");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header("location"), "https://elsewhere.test/same-scheme");
}

TEST_F(TlsTest, RotatedCertificateFilesServeNewConnectionsWithoutDroppingOpenOnes) {
  ASSERT_NO_FATAL_FAILURE(startProxy());
  auto open = tls(https_, {.sni = "a.test"});
  ASSERT_TRUE(open.ok());
  EXPECT_EQ((*open)->subject(), "CN=a.test");
  ASSERT_EQ((*open)->get("/direct")->status, 200);

  // Replaced the way tools should: each file written aside and renamed over the old one.
  auto replace = [&](const std::string& name, const std::string& content) {
    writeFile(dir_ + "/" + name + ".new", content);
    ASSERT_EQ(rename((dir_ + "/" + name + ".new").c_str(), (dir_ + "/" + name).c_str()), 0);
  };
  replace("a.key", readFile(pki_->key("a-rotated")));
  replace("a.pem", readFile(pki_->cert("a-rotated")));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    auto c = tls(https_, {.sni = "a.test"});
    return c.ok() && (*c)->subject() == "CN=a.test,O=Rotated";
  })) << proxy_->log();
  // b.test kept its certificate; the open connection keeps working on its own.
  auto b = tls(https_, {.sni = "b.test"});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->subject(), "CN=b.test");
  auto r = (*open)->get("/direct");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(listenerMetric("reload_total", "https"), 1);

  // A broken file is reported and changes nothing. (The rotation itself may have been seen
  // half done, the new key with the old certificate, and reported once.)
  const double errors = listenerMetric("reload_error_total", "https");
  replace("a.pem", "not a certificate\n");
  EXPECT_TRUE(waitFor(absl::Seconds(10),
                      [&] { return listenerMetric("reload_error_total", "https") > errors; }));
  EXPECT_THAT(proxy_->log(), HasSubstr("listener 'https' tls.certificates[0].certificate_chain"));
  EXPECT_THAT(proxy_->log(), Not(HasSubstr("PRIVATE KEY")));
  auto after = tls(https_, {.sni = "a.test"});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->subject(), "CN=a.test,O=Rotated");
  EXPECT_EQ((*open)->get("/direct")->status, 200);

  // A cluster's CA file: the right CA makes its upstream verify.
  auto upstream = [&] {
    auto c = HttpConnection::connect(http_);
    if (!c.ok()) return 0;
    auto r = (*c)->roundTrip("GET /wrong-ca HTTP/1.1\r\nHost: test\r\n\r\n");
    return r.ok() ? r->status : 0;
  };
  EXPECT_EQ(upstream(), 502);
  replace("upstream-ca.pem", readFile(pki_->cert("ca")));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] { return upstream() == 200; })) << proxy_->log();
  EXPECT_EQ(clusterMetric("ssl_reload_total", "wrong-ca"), 1);
}

TEST_F(TlsTest, ListenerTlsChangedOverTheControlPlane) {
  const std::string cp_dir = makeTempDir("cp-config");
  const int xds = freePort(), mgmt = freePort(), cp_admin = freePort();
  auto listener = [&](const std::string& cert) {
    return absl::StrCat(
        "kind: Listener\nname: https\naddress: 127.0.0.1\nport: ", https_,
        "\nroute_config: main\ntls:\n  certificates:\n    - certificate_chain: {filename: \"", cert,
        ".pem\"}\n      private_key: {filename: \"", cert, ".key\"}\n");
  };
  writeFile(cp_dir + "/routes.yaml",
            "kind: RouteConfiguration\nname: main\nvirtual_hosts:\n  - name: all\n"
            "    domains: [\"*\"]\n    routes:\n      - match: {prefix: /}\n"
            "        direct_response: {status: 200, body: \"ok\\n\"}\n");
  writeFile(cp_dir + "/listeners.yaml", listener(pki_->dir + "/a"));
  Process cp(kCp,
             {"--config-dir", cp_dir, "--xds-listen", absl::StrCat("127.0.0.1:", xds),
              "--mgmt-listen", absl::StrCat("127.0.0.1:", mgmt), "--admin-listen",
              absl::StrCat("127.0.0.1:", cp_admin), "--debounce", "50ms"},
             "sluice-cp");
  proxy_ = std::make_unique<Process>(
      kSluice,
      std::vector<std::string>{"--xds", absl::StrCat("127.0.0.1:", xds), "--node-id", "p1",
                               "--workers", "2", "--admin", absl::StrCat("127.0.0.1:", admin_)},
      "sluice");
  ASSERT_TRUE(waitFor(absl::Seconds(15), [&] { return httpGet(admin_, "/ready") == "ready\n"; }))
      << proxy_->log() << cp.log();
  auto open = tls(https_, {.sni = "a.test"});
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ((*open)->subject(), "CN=a.test");
  ASSERT_EQ((*open)->get("/")->status, 200);

  // Another certificate in the listener's config: new connections get it, the open one stays.
  writeFile(cp_dir + "/listeners.yaml", listener(pki_->dir + "/a-rotated"));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    auto c = tls(https_, {.sni = "a.test"});
    return c.ok() && (*c)->subject() == "CN=a.test,O=Rotated";
  })) << proxy_->log();
  auto r = (*open)->get("/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);

  // A file the proxy cannot read passes the control plane's validation (it never reads files)
  // and is NACKed by the proxy with the reason; the listener keeps its certificate.
  writeFile(cp_dir + "/listeners.yaml", listener(pki_->dir + "/missing"));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return metricSeries(admin_, "sluice_xds_update_rejected_total{type=\"Listener\"}") >= 1;
  })) << proxy_->log();
  EXPECT_THAT(proxy_->log(), HasSubstr("tls.certificates[0].certificate_chain: cannot read"));
  auto after = tls(https_, {.sni = "a.test"});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->subject(), "CN=a.test,O=Rotated");
  proxy_->stop(SIGTERM);
  cp.stop(SIGTERM);
}

}  // namespace
}  // namespace sluice::testing
