// Edge security end to end (issue 6): API keys, JWTs (inline and remote JWKS), Basic
// credentials, HMAC request signatures with replay protection, RBAC, IP lists and trusted
// x-forwarded-for hops, path tricks against a deny rule, secrets kept out of /config_dump. A
// real sluice in --config-dir mode in front of a real sluice-echo, all on 127.0.0.1.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <sys/wait.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/common/loopback.h"
#include "test/common/test_pki.h"
#include "test/integration/echo.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSluice[] = "proxy/server/sluice";
// 32 bytes and more: an HS256 key and an HMAC signing secret.
constexpr char kJwtSecret[] = "jwt-secret-of-the-test-0123456789abcdef";
constexpr char kHmacSecret[] = "hmac-secret-of-the-test-0123456789abcdef";
constexpr char kAliceKey[] = "alice-key-0123456789";

std::string base64Url(absl::string_view data) {
  std::string out;
  absl::WebSafeBase64Escape(data, &out);
  return out;
}

std::string hmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string digest(const EVP_MD* md, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

// An HS256 token with `claims` (a JSON object's members) signed with `secret`.
std::string hs256Token(absl::string_view claims, absl::string_view secret = kJwtSecret,
                       absl::string_view alg = "HS256") {
  std::string input =
      absl::StrCat(base64Url(absl::StrCat("{\"alg\":\"", alg, "\",\"typ\":\"JWT\"}")), ".",
                   base64Url(absl::StrCat("{", claims, "}")));
  if (alg == "none") return input + ".";
  return absl::StrCat(input, ".", base64Url(hmacSha256(secret, input)));
}

std::string claimsValidFor(absl::Duration d, absl::string_view extra = "") {
  return absl::StrCat("\"iss\":\"https://idp.test\",\"aud\":\"orders\",\"sub\":\"user-7\",\"exp\":",
                      absl::ToUnixSeconds(absl::Now() + d), extra);
}

std::string jwks() {
  return absl::StrCat("{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\"",
                      base64Url(kJwtSecret), "\"}]}");
}

// The value of a "name: value" line of sluice-echo's answer, or "" (names compared as sent).
std::string echoed(absl::string_view echo, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(echo, '\n')) {
    if (absl::StartsWithIgnoreCase(line, absl::StrCat(name, ": "))) {
      return std::string(line.substr(name.size() + 2));
    }
  }
  return "";
}

std::string httpDate(absl::Time t) {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", t, absl::UTCTimeZone());
}

class AuthTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (sluice_ == nullptr) return;
    EXPECT_TRUE(sluice_->running()) << "sluice exited during the test";
    int status = sluice_->stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
    if (HasFailure()) std::cerr << "--- sluice log ---\n" << sluice_->log();
  }

  // Starts an echo upstream and sluice on `routes` (the route configuration "main"'s virtual
  // hosts and providers), with the consumers below, a cluster "echo", and a listener with
  // `listener_extra` YAML lines; `resources`: more YAML documents ({listen} and {jwks} are
  // filled in there too).
  void startProxy(const std::string& routes, const std::string& listener_extra = "",
                  const std::string& resources = "") {
    echo_ = std::make_unique<Echo>("echo");
    ASSERT_TRUE(echo_->start()) << echo_->log();
    port_ = freePort();
    admin_port_ = freePort();
    const std::string sha1 =
        absl::StrCat("{SHA}", absl::Base64Escape(digest(EVP_sha1(), "wonderland")));
    const std::string config =
        absl::StrCat(R"(
kind: Consumer
name: alice
groups: [admins]
api_keys:
  - value: {inline_string: ")",
                     kAliceKey, R"("}
basic_auth:
  - {username: alice, password_hash: ")",
                     sha1, R"("}
hmac_keys:
  - {key_id: alice-signer, secret: {inline_string: ")",
                     kHmacSecret, R"("}}
jwt_subjects: [user-7]
---
kind: Consumer
name: bob
api_keys:
  - sha256: ")",
                     absl::BytesToHexString(digest(EVP_sha256(), "bob-key-0123456789abc")), R"("
---
kind: Cluster
name: echo
endpoints: [{address: 127.0.0.1, port: {echo}}]
---
kind: Cluster
name: self
endpoints: [{address: 127.0.0.1, port: {listen}}]
---
kind: RouteConfiguration
name: main
)",
                     routes, R"(
---
kind: Listener
name: main
address: 127.0.0.1
port: {listen}
route_config: main
)",
                     listener_extra, resources.empty() ? "" : "\n---\n", resources);
    const std::string dir = makeTempDir("auth-config");
    writeFile(dir + "/config.yaml",
              absl::StrReplaceAll(config, {{"{echo}", absl::StrCat(echo_->port())},
                                           {"{listen}", absl::StrCat(port_)},
                                           {"{jwks}", absl::CEscape(jwks())}}));
    sluice_ = std::make_unique<Process>(
        kSluice,
        std::vector<std::string>{"--config-dir", dir, "--workers", "2", "--admin",
                                 absl::StrCat("127.0.0.1:", admin_port_)},
        "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(15), [&] {
      return httpGet(admin_port_, "/ready") == "ready\n" && HttpConnection::connect(port_).ok();
    })) << sluice_->log();
  }

  HttpResponse send(absl::string_view method, absl::string_view target,
                    absl::string_view headers = "", absl::string_view body = "") {
    auto conn = HttpConnection::connect(port_);
    EXPECT_TRUE(conn.ok()) << conn.status();
    if (!conn.ok()) return {};
    std::string length = body.empty() ? "" : absl::StrCat("Content-Length: ", body.size(), "\r\n");
    auto r = (*conn)->roundTrip(absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: test\r\n",
                                             headers, length, "\r\n", body));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }
  HttpResponse get(absl::string_view target, absl::string_view headers = "") {
    return send("GET", target, headers);
  }

  // The sum of a metric's series with every label="value" given; -1 when none.
  double metric(absl::string_view name, absl::string_view labels = "") {
    double sum = 0;
    bool found = false;
    for (absl::string_view line : absl::StrSplit(httpGet(admin_port_, "/metrics"), '\n')) {
      if (!absl::ConsumePrefix(&line, name) || line.empty() || (line[0] != '{' && line[0] != ' ')) {
        continue;
      }
      size_t space = line.rfind(' ');
      if (!labels.empty() && !absl::StrContains(line.substr(0, space), labels)) continue;
      double v = 0;
      if (absl::SimpleAtod(line.substr(space + 1), &v)) {
        sum += v;
        found = true;
      }
    }
    return found ? sum : -1;
  }

  int port_ = 0, admin_port_ = 0;
  std::unique_ptr<Echo> echo_;
  std::unique_ptr<Process> sluice_;
};

constexpr char kAllMethods[] = R"(
jwt_providers:
  - name: idp
    issuer: https://idp.test
    audiences: [orders]
    local_jwks: {inline_string: "{jwks}"}
    claim_to_headers: [{claim: scope, header: x-scope}]
virtual_hosts:
  - name: default
    domains: ["*"]
    access:
      authentication:
        api_key: {headers: [x-api-key], query_parameters: [apikey]}
        jwt_providers: [idp]
        basic_auth: {realm: tools}
        hmac: {}
    routes:
      - match: {prefix: /open}
        route: {cluster: echo}
        access: {authentication: {api_key: {}, allow_anonymous: true}}
      - match: {prefix: /}
        route: {cluster: echo}
)";

TEST_F(AuthTest, ApiKeysNameTheConsumerUpstreamAndNeverTravelThere) {
  ASSERT_NO_FATAL_FAILURE(startProxy(kAllMethods));
  HttpResponse r = get("/orders", absl::StrCat("x-api-key: ", kAliceKey, "\r\n"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "alice");
  EXPECT_EQ(echoed(r.body, "x-api-key"), "") << "the key went upstream";

  // A key configured as its SHA-256 only; the query parameter.
  r = get("/orders?apikey=bob-key-0123456789abc");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "bob");

  // A client cannot claim a consumer by sending the header itself.
  r = get("/orders", absl::StrCat("x-api-key: ", kAliceKey, "\r\nx-sluice-consumer: bob\r\n"));
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "alice");

  r = get("/orders", "x-api-key: not-a-key-of-anyone\r\n");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, "unauthorized\n");
  EXPECT_GE(r.headerCount("www-authenticate"), 1);
  r = get("/orders");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(metric("sluice_auth_failure_total", "method=\"api_key\",reason=\"unknown_consumer\""),
            1);
  EXPECT_EQ(metric("sluice_auth_missing_total"), 1);
  EXPECT_EQ(metric("sluice_auth_success_total", "method=\"api_key\""), 3);

  // allow_anonymous: no credential passes, a wrong one does not.
  r = get("/open");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "");
  EXPECT_EQ(get("/open", "x-api-key: wrong-key-wrong-key\r\n").status, 401);
}

TEST_F(AuthTest, JwtsAreVerifiedAndTheirClaimsForwarded) {
  ASSERT_NO_FATAL_FAILURE(startProxy(kAllMethods));
  const std::string good =
      hs256Token(claimsValidFor(absl::Minutes(5), ",\"scope\":\"read write\""));
  HttpResponse r = get("/orders", absl::StrCat("Authorization: Bearer ", good, "\r\n"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "alice");  // sub user-7
  EXPECT_EQ(echoed(r.body, "x-scope"), "read write");
  EXPECT_EQ(echoed(r.body, "authorization"), "") << "the token went upstream";
  // Cached the second time: the same answer.
  EXPECT_EQ(get("/orders", absl::StrCat("Authorization: Bearer ", good, "\r\n")).status, 200);

  struct Case {
    const char* name;
    std::string token;
    const char* reason;
  };
  const Case cases[] = {
      {"expired", hs256Token(claimsValidFor(absl::Minutes(-5))), "expired"},
      {"wrong key",
       hs256Token(claimsValidFor(absl::Minutes(5)), "another-secret-0123456789abcdefgh"),
       "bad_credential"},
      {"alg none", hs256Token(claimsValidFor(absl::Minutes(5)), kJwtSecret, "none"), "malformed"},
      {"wrong audience",
       hs256Token(absl::StrCat("\"iss\":\"https://idp.test\",\"aud\":\"billing\",\"exp\":",
                               absl::ToUnixSeconds(absl::Now()) + 300)),
       "wrong_audience"},
      {"garbage", "abc.def.ghi", "malformed"},
  };
  for (const Case& c : cases) {
    r = get("/orders", absl::StrCat("Authorization: Bearer ", c.token, "\r\n"));
    EXPECT_EQ(r.status, 401) << c.name;
    EXPECT_THAT(r.header("www-authenticate"), Not(HasSubstr(c.reason))) << "detail leaked";
  }
  EXPECT_GE(metric("sluice_auth_failure_total", "method=\"jwt\",reason=\"expired\""), 1);
  EXPECT_GE(metric("sluice_auth_failure_total", "method=\"jwt\",reason=\"wrong_audience\""), 1);
}

TEST_F(AuthTest, RemoteJwksIsFetchedThroughItsCluster) {
  // The key set is served by the proxy itself (a direct response on its own listener), fetched
  // through the cluster "self".
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
jwt_providers:
  - name: idp
    issuer: https://idp.test
    remote_jwks: {uri: "http://idp.test/jwks.json", cluster: self, refresh_interval: 60s}
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {path: /jwks.json}
        direct_response: {status: 200, body: "{jwks}"}
      - match: {prefix: /}
        route: {cluster: echo}
        access: {authentication: {jwt_providers: [idp]}}
)"));
  const std::string token = hs256Token(claimsValidFor(absl::Minutes(5)));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return get("/orders", absl::StrCat("Authorization: Bearer ", token, "\r\n")).status == 200;
  }));
  EXPECT_GE(metric("sluice_jwks_fetch_total"), 1);
}

// Regression: a token whose issuer no provider accepts was admitted unauthenticated on a route
// allowing anonymous requests when the last provider found no token of its own.
TEST_F(AuthTest, AJwtNoProviderAcceptsIsRefusedNotTakenAsAnonymous) {
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
jwt_providers:
  - {name: idp, issuer: https://idp.test, local_jwks: {inline_string: "{jwks}"}}
  - name: partner
    issuer: https://partner.test
    local_jwks: {inline_string: "{jwks}"}
    from_headers: [x-partner-token]
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: echo}
        access: {authentication: {jwt_providers: [idp, partner], allow_anonymous: true}}
)"));
  auto claims = [](absl::string_view issuer) {
    return absl::StrCat("\"iss\":\"", issuer,
                        "\",\"sub\":\"user-7\",\"exp\":", absl::ToUnixSeconds(absl::Now()) + 300);
  };
  // Each provider's own token, where it looks for it: the same key set, other issuers.
  HttpResponse r = get(
      "/a", absl::StrCat("Authorization: Bearer ", hs256Token(claims("https://idp.test")), "\r\n"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "alice");
  r = get("/a",
          absl::StrCat("x-partner-token: ", hs256Token(claims("https://partner.test")), "\r\n"));
  EXPECT_EQ(r.status, 200);
  // No credential at all: anonymous, as configured.
  r = get("/a");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "");
  const int upstream_before = echo_->requests();
  // A token signed with the right key but issued by nobody configured, and the partner's token
  // where only idp reads: refused, never anonymous.
  for (const std::string& issuer :
       {std::string("https://evil.test"), std::string("https://partner.test")}) {
    SCOPED_TRACE(issuer);
    r = get("/a", absl::StrCat("Authorization: Bearer ", hs256Token(claims(issuer)), "\r\n"));
    EXPECT_EQ(r.status, 401);
  }
  EXPECT_EQ(echo_->requests(), upstream_before);
  EXPECT_EQ(metric("sluice_auth_failure_total", "method=\"jwt\",reason=\"wrong_issuer\""), 2);
}

TEST_F(AuthTest, RemoteJwksOverHttpsVerifiesTheServer) {
  auto pki = makeTestPki(makeTempDir("auth-pki"));
  ASSERT_TRUE(pki.ok()) << pki.status();
  // The key set is served by the proxy's own TLS listener ("a.test"'s certificate), fetched
  // through a cluster that trusts the test CA, and through one that trusts another CA.
  const int tls_port = freePort();
  const std::string resources = absl::StrReplaceAll(
      R"(kind: Listener
name: secure
address: 127.0.0.1
port: {tls}
route_config: main
tls:
  certificates: [{certificate_chain: {filename: "{pki}/a.pem"}, private_key: {filename: "{pki}/a.key"}}]
---
kind: Cluster
name: idp-tls
endpoints: [{address: 127.0.0.1, port: {tls}}]
tls: {validation: {trusted_ca: {filename: "{pki}/ca.pem"}}}
---
kind: Cluster
name: impostor
endpoints: [{address: 127.0.0.1, port: {tls}}]
tls: {validation: {trusted_ca: {filename: "{pki}/other-ca.pem"}}}
)",
      {{"{tls}", absl::StrCat(tls_port)}, {"{pki}", pki->dir}});
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
jwt_providers:
  - name: idp
    issuer: https://idp.test
    remote_jwks: {uri: "https://a.test/jwks.json", cluster: idp-tls, refresh_interval: 60s}
  - name: spoofed
    issuer: https://spoofed.test
    remote_jwks: {uri: "https://a.test/jwks.json", cluster: impostor, refresh_interval: 60s}
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {path: /jwks.json}
        direct_response: {status: 200, body: "{jwks}"}
      - match: {prefix: /spoofed}
        route: {cluster: echo}
        access: {authentication: {jwt_providers: [spoofed]}}
      - match: {prefix: /}
        route: {cluster: echo}
        access: {authentication: {jwt_providers: [idp]}}
)",
                                     "", resources));
  const std::string token = hs256Token(claimsValidFor(absl::Minutes(5)));
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    return get("/orders", absl::StrCat("Authorization: Bearer ", token, "\r\n")).status == 200;
  }));
  EXPECT_GE(metric("sluice_jwks_fetch_total"), 1);
  // The server's certificate does not chain to the impostor cluster's CA: no keys, and tokens
  // for that provider are refused.
  EXPECT_TRUE(
      waitFor(absl::Seconds(10), [&] { return metric("sluice_jwks_fetch_failed_total") >= 1; }));
  const std::string spoofed = hs256Token(absl::StrCat("\"iss\":\"https://spoofed.test\",\"exp\":",
                                                      absl::ToUnixSeconds(absl::Now()) + 300));
  EXPECT_EQ(get("/spoofed", absl::StrCat("Authorization: Bearer ", spoofed, "\r\n")).status, 401);
  EXPECT_GE(metric("sluice_auth_failure_total", "reason=\"keys_unavailable\""), 1);
  EXPECT_THAT(sluice_->log(), HasSubstr("fetch failed"));
}

TEST_F(AuthTest, BasicCredentials) {
  ASSERT_NO_FATAL_FAILURE(startProxy(kAllMethods));
  HttpResponse r = get("/orders", absl::StrCat("Authorization: Basic ",
                                               absl::Base64Escape("alice:wonderland"), "\r\n"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "alice");
  EXPECT_EQ(echoed(r.body, "authorization"), "");
  r = get("/orders",
          absl::StrCat("Authorization: Basic ", absl::Base64Escape("alice:guess"), "\r\n"));
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.body, Not(HasSubstr("alice")));
  bool challenged = false;
  for (const auto& [name, value] : r.headers) {
    if (absl::EqualsIgnoreCase(name, "www-authenticate") &&
        absl::StartsWith(value, "Basic realm=\"tools\"")) {
      challenged = true;
    }
  }
  EXPECT_TRUE(challenged);
}

// A signed request: method, target, Date, nonce and the body's Digest under the signature.
std::string signedHeaders(absl::string_view method, absl::string_view target,
                          absl::string_view body, absl::string_view nonce, absl::Time date,
                          absl::string_view secret = kHmacSecret) {
  const std::string date_text = httpDate(date);
  const std::string digest_value =
      absl::StrCat("SHA-256=", absl::Base64Escape(digest(EVP_sha256(), body)));
  std::string lower_method = absl::AsciiStrToLower(method);
  std::string signing = absl::StrCat("@request-target: ", lower_method, " ", target,
                                     "\ndate: ", date_text, "\nx-sluice-nonce: ", nonce);
  std::string names = "@request-target date x-sluice-nonce";
  if (!body.empty()) {
    absl::StrAppend(&signing, "\ndigest: ", digest_value);
    absl::StrAppend(&names, " digest");
  }
  std::string headers = absl::StrCat("Date: ", date_text, "\r\nx-sluice-nonce: ", nonce, "\r\n");
  if (!body.empty()) absl::StrAppend(&headers, "Digest: ", digest_value, "\r\n");
  absl::StrAppend(
      &headers,
      "Authorization: Signature keyId=\"alice-signer\",algorithm=\"hmac-sha256\",headers=\"", names,
      "\",signature=\"", absl::Base64Escape(hmacSha256(secret, signing)), "\"\r\n");
  return headers;
}

TEST_F(AuthTest, SignedRequestsCannotBeReplayedOrAltered) {
  ASSERT_NO_FATAL_FAILURE(startProxy(kAllMethods));
  const std::string body = "{\"amount\": 100}";
  const std::string headers =
      signedHeaders("POST", "/orders?x=1", body, "nonce-0000000000000001", absl::Now());
  HttpResponse r = send("POST", "/orders?x=1", headers, body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(echoed(r.body, "x-sluice-consumer"), "alice");
  EXPECT_EQ(echoed(r.body, "body-bytes"), absl::StrCat(body.size()));

  // The same request again: a replay.
  EXPECT_EQ(send("POST", "/orders?x=1", headers, body).status, 401);
  EXPECT_EQ(metric("sluice_auth_failure_total", "method=\"hmac\",reason=\"replay\""), 1);
  // Another body under the signed Digest never reaches the upstream.
  const int64_t before = echo_->requests();
  r = send("POST", "/orders?x=1",
           signedHeaders("POST", "/orders?x=1", body, "nonce-0000000000000002", absl::Now()),
           "{\"amount\": 999}");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(echo_->requests(), before);
  // Another target than the signed one; a stale date; a wrong secret.
  EXPECT_EQ(
      send("POST", "/orders?x=2",
           signedHeaders("POST", "/orders?x=1", body, "nonce-0000000000000003", absl::Now()), body)
          .status,
      401);
  EXPECT_EQ(send("POST", "/orders",
                 signedHeaders("POST", "/orders", body, "nonce-0000000000000004",
                               absl::Now() - absl::Minutes(10)),
                 body)
                .status,
            401);
  EXPECT_EQ(send("POST", "/orders",
                 signedHeaders("POST", "/orders", body, "nonce-0000000000000005", absl::Now(),
                               "not-the-secret-0123456789abcdefghij"),
                 body)
                .status,
            401);
  // A signed GET without a body.
  EXPECT_EQ(
      get("/orders", signedHeaders("GET", "/orders", "", "nonce-0000000000000006", absl::Now()))
          .status,
      200);
}

TEST_F(AuthTest, RbacDenyRuleCannotBeDodgedWithPathTricks) {
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
virtual_hosts:
  - name: default
    domains: ["*"]
    access:
      authentication: {api_key: {}, allow_anonymous: true}
      rbac:
        rules:
          - {name: admins, action: ALLOW, groups: [admins], paths: [{prefix: /admin}]}
          - {name: others, action: DENY, paths: [{prefix: /admin}]}
          - {name: readers, action: ALLOW, claims: [], methods: [GET, HEAD]}
        default_action: DENY
    routes:
      - match: {prefix: /}
        route: {cluster: echo}
)"));
  EXPECT_EQ(get("/public/page").status, 200);
  EXPECT_EQ(send("POST", "/public/page", "", "x").status, 403);
  const int64_t before = echo_->requests();
  for (const char* target : {"/admin", "/admin/users", "/public/../admin/users", "//admin/users",
                             "/public/%2e%2e/admin/users", "/public/%2E%2E/admin", "/./admin",
                             "/admin%2Fusers", "/%61dmin/users", "/public/..%2Fadmin"}) {
    HttpResponse r = get(target);
    EXPECT_TRUE(r.status == 403 || r.status == 400) << target << " answered " << r.status;
  }
  EXPECT_EQ(echo_->requests(), before) << "a trick reached the upstream";
  HttpResponse r = get("/public/../admin/users", absl::StrCat("x-api-key: ", kAliceKey, "\r\n"));
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("GET /admin/users HTTP/1.1"));
  EXPECT_GE(metric("sluice_rbac_denied_total"), 5);
}

TEST_F(AuthTest, RbacShadowModeOnlyCounts) {
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: echo}
        access: {rbac: {rules: [{action: DENY, methods: [DELETE]}], shadow: true}}
)"));
  EXPECT_EQ(send("DELETE", "/thing").status, 200);
  EXPECT_EQ(metric("sluice_rbac_shadow_denied_total"), 1);
  EXPECT_EQ(metric("sluice_rbac_denied_total"), 0);
}

TEST_F(AuthTest, IpListsHonourTrustedHops) {
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /internal}
        route: {cluster: echo}
        access: {ip_filter: {allow: [10.0.0.0/8]}}
      - match: {prefix: /}
        route: {cluster: echo}
        access: {ip_filter: {deny: ["192.0.2.0/24", "2001:db8::/32"]}}
)",
                                     "xff_num_trusted_hops: 1\n"));
  // The client is the entry the trusted proxy (127.0.0.1, the peer) appended.
  EXPECT_EQ(get("/internal", "x-forwarded-for: 10.1.2.3\r\n").status, 200);
  EXPECT_EQ(get("/internal", "x-forwarded-for: 10.1.2.3, 203.0.113.9\r\n").status, 403);
  EXPECT_EQ(get("/internal").status, 403);  // no entry: the peer, 127.0.0.1
  EXPECT_EQ(get("/other", "x-forwarded-for: 192.0.2.7\r\n").status, 403);
  EXPECT_EQ(get("/other", "x-forwarded-for: 2001:db8::1\r\n").status, 403);
  EXPECT_EQ(get("/other", "x-forwarded-for: 198.51.100.1\r\n").status, 200);
  EXPECT_EQ(get("/other", "x-forwarded-for: not-an-address\r\n").status, 400);
  EXPECT_EQ(metric("sluice_ip_filter_denied_total"), 4);
}

TEST_F(AuthTest, ListenerIpListClosesAtAccept) {
  ASSERT_NO_FATAL_FAILURE(startProxy(R"(
virtual_hosts:
  - name: default
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: echo}
)",
                                     "ip_filter: {deny: [127.0.0.0/8]}\n"));
  auto conn = HttpConnection::connect(port_);
  ASSERT_TRUE(conn.ok());
  EXPECT_TRUE((*conn)->closedByPeer(absl::Seconds(5)));
  EXPECT_GE(metric("sluice_listener_ip_filter_denied_total"), 1);
}

TEST_F(AuthTest, SecretsStayOutOfConfigDump) {
  ASSERT_NO_FATAL_FAILURE(startProxy(kAllMethods));
  const std::string dump = httpGet(admin_port_, "/config_dump");
  EXPECT_THAT(dump, HasSubstr("\"alice\""));
  EXPECT_THAT(dump, HasSubstr("[redacted]"));
  for (absl::string_view secret :
       {absl::string_view(kAliceKey), absl::string_view(kHmacSecret), absl::string_view("{SHA}")}) {
    EXPECT_THAT(dump, Not(HasSubstr(secret)));
  }
  EXPECT_THAT(dump, Not(HasSubstr(base64Url(kJwtSecret))));
  EXPECT_THAT(sluice_->log(), Not(HasSubstr(kAliceKey)));
}

}  // namespace
}  // namespace sluice::testing
