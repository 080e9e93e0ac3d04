// Keys are built with the RSA_* and EC_KEY_* calls that BoringSSL also has (OpenSSL 3 deprecates
// them in favour of OSSL_PARAM, which BoringSSL lacks); this file alone silences that.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "proxy/filters/jwt_authn/jwks.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <atomic>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "proxy/filters/jwt_authn/base64url.h"
#include "proxy/filters/jwt_authn/json.h"

namespace sluice::jwt_authn {

using google::protobuf::Struct;
using google::protobuf::Value;

void PkeyDeleter::operator()(evp_pkey_st* key) const { EVP_PKEY_free(key); }

Key::~Key() {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
}

KeySet::KeySet(std::vector<Key> keys, std::vector<std::string> skipped)
    : keys_(std::move(keys)), skipped_(std::move(skipped)) {
  static std::atomic<uint64_t> next{1};
  generation_ = next.fetch_add(1, std::memory_order_relaxed);
}

namespace {

struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
struct RsaDeleter {
  void operator()(RSA* rsa) const { RSA_free(rsa); }
};
struct EcKeyDeleter {
  void operator()(EC_KEY* key) const { EC_KEY_free(key); }
};
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};

// A failed OpenSSL call leaves errors on the thread's queue, where a later SSL_get_error on
// the same thread would find them.
absl::Status cryptoError(std::string message) {
  ERR_clear_error();
  return absl::InvalidArgumentError(message);
}

BnPtr toBignum(const std::string& bytes) {
  return BnPtr(BN_bin2bn(reinterpret_cast<const uint8_t*>(bytes.data()),
                         static_cast<int>(bytes.size()), nullptr));
}

// A base64url member of a JWK, decoded.
absl::Status member(const Struct& jwk, const char* name, std::string* out) {
  const auto it = jwk.fields().find(name);
  if (it == jwk.fields().end() || it->second.kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError(absl::StrCat("no \"", name, "\""));
  }
  if (!decodeBase64Url(it->second.string_value(), out)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is not base64url"));
  }
  return absl::OkStatus();
}

absl::Status checkRsa(const EVP_PKEY* pkey) {
  const int bits = EVP_PKEY_bits(pkey);
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("RSA modulus has ", bits, " bits, outside ", kMinRsaBits, "-", kMaxRsaBits));
  }
  return absl::OkStatus();
}

absl::Status checkEc(const EVP_PKEY* pkey) {
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(pkey);
  if (ec == nullptr || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != NID_X9_62_prime256v1) {
    return absl::InvalidArgumentError("EC key is not on curve P-256");
  }
  return absl::OkStatus();
}

absl::Status rsaKey(const Struct& jwk, Key* key) {
  std::string n, e;
  absl::Status status = member(jwk, "n", &n);
  if (status.ok()) status = member(jwk, "e", &e);
  if (!status.ok()) return status;
  BnPtr bn_n = toBignum(n), bn_e = toBignum(e);
  if (bn_n == nullptr || bn_e == nullptr) return cryptoError("RSA key does not load");
  // Small odd exponents only (BoringSSL's limit, 33 bits): a huge one slows every verification.
  if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()) || BN_num_bits(bn_e.get()) > 33) {
    return absl::InvalidArgumentError("RSA exponent is not a small odd number above 1");
  }
  if (BN_num_bits(bn_n.get()) < kMinRsaBits || BN_num_bits(bn_n.get()) > kMaxRsaBits) {
    return absl::InvalidArgumentError(absl::StrCat("RSA modulus has ", BN_num_bits(bn_n.get()),
                                                   " bits, outside ", kMinRsaBits, "-",
                                                   kMaxRsaBits));
  }
  std::unique_ptr<RSA, RsaDeleter> rsa(RSA_new());
  if (rsa == nullptr || RSA_set0_key(rsa.get(), bn_n.get(), bn_e.get(), nullptr) != 1) {
    return cryptoError("RSA key does not load");
  }
  bn_n.release();  // owned by rsa now
  bn_e.release();
  key->pkey.reset(EVP_PKEY_new());
  if (key->pkey == nullptr || EVP_PKEY_assign_RSA(key->pkey.get(), rsa.get()) != 1) {
    return cryptoError("RSA key does not load");
  }
  rsa.release();  // owned by the EVP_PKEY now
  key->kty = KeyType::kRsa;
  key->alg = Algorithm::kRS256;
  return absl::OkStatus();
}

absl::Status ecKey(const Struct& jwk, Key* key) {
  const auto crv = jwk.fields().find("crv");
  if (crv == jwk.fields().end() || crv->second.kind_case() != Value::kStringValue ||
      crv->second.string_value() != "P-256") {
    return absl::InvalidArgumentError("EC key is not on curve P-256");
  }
  std::string x, y;
  absl::Status status = member(jwk, "x", &x);
  if (status.ok()) status = member(jwk, "y", &y);
  if (!status.ok()) return status;
  // RFC 7518 section 6.2.1.2: coordinates are the full size of the field, 32 bytes for P-256.
  if (x.size() != 32 || y.size() != 32) {
    return absl::InvalidArgumentError("EC coordinates are not 32 bytes");
  }
  BnPtr bn_x = toBignum(x), bn_y = toBignum(y);
  std::unique_ptr<EC_KEY, EcKeyDeleter> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (bn_x == nullptr || bn_y == nullptr || ec == nullptr)
    return cryptoError("EC key does not load");
  // Also checks that the point is on the curve.
  if (EC_KEY_set_public_key_affine_coordinates(ec.get(), bn_x.get(), bn_y.get()) != 1) {
    return cryptoError("EC point is not on the curve");
  }
  key->pkey.reset(EVP_PKEY_new());
  if (key->pkey == nullptr || EVP_PKEY_assign_EC_KEY(key->pkey.get(), ec.get()) != 1) {
    return cryptoError("EC key does not load");
  }
  ec.release();  // owned by the EVP_PKEY now
  key->kty = KeyType::kEc;
  key->alg = Algorithm::kES256;
  return absl::OkStatus();
}

absl::Status octKey(const Struct& jwk, Key* key) {
  absl::Status status = member(jwk, "k", &key->secret);
  if (!status.ok()) return status;
  if (key->secret.size() < kMinHmacSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("HMAC key is shorter than ", kMinHmacSecretBytes, " bytes"));
  }
  key->kty = KeyType::kOct;
  key->alg = Algorithm::kHS256;
  return absl::OkStatus();
}

// An optional string member; false when present with another type.
bool optionalString(const Struct& jwk, const char* name, const std::string** out) {
  *out = nullptr;
  const auto it = jwk.fields().find(name);
  if (it == jwk.fields().end()) return true;
  if (it->second.kind_case() != Value::kStringValue) return false;
  *out = &it->second.string_value();
  return true;
}

// One JWK into `key`; an error says why it cannot be used.
absl::Status jwkKey(const Struct& jwk, Key* key) {
  const std::string *kty, *kid, *use, *alg;
  if (!optionalString(jwk, "kid", &kid) || !optionalString(jwk, "use", &use) ||
      !optionalString(jwk, "alg", &alg)) {
    return absl::InvalidArgumentError("\"kid\", \"use\" or \"alg\" is not a string");
  }
  if (kid != nullptr) key->kid = *kid;
  if (!optionalString(jwk, "kty", &kty) || kty == nullptr) {
    return absl::InvalidArgumentError("no \"kty\"");
  }
  // A key published for encryption is never used to verify signatures.
  if (use != nullptr && *use != "sig") {
    return absl::InvalidArgumentError(
        absl::StrCat("\"use\" is \"", absl::CHexEscape(*use), "\", not \"sig\""));
  }
  const auto ops = jwk.fields().find("key_ops");
  if (ops != jwk.fields().end()) {
    bool verify = false;
    if (ops->second.kind_case() == Value::kListValue) {
      for (const Value& op : ops->second.list_value().values()) {
        verify = verify || (op.kind_case() == Value::kStringValue && op.string_value() == "verify");
      }
    }
    if (!verify) return absl::InvalidArgumentError("\"key_ops\" does not include \"verify\"");
  }
  absl::Status status;
  const char* expected_alg;
  if (*kty == "RSA") {
    status = rsaKey(jwk, key);
    expected_alg = "RS256";
  } else if (*kty == "EC") {
    status = ecKey(jwk, key);
    expected_alg = "ES256";
  } else if (*kty == "oct") {
    status = octKey(jwk, key);
    expected_alg = "HS256";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported kty \"", absl::CHexEscape(*kty), "\""));
  }
  if (status.ok() && alg != nullptr && *alg != expected_alg) {
    return absl::InvalidArgumentError(
        absl::StrCat("alg \"", absl::CHexEscape(*alg), "\" is not supported for kty ", *kty));
  }
  return status;
}

}  // namespace

// Builds KeySets; a friend of KeySet.
class KeySetBuilder {
 public:
  void add(Key key) { keys_.push_back(std::move(key)); }
  void skip(std::string why) { skipped_.push_back(std::move(why)); }

  absl::StatusOr<KeySet> build() && {
    if (keys_.empty()) {
      return absl::InvalidArgumentError(
          skipped_.empty() ? std::string("JWKS has no keys")
                           : absl::StrCat("JWKS has no usable key: ", skipped_.front()));
    }
    return KeySet(std::move(keys_), std::move(skipped_));
  }

 private:
  std::vector<Key> keys_;
  std::vector<std::string> skipped_;
};

absl::StatusOr<KeySet> parseJwks(std::string_view json) {
  if (json.size() > kMaxJwksBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("JWKS is larger than ", kMaxJwksBytes, " bytes"));
  }
  Struct document;
  if (!parseJsonObject(json, kMaxJsonDepth, &document)) {
    return absl::InvalidArgumentError("JWKS is not a JSON object");
  }
  KeySetBuilder builder;
  const auto keys = document.fields().find("keys");
  if (keys == document.fields().end()) {
    Key key;
    const absl::Status status = jwkKey(document, &key);
    if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat("JWK: ", status.message()));
    builder.add(std::move(key));
    return std::move(builder).build();
  }
  if (keys->second.kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError("JWKS \"keys\" is not an array");
  }
  const auto& list = keys->second.list_value().values();
  if (static_cast<size_t>(list.size()) > kMaxJwksKeys) {
    return absl::InvalidArgumentError(absl::StrCat("JWKS has more than ", kMaxJwksKeys, " keys"));
  }
  for (int i = 0; i < list.size(); ++i) {
    if (list[i].kind_case() != Value::kStructValue) {
      return absl::InvalidArgumentError(absl::StrCat("JWKS key ", i, " is not an object"));
    }
    Key key;
    const absl::Status status = jwkKey(list[i].struct_value(), &key);
    if (status.ok()) {
      builder.add(std::move(key));
    } else {
      // Escaped: the document may come from a remote server and the line goes into a log.
      builder.skip(absl::StrCat(
          "key ", i,
          key.kid.empty() ? "" : absl::StrCat(" (kid \"", absl::CHexEscape(key.kid), "\")"), ": ",
          status.message()));
    }
  }
  return std::move(builder).build();
}

absl::StatusOr<KeySet> parsePemPublicKey(std::string_view pem) {
  if (pem.size() > kMaxJwksBytes) return absl::InvalidArgumentError("PEM is too large");
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return cryptoError("PEM does not load");
  Key key;
  key.pkey.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (key.pkey == nullptr) return cryptoError("not a PEM public key (BEGIN PUBLIC KEY)");
  absl::Status status;
  switch (EVP_PKEY_id(key.pkey.get())) {
    case EVP_PKEY_RSA:
      status = checkRsa(key.pkey.get());
      key.kty = KeyType::kRsa;
      key.alg = Algorithm::kRS256;
      break;
    case EVP_PKEY_EC:
      status = checkEc(key.pkey.get());
      key.kty = KeyType::kEc;
      key.alg = Algorithm::kES256;
      break;
    default:
      status = absl::InvalidArgumentError("PEM key is neither RSA nor EC");
  }
  if (!status.ok()) return status;
  KeySetBuilder builder;
  builder.add(std::move(key));
  return std::move(builder).build();
}

absl::StatusOr<KeySet> hmacSecret(std::string_view secret) {
  if (secret.size() < kMinHmacSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("HMAC secret is shorter than ", kMinHmacSecretBytes, " bytes"));
  }
  Key key;
  key.kty = KeyType::kOct;
  key.alg = Algorithm::kHS256;
  key.secret = std::string(secret);
  KeySetBuilder builder;
  builder.add(std::move(key));
  return std::move(builder).build();
}

}  // namespace sluice::jwt_authn
