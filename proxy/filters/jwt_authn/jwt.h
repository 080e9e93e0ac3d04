#pragma once

// Strict parsing of compact-serialized JWS tokens (RFC 7515 / RFC 7519): three unpadded base64url
// segments, a JSON object header naming a supported algorithm, a JSON object payload. Parsing
// checks structure only; verify() (verifier.h) checks the signature and the claims. Error
// messages are short and never quote the token, so they may go into a 401 and into logs.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::jwt_authn {

// Longer tokens are refused before any decoding: an Authorization header has no business
// carrying more, and it bounds what an unauthenticated client makes the proxy parse.
inline constexpr size_t kMaxTokenBytes = 8192;
// Deepest nesting of arrays and objects accepted in the header, the payload and a JWKS.
inline constexpr int kMaxJsonDepth = 16;

// Why a token was refused; the names (failureName) are stable for metrics labels.
enum class Failure {
  kNone,
  kMalformed,
  kUnsupportedAlg,
  kNoMatchingKey,
  kBadSignature,
  kExpired,
  kNotYetValid,
  kWrongIssuer,
  kWrongAudience,
  kMissingExp,
};

// "none", "malformed", "unsupported_alg", "no_matching_key", "bad_signature", "expired",
// "not_yet_valid", "wrong_issuer", "wrong_audience", "missing_exp".
const char* failureName(Failure failure);

enum class Algorithm { kRS256, kES256, kHS256 };

// The algorithm with exactly this JWS name ("RS256", "ES256", "HS256"), or nullopt: "none",
// "rs256" and every other name.
std::optional<Algorithm> algorithmByName(std::string_view name);

// The payload's claims. Every top-level claim is flattened into string values that
// authorization can match; the registered claims are also parsed into typed fields.
class Claims {
 public:
  struct Claim {
    std::string name;
    // A string is itself; a number its shortest decimal form ("3", "1.5", "1e+21"); a bool
    // "true" or "false"; an array the values of its scalar elements. null, objects and
    // elements that are arrays or objects give no value.
    std::vector<std::string> values;
    // The value as compact JSON when it is an object or an array holding an array or object,
    // so that it can still be forwarded whole; empty otherwise.
    std::string json;
    // The value was a JSON string: contains() also matches its space-separated words.
    bool is_string = false;
  };

  // Registered claims (RFC 7519 section 4.1). NumericDates are whole seconds since the epoch,
  // fractions dropped.
  std::optional<std::string> iss;
  std::optional<std::string> sub;
  std::vector<std::string> aud;  // a single string audience becomes one element
  std::optional<int64_t> exp;
  std::optional<int64_t> nbf;
  std::optional<int64_t> iat;

  // Values of the named claim, or nullptr when the token has no such claim (or it is null).
  const std::vector<std::string>* values(std::string_view name) const;
  // Whether the named claim has `value` as one of its values or, for a string claim, as one of
  // its space-separated words (OAuth "scope": "read write").
  bool contains(std::string_view name, std::string_view value) const;
  // All flattened claims, sorted by name.
  const std::vector<Claim>& all() const { return claims_; }

 private:
  friend class ClaimsParser;  // jwt.cc
  std::vector<Claim> claims_;
};

struct Jwt {
  std::string alg;            // as in the header; parseJwt accepts only algorithmByName's
  std::string kid;            // empty when the header has none
  std::string typ;            // empty when the header has none
  std::string signing_input;  // the first two segments with the dot between them
  std::string signature;      // decoded
  Claims claims;
};

// Parses a compact JWS. On failure the status message is a short, fixed reason ("malformed
// token", "unsupported algorithm", "token too large") and `failure`, when given, is set to
// kMalformed or kUnsupportedAlg for counting; on success it is set to kNone.
absl::StatusOr<Jwt> parseJwt(std::string_view token, Failure* failure = nullptr);

}  // namespace sluice::jwt_authn
