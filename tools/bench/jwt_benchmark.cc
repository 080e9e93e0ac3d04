// Microbenchmarks of JWT authentication: what a worker pays per request for a token it has not
// seen (parse, then verify RS256 with RSA-2048, ES256 with P-256, HS256), the parse alone, and a
// token cache hit (SHA-256 of the token and one lookup), which is what a client sending the
// same token again costs. Keys are generated at start.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "proxy/filters/jwt_authn/jwks.h"
#include "proxy/filters/jwt_authn/jwt.h"
#include "proxy/filters/jwt_authn/token_cache.h"
#include "proxy/filters/jwt_authn/verifier.h"
#include "test/proxy/filters/jwt_authn/test_tokens.h"

namespace sluice::jwt_authn {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

// A typical access token's claims: about 600 bytes of token with an RS256 signature.
std::string payload() {
  return absl::StrCat(
      R"({"iss":"https://issuer.example","sub":"248289761001","aud":["api","web"],)",
      R"("exp":1700003600,"nbf":1699996400,"iat":1699996400,"jti":"8a1f1c2e-5b9d-4c3e",)",
      R"("scope":"openid profile email orders:read orders:write","groups":["eng","ops"]})");
}

struct Fixture {
  Fixture() {
    rsa = testing::generateRsa(2048);
    ec = testing::generateEcP256();
    secret = testing::randomBytes(32);
    keys = std::make_unique<KeySet>(*parseJwks(
        testing::jwks(testing::rsaJwk(rsa.get(), "rsa") + "," + testing::ecJwk(ec.get(), "ec") +
                      "," + testing::octJwk(secret, "hmac"))));
    rs256 = testing::rs256Token(rsa.get(), payload(), "rsa");
    es256 = testing::es256Token(ec.get(), payload(), "ec");
    hs256 = testing::hs256Token(secret, payload(), "hmac");
    config.issuer = "https://issuer.example";
    config.audiences = {"api"};
  }
  testing::PrivateKey rsa, ec;
  std::string secret;
  std::unique_ptr<KeySet> keys;
  std::string rs256, es256, hs256;
  VerifierConfig config;
};

const Fixture& fixture() {
  static const Fixture* const f = new Fixture();
  return *f;
}

void BM_ParseAndVerify(benchmark::State& state, const std::string Fixture::*token) {
  const Fixture& f = fixture();
  const std::string& t = f.*token;
  for (auto _ : state) {
    absl::StatusOr<Jwt> jwt = parseJwt(t);
    if (!jwt.ok() || verify(*jwt, *f.keys, f.config, kNow) != Failure::kNone) {
      state.SkipWithError("token refused");
      break;
    }
  }
  state.SetLabel(absl::StrCat(t.size(), "-byte token"));
}
BENCHMARK_CAPTURE(BM_ParseAndVerify, rs256, &Fixture::rs256);
BENCHMARK_CAPTURE(BM_ParseAndVerify, es256, &Fixture::es256);
BENCHMARK_CAPTURE(BM_ParseAndVerify, hs256, &Fixture::hs256);

void BM_Verify(benchmark::State& state, const std::string Fixture::*token) {
  const Fixture& f = fixture();
  const Jwt jwt = *parseJwt(f.*token);
  for (auto _ : state) {
    benchmark::DoNotOptimize(verify(jwt, *f.keys, f.config, kNow));
  }
}
BENCHMARK_CAPTURE(BM_Verify, rs256, &Fixture::rs256);
BENCHMARK_CAPTURE(BM_Verify, es256, &Fixture::es256);
BENCHMARK_CAPTURE(BM_Verify, hs256, &Fixture::hs256);

void BM_Parse(benchmark::State& state) {
  const Fixture& f = fixture();
  for (auto _ : state) benchmark::DoNotOptimize(parseJwt(f.rs256));
}
BENCHMARK(BM_Parse);

void BM_CacheHit(benchmark::State& state) {
  const Fixture& f = fixture();
  TokenCache cache(1024, absl::Minutes(5));
  cache.insert(f.rs256, f.keys->generation(),
               std::make_shared<const Claims>(parseJwt(f.rs256)->claims), kNow);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.lookup(f.rs256, f.keys->generation(), kNow));
  }
}
BENCHMARK(BM_CacheHit);

}  // namespace
}  // namespace sluice::jwt_authn
