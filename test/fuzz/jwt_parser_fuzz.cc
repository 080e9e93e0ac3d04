// libFuzzer target for JWT parsing and verification (//proxy/filters/jwt_authn:jwt). Every input
// is parsed as a token; an input with newlines is also taken as header JSON, payload JSON and
// signature bytes, one per line, and encoded into a token, so that mutations reach the JSON
// without having to keep base64 intact. A token that parses is verified against a fixed key set
// (RSA, EC P-256 and oct, the public halves of throwaway keys that signed the seed corpus) and,
// when accepted, goes through a token cache. Besides crashes and sanitizer reports, it aborts when
// an invariant breaks: an error other than the fixed ones, a parsed token that is not three
// segments within the size limit, flattened claims that disagree with their lookups, or an
// accepted token that breaks the verifier's own rules.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "proxy/filters/jwt_authn/jwks.h"
#include "proxy/filters/jwt_authn/jwt.h"
#include "proxy/filters/jwt_authn/token_cache.h"
#include "proxy/filters/jwt_authn/verifier.h"

namespace sluice::jwt_authn {
namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

// The oct key is "sluice-fuzz-hmac-secret-32-bytes!": it only has to be known to the corpus.
constexpr std::string_view kJwks =
    R"({"keys":[{"kty":"RSA","kid":"fuzz-rsa","n":"mpC4AOF_NZlivXueWuIoCK52llnKIUYuGiaSDvDKR-tJt)"
    R"(PHGYVtskTs-VAwsbaYibmVE-8INr3n5ERXaOf_3XVon22ZfHn-7JfhbXyBInBCsZqU57IU_ApIBQ75PoHTERRhzPD)"
    R"(KEcWGxraZDFJ9XPkuYdRZDPsNBH4co758mept9YX3ZCRL0fGNY75Kib4vSaYWOA1S08JBmS9khFYvXwGlIqCYfeR-)"
    R"(Q88cpUidIL2FTjunhCbXXIQtsFTs4bGkH5VGa9TzaZiXeEc81fXzabMWxMz20fne7alUL1idZNNPztXGZUb12trlCb)"
    R"(oxcwxXkY0zGK0RyWPGg8ZJC_lT-dw","e":"AQAB"},)"
    R"({"kty":"EC","kid":"fuzz-ec","crv":"P-256","x":"j8KkQMZh-sGK1Xp4mXQB7GvHPzXRtx1SKB6t4KHq0Zs",)"
    R"("y":"KGS56lc50U1hVAL9zb5czUc79sqLh0fevkldUesbNS4"},)"
    R"({"kty":"oct","kid":"fuzz-hmac","k":"c2x1aWNlLWZ1enotaG1hYy1zZWNyZXQtMzItYnl0ZXMh"}]})";

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

const KeySet& keys() {
  static const KeySet* const keys = [] {
    absl::StatusOr<KeySet> parsed = parseJwks(kJwks);
    check(parsed.ok() && parsed->keys().size() == 3, "the fixed key set loads");
    return new KeySet(std::move(parsed).value());
  }();
  return *keys;
}

VerifierConfig config() {
  VerifierConfig c;
  c.issuer = "https://issuer.example";
  c.audiences = {"api"};
  return c;
}

void checkClaims(const Claims& claims) {
  const auto& all = claims.all();
  for (size_t i = 1; i < all.size(); ++i) {
    check(all[i - 1].name < all[i].name, "claims sorted by unique name");
  }
  for (const Claims::Claim& claim : all) {
    check(claims.values(claim.name) == &claim.values, "values() finds each claim");
    for (const std::string& value : claim.values) {
      check(claims.contains(claim.name, value), "contains() each value");
    }
    check(claim.json.empty() || claim.json[0] == '{' || claim.json[0] == '[',
          "kept JSON is an object or array");
  }
  if (claims.iss) {
    check(claims.values("iss") != nullptr && *claims.values("iss") == std::vector{*claims.iss},
          "iss flattened");
  }
  if (!claims.aud.empty()) {
    check(claims.values("aud") != nullptr && *claims.values("aud") == claims.aud, "aud flattened");
  }
}

void checkToken(std::string_view token) {
  Failure failure = Failure::kNone;
  const absl::StatusOr<Jwt> jwt = parseJwt(token, &failure);
  if (!jwt.ok()) {
    const std::string message(jwt.status().message());
    check(failure == Failure::kMalformed || failure == Failure::kUnsupportedAlg,
          "parse failure reason");
    check(message == "malformed token" || message == "unsupported algorithm" ||
              message == "token too large",
          "parse error message is a fixed one");
    return;
  }
  check(failure == Failure::kNone, "success reason");
  check(token.size() <= kMaxTokenBytes, "size limit");
  check(std::count(token.begin(), token.end(), '.') == 2, "three segments");
  check(jwt->signing_input == token.substr(0, token.rfind('.')), "signing input");
  check(algorithmByName(jwt->alg).has_value(), "supported algorithm");
  check(!jwt->signature.empty(), "signature present");
  checkClaims(jwt->claims);

  const VerifierConfig c = config();
  const Failure verdict = verify(*jwt, keys(), c, kNow);
  check(verdict != Failure::kMalformed && verdict != Failure::kUnsupportedAlg,
        "verify agrees with parse");
  if (verdict != Failure::kNone) return;
  const Claims& claims = jwt->claims;
  check(claims.iss == c.issuer, "accepted issuer");
  check(std::find(claims.aud.begin(), claims.aud.end(), "api") != claims.aud.end(),
        "accepted audience");
  check(claims.exp && kNow < absl::FromUnixSeconds(*claims.exp) + c.clock_skew, "accepted exp");
  check(!claims.nbf || kNow >= absl::FromUnixSeconds(*claims.nbf) - c.clock_skew, "accepted nbf");

  TokenCache cache(4, absl::Minutes(5));
  const auto shared = std::make_shared<const Claims>(claims);
  cache.insert(token, keys().generation(), shared, kNow);
  const bool cacheable = kNow < absl::FromUnixSeconds(*claims.exp);
  check(cache.lookup(token, keys().generation(), kNow) == (cacheable ? shared : nullptr),
        "cache returns what was inserted");
  check(cache.lookup(token, keys().generation() + 1, kNow) == nullptr, "generation respected");
}

std::string base64Url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16 |
                       static_cast<uint8_t>(bytes[i + 1]) << 8 | static_cast<uint8_t>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(kAlphabet[(v >> shift) & 63]);
  }
  if (bytes.size() - i == 1) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    for (int shift : {18, 12}) out.push_back(kAlphabet[(v >> shift) & 63]);
  } else if (bytes.size() - i == 2) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16 | static_cast<uint8_t>(bytes[i + 1])
                                                                  << 8;
    for (int shift : {18, 12, 6}) out.push_back(kAlphabet[(v >> shift) & 63]);
  }
  return out;
}

// "header\npayload\nsignature" -> a token; the signature line may be empty or missing.
void checkLines(std::string_view data) {
  const size_t first = data.find('\n');
  if (first == std::string_view::npos) return;
  const std::string_view header = data.substr(0, first);
  std::string_view rest = data.substr(first + 1);
  const size_t second = rest.find('\n');
  const std::string_view payload = rest.substr(0, second);
  const std::string_view signature =
      second == std::string_view::npos ? std::string_view() : rest.substr(second + 1);
  checkToken(base64Url(header) + "." + base64Url(payload) + "." + base64Url(signature));
}

}  // namespace
}  // namespace sluice::jwt_authn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  sluice::jwt_authn::checkToken(data);
  sluice::jwt_authn::checkLines(data);
  return 0;
}
