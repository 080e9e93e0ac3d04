#pragma once

// Keys made at test time and tokens signed with them, for the jwt_authn tests and benchmark.
// Nothing here is checked against the library under test: encoding and signing go straight
// through OpenSSL.
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

namespace sluice::jwt_authn::testing {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PrivateKey = std::unique_ptr<EVP_PKEY, PkeyFree>;

PrivateKey generateRsa(int bits);
PrivateKey generateEcP256();
std::string randomBytes(size_t n);

std::string base64Url(std::string_view bytes);

// Public JWKs; `kid` is left out when empty, `alg` likewise.
std::string rsaJwk(EVP_PKEY* key, std::string_view kid, std::string_view alg = "");
std::string ecJwk(EVP_PKEY* key, std::string_view kid, std::string_view alg = "");
std::string octJwk(std::string_view secret, std::string_view kid, std::string_view alg = "");
// {"keys":[...]} of the given JWKs, joined with commas.
std::string jwks(std::string_view joined_keys);

// The public half as PEM SubjectPublicKeyInfo and as its DER bytes.
std::string publicPem(EVP_PKEY* key);
std::string publicDer(EVP_PKEY* key);

// Signatures over `input` as JWS carries them: RS256 PKCS#1 v1.5, ES256 raw r || s (or DER,
// which JWS does not allow), HS256.
std::string signRs256(EVP_PKEY* key, std::string_view input);
std::string signEs256(EVP_PKEY* key, std::string_view input);
std::string signEs256Der(EVP_PKEY* key, std::string_view input);
std::string signHs256(std::string_view secret, std::string_view input);

// The signing input: base64url(header_json) '.' base64url(payload_json).
std::string signingInput(std::string_view header_json, std::string_view payload_json);
// A complete token: signing input, '.', base64url(signature).
std::string withSignature(std::string_view signing_input, std::string_view signature);

// {"alg":ALG,"typ":"JWT"}, with "kid":KID after alg when kid is not empty.
std::string header(std::string_view alg, std::string_view kid = "");

// Signed tokens for the common cases.
std::string rs256Token(EVP_PKEY* key, std::string_view payload_json, std::string_view kid = "");
std::string es256Token(EVP_PKEY* key, std::string_view payload_json, std::string_view kid = "");
std::string hs256Token(std::string_view secret, std::string_view payload_json,
                       std::string_view kid = "");

}  // namespace sluice::jwt_authn::testing
