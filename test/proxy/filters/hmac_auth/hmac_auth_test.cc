// Signed requests end to end (with a signer written here from the documented scheme, not from the
// library), each piece's strictness, and the body digest.
#include "proxy/filters/hmac_auth/hmac_auth.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice::hmac_auth {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef-orders";
constexpr char kOtherSecret[] = "fedcba9876543210fedcba9876543210-billing";
const absl::Time kNow = absl::FromUnixSeconds(1699349400);  // Tue, 07 Nov 2023 09:30:00 GMT

std::string imfFixdate(absl::Time t) {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", t, absl::UTCTimeZone());
}

std::string base64(const crypto::Sha256Digest& digest) { return crypto::base64Encode(digest); }

// A client as the scheme's documentation tells one to write it.
struct ClientRequest {
  std::string method = "POST";
  std::string target = "/v1/orders?dry_run=1";
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;

  ClientRequest() {
    headers["date"] = imfFixdate(kNow);
    headers["x-sluice-nonce"] = "7b1c2f0e9a4d4e56b3f1c8d2a0e9f4b7";
    headers["content-type"] = "application/json";
    setBody("{\"item\": 42}");
  }

  void setBody(std::string text) {
    body = std::move(text);
    headers["digest"] = absl::StrCat("SHA-256=", base64(crypto::sha256(body)));
  }

  void sign(const std::string& key_id, const std::string& secret,
            const std::string& names = "@request-target date x-sluice-nonce digest") {
    std::vector<std::string> lines;
    for (absl::string_view name : absl::StrSplit(names, ' ')) {
      if (name == "@request-target") {
        lines.push_back(
            absl::StrCat("@request-target: ", absl::AsciiStrToLower(method), " ", target));
      } else {
        lines.push_back(absl::StrCat(name, ": ", headers[std::string(name)]));
      }
    }
    const std::string signature = base64(crypto::hmacSha256(secret, absl::StrJoin(lines, "\n")));
    headers["authorization"] =
        absl::StrCat("Signature keyId=\"", key_id, "\",algorithm=\"hmac-sha256\",headers=\"", names,
                     "\",signature=\"", signature, "\"");
  }
};

class HmacAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<SecretStore> secrets =
        SecretStore::build({{"orders-client", 3, kSecret}, {"billing", 4, kOtherSecret}});
    ASSERT_TRUE(secrets.ok()) << secrets.status();
    secrets_ = *std::move(secrets);
    absl::StatusOr<std::unique_ptr<NonceCache>> nonces = NonceCache::create(1024, 64);
    ASSERT_TRUE(nonces.ok()) << nonces.status();
    nonces_ = *std::move(nonces);
  }

  // What the proxy would see of `request`, which it then authenticates.
  Verdict authenticate(const ClientRequest& request, absl::Time now = kNow) {
    const auto lookup = [&](std::string_view name) -> std::optional<std::string_view> {
      auto it = request.headers.find(std::string(name));
      if (it == request.headers.end()) return std::nullopt;
      return it->second;
    };
    auto it = request.headers.find("authorization");
    const std::string authorization = it == request.headers.end() ? "" : it->second;
    return hmac_auth::authenticate(authorization,
                                   SignedRequest{.method = request.method,
                                                 .path_with_query = request.target,
                                                 .header = lookup,
                                                 .has_body = !request.body.empty()},
                                   secrets_, *nonces_, now, absl::Minutes(5));
  }

  SecretStore secrets_;
  std::unique_ptr<NonceCache> nonces_;
};

TEST_F(HmacAuthTest, GoodSignatureNamesTheConsumer) {
  ClientRequest request;
  request.sign("orders-client", kSecret);
  const Verdict verdict = authenticate(request);
  EXPECT_EQ(verdict.outcome, Outcome::kOk);
  EXPECT_EQ(verdict.consumer, 3u);

  ClientRequest billing;
  billing.headers["x-sluice-nonce"] = "another-nonce-0123456789";
  billing.sign("billing", kOtherSecret);
  EXPECT_EQ(authenticate(billing).consumer, 4u);
}

TEST_F(HmacAuthTest, BodylessRequestNeedNotSignADigest) {
  ClientRequest request;
  request.method = "GET";
  request.body.clear();
  request.headers.erase("digest");
  request.sign("orders-client", kSecret, "@request-target date x-sluice-nonce");
  EXPECT_EQ(authenticate(request).outcome, Outcome::kOk);
}

TEST_F(HmacAuthTest, ExtraSignedHeadersAreCovered) {
  ClientRequest request;
  request.sign("orders-client", kSecret, "@request-target content-type date x-sluice-nonce digest");
  ClientRequest tampered = request;
  tampered.headers["content-type"] = "text/plain";
  EXPECT_EQ(authenticate(tampered).outcome, Outcome::kBadSignature);
  EXPECT_EQ(authenticate(request).outcome, Outcome::kOk);
}

TEST_F(HmacAuthTest, TamperedRequestsFail) {
  ClientRequest request;
  request.sign("orders-client", kSecret);

  ClientRequest path = request;
  path.target = "/v1/orders?dry_run=0";
  EXPECT_EQ(authenticate(path).outcome, Outcome::kBadSignature);

  ClientRequest method = request;
  method.method = "PUT";
  EXPECT_EQ(authenticate(method).outcome, Outcome::kBadSignature);

  ClientRequest digest = request;
  digest.setBody("{\"item\": 43}");  // a new body with its own, unsigned, Digest
  EXPECT_EQ(authenticate(digest).outcome, Outcome::kBadSignature);

  ClientRequest nonce = request;
  nonce.headers["x-sluice-nonce"] = "8b1c2f0e9a4d4e56b3f1c8d2a0e9f4b7";
  EXPECT_EQ(authenticate(nonce).outcome, Outcome::kBadSignature);

  ClientRequest date = request;
  date.headers["date"] = imfFixdate(kNow + absl::Seconds(1));
  EXPECT_EQ(authenticate(date).outcome, Outcome::kBadSignature);

  ClientRequest secret = request;
  secret.sign("orders-client", kOtherSecret);
  EXPECT_EQ(authenticate(secret).outcome, Outcome::kBadSignature);

  // None of these used up the nonce.
  EXPECT_EQ(authenticate(request).outcome, Outcome::kOk);
}

TEST_F(HmacAuthTest, TamperedBodyFailsTheDigest) {
  ClientRequest request;
  request.sign("orders-client", kSecret);
  request.body = "{\"item\": 43}";  // the signed Digest no longer matches
  ASSERT_EQ(authenticate(request).outcome, Outcome::kOk);
  std::optional<DigestVerifier> verifier = DigestVerifier::create(request.headers["digest"]);
  ASSERT_TRUE(verifier.has_value());
  verifier->update(request.body);
  EXPECT_FALSE(verifier->matches());
}

TEST_F(HmacAuthTest, MissingPiecesAreMalformed) {
  ClientRequest request;
  request.sign("orders-client", kSecret);

  ClientRequest no_nonce = request;
  no_nonce.headers.erase("x-sluice-nonce");
  EXPECT_EQ(authenticate(no_nonce).outcome, Outcome::kMalformed);

  ClientRequest no_date = request;
  no_date.headers.erase("date");
  EXPECT_EQ(authenticate(no_date).outcome, Outcome::kMalformed);

  ClientRequest no_authorization = request;
  no_authorization.headers.erase("authorization");
  EXPECT_EQ(authenticate(no_authorization).outcome, Outcome::kMalformed);

  ClientRequest unsigned_nonce;
  unsigned_nonce.sign("orders-client", kSecret, "@request-target date digest");
  EXPECT_EQ(authenticate(unsigned_nonce).outcome, Outcome::kMalformed);

  ClientRequest unsigned_digest;
  unsigned_digest.sign("orders-client", kSecret, "@request-target date x-sluice-nonce");
  EXPECT_EQ(authenticate(unsigned_digest).outcome, Outcome::kMalformed);

  ClientRequest unsigned_target;
  unsigned_target.sign("orders-client", kSecret, "date x-sluice-nonce digest");
  EXPECT_EQ(authenticate(unsigned_target).outcome, Outcome::kMalformed);

  ClientRequest short_nonce;
  short_nonce.headers["x-sluice-nonce"] = "too-short";
  short_nonce.sign("orders-client", kSecret);
  EXPECT_EQ(authenticate(short_nonce).outcome, Outcome::kMalformed);

  ClientRequest rfc850_date;
  rfc850_date.headers["date"] = "Tuesday, 07-Nov-23 09:30:00 GMT";
  rfc850_date.sign("orders-client", kSecret);
  EXPECT_EQ(authenticate(rfc850_date).outcome, Outcome::kMalformed);

  ClientRequest other_algorithm = request;
  const std::string& authorization = request.headers["authorization"];
  other_algorithm.headers["authorization"] = absl::StrReplaceAll(
      authorization, {{"algorithm=\"hmac-sha256\"", "algorithm=\"hmac-sha1\""}});
  ASSERT_NE(other_algorithm.headers["authorization"], authorization);
  EXPECT_EQ(authenticate(other_algorithm).outcome, Outcome::kMalformed);
}

TEST_F(HmacAuthTest, DateOutsideTheWindowIsStale) {
  ClientRequest request;
  request.sign("orders-client", kSecret);
  EXPECT_EQ(authenticate(request, kNow + absl::Minutes(5) + absl::Seconds(1)).outcome,
            Outcome::kStale);
  EXPECT_EQ(authenticate(request, kNow - absl::Minutes(5) - absl::Seconds(1)).outcome,
            Outcome::kStale);
  EXPECT_EQ(authenticate(request, kNow + absl::Minutes(5)).outcome, Outcome::kOk);
}

TEST_F(HmacAuthTest, UnknownKeyId) {
  ClientRequest request;
  request.sign("retired-client", kSecret);
  EXPECT_EQ(authenticate(request).outcome, Outcome::kUnknownKey);
}

TEST_F(HmacAuthTest, ReplayIsRefusedUntilTheDateRefusesIt) {
  ClientRequest request;
  request.sign("orders-client", kSecret);
  EXPECT_EQ(authenticate(request).outcome, Outcome::kOk);
  EXPECT_EQ(authenticate(request).outcome, Outcome::kReplay);
  EXPECT_EQ(authenticate(request, kNow + absl::Minutes(5)).outcome, Outcome::kReplay);
  EXPECT_EQ(authenticate(request, kNow + absl::Minutes(5) + absl::Seconds(1)).outcome,
            Outcome::kStale);

  // The same nonce under another key id is another nonce.
  ClientRequest billing;
  billing.sign("billing", kOtherSecret);
  EXPECT_EQ(authenticate(billing).outcome, Outcome::kOk);
}

TEST_F(HmacAuthTest, NonceCacheFullRefuses) {
  absl::StatusOr<std::unique_ptr<NonceCache>> tiny = NonceCache::create(1, 1);
  ASSERT_TRUE(tiny.ok());
  nonces_ = *std::move(tiny);
  ClientRequest first;
  first.sign("orders-client", kSecret);
  EXPECT_EQ(authenticate(first).outcome, Outcome::kOk);
  ClientRequest second;
  second.headers["x-sluice-nonce"] = "second-nonce-0123456789";
  second.sign("orders-client", kSecret);
  EXPECT_EQ(authenticate(second).outcome, Outcome::kNonceCacheFull);
}

TEST(ParseAuthorizationTest, ReadsTheFourParameters) {
  const std::optional<SignatureParams> params = parseAuthorization(
      "signature keyId=\"k1\" , algorithm=\"hmac-sha256\",headers=\"@request-target date\", "
      "signature=\"c2ln\"");
  ASSERT_TRUE(params.has_value());
  EXPECT_EQ(params->key_id, "k1");
  EXPECT_EQ(params->algorithm, "hmac-sha256");
  EXPECT_EQ(params->headers, "@request-target date");
  EXPECT_EQ(params->signature, "c2ln");
}

TEST(ParseAuthorizationTest, RejectsEverythingElse) {
  const std::string good = "keyId=\"k1\",algorithm=\"hmac-sha256\",headers=\"date\"";
  for (const std::string& value : {
           absl::StrCat("Signature ", good),  // no signature
           absl::StrCat("Signature ", good, ",signature=\"a\",signature=\"b\""),
           absl::StrCat("Signature ", good, ",signature=\"a\",created=\"1\""),
           absl::StrCat("Signature ", good, ",signature=a"),
           absl::StrCat("Signature ", good, ",signature=\"a"),
           absl::StrCat("Signature ", good, ",signature=\"a\\\"b\""),
           absl::StrCat("Signature ", good, ",signature=\"a\tb\""),
           absl::StrCat("Signature ", good, ",,signature=\"a\""),
           absl::StrCat("Signature ", good, " signature=\"a\""),
           absl::StrCat("Signature ", good, ",signature=\"a\","),
           absl::StrCat("Signature ", good, ",Signature=\"a\""),
           absl::StrCat("Signature", good, ",signature=\"a\""),
           absl::StrCat("Bearer ", good, ",signature=\"a\""),
           std::string("Signature "),
           std::string(""),
       }) {
    EXPECT_EQ(parseAuthorization(value), std::nullopt) << value;
  }
}

TEST(ComponentsTest, RequiredComponents) {
  EXPECT_TRUE(coversRequiredComponents("@request-target date x-sluice-nonce", false));
  EXPECT_TRUE(coversRequiredComponents("x-sluice-nonce date @request-target host", false));
  EXPECT_FALSE(coversRequiredComponents("@request-target date x-sluice-nonce", true));
  EXPECT_TRUE(coversRequiredComponents("@request-target date x-sluice-nonce digest", true));
  for (const char* headers : {
           "",
           "date x-sluice-nonce",
           "@request-target x-sluice-nonce",
           "@request-target date",
           "@request-target  date x-sluice-nonce",      // two spaces
           " @request-target date x-sluice-nonce",      // leading space
           "@request-target date x-sluice-nonce ",      // trailing space
           "@request-target Date x-sluice-nonce",       // not lowercase
           "@request-target date date x-sluice-nonce",  // duplicate
           "@request-target date x-sluice-nonce host:",
           "@request-targets date x-sluice-nonce",
       }) {
    EXPECT_FALSE(coversRequiredComponents(headers, false)) << headers;
  }
  std::string many = "@request-target date x-sluice-nonce";
  for (int i = 0; i < 29; ++i) absl::StrAppend(&many, " h", i);
  EXPECT_TRUE(coversRequiredComponents(many, false));
  absl::StrAppend(&many, " one-too-many");
  EXPECT_FALSE(coversRequiredComponents(many, false));
}

TEST(ComponentsTest, NonceCharactersAndLength) {
  EXPECT_TRUE(validNonce("abcdefghABCDEF09"));
  EXPECT_TRUE(validNonce(std::string(128, '-')));
  EXPECT_TRUE(validNonce("under_score-and-dash"));
  EXPECT_FALSE(validNonce("abcdefghABCDEF0"));
  EXPECT_FALSE(validNonce(std::string(129, 'a')));
  EXPECT_FALSE(validNonce("abcdefghABCDEF09+"));
  EXPECT_FALSE(validNonce("abcdefgh ABCDEF09"));
  EXPECT_FALSE(validNonce("abcdefghABCDEF09="));
}

TEST(SigningStringTest, MatchesTheDocumentedExample) {
  const std::map<std::string, std::string> headers = {
      {"date", "Tue, 07 Nov 2023 09:30:00 GMT"},
      {"x-sluice-nonce", "7b1c2f0e9a4d4e56b3f1c8d2a0e9f4b7"},
      {"digest", "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="}};
  const auto lookup = [&](std::string_view name) -> std::optional<std::string_view> {
    auto it = headers.find(std::string(name));
    if (it == headers.end()) return std::nullopt;
    return it->second;
  };
  EXPECT_EQ(signingString("@request-target date x-sluice-nonce digest", "POST",
                          "/v1/orders?dry_run=1", lookup),
            "@request-target: post /v1/orders?dry_run=1\n"
            "date: Tue, 07 Nov 2023 09:30:00 GMT\n"
            "x-sluice-nonce: 7b1c2f0e9a4d4e56b3f1c8d2a0e9f4b7\n"
            "digest: SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=");
  EXPECT_EQ(signingString("date host", "GET", "/", lookup), std::nullopt);
  EXPECT_EQ(signingString("date  digest", "GET", "/", lookup), std::nullopt);
}

TEST(SigningStringTest, LineBreaksInValuesAreRefused) {
  for (const char* value : {"a\nx-sluice-nonce: forged", "a\r\nb", "a\rb"}) {
    const auto lookup = [&](std::string_view) -> std::optional<std::string_view> { return value; };
    EXPECT_EQ(signingString("date", "GET", "/", lookup), std::nullopt) << value;
  }
}

TEST(VerifySignatureTest, OnlyTheExactSignatureVerifies) {
  const std::string signature = base64(crypto::hmacSha256(kSecret, "line one\nline two"));
  EXPECT_TRUE(verifySignature(kSecret, "line one\nline two", signature));
  EXPECT_FALSE(verifySignature(kSecret, "line one\nline twO", signature));
  EXPECT_FALSE(verifySignature(kOtherSecret, "line one\nline two", signature));
  EXPECT_FALSE(verifySignature(kSecret, "line one\nline two", signature.substr(1)));
  EXPECT_FALSE(verifySignature(kSecret, "line one\nline two", ""));
  // The same bytes with the unused bits before the padding set: not canonical, not accepted.
  std::string variant = signature;
  ASSERT_EQ(variant.back(), '=');
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  variant[variant.size() - 2] = alphabet[alphabet.find(variant[variant.size() - 2]) | 1];
  ASSERT_NE(variant, signature);
  EXPECT_FALSE(verifySignature(kSecret, "line one\nline two", variant));
}

TEST(DateTest, ParsesImfFixdateStrictly) {
  EXPECT_EQ(parseImfFixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            absl::FromCivil(absl::CivilSecond(1994, 11, 6, 8, 49, 37), absl::UTCTimeZone()));
  EXPECT_EQ(parseImfFixdate("Thu, 29 Feb 2024 23:59:59 GMT"),
            absl::FromCivil(absl::CivilSecond(2024, 2, 29, 23, 59, 59), absl::UTCTimeZone()));
  EXPECT_EQ(parseImfFixdate("Sat, 31 Dec 2016 23:59:60 GMT"),
            absl::FromCivil(absl::CivilSecond(2017, 1, 1, 0, 0, 0), absl::UTCTimeZone()));
  EXPECT_EQ(parseImfFixdate(imfFixdate(kNow)), kNow);
  for (const char* text : {
           "Mon, 06 Nov 1994 08:49:37 GMT",   // 6 Nov 1994 was a Sunday
           "Sun, 6 Nov 1994 08:49:37 GMT",    // one-digit day
           "Sun, 06 nov 1994 08:49:37 GMT",   // month case
           "sun, 06 Nov 1994 08:49:37 GMT",   // day name case
           "Sun, 06 Nov 1994 08:49:37 UTC",   // zone
           "Sun, 06 Nov 1994 08:49:37 GMT ",  // trailing space
           "Sun, 06 Nov 1994 24:00:00 GMT",   // hour
           "Sun, 06 Nov 1994 08:60:00 GMT",   // minute
           "Sun, 06 Nov 1994 08:49:61 GMT",   // second
           "Thu, 29 Feb 2023 12:00:00 GMT",   // not a leap year
           "Thu, 31 Apr 2024 12:00:00 GMT",   // April has 30 days
           "Sun, 00 Nov 1994 08:49:37 GMT",   // day 0
           "Sunday, 06-Nov-94 08:49:37 GMT",  // RFC 850
           "Sun Nov  6 08:49:37 1994",        // asctime
           "Sun, 06 Nov 1994 08:49:3x GMT",
           "",
       }) {
    EXPECT_EQ(parseImfFixdate(text), std::nullopt) << text;
  }
}

TEST(DateTest, WindowIsInclusiveBothWays) {
  const std::string date = imfFixdate(kNow);
  EXPECT_TRUE(withinWindow(date, kNow, absl::Minutes(5)));
  EXPECT_TRUE(withinWindow(date, kNow + absl::Minutes(5), absl::Minutes(5)));
  EXPECT_TRUE(withinWindow(date, kNow - absl::Minutes(5), absl::Minutes(5)));
  EXPECT_FALSE(
      withinWindow(date, kNow + absl::Minutes(5) + absl::Milliseconds(1), absl::Minutes(5)));
  EXPECT_FALSE(
      withinWindow(date, kNow - absl::Minutes(5) - absl::Milliseconds(1), absl::Minutes(5)));
  EXPECT_FALSE(withinWindow("yesterday", kNow, absl::Minutes(5)));
}

TEST(SecretStoreTest, FindsSecretsByKeyId) {
  absl::StatusOr<SecretStore> store =
      SecretStore::build({{"k1", 1, kSecret}, {"k2", 2, kOtherSecret}});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NE(store->find("k1"), nullptr);
  EXPECT_EQ(store->find("k1")->consumer, 1u);
  EXPECT_EQ(store->find("k1")->secret, kSecret);
  EXPECT_EQ(store->find("k2")->consumer, 2u);
  EXPECT_EQ(store->find("k3"), nullptr);
  EXPECT_EQ(store->find("K1"), nullptr);
  EXPECT_EQ(store->find(""), nullptr);
}

TEST(SecretStoreTest, BuildErrorsNameTheKeyIdNeverTheSecret) {
  const std::string short_secret(31, 's');
  struct Case {
    std::vector<SecretEntry> entries;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{{"k1", 1, kSecret}, {"k1", 2, kOtherSecret}},
            "HMAC key id 'k1' appears more than once"},
           {{{"k1", 1, short_secret}}, "the secret of HMAC key id 'k1' has 31 bytes"},
           {{{"", 1, kSecret}}, "key id is empty"},
           {{{"k 1", 1, kSecret}}, "HMAC key id 'k 1' may hold only printable ASCII"},
           {{{"k\"1", 1, kSecret}}, "may hold only printable ASCII"},
           {{{"k\n1", 1, kSecret}}, "HMAC key id 'k\\n1'"},
       }) {
    const absl::StatusOr<SecretStore> store = SecretStore::build(c.entries);
    ASSERT_FALSE(store.ok()) << c.message;
    EXPECT_THAT(store.status().message(),
                AllOf(HasSubstr(c.message), Not(HasSubstr(kSecret)), Not(HasSubstr(kOtherSecret)),
                      Not(HasSubstr(short_secret))));
  }
}

TEST(DigestVerifierTest, MatchesTheBodyInChunks) {
  const std::string body = "{\"hello\": \"world\"}";
  // The Digest of the scheme's documented example.
  ASSERT_EQ(base64(crypto::sha256(body)), "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=");
  for (const char* header : {"SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
                             "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="}) {
    std::optional<DigestVerifier> verifier = DigestVerifier::create(header);
    ASSERT_TRUE(verifier.has_value()) << header;
    verifier->update(body.substr(0, 5));
    verifier->update(body.substr(5));
    EXPECT_TRUE(verifier->matches());
  }
  std::optional<DigestVerifier> verifier =
      DigestVerifier::create("SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=");
  verifier->update(body + " ");
  EXPECT_FALSE(verifier->matches());
}

TEST(DigestVerifierTest, EmptyBody) {
  std::optional<DigestVerifier> verifier =
      DigestVerifier::create(absl::StrCat("SHA-256=", base64(crypto::sha256(""))));
  ASSERT_TRUE(verifier.has_value());
  EXPECT_TRUE(verifier->matches());
}

TEST(DigestVerifierTest, RejectsOtherHeaders) {
  for (const char* header : {
           "MD5=HUXZLQLMuI/KZ5KDcJPcOA==",
           "SHA-512=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
           "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE",  // padding missing
           "SHA-256= X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
           "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=,MD5=HUXZLQLMuI/KZ5KDcJPcOA==",
           "SHA-256=c2hvcnQ=",  // not 32 bytes
           "SHA-256=",
           "",
       }) {
    EXPECT_FALSE(DigestVerifier::create(header).has_value()) << header;
  }
}

}  // namespace
}  // namespace sluice::hmac_auth
