#include "proxy/filters/authn/authn_filter.h"

#include <event2/buffer.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config/data_source.h"
#include "proxy/filters/authn/consumers.h"
#include "proxy/filters/authn/jwks_cache.h"
#include "proxy/filters/hmac_auth/hmac_auth.h"
#include "proxy/filters/jwt_authn/jwt.h"
#include "proxy/filters/jwt_authn/token_cache.h"

namespace sluice::authn {
namespace {

using http::AccessContext;
using http::FilterStatus;
using http::LocalReply;

constexpr std::string_view kUnauthorized = "unauthorized\n";
constexpr const char* kMethodNames[AuthnStats::kMethodCount] = {"api_key", "jwt", "basic", "hmac"};
constexpr const char* kReasonNames[AuthnStats::kReasonCount] = {
    "malformed",       "unknown_consumer", "bad_credential",   "expired",
    "not_yet_valid",   "wrong_issuer",     "wrong_audience",   "unsupported_alg",
    "no_matching_key", "missing_exp",      "keys_unavailable", "stale",
    "replay",          "digest_mismatch",  "nonce_table_full"};

// Verified tokens and Basic credentials, per worker thread: a cache hit spares a signature
// check (15-50 us) or a bcrypt (tens of ms). Thread-local: each worker owns its own, no locks.
jwt_authn::TokenCache& tokenCache() {
  thread_local jwt_authn::TokenCache cache(4096, absl::Minutes(5));
  return cache;
}

// Nonces of signed requests, one table for every worker (lock-free); made on the main thread
// when the first route with request signing is compiled.
hmac_auth::NonceCache& nonceCache() {
  static std::unique_ptr<hmac_auth::NonceCache> cache = [] {
    auto c = hmac_auth::NonceCache::create(size_t{1} << 20, 64);
    return c.ok() ? *std::move(c) : nullptr;
  }();
  return *cache;
}

basic_auth::VerifiedCache& basicCache() {
  thread_local basic_auth::VerifiedCache cache(1024, absl::Minutes(5));
  return cache;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(absl::string_view(a.data(), a.size()),
                                absl::string_view(b.data(), b.size()));
}

// The first value of request header `name` (RequestHead::find, as an out-parameter).
bool findHeader(const http::RequestHead& head, std::string_view name, std::string_view* value) {
  const http::Header* h = head.find(name);
  if (h == nullptr) return false;
  *value = h->value;
  return true;
}

// The raw value of query parameter `name`.
bool findQuery(std::string_view query, std::string_view name, std::string_view* value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    return true;
  }
  return false;
}

// "<scheme> <rest>" with a case-insensitive scheme; the rest without leading spaces.
bool hasScheme(std::string_view value, std::string_view scheme, std::string_view* rest) {
  if (value.size() <= scheme.size() || !equalsIgnoreCase(value.substr(0, scheme.size()), scheme) ||
      value[scheme.size()] != ' ') {
    return false;
  }
  value.remove_prefix(scheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  *rest = value;
  return true;
}

AuthnStats::Reason reasonOf(jwt_authn::Failure failure) {
  switch (failure) {
    case jwt_authn::Failure::kUnsupportedAlg:
      return AuthnStats::kUnsupportedAlg;
    case jwt_authn::Failure::kNoMatchingKey:
      return AuthnStats::kNoMatchingKey;
    case jwt_authn::Failure::kBadSignature:
      return AuthnStats::kBadCredential;
    case jwt_authn::Failure::kExpired:
      return AuthnStats::kExpired;
    case jwt_authn::Failure::kNotYetValid:
      return AuthnStats::kNotYetValid;
    case jwt_authn::Failure::kWrongIssuer:
      return AuthnStats::kWrongIssuer;
    case jwt_authn::Failure::kWrongAudience:
      return AuthnStats::kWrongAudience;
    case jwt_authn::Failure::kMissingExp:
      return AuthnStats::kMissingExp;
    case jwt_authn::Failure::kNone:
    case jwt_authn::Failure::kMalformed:
      break;
  }
  return AuthnStats::kMalformed;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const JwtProvider>> JwtProvider::compile(
    const config::v1::JwtProvider& config, const std::string& route_config) {
  auto p = std::make_shared<JwtProvider>();
  p->name = config.name();
  p->verifier.issuer = config.issuer();
  p->verifier.audiences.assign(config.audiences().begin(), config.audiences().end());
  if (config.has_clock_skew()) {
    p->verifier.clock_skew = absl::Seconds(config.clock_skew().seconds()) +
                             absl::Nanoseconds(config.clock_skew().nanos());
  }
  const std::string what =
      absl::StrCat("route configuration '", route_config, "' JWT provider '", config.name(), "'");
  if (config.has_local_jwks()) {
    auto text = config::readDataSource(config.local_jwks(), what + " local_jwks");
    if (!text.ok()) return text.status();
    absl::StatusOr<jwt_authn::KeySet> keys = absl::StartsWith(*text, "-----BEGIN")
                                                 ? jwt_authn::parsePemPublicKey(*text)
                                                 : jwt_authn::parseJwks(*text);
    if (!keys.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " local_jwks: ", keys.status().message()));
    }
    p->local_keys = std::make_shared<const jwt_authn::KeySet>(*std::move(keys));
  } else {
    p->remote_key = remoteJwksKey(config.remote_jwks().uri(), config.remote_jwks().cluster());
  }
  for (const std::string& h : config.from_headers()) {
    p->from_headers.push_back(absl::AsciiStrToLower(h));
  }
  if (p->from_headers.empty()) p->from_headers.push_back("authorization");
  for (const auto& ch : config.claim_to_headers()) {
    p->claim_to_headers.push_back({ch.claim(), absl::AsciiStrToLower(ch.header())});
  }
  p->forward = config.forward();
  if (!config.consumer_claim().empty()) p->consumer_claim = config.consumer_claim();
  return std::shared_ptr<const JwtProvider>(std::move(p));
}

AuthnStats AuthnStats::declare(stats::Store* store) {
  AuthnStats s;
  for (int m = 0; m < kMethodCount; ++m) {
    s.success[m] = store->counter("sluice_auth_success_total", "Requests authenticated, by method.",
                                  {{"method", kMethodNames[m]}});
    for (int r = 0; r < kReasonCount; ++r) {
      s.failure[m][r] = store->counter("sluice_auth_failure_total",
                                       "Requests answered 401: a credential that did not verify.",
                                       {{"method", kMethodNames[m]}, {"reason", kReasonNames[r]}});
    }
  }
  s.anonymous = store->counter("sluice_auth_anonymous_total",
                               "Requests without a credential admitted by allow_anonymous.", {});
  s.missing = store->counter("sluice_auth_missing_total",
                             "Requests answered 401: no credential where one is required.", {});
  return s;
}

absl::StatusOr<std::unique_ptr<AuthnFilter>> AuthnFilter::compile(
    const config::v1::Authentication& config,
    const std::vector<std::shared_ptr<const JwtProvider>>& providers, stats::Store* store) {
  auto f = std::unique_ptr<AuthnFilter>(new AuthnFilter());
  f->stats_ = AuthnStats::declare(store);
  f->consumer_header_ = config.consumer_header().empty()
                            ? "x-sluice-consumer"
                            : absl::AsciiStrToLower(config.consumer_header());
  f->strip_.push_back(f->consumer_header_);
  f->allow_anonymous_ = config.allow_anonymous();
  if (config.has_hmac()) {
    f->hmac_ = true;
    nonceCache();
    if (config.hmac().has_clock_skew()) {
      f->hmac_skew_ = absl::Seconds(config.hmac().clock_skew().seconds());
    }
    f->hmac_max_body_ =
        config.hmac().has_max_body_bytes() ? config.hmac().max_body_bytes() : 1u << 20;
    absl::StrAppend(&f->challenges_,
                    "www-authenticate: Signature realm=\"sluice\",headers=\"@request-target "
                    "date x-sluice-nonce digest\"\r\n");
  }
  for (const std::string& name : config.jwt_providers()) {
    auto it = std::find_if(providers.begin(), providers.end(),
                           [&](const auto& p) { return p->name == name; });
    if (it == providers.end()) {
      return absl::InvalidArgumentError(absl::StrCat("JWT provider '", name, "' is not defined"));
    }
    f->providers_.push_back(*it);
    for (const std::string& h : (*it)->from_headers) {
      if (!(*it)->forward) f->strip_.push_back(h);
    }
    for (const auto& ch : (*it)->claim_to_headers) f->strip_.push_back(ch.header);
  }
  if (!f->providers_.empty()) {
    absl::StrAppend(&f->challenges_, "www-authenticate: Bearer realm=\"sluice\"\r\n");
  }
  if (config.has_basic_auth()) {
    f->basic_ = true;
    const std::string& realm =
        config.basic_auth().realm().empty() ? "sluice" : config.basic_auth().realm();
    absl::StrAppend(&f->challenges_, "www-authenticate: Basic realm=\"", realm,
                    "\", charset=\"UTF-8\"\r\n");
    if (!config.basic_auth().forward_credential()) f->strip_.push_back("authorization");
  }
  if (config.has_api_key()) {
    f->api_key_ = true;
    for (const std::string& h : config.api_key().headers()) {
      f->key_headers_.push_back(absl::AsciiStrToLower(h));
    }
    f->key_query_.assign(config.api_key().query_parameters().begin(),
                         config.api_key().query_parameters().end());
    if (f->key_headers_.empty() && f->key_query_.empty()) f->key_headers_.push_back("x-api-key");
    if (!config.api_key().forward_credential()) {
      for (const std::string& h : f->key_headers_) f->strip_.push_back(h);
    }
    absl::StrAppend(&f->challenges_, "www-authenticate: ApiKey realm=\"sluice\"\r\n");
  }
  std::sort(f->strip_.begin(), f->strip_.end());
  f->strip_.erase(std::unique(f->strip_.begin(), f->strip_.end()), f->strip_.end());
  return f;
}

FilterStatus AuthnFilter::deny(AccessContext& ctx, AuthnStats::Method method,
                               AuthnStats::Reason reason, LocalReply* reply) const {
  ctx.cells->add(stats_.failure[method][reason]);
  reply->status = 401;
  reply->body = kUnauthorized;
  reply->headers = challenges_;
  return FilterStatus::kReply;
}

FilterStatus AuthnFilter::admit(AccessContext& ctx, AuthnStats::Method method,
                                const Consumer* consumer) const {
  ctx.cells->add(stats_.success[method]);
  ctx.authenticated = true;
  ctx.consumer = consumer;
  if (consumer != nullptr) ctx.added.add(consumer_header_, consumer->name);
  return FilterStatus::kContinue;
}

FilterStatus AuthnFilter::onRequest(AccessContext& ctx, LocalReply* reply) const {
  bool found = false;
  FilterStatus status = FilterStatus::kContinue;
  if (hmac_) {
    status = hmac(ctx, reply, &found);
    if (found) return status;
  }
  if (!providers_.empty()) {
    status = jwt(ctx, reply, &found);
    if (found) return status;
  }
  if (basic_) {
    status = basic(ctx, reply, &found);
    if (found) return status;
  }
  if (api_key_) {
    status = apiKey(ctx, reply, &found);
    if (found) return status;
  }
  if (allow_anonymous_) {
    ctx.cells->add(stats_.anonymous);
    return FilterStatus::kContinue;
  }
  ctx.cells->add(stats_.missing);
  reply->status = 401;
  reply->body = kUnauthorized;
  reply->headers = challenges_;
  return FilterStatus::kReply;
}

FilterStatus AuthnFilter::apiKey(AccessContext& ctx, LocalReply* reply, bool* found) const {
  std::string_view key;
  for (const std::string& h : key_headers_) {
    if (findHeader(*ctx.head, h, &key)) {
      *found = true;
      break;
    }
  }
  for (size_t i = 0; !*found && i < key_query_.size(); ++i) {
    if (ctx.head->has_query && findQuery(ctx.head->query, key_query_[i], &key)) *found = true;
  }
  if (!*found) return FilterStatus::kContinue;
  std::optional<uint32_t> consumer = ctx.consumers->apiKeys().lookup(key);
  if (!consumer.has_value()) return deny(ctx, AuthnStats::kApiKey, AuthnStats::kUnknown, reply);
  return admit(ctx, AuthnStats::kApiKey, &ctx.consumers->at(*consumer));
}

FilterStatus AuthnFilter::basic(AccessContext& ctx, LocalReply* reply, bool* found) const {
  std::string_view value, rest;
  if (!findHeader(*ctx.head, "authorization", &value) || !hasScheme(value, "basic", &rest)) {
    return FilterStatus::kContinue;
  }
  *found = true;
  // Basic credentials are short; thread-local strings keep their capacity across requests.
  thread_local std::string user, password;
  if (!basic_auth::parseBasic(value, &user, &password)) {
    return deny(ctx, AuthnStats::kBasic, AuthnStats::kMalformed, reply);
  }
  std::optional<uint32_t> consumer =
      ctx.consumers->users().check(user, password, basicCache(), ctx.now);
  std::fill(password.begin(), password.end(), '\0');
  if (!consumer.has_value()) {
    return deny(ctx, AuthnStats::kBasic, AuthnStats::kBadCredential, reply);
  }
  return admit(ctx, AuthnStats::kBasic, &ctx.consumers->at(*consumer));
}

FilterStatus AuthnFilter::jwt(AccessContext& ctx, LocalReply* reply, bool* found) const {
  // A token another provider may have issued (wrong issuer here) is tried with the next one;
  // when none accepts it, it is refused with this reason.
  std::optional<AuthnStats::Reason> refused;
  for (const auto& provider : providers_) {
    std::string_view token;
    for (const std::string& h : provider->from_headers) {
      std::string_view value;
      if (!findHeader(*ctx.head, h, &value)) continue;
      if (h == "authorization") {
        if (!hasScheme(value, "bearer", &token)) continue;
      } else {
        token = value;
      }
      break;
    }
    if (token.empty()) continue;
    *found = true;
    const jwt_authn::KeySet* keys = provider->local_keys.get();
    if (keys == nullptr && ctx.jwks != nullptr) keys = ctx.jwks->find(provider->remote_key);
    if (keys == nullptr) return deny(ctx, AuthnStats::kJwt, AuthnStats::kKeysUnavailable, reply);
    // Cached per provider and key set: providers sharing keys check other issuers and
    // audiences, and a recompiled provider (new issuer) is a new object.
    const uint64_t cache_id =
        keys->generation() ^ (reinterpret_cast<uintptr_t>(provider.get()) * 0x9E3779B97F4A7C15ULL);
    std::shared_ptr<const jwt_authn::Claims> claims = tokenCache().lookup(token, cache_id, ctx.now);
    if (claims == nullptr) {
      jwt_authn::Failure failure = jwt_authn::Failure::kNone;
      absl::StatusOr<jwt_authn::Jwt> parsed = jwt_authn::parseJwt(token, &failure);
      if (!parsed.ok()) return deny(ctx, AuthnStats::kJwt, reasonOf(failure), reply);
      failure = jwt_authn::verify(*parsed, *keys, provider->verifier, ctx.now);
      if (failure != jwt_authn::Failure::kNone) {
        // Another provider may have issued it: one with another issuer is tried next.
        if (failure == jwt_authn::Failure::kWrongIssuer) {
          refused = AuthnStats::kWrongIssuer;
          continue;
        }
        return deny(ctx, AuthnStats::kJwt, reasonOf(failure), reply);
      }
      claims = std::make_shared<const jwt_authn::Claims>(std::move(parsed->claims));
      tokenCache().insert(token, cache_id, claims, ctx.now);
    }
    const Consumer* consumer = nullptr;
    if (const std::vector<std::string>* sub = claims->values(provider->consumer_claim);
        sub != nullptr && sub->size() == 1) {
      consumer = ctx.consumers->bySubject(sub->front());
    }
    ctx.claims = claims;
    // Joined values live in the context's scratch, which must not move once pointed into: room
    // for all of them is made first.
    size_t room = 0;
    for (const auto& ch : provider->claim_to_headers) {
      if (const std::vector<std::string>* values = claims->values(ch.claim)) {
        for (const std::string& v : *values) room += v.size() + 1;
      }
    }
    ctx.scratch.reserve(ctx.scratch.size() + room);
    for (const auto& ch : provider->claim_to_headers) {
      const std::vector<std::string>* values = claims->values(ch.claim);
      if (values == nullptr || values->empty()) continue;
      if (values->size() == 1) {
        ctx.added.add(ch.header, values->front());
        continue;
      }
      size_t start = ctx.scratch.size();
      for (const std::string& v : *values) {
        if (ctx.scratch.size() > start) ctx.scratch.push_back(',');
        ctx.scratch.append(v);
      }
      ctx.added.add(ch.header, std::string_view(ctx.scratch).substr(start));
    }
    return admit(ctx, AuthnStats::kJwt, consumer);
  }
  if (refused.has_value()) return deny(ctx, AuthnStats::kJwt, *refused, reply);
  return FilterStatus::kContinue;
}

FilterStatus AuthnFilter::hmac(AccessContext& ctx, LocalReply* reply, bool* found) const {
  std::string_view authorization, rest;
  if (!findHeader(*ctx.head, "authorization", &authorization) ||
      !hasScheme(authorization, "signature", &rest)) {
    return FilterStatus::kContinue;
  }
  *found = true;
  const bool has_body = ctx.head->chunked || ctx.head->content_length.value_or(0) > 0;
  if (ctx.body != nullptr) {
    // The second pass: the signature verified and the body is in; it must match its Digest.
    std::string_view digest;
    std::optional<hmac_auth::DigestVerifier> verifier;
    if (findHeader(*ctx.head, "digest", &digest))
      verifier = hmac_auth::DigestVerifier::create(digest);
    if (!verifier.has_value()) return deny(ctx, AuthnStats::kHmac, AuthnStats::kMalformed, reply);
    size_t left = ctx.body_length;
    evbuffer_ptr pos;
    evbuffer_ptr_set(ctx.body, &pos, ctx.body_offset, EVBUFFER_PTR_SET);
    evbuffer_iovec vec[16];
    while (left > 0) {
      int n = evbuffer_peek(ctx.body, left, &pos, vec, 16);
      if (n <= 0) break;
      for (int i = 0; i < n && i < 16 && left > 0; ++i) {
        size_t take = std::min(left, vec[i].iov_len);
        verifier->update(std::string_view(static_cast<const char*>(vec[i].iov_base), take));
        left -= take;
        evbuffer_ptr_set(ctx.body, &pos, take, EVBUFFER_PTR_ADD);
      }
    }
    if (left != 0 || !verifier->matches()) {
      ctx.consumer = nullptr;
      ctx.authenticated = false;
      return deny(ctx, AuthnStats::kHmac, AuthnStats::kDigestMismatch, reply);
    }
    return admit(ctx, AuthnStats::kHmac, ctx.consumer);
  }
  const http::RequestHead& head = *ctx.head;
  hmac_auth::SignedRequest request{
      .method = head.method,
      .path_with_query = head.target,
      .header = [&](std::string_view name) -> std::optional<std::string_view> {
        std::string_view value;
        if (findHeader(head, name, &value)) return value;
        return std::nullopt;
      },
      .has_body = has_body};
  hmac_auth::Verdict verdict = hmac_auth::authenticate(
      authorization, request, ctx.consumers->hmacKeys(), nonceCache(), ctx.now, hmac_skew_);
  switch (verdict.outcome) {
    case hmac_auth::Outcome::kOk:
      break;
    case hmac_auth::Outcome::kMalformed:
      return deny(ctx, AuthnStats::kHmac, AuthnStats::kMalformed, reply);
    case hmac_auth::Outcome::kUnknownKey:
      return deny(ctx, AuthnStats::kHmac, AuthnStats::kUnknown, reply);
    case hmac_auth::Outcome::kStale:
      return deny(ctx, AuthnStats::kHmac, AuthnStats::kStale, reply);
    case hmac_auth::Outcome::kBadSignature:
      return deny(ctx, AuthnStats::kHmac, AuthnStats::kBadCredential, reply);
    case hmac_auth::Outcome::kReplay:
      return deny(ctx, AuthnStats::kHmac, AuthnStats::kReplay, reply);
    case hmac_auth::Outcome::kNonceCacheFull:
      return deny(ctx, AuthnStats::kHmac, AuthnStats::kNonceTableFull, reply);
  }
  const Consumer* consumer = &ctx.consumers->at(verdict.consumer);
  if (has_body) {
    // Verified but for the body: the chain runs this filter again once the body is buffered.
    ctx.consumer = consumer;
    return FilterStatus::kNeedBody;
  }
  return admit(ctx, AuthnStats::kHmac, consumer);
}

}  // namespace sluice::authn
