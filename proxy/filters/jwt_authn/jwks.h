#pragma once

// Verification keys: a JWKS document (RFC 7517) or a single JWK, a PEM public key, or an HMAC
// secret. A KeySet is built once (main thread) and then shared read-only by every worker;
// verifying with its keys takes a fresh EVP_MD_CTX per call, so it needs no lock of ours.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/filters/jwt_authn/jwt.h"

// EVP_PKEY's tag in both OpenSSL and BoringSSL; declared here so that users of this header do
// not all see OpenSSL's declarations.
struct evp_pkey_st;

namespace sluice::jwt_authn {

// A larger JWKS document is refused, and so is one with more keys: a token without "kid" is
// tried against every key of its type.
inline constexpr size_t kMaxJwksBytes = 256 * 1024;
inline constexpr size_t kMaxJwksKeys = 32;
// RSA moduli outside these bounds are refused: below is too weak (RFC 7518 section 3.3 asks
// for 2048), above makes every verification needlessly slow.
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;
// RFC 7518 section 3.2: an HS256 key is at least as long as the hash output.
inline constexpr size_t kMinHmacSecretBytes = 32;

enum class KeyType { kRsa, kEc, kOct };

struct PkeyDeleter {
  void operator()(evp_pkey_st* key) const;
};

// One key; the algorithm follows from the type (RSA: RS256, EC P-256: ES256, oct: HS256), so a
// key never verifies a token of another algorithm.
struct Key {
  Key() = default;
  Key(Key&&) = default;
  Key& operator=(Key&&) = default;
  // Wipes the HMAC secret.
  ~Key();

  KeyType kty = KeyType::kRsa;
  Algorithm alg = Algorithm::kRS256;
  std::string kid;                                 // empty when the JWK has none
  std::unique_ptr<evp_pkey_st, PkeyDeleter> pkey;  // RSA and EC
  std::string secret;                              // oct
};

class KeySet {
 public:
  KeySet(KeySet&&) = default;
  KeySet& operator=(KeySet&&) = default;

  const std::vector<Key>& keys() const { return keys_; }
  // Different for every KeySet this process builds; a token cache entry remembers the
  // generation that verified it, so a new key set never serves a token the old one accepted.
  uint64_t generation() const { return generation_; }
  // Why keys of the document went unused, one line each ("key 1 (kid 'a'): RSA modulus has 1024
  // bits, below 2048"), for the operator's log. Never key material.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  friend class KeySetBuilder;  // jwks.cc
  KeySet(std::vector<Key> keys, std::vector<std::string> skipped);

  std::vector<Key> keys_;
  std::vector<std::string> skipped_;
  uint64_t generation_;
};

// A JWKS document ({"keys": [...]}) or a single JWK object. Keys of unknown types, for another
// use ("use" other than "sig", "key_ops" without "verify"), for an unsupported algorithm or
// curve, too small, or with missing or malformed members are skipped (RFC 7517 section 5);
// an error when no usable key remains or the document itself is malformed. A single JWK that
// cannot be used is an error.
absl::StatusOr<KeySet> parseJwks(std::string_view json);

// One RSA (2048 bits or more) or EC P-256 public key as PEM SubjectPublicKeyInfo
// ("-----BEGIN PUBLIC KEY-----").
absl::StatusOr<KeySet> parsePemPublicKey(std::string_view pem);

// One HS256 secret, at least kMinHmacSecretBytes long.
absl::StatusOr<KeySet> hmacSecret(std::string_view secret);

}  // namespace sluice::jwt_authn
