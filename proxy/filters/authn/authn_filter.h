#pragma once

// Authentication (phase 4, after the IP lists): who sends the request. A route accepts any of
// API keys, JWTs from named providers, Basic credentials and HMAC request signatures. The first
// credential the request carries (in that order: signature, bearer token, Basic, API key)
// decides: it verifies and names a consumer, or the request is answered 401 with the routes'
// challenges and no detail. A request without any credential is admitted as anonymous only
// when the route allows it. The consumer's name goes upstream in a header; credentials do not,
// unless the route says so.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/filters/jwt_authn/jwks.h"
#include "proxy/filters/jwt_authn/verifier.h"
#include "proxy/http/filter.h"
#include "proxy/stats/store.h"
#include "sluice/config/v1/security.pb.h"

namespace sluice::authn {

// A route configuration's JWT provider, compiled.
struct JwtProvider {
  std::string name;
  jwt_authn::VerifierConfig verifier;
  // The key set of a local_jwks; null with a remote one, found in the generation's JwksCache
  // under `remote_key`.
  std::shared_ptr<const jwt_authn::KeySet> local_keys;
  std::string remote_key;
  // Lower case; "authorization" carries "Bearer <token>", others the bare token.
  std::vector<std::string> from_headers;
  struct ClaimHeader {
    std::string claim;
    std::string header;  // lower case
  };
  std::vector<ClaimHeader> claim_to_headers;
  bool forward = false;
  std::string consumer_claim = "sub";

  static absl::StatusOr<std::shared_ptr<const JwtProvider>> compile(
      const config::v1::JwtProvider& config, const std::string& route_config);
};

// The counters of authentication, by method and outcome (declared once per process: every
// route's filter shares them).
struct AuthnStats {
  enum Method { kApiKey, kJwt, kBasic, kHmac, kMethodCount };
  enum Reason {
    kMalformed,        // the credential cannot be parsed
    kUnknown,          // no consumer has this key, user or key id
    kBadCredential,    // wrong password, signature or HMAC
    kExpired,          // JWT exp passed
    kNotYetValid,      // JWT nbf ahead
    kWrongIssuer,      // JWT iss
    kWrongAudience,    // JWT aud
    kUnsupportedAlg,   // JWT alg not RS256, ES256 or HS256 (alg "none" included)
    kNoMatchingKey,    // no key of the provider fits the token's alg and kid
    kMissingExp,       // JWT without exp
    kKeysUnavailable,  // remote JWKS not fetched yet
    kStale,            // HMAC date outside the clock skew
    kReplay,           // HMAC nonce seen within the window
    kDigestMismatch,   // HMAC body does not match its Digest
    kNonceTableFull,   // HMAC freshness cannot be proven
    kReasonCount
  };
  stats::CounterId success[kMethodCount];
  stats::CounterId failure[kMethodCount][kReasonCount];
  stats::CounterId anonymous;  // admitted without a credential (allow_anonymous)
  stats::CounterId missing;    // no credential where one is required

  static AuthnStats declare(stats::Store* store);
};

class AuthnFilter : public http::AccessFilter {
 public:
  // `providers`: the route configuration's, by name.
  static absl::StatusOr<std::unique_ptr<AuthnFilter>> compile(
      const config::v1::Authentication& config,
      const std::vector<std::shared_ptr<const JwtProvider>>& providers, stats::Store* store);

  http::FilterStatus onRequest(http::AccessContext& ctx, http::LocalReply* reply) const override;
  uint64_t maxBody() const override { return hmac_max_body_; }

  // Request headers this filter keeps from the upstream (credentials, headers it sets).
  const std::vector<std::string>& strip() const { return strip_; }

 private:
  http::FilterStatus deny(http::AccessContext& ctx, AuthnStats::Method method,
                          AuthnStats::Reason reason, http::LocalReply* reply) const;
  http::FilterStatus admit(http::AccessContext& ctx, AuthnStats::Method method,
                           const Consumer* consumer) const;
  // Each returns kContinue with ctx's identity set, kReply (denied), or nothing found
  // (`*found` false).
  http::FilterStatus apiKey(http::AccessContext& ctx, http::LocalReply* reply, bool* found) const;
  http::FilterStatus jwt(http::AccessContext& ctx, http::LocalReply* reply, bool* found) const;
  http::FilterStatus basic(http::AccessContext& ctx, http::LocalReply* reply, bool* found) const;
  http::FilterStatus hmac(http::AccessContext& ctx, http::LocalReply* reply, bool* found) const;

  bool api_key_ = false;
  std::vector<std::string> key_headers_;  // lower case
  std::vector<std::string> key_query_;
  std::vector<std::shared_ptr<const JwtProvider>> providers_;
  bool basic_ = false;
  bool hmac_ = false;
  absl::Duration hmac_skew_ = absl::Seconds(300);
  uint64_t hmac_max_body_ = 0;
  bool allow_anonymous_ = false;
  std::string consumer_header_;  // lower case
  std::string challenges_;       // WWW-Authenticate lines
  std::vector<std::string> strip_;
  AuthnStats stats_;
};

}  // namespace sluice::authn
