// Key sets: JWKS documents and single JWKs (RSA, EC P-256, oct), what is skipped and why, what
// is an error, PEM public keys and HMAC secrets. Keys are generated when the suite starts.
// EVP_PKEY_cmp: BoringSSL has it; OpenSSL 3 deprecates it for EVP_PKEY_eq.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "proxy/filters/jwt_authn/jwks.h"

#include <openssl/evp.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/proxy/filters/jwt_authn/test_tokens.h"

namespace sluice::jwt_authn {
namespace {

using ::testing::AllOf;
using testing::base64Url;
using testing::ecJwk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::jwks;
using ::testing::Not;
using testing::octJwk;
using testing::PrivateKey;
using testing::rsaJwk;

class JwksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = testing::generateRsa(2048).release();
    small_rsa_ = testing::generateRsa(1024).release();
    ec_ = testing::generateEcP256().release();
    secret_ = new std::string(testing::randomBytes(32));
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(rsa_);
    EVP_PKEY_free(small_rsa_);
    EVP_PKEY_free(ec_);
    delete secret_;
  }

  // The error of a document that must be refused.
  static std::string error(std::string_view json) {
    const absl::StatusOr<KeySet> keys = parseJwks(json);
    EXPECT_FALSE(keys.ok()) << json;
    return keys.ok() ? "" : std::string(keys.status().message());
  }

  // The reason the single key of {"keys":[key, a good oct key]} was skipped.
  static std::string skipReason(const std::string& key) {
    const absl::StatusOr<KeySet> keys = parseJwks(jwks(key + "," + octJwk(*secret_, "good")));
    if (!keys.ok()) return "error: " + std::string(keys.status().message());
    if (keys->skipped().empty()) {
      EXPECT_EQ(keys->keys().size(), 2u) << key;
      return "not skipped";
    }
    EXPECT_EQ(keys->keys().size(), 1u) << key;
    EXPECT_EQ(keys->skipped().size(), 1u) << key;
    return keys->skipped()[0];
  }

  static EVP_PKEY* rsa_;
  static EVP_PKEY* small_rsa_;
  static EVP_PKEY* ec_;
  static std::string* secret_;
};

EVP_PKEY* JwksTest::rsa_ = nullptr;
EVP_PKEY* JwksTest::small_rsa_ = nullptr;
EVP_PKEY* JwksTest::ec_ = nullptr;
std::string* JwksTest::secret_ = nullptr;

TEST_F(JwksTest, AllThreeTypes) {
  const absl::StatusOr<KeySet> keys = parseJwks(
      jwks(rsaJwk(rsa_, "r", "RS256") + "," + ecJwk(ec_, "e") + "," + octJwk(*secret_, "o")));
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->keys().size(), 3u);
  EXPECT_THAT(keys->skipped(), IsEmpty());
  const Key& r = keys->keys()[0];
  EXPECT_EQ(r.kty, KeyType::kRsa);
  EXPECT_EQ(r.alg, Algorithm::kRS256);
  EXPECT_EQ(r.kid, "r");
  ASSERT_NE(r.pkey, nullptr);
  EXPECT_EQ(EVP_PKEY_id(r.pkey.get()), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_cmp(r.pkey.get(), rsa_), 1);  // the same public key
  EXPECT_TRUE(r.secret.empty());
  const Key& e = keys->keys()[1];
  EXPECT_EQ(e.kty, KeyType::kEc);
  EXPECT_EQ(e.alg, Algorithm::kES256);
  EXPECT_EQ(e.kid, "e");
  ASSERT_NE(e.pkey, nullptr);
  EXPECT_EQ(EVP_PKEY_cmp(e.pkey.get(), ec_), 1);
  const Key& o = keys->keys()[2];
  EXPECT_EQ(o.kty, KeyType::kOct);
  EXPECT_EQ(o.alg, Algorithm::kHS256);
  EXPECT_EQ(o.kid, "o");
  EXPECT_EQ(o.pkey, nullptr);
  EXPECT_EQ(o.secret, *secret_);
}

TEST_F(JwksTest, SingleJwk) {
  for (const std::string& jwk :
       {rsaJwk(rsa_, ""), ecJwk(ec_, "k", "ES256"), octJwk(*secret_, "")}) {
    const absl::StatusOr<KeySet> keys = parseJwks(jwk);
    ASSERT_TRUE(keys.ok()) << keys.status();
    EXPECT_EQ(keys->keys().size(), 1u);
  }
  EXPECT_THAT(error(rsaJwk(small_rsa_, "")), HasSubstr("1024 bits"));
  EXPECT_THAT(error(R"({"kty":"OKP","crv":"Ed25519","x":"AAAA"})"), HasSubstr("OKP"));
}

TEST_F(JwksTest, UnknownTypesAreSkipped) {
  const absl::StatusOr<KeySet> keys = parseJwks(
      jwks(R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},)" +
           rsaJwk(rsa_, "r") + R"(,{"kid":"no-kty"})"));
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->keys().size(), 1u);
  EXPECT_EQ(keys->keys()[0].kid, "r");
  EXPECT_THAT(keys->skipped(), ElementsAre(HasSubstr("unsupported kty \"OKP\""),
                                           HasSubstr("key 2 (kid \"no-kty\"): no \"kty\"")));
}

TEST_F(JwksTest, SetWithoutUsableKeyIsAnError) {
  EXPECT_EQ(error(R"({"keys":[]})"), "JWKS has no keys");
  EXPECT_THAT(error(jwks(rsaJwk(small_rsa_, "small"))),
              HasSubstr("no usable key: key 0 (kid \"small\"): RSA modulus has 1024 bits"));
  EXPECT_THAT(error(jwks(R"({"kty":"OKP"},{"kty":"EC","crv":"P-521"})")),
              HasSubstr("no usable key"));
}

TEST_F(JwksTest, MalformedDocuments) {
  for (const char* json : {"", "[]", "null", "not json", R"({"keys":{}})", R"({"keys":"a"})",
                           R"({'keys':[]})", R"({"keys":[1]})", R"({"keys":[[]]})"}) {
    EXPECT_FALSE(parseJwks(json).ok()) << json;
  }
  EXPECT_THAT(error(R"({"keys":[1]})"), HasSubstr("key 0 is not an object"));
  std::string many;
  for (size_t i = 0; i <= kMaxJwksKeys; ++i) many += (i ? "," : "") + octJwk(*secret_, "");
  EXPECT_THAT(error(jwks(many)), HasSubstr("more than"));
  EXPECT_THAT(error(std::string(kMaxJwksBytes + 1, ' ')), HasSubstr("larger than"));
}

TEST_F(JwksTest, SmallRsaKeysAreSkipped) {
  EXPECT_THAT(skipReason(rsaJwk(small_rsa_, "")), HasSubstr("RSA modulus has 1024 bits"));
}

TEST_F(JwksTest, KeysForAnotherAlgorithmOrUseAreSkipped) {
  EXPECT_THAT(skipReason(rsaJwk(rsa_, "", "HS256")), HasSubstr("alg \"HS256\" is not supported"));
  EXPECT_THAT(skipReason(rsaJwk(rsa_, "", "RS512")), HasSubstr("alg \"RS512\""));
  EXPECT_THAT(skipReason(rsaJwk(rsa_, "", "PS256")), HasSubstr("alg \"PS256\""));
  EXPECT_THAT(skipReason(octJwk(*secret_, "", "RS256")), HasSubstr("alg \"RS256\""));
  EXPECT_THAT(skipReason(ecJwk(ec_, "", "ES384")), HasSubstr("alg \"ES384\""));
  std::string enc = rsaJwk(rsa_, "");
  enc.insert(1, R"("use":"enc",)");
  EXPECT_THAT(skipReason(enc), HasSubstr("\"use\" is \"enc\""));
  std::string encrypt_only = rsaJwk(rsa_, "");
  encrypt_only.insert(1, R"("key_ops":["encrypt"],)");
  EXPECT_THAT(skipReason(encrypt_only), HasSubstr("key_ops"));
  std::string verify_ok = rsaJwk(rsa_, "");
  verify_ok.insert(1, R"("use":"sig","key_ops":["verify"],)");
  EXPECT_EQ(skipReason(verify_ok), "not skipped");
}

TEST_F(JwksTest, MalformedKeysAreSkipped) {
  const std::string n_field = "\"n\":\"";
  std::string padded = rsaJwk(rsa_, "");  // standard base64 padding in "n"
  padded.insert(padded.find("\"", padded.find(n_field) + n_field.size()), "==");
  EXPECT_THAT(skipReason(padded), HasSubstr("\"n\" is not base64url"));
  EXPECT_THAT(skipReason(R"({"kty":"RSA","e":"AQAB"})"), HasSubstr("no \"n\""));
  const std::string n = rsaJwk(rsa_, "").substr(0, rsaJwk(rsa_, "").find(",\"e\""));
  EXPECT_THAT(skipReason(n + R"(,"e":"AQ"})"), HasSubstr("exponent"));        // e = 1
  EXPECT_THAT(skipReason(n + R"(,"e":"AQAA"})"), HasSubstr("exponent"));      // even
  EXPECT_THAT(skipReason(n + R"(,"e":"AQAAAAAB"})"), HasSubstr("exponent"));  // 41 bits
  EXPECT_THAT(skipReason(R"({"kty":"RSA","n":1,"e":"AQAB"})"), HasSubstr("no \"n\""));
  EXPECT_THAT(skipReason(R"({"kty":"oct","k":"c2hvcnQ"})"), HasSubstr("shorter than 32"));
  EXPECT_THAT(skipReason(R"({"kty":"oct","k":""})"), HasSubstr("shorter than 32"));
  EXPECT_THAT(skipReason(R"({"kty":1})"), HasSubstr("no \"kty\""));
  EXPECT_THAT(skipReason(R"({"kty":"oct","kid":7})"), HasSubstr("not a string"));
}

TEST_F(JwksTest, EcKeysMustBeValidP256Points) {
  const std::string jwk = ecJwk(ec_, "");
  std::string p384 = jwk;
  p384.replace(p384.find("P-256"), 5, "P-384");
  EXPECT_THAT(skipReason(p384), HasSubstr("P-256"));
  // y of another point: (x, y') is not on the curve.
  const std::string other = ecJwk(testing::generateEcP256().get(), "");
  const auto y = [](const std::string& j) {
    const size_t at = j.find("\"y\":\"") + 5;
    return j.substr(at, j.find('"', at) - at);
  };
  std::string off_curve = jwk;
  off_curve.replace(off_curve.find(y(jwk)), y(jwk).size(), y(other));
  EXPECT_THAT(skipReason(off_curve), HasSubstr("not on the curve"));
  // A 31-byte coordinate: the leading zero byte left out.
  std::string short_y = jwk;
  short_y.replace(short_y.find(y(jwk)), y(jwk).size(), base64Url(std::string(31, '\x01')));
  EXPECT_THAT(skipReason(short_y), HasSubstr("32 bytes"));
}

TEST_F(JwksTest, SkipReasonsEscapeWhatTheServerSent) {
  std::string jwk = R"({"kty":"RSA","kid":"a\nb"})";
  EXPECT_THAT(skipReason(jwk), AllOf(HasSubstr("kid \"a\\nb\""), Not(HasSubstr("\n"))));
}

TEST_F(JwksTest, EveryKeySetHasItsOwnGeneration) {
  const std::string doc = jwks(rsaJwk(rsa_, "r"));
  absl::StatusOr<KeySet> a = parseJwks(doc), b = parseJwks(doc);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->generation(), b->generation());
  const uint64_t generation = a->generation();
  const KeySet moved = std::move(*a);
  EXPECT_EQ(moved.generation(), generation);
}

TEST_F(JwksTest, PemPublicKeys) {
  const absl::StatusOr<KeySet> rsa = parsePemPublicKey(testing::publicPem(rsa_));
  ASSERT_TRUE(rsa.ok()) << rsa.status();
  ASSERT_EQ(rsa->keys().size(), 1u);
  EXPECT_EQ(rsa->keys()[0].kty, KeyType::kRsa);
  EXPECT_EQ(rsa->keys()[0].alg, Algorithm::kRS256);
  EXPECT_EQ(rsa->keys()[0].kid, "");
  EXPECT_EQ(EVP_PKEY_cmp(rsa->keys()[0].pkey.get(), rsa_), 1);

  const absl::StatusOr<KeySet> ec = parsePemPublicKey(testing::publicPem(ec_));
  ASSERT_TRUE(ec.ok()) << ec.status();
  EXPECT_EQ(ec->keys()[0].kty, KeyType::kEc);
  EXPECT_EQ(ec->keys()[0].alg, Algorithm::kES256);

  const auto pemError = [](const std::string& pem) {
    const absl::StatusOr<KeySet> keys = parsePemPublicKey(pem);
    EXPECT_FALSE(keys.ok());
    return keys.ok() ? "" : std::string(keys.status().message());
  };
  EXPECT_THAT(pemError(testing::publicPem(small_rsa_)), HasSubstr("1024 bits"));
  EXPECT_THAT(pemError("garbage"), HasSubstr("not a PEM public key"));
  EXPECT_THAT(pemError(""), HasSubstr("not a PEM public key"));
  EXPECT_THAT(pemError(testing::publicDer(rsa_)), HasSubstr("not a PEM public key"));

  PrivateKey ed25519(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const uint8_t*>(std::string(32, '\x07').data()),
      32));
  ASSERT_NE(ed25519, nullptr);
  EXPECT_THAT(pemError(testing::publicPem(ed25519.get())), HasSubstr("neither RSA nor EC"));
}

TEST_F(JwksTest, HmacSecrets) {
  const absl::StatusOr<KeySet> keys = hmacSecret(*secret_);
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->keys().size(), 1u);
  EXPECT_EQ(keys->keys()[0].kty, KeyType::kOct);
  EXPECT_EQ(keys->keys()[0].secret, *secret_);
  EXPECT_FALSE(hmacSecret(secret_->substr(0, 31)).ok());
  EXPECT_FALSE(hmacSecret("").ok());
}

}  // namespace
}  // namespace sluice::jwt_authn
