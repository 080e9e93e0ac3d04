// RSA_get0_key and EC_KEY_get0_public_key: the calls BoringSSL also has, deprecated in OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "test/proxy/filters/jwt_authn/test_tokens.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace sluice::jwt_authn::testing {
namespace {

// Test setup that cannot go on: abort with the reason.
void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "test_tokens: %s failed\n", what);
    std::abort();
  }
}

struct CtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BnFree {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct SigFree {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};

std::string bnBytes(const BIGNUM* bn, int len) {
  std::string out(len, '\0');
  require(BN_bn2binpad(bn, reinterpret_cast<uint8_t*>(out.data()), len) == len, "BN_bn2binpad");
  return out;
}

std::string member(std::string_view name, std::string_view value) {
  return std::string(",\"") + std::string(name) + "\":\"" + std::string(value) + "\"";
}

std::string optionalMembers(std::string_view kid, std::string_view alg) {
  std::string out;
  if (!kid.empty()) out += member("kid", kid);
  if (!alg.empty()) out += member("alg", alg);
  return out;
}

std::string digestSign(EVP_PKEY* key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  require(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1,
          "EVP_DigestSignInit");
  size_t len = 0;
  const auto* data = reinterpret_cast<const uint8_t*>(input.data());
  require(EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) == 1, "EVP_DigestSign");
  std::string out(len, '\0');
  require(EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len, data,
                         input.size()) == 1,
          "EVP_DigestSign");
  out.resize(len);
  return out;
}

}  // namespace

PrivateKey generateRsa(int bits) {
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr));
  EVP_PKEY* key = nullptr;
  require(ctx != nullptr && EVP_PKEY_keygen_init(ctx.get()) == 1 &&
              EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) == 1 &&
              EVP_PKEY_keygen(ctx.get(), &key) == 1,
          "RSA key generation");
  return PrivateKey(key);
}

PrivateKey generateEcP256() {
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  EVP_PKEY* key = nullptr;
  require(ctx != nullptr && EVP_PKEY_keygen_init(ctx.get()) == 1 &&
              EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) == 1 &&
              EVP_PKEY_keygen(ctx.get(), &key) == 1,
          "EC key generation");
  return PrivateKey(key);
}

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  require(RAND_bytes(reinterpret_cast<uint8_t*>(out.data()), static_cast<int>(n)) == 1,
          "RAND_bytes");
  return out;
}

std::string base64Url(std::string_view bytes) {
  std::vector<uint8_t> out(4 * ((bytes.size() + 2) / 3) + 1);
  const int len = EVP_EncodeBlock(out.data(), reinterpret_cast<const uint8_t*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
  std::string text(reinterpret_cast<const char*>(out.data()), len);
  while (!text.empty() && text.back() == '=') text.pop_back();
  for (char& c : text) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return text;
}

std::string rsaJwk(EVP_PKEY* key, std::string_view kid, std::string_view alg) {
  const RSA* rsa = EVP_PKEY_get0_RSA(key);
  require(rsa != nullptr, "EVP_PKEY_get0_RSA");
  const BIGNUM *n = nullptr, *e = nullptr;
  RSA_get0_key(rsa, &n, &e, nullptr);
  return std::string("{\"kty\":\"RSA\"") + member("n", base64Url(bnBytes(n, BN_num_bytes(n)))) +
         member("e", base64Url(bnBytes(e, BN_num_bytes(e)))) + optionalMembers(kid, alg) + "}";
}

std::string ecJwk(EVP_PKEY* key, std::string_view kid, std::string_view alg) {
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key);
  require(ec != nullptr, "EVP_PKEY_get0_EC_KEY");
  std::unique_ptr<BIGNUM, BnFree> x(BN_new()), y(BN_new());
  require(EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec),
                                              x.get(), y.get(), nullptr) == 1,
          "EC_POINT_get_affine_coordinates_GFp");
  return std::string("{\"kty\":\"EC\",\"crv\":\"P-256\"") +
         member("x", base64Url(bnBytes(x.get(), 32))) +
         member("y", base64Url(bnBytes(y.get(), 32))) + optionalMembers(kid, alg) + "}";
}

std::string octJwk(std::string_view secret, std::string_view kid, std::string_view alg) {
  return std::string("{\"kty\":\"oct\"") + member("k", base64Url(secret)) +
         optionalMembers(kid, alg) + "}";
}

std::string jwks(std::string_view joined_keys) {
  return std::string("{\"keys\":[") + std::string(joined_keys) + "]}";
}

std::string publicPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  require(PEM_write_bio_PUBKEY(bio.get(), key) == 1, "PEM_write_bio_PUBKEY");
  const char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string publicDer(EVP_PKEY* key) {
  uint8_t* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  require(len > 0, "i2d_PUBKEY");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string signRs256(EVP_PKEY* key, std::string_view input) { return digestSign(key, input); }

std::string signEs256Der(EVP_PKEY* key, std::string_view input) { return digestSign(key, input); }

std::string signEs256(EVP_PKEY* key, std::string_view input) {
  const std::string der = signEs256Der(key, input);
  const auto* p = reinterpret_cast<const uint8_t*>(der.data());
  std::unique_ptr<ECDSA_SIG, SigFree> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  require(sig != nullptr, "d2i_ECDSA_SIG");
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  return bnBytes(r, 32) + bnBytes(s, 32);
}

std::string signHs256(std::string_view secret, std::string_view input) {
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  require(HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
               reinterpret_cast<const uint8_t*>(input.data()), input.size(), mac, &len) != nullptr,
          "HMAC");
  return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string signingInput(std::string_view header_json, std::string_view payload_json) {
  return base64Url(header_json) + "." + base64Url(payload_json);
}

std::string withSignature(std::string_view signing_input, std::string_view signature) {
  return std::string(signing_input) + "." + base64Url(signature);
}

std::string header(std::string_view alg, std::string_view kid) {
  std::string out = std::string("{\"alg\":\"") + std::string(alg) + "\"";
  if (!kid.empty()) out += member("kid", kid);
  return out + ",\"typ\":\"JWT\"}";
}

std::string rs256Token(EVP_PKEY* key, std::string_view payload_json, std::string_view kid) {
  const std::string input = signingInput(header("RS256", kid), payload_json);
  return withSignature(input, signRs256(key, input));
}

std::string es256Token(EVP_PKEY* key, std::string_view payload_json, std::string_view kid) {
  const std::string input = signingInput(header("ES256", kid), payload_json);
  return withSignature(input, signEs256(key, input));
}

std::string hs256Token(std::string_view secret, std::string_view payload_json,
                       std::string_view kid) {
  const std::string input = signingInput(header("HS256", kid), payload_json);
  return withSignature(input, signHs256(secret, input));
}

}  // namespace sluice::jwt_authn::testing
