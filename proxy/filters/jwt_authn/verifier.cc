#include "proxy/filters/jwt_authn/verifier.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace sluice::jwt_authn {
namespace {

constexpr size_t kSha256Bytes = 32;
constexpr size_t kP256CoordinateBytes = 32;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};

const uint8_t* bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

KeyType keyType(Algorithm alg) {
  switch (alg) {
    case Algorithm::kRS256:
      return KeyType::kRsa;
    case Algorithm::kES256:
      return KeyType::kEc;
    case Algorithm::kHS256:
      return KeyType::kOct;
  }
  return KeyType::kOct;
}

// SHA-256 with the key's own scheme: RSA PKCS#1 v1.5 (EVP's default padding) or ECDSA with a
// DER signature.
bool verifyDigest(EVP_PKEY* pkey, std::string_view input, const uint8_t* signature,
                  size_t signature_len) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx != nullptr &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
      EVP_DigestVerify(ctx.get(), signature, signature_len, bytes(input), input.size()) == 1;
  // A failed verification leaves errors on the thread's queue, where the worker's next
  // SSL_get_error would find them.
  if (!ok) ERR_clear_error();
  return ok;
}

// JWS carries r || s, each 32 bytes (RFC 7518 section 3.4); EVP wants DER. A DER signature in
// the token has another length and is refused.
bool verifyEs256(const Key& key, const Jwt& jwt) {
  if (jwt.signature.size() != 2 * kP256CoordinateBytes) return false;
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(bytes(jwt.signature), kP256CoordinateBytes, nullptr);
  BIGNUM* s = BN_bin2bn(bytes(jwt.signature) + kP256CoordinateBytes, kP256CoordinateBytes, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ERR_clear_error();
    return false;
  }
  // Two INTEGERs of at most 33 bytes in a SEQUENCE: 72 bytes at most.
  uint8_t der[80];
  const int der_len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (der_len <= 0 || static_cast<size_t>(der_len) > sizeof(der)) {
    ERR_clear_error();
    return false;
  }
  uint8_t* out = der;
  i2d_ECDSA_SIG(sig.get(), &out);
  return verifyDigest(key.pkey.get(), jwt.signing_input, der, static_cast<size_t>(der_len));
}

bool verifyHs256(const Key& key, const Jwt& jwt) {
  if (jwt.signature.size() != kSha256Bytes) return false;
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
           bytes(jwt.signing_input), jwt.signing_input.size(), mac, &mac_len) == nullptr ||
      mac_len != kSha256Bytes) {
    ERR_clear_error();
    return false;
  }
  // Constant time: how many leading bytes matched must not show in the answer's timing.
  const bool ok = CRYPTO_memcmp(mac, jwt.signature.data(), kSha256Bytes) == 0;
  OPENSSL_cleanse(mac, sizeof(mac));
  return ok;
}

// Only the key's own algorithm: an oct key's secret is the only thing HMAC ever reads, and an
// RSA or EC key is only ever given to EVP with its own scheme.
bool verifySignature(const Key& key, Algorithm alg, const Jwt& jwt) {
  if (key.alg != alg || key.kty != keyType(alg)) return false;
  switch (alg) {
    case Algorithm::kRS256:
      return key.pkey != nullptr && EVP_PKEY_id(key.pkey.get()) == EVP_PKEY_RSA &&
             verifyDigest(key.pkey.get(), jwt.signing_input, bytes(jwt.signature),
                          jwt.signature.size());
    case Algorithm::kES256:
      return key.pkey != nullptr && EVP_PKEY_id(key.pkey.get()) == EVP_PKEY_EC &&
             verifyEs256(key, jwt);
    case Algorithm::kHS256:
      return !key.secret.empty() && verifyHs256(key, jwt);
  }
  return false;
}

}  // namespace

Failure verify(const Jwt& jwt, const KeySet& keys, const VerifierConfig& config, absl::Time now) {
  const std::optional<Algorithm> alg = algorithmByName(jwt.alg);
  if (!alg) return Failure::kUnsupportedAlg;

  bool matched = false, verified = false;
  for (const Key& key : keys.keys()) {
    if (key.alg != *alg || (!jwt.kid.empty() && !key.kid.empty() && key.kid != jwt.kid)) {
      continue;
    }
    matched = true;
    if (verifySignature(key, *alg, jwt)) {
      verified = true;
      break;
    }
  }
  if (!matched) return Failure::kNoMatchingKey;
  if (!verified) return Failure::kBadSignature;

  const Claims& claims = jwt.claims;
  if (!claims.exp) {
    if (config.require_exp) return Failure::kMissingExp;
  } else if (now >= absl::FromUnixSeconds(*claims.exp) + config.clock_skew) {
    return Failure::kExpired;
  }
  if (claims.nbf && now < absl::FromUnixSeconds(*claims.nbf) - config.clock_skew) {
    return Failure::kNotYetValid;
  }
  if (!config.issuer.empty() && claims.iss != config.issuer) return Failure::kWrongIssuer;
  if (!config.audiences.empty() &&
      std::none_of(claims.aud.begin(), claims.aud.end(), [&config](const std::string& aud) {
        return std::find(config.audiences.begin(), config.audiences.end(), aud) !=
               config.audiences.end();
      })) {
    return Failure::kWrongAudience;
  }
  return Failure::kNone;
}

}  // namespace sluice::jwt_authn
