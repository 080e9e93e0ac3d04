// verify(): signatures of the three algorithms with keys generated when the suite starts, key
// selection by type and kid, the attacks a verifier must refuse (alg none, RS256/HS256
// confusion, tampering, foreign signature encodings), the time window with its clock skew,
// issuer and audience, and verification from several threads on one key set.
#include "proxy/filters/jwt_authn/verifier.h"

#include <openssl/evp.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxy/filters/jwt_authn/jwks.h"
#include "proxy/filters/jwt_authn/jwt.h"
#include "test/proxy/filters/jwt_authn/test_tokens.h"

namespace sluice::jwt_authn {
namespace {

using testing::base64Url;
using testing::es256Token;
using testing::hs256Token;
using testing::rs256Token;

constexpr int64_t kNow = 1700000000;
const absl::Time kNowTime = absl::FromUnixSeconds(kNow);

std::string payload(std::string_view extra = "") {
  return absl::StrCat(R"({"iss":"https://issuer.example","sub":"user-1","aud":"api","exp":)",
                      kNow + 600, std::string(extra), "}");
}

VerifierConfig config() {
  VerifierConfig c;
  c.issuer = "https://issuer.example";
  c.audiences = {"api"};
  return c;
}

class VerifierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = testing::generateRsa(2048).release();
    other_rsa_ = testing::generateRsa(2048).release();
    ec_ = testing::generateEcP256().release();
    other_ec_ = testing::generateEcP256().release();
    secret_ = new std::string(testing::randomBytes(32));
    keys_ = new KeySet(mustParse(testing::jwks(
        testing::rsaJwk(rsa_, "rsa-1") + "," + testing::rsaJwk(other_rsa_, "rsa-2") + "," +
        testing::ecJwk(ec_, "ec-1") + "," + testing::octJwk(*secret_, "hmac-1"))));
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(rsa_);
    EVP_PKEY_free(other_rsa_);
    EVP_PKEY_free(ec_);
    EVP_PKEY_free(other_ec_);
    delete secret_;
    delete keys_;
  }

  static KeySet mustParse(const std::string& jwks) {
    absl::StatusOr<KeySet> keys = parseJwks(jwks);
    EXPECT_TRUE(keys.ok()) << keys.status();
    return std::move(keys).value();
  }

  // parseJwt (which must succeed) then verify.
  static Failure check(std::string_view token, const KeySet& keys,
                       const VerifierConfig& c = config(), absl::Time now = kNowTime) {
    const absl::StatusOr<Jwt> jwt = parseJwt(token);
    EXPECT_TRUE(jwt.ok()) << jwt.status();
    if (!jwt.ok()) return Failure::kMalformed;
    return verify(*jwt, keys, c, now);
  }
  static Failure check(std::string_view token) { return check(token, *keys_); }

  static EVP_PKEY* rsa_;
  static EVP_PKEY* other_rsa_;
  static EVP_PKEY* ec_;
  static EVP_PKEY* other_ec_;
  static std::string* secret_;
  static KeySet* keys_;
};

EVP_PKEY* VerifierTest::rsa_ = nullptr;
EVP_PKEY* VerifierTest::other_rsa_ = nullptr;
EVP_PKEY* VerifierTest::ec_ = nullptr;
EVP_PKEY* VerifierTest::other_ec_ = nullptr;
std::string* VerifierTest::secret_ = nullptr;
KeySet* VerifierTest::keys_ = nullptr;

TEST_F(VerifierTest, GoodTokens) {
  EXPECT_EQ(check(rs256Token(rsa_, payload(), "rsa-1")), Failure::kNone);
  EXPECT_EQ(check(rs256Token(other_rsa_, payload(), "rsa-2")), Failure::kNone);
  EXPECT_EQ(check(es256Token(ec_, payload(), "ec-1")), Failure::kNone);
  EXPECT_EQ(check(hs256Token(*secret_, payload(), "hmac-1")), Failure::kNone);
  // Without kid every key of the type is tried.
  EXPECT_EQ(check(rs256Token(rsa_, payload())), Failure::kNone);
  EXPECT_EQ(check(rs256Token(other_rsa_, payload())), Failure::kNone);
  EXPECT_EQ(check(es256Token(ec_, payload())), Failure::kNone);
  EXPECT_EQ(check(hs256Token(*secret_, payload())), Failure::kNone);
}

TEST_F(VerifierTest, WrongKey) {
  EXPECT_EQ(check(rs256Token(testing::generateRsa(2048).get(), payload())), Failure::kBadSignature);
  EXPECT_EQ(check(es256Token(other_ec_, payload())), Failure::kBadSignature);
  EXPECT_EQ(check(hs256Token(testing::randomBytes(32), payload())), Failure::kBadSignature);
}

TEST_F(VerifierTest, KidSelectsTheKey) {
  // Signed with rsa-2's key but naming rsa-1: rsa-1 alone is tried.
  EXPECT_EQ(check(rs256Token(other_rsa_, payload(), "rsa-1")), Failure::kBadSignature);
  EXPECT_EQ(check(rs256Token(rsa_, payload(), "rsa-3")), Failure::kNoMatchingKey);
  // A kid of a key of another type.
  EXPECT_EQ(check(rs256Token(rsa_, payload(), "ec-1")), Failure::kNoMatchingKey);
  EXPECT_EQ(check(hs256Token(*secret_, payload(), "rsa-1")), Failure::kNoMatchingKey);
  // A key without kid stands for any kid (a PEM key, an HMAC secret from config).
  const absl::StatusOr<KeySet> pem = parsePemPublicKey(testing::publicPem(rsa_));
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(check(rs256Token(rsa_, payload(), "any"), *pem), Failure::kNone);
  EXPECT_EQ(check(rs256Token(other_rsa_, payload(), "any"), *pem), Failure::kBadSignature);
}

TEST_F(VerifierTest, AlgorithmMustMatchTheKeyType) {
  const KeySet rsa_only = mustParse(testing::rsaJwk(rsa_, ""));
  EXPECT_EQ(check(es256Token(ec_, payload()), rsa_only), Failure::kNoMatchingKey);
  EXPECT_EQ(check(hs256Token(*secret_, payload()), rsa_only), Failure::kNoMatchingKey);
  const KeySet ec_only = mustParse(testing::ecJwk(ec_, ""));
  EXPECT_EQ(check(rs256Token(rsa_, payload()), ec_only), Failure::kNoMatchingKey);
  const absl::StatusOr<KeySet> hmac_only = hmacSecret(*secret_);
  ASSERT_TRUE(hmac_only.ok());
  EXPECT_EQ(check(rs256Token(rsa_, payload()), *hmac_only), Failure::kNoMatchingKey);
}

// The classic confusion: the RSA public key is public, so an attacker HMACs a token with its
// bytes and names HS256, hoping the verifier feeds the RSA key to HMAC.
TEST_F(VerifierTest, RsaPublicKeyIsNeverAnHmacSecret) {
  const absl::StatusOr<KeySet> pem = parsePemPublicKey(testing::publicPem(rsa_));
  ASSERT_TRUE(pem.ok());
  const KeySet jwks = mustParse(testing::jwks(testing::rsaJwk(rsa_, "rsa-1")));
  for (const std::string& secret :
       {testing::publicPem(rsa_), testing::publicDer(rsa_), testing::rsaJwk(rsa_, "rsa-1")}) {
    for (std::string_view kid : {"", "rsa-1"}) {
      const std::string token = hs256Token(secret, payload(), kid);
      EXPECT_EQ(check(token, jwks), Failure::kNoMatchingKey) << kid;
      EXPECT_EQ(check(token, *pem), Failure::kNoMatchingKey) << kid;
      // The full set has an oct key of its own (kid "hmac-1"), which does not sign this.
      EXPECT_EQ(check(token), kid.empty() ? Failure::kBadSignature : Failure::kNoMatchingKey)
          << kid;
    }
  }
}

TEST_F(VerifierTest, AlgNoneIsRefused) {
  const std::string unsigned_token =
      base64Url(R"({"alg":"none","typ":"JWT"})") + "." + base64Url(payload()) + ".";
  Failure failure = Failure::kNone;
  EXPECT_FALSE(parseJwt(unsigned_token, &failure).ok());
  EXPECT_EQ(failure, Failure::kUnsupportedAlg);
  // And verify() on its own, for a Jwt that did not come from parseJwt.
  absl::StatusOr<Jwt> jwt = parseJwt(rs256Token(rsa_, payload()));
  ASSERT_TRUE(jwt.ok());
  ASSERT_EQ(verify(*jwt, *keys_, config(), kNowTime), Failure::kNone);
  for (const char* alg : {"none", "", "rs256", "HS512"}) {
    jwt->alg = alg;
    EXPECT_EQ(verify(*jwt, *keys_, config(), kNowTime), Failure::kUnsupportedAlg) << alg;
  }
}

TEST_F(VerifierTest, TamperedTokens) {
  const std::pair<const char*, std::string> tokens[] = {{"RS256", rs256Token(rsa_, payload())},
                                                        {"ES256", es256Token(ec_, payload())},
                                                        {"HS256", hs256Token(*secret_, payload())}};
  for (const auto& [alg, token] : tokens) {
    ASSERT_EQ(check(token), Failure::kNone);
    const size_t dot1 = token.find('.'), dot2 = token.rfind('.');
    // Another payload under the original signature.
    const std::string forged =
        token.substr(0, dot1 + 1) + base64Url(payload(R"(,"admin":true)")) + token.substr(dot2);
    EXPECT_EQ(check(forged), Failure::kBadSignature) << alg;
    // Another header (no typ) under the original signature.
    const std::string reheaded =
        base64Url(absl::StrCat(R"({"alg":")", alg, R"("})")) + token.substr(dot1);
    EXPECT_EQ(check(reheaded), Failure::kBadSignature) << alg;
    // One bit of the signature flipped.
    absl::StatusOr<Jwt> jwt = parseJwt(token);
    ASSERT_TRUE(jwt.ok());
    jwt->signature[jwt->signature.size() / 2] ^= 0x01;
    EXPECT_EQ(verify(*jwt, *keys_, config(), kNowTime), Failure::kBadSignature);
    // Truncated and extended signatures.
    jwt = parseJwt(token);
    jwt->signature.pop_back();
    EXPECT_EQ(verify(*jwt, *keys_, config(), kNowTime), Failure::kBadSignature);
    jwt = parseJwt(token);
    jwt->signature.push_back('\0');
    EXPECT_EQ(verify(*jwt, *keys_, config(), kNowTime), Failure::kBadSignature);
  }
}

// An RSA signature is exactly as long as the modulus, leading zero bytes included: a signature
// with them left out or one added is another spelling of the same token, and refused.
TEST_F(VerifierTest, Rs256SignatureMustBeAsLongAsTheModulus) {
  std::string input, signature;
  for (int i = 0; signature.empty() || signature[0] != '\0'; ++i) {
    ASSERT_LT(i, 5000) << "no signature with a leading zero byte";
    input = testing::signingInput(testing::header("RS256"), payload(absl::StrCat(",\"n\":", i)));
    signature = testing::signRs256(rsa_, input);
  }
  ASSERT_EQ(signature.size(), 256u);
  EXPECT_EQ(check(testing::withSignature(input, signature)), Failure::kNone);
  EXPECT_EQ(check(testing::withSignature(input, signature.substr(1))), Failure::kBadSignature);
  EXPECT_EQ(check(testing::withSignature(input, std::string(1, '\0') + signature)),
            Failure::kBadSignature);
}

TEST_F(VerifierTest, Es256SignatureMustBeRawRAndS) {
  const std::string input = testing::signingInput(testing::header("ES256"), payload());
  const std::string der = testing::signEs256Der(ec_, input);
  ASSERT_NE(der.size(), 64u);
  EXPECT_EQ(check(testing::withSignature(input, der)), Failure::kBadSignature);
  // The same signature in JOSE form is good, and all-zero r and s are not.
  EXPECT_EQ(check(testing::withSignature(input, testing::signEs256(ec_, input))), Failure::kNone);
  EXPECT_EQ(check(testing::withSignature(input, std::string(64, '\0'))), Failure::kBadSignature);
  EXPECT_EQ(check(testing::withSignature(input, std::string(64, '\xff'))), Failure::kBadSignature);
}

TEST_F(VerifierTest, Expiry) {
  const VerifierConfig c = config();  // 60 s of skew
  const auto token = [](int64_t exp) {
    return hs256Token(*secret_, absl::StrCat(R"({"iss":"https://issuer.example","aud":"api",)",
                                             R"("exp":)", exp, "}"));
  };
  EXPECT_EQ(check(token(kNow + 1), *keys_, c), Failure::kNone);
  EXPECT_EQ(check(token(kNow - 10), *keys_, c), Failure::kNone);  // within the skew
  EXPECT_EQ(check(token(kNow - 60 + 1), *keys_, c), Failure::kNone);
  EXPECT_EQ(check(token(kNow - 60), *keys_, c), Failure::kExpired);
  EXPECT_EQ(check(token(kNow - 60 - 1), *keys_, c), Failure::kExpired);
  EXPECT_EQ(check(token(0), *keys_, c), Failure::kExpired);
  VerifierConfig strict = c;
  strict.clock_skew = absl::ZeroDuration();
  EXPECT_EQ(check(token(kNow + 1), *keys_, strict), Failure::kNone);
  EXPECT_EQ(check(token(kNow), *keys_, strict), Failure::kExpired);
  // Fractions of a second are dropped.
  EXPECT_EQ(check(hs256Token(*secret_, absl::StrCat(R"({"iss":"https://issuer.example",)",
                                                    R"("aud":"api","exp":)", kNow, ".9}")),
                  *keys_, strict),
            Failure::kExpired);
}

TEST_F(VerifierTest, NotBefore) {
  const VerifierConfig c = config();
  const auto token = [](int64_t nbf) {
    return hs256Token(*secret_, payload(absl::StrCat(",\"nbf\":", nbf)));
  };
  EXPECT_EQ(check(token(kNow - 1), *keys_, c), Failure::kNone);
  EXPECT_EQ(check(token(kNow), *keys_, c), Failure::kNone);
  EXPECT_EQ(check(token(kNow + 60), *keys_, c), Failure::kNone);  // within the skew
  EXPECT_EQ(check(token(kNow + 60 + 1), *keys_, c), Failure::kNotYetValid);
  EXPECT_EQ(check(token(kNow + 3600), *keys_, c), Failure::kNotYetValid);
}

TEST_F(VerifierTest, MissingExp) {
  const std::string token = hs256Token(*secret_, R"({"iss":"https://issuer.example","aud":"api"})");
  EXPECT_EQ(check(token), Failure::kMissingExp);
  VerifierConfig c = config();
  c.require_exp = false;
  EXPECT_EQ(check(token, *keys_, c), Failure::kNone);
}

TEST_F(VerifierTest, Issuer) {
  EXPECT_EQ(check(hs256Token(*secret_, absl::StrCat(R"({"iss":"https://evil.example",)",
                                                    R"("aud":"api","exp":)", kNow + 60, "}"))),
            Failure::kWrongIssuer);
  EXPECT_EQ(check(hs256Token(*secret_, absl::StrCat(R"({"iss":"https://issuer.example/",)",
                                                    R"("aud":"api","exp":)", kNow + 60, "}"))),
            Failure::kWrongIssuer);
  const std::string no_iss =
      hs256Token(*secret_, absl::StrCat(R"({"aud":"api","exp":)", kNow + 60, "}"));
  EXPECT_EQ(check(no_iss), Failure::kWrongIssuer);
  VerifierConfig any_issuer = config();
  any_issuer.issuer.clear();
  EXPECT_EQ(check(no_iss, *keys_, any_issuer), Failure::kNone);
}

TEST_F(VerifierTest, Audience) {
  const auto token = [](std::string_view aud) {
    return hs256Token(*secret_, absl::StrCat(R"({"iss":"https://issuer.example",)",
                                             std::string(aud), R"("exp":)", kNow + 60, "}"));
  };
  EXPECT_EQ(check(token(R"("aud":"web",)")), Failure::kWrongAudience);
  EXPECT_EQ(check(token(R"("aud":["web","mobile"],)")), Failure::kWrongAudience);
  EXPECT_EQ(check(token(R"("aud":[],)")), Failure::kWrongAudience);
  EXPECT_EQ(check(token("")), Failure::kWrongAudience);
  EXPECT_EQ(check(token(R"("aud":["web","api"],)")), Failure::kNone);
  VerifierConfig several = config();
  several.audiences = {"mobile", "web"};
  EXPECT_EQ(check(token(R"("aud":"web",)"), *keys_, several), Failure::kNone);
  EXPECT_EQ(check(token(R"("aud":"api",)"), *keys_, several), Failure::kWrongAudience);
  VerifierConfig any_audience = config();
  any_audience.audiences.clear();
  EXPECT_EQ(check(token(""), *keys_, any_audience), Failure::kNone);
}

TEST_F(VerifierTest, SignatureIsCheckedBeforeClaims) {
  // Expired, wrong issuer and wrong audience, and signed by a stranger: the signature speaks.
  const std::string token =
      rs256Token(testing::generateRsa(2048).get(), R"({"iss":"x","aud":"y","exp":1})");
  EXPECT_EQ(check(token), Failure::kBadSignature);
}

TEST_F(VerifierTest, OneKeySetManyThreads) {
  const std::string tokens[] = {rs256Token(rsa_, payload(), "rsa-1"),
                                rs256Token(other_rsa_, payload()), es256Token(ec_, payload()),
                                hs256Token(*secret_, payload())};
  std::vector<Jwt> jwts;
  for (const std::string& token : tokens) jwts.push_back(*parseJwt(token));
  const VerifierConfig c = config();
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        for (const Jwt& jwt : jwts) {
          (verify(jwt, *keys_, c, kNowTime) == Failure::kNone ? good : bad).fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(good.load(), 4 * 25 * 4);
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace sluice::jwt_authn
