#pragma once

// Verifies a parsed token: its signature against a key set, then its time window, issuer and
// audience. Workers call it at once on one shared KeySet and config, which it only reads.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proxy/filters/jwt_authn/jwks.h"
#include "proxy/filters/jwt_authn/jwt.h"

namespace sluice::jwt_authn {

struct VerifierConfig {
  std::string issuer;                  // "iss" must equal it; empty: not checked
  std::vector<std::string> audiences;  // one of "aud" must be among them; empty: not checked
  absl::Duration clock_skew = absl::Seconds(60);
  bool require_exp = true;
};

// Failure::kNone when the token is valid at `now`. The checks, in order:
// - the algorithm is RS256, ES256 or HS256 (kUnsupportedAlg);
// - some key of the algorithm's type (RSA, EC P-256, oct: never an RSA key as an HMAC secret)
//   whose kid equals the token's, or that has no kid, exists (kNoMatchingKey) and verifies the
//   signature (kBadSignature); without a token kid every key of the type is tried;
// - exp is present if required (kMissingExp), now < exp + skew (kExpired), now >= nbf - skew
//   (kNotYetValid);
// - issuer (kWrongIssuer), audience (kWrongAudience).
// The signature comes first, so an unauthenticated token learns nothing about the others.
Failure verify(const Jwt& jwt, const KeySet& keys, const VerifierConfig& config, absl::Time now);

}  // namespace sluice::jwt_authn
