#include "proxy/filters/rbac/filter.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/filters/authn/consumers.h"
#include "proxy/filters/jwt_authn/jwt.h"

namespace sluice::rbac {
namespace {

bool anyOf(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool claimHolds(const ClaimCondition& c, const jwt_authn::Claims* claims) {
  const std::vector<std::string>* values = claims != nullptr ? claims->values(c.name) : nullptr;
  switch (c.kind) {
    case ClaimCondition::Kind::kPresent:
      return (values != nullptr) == c.present;
    case ClaimCondition::Kind::kContains:
      return claims != nullptr && claims->contains(c.name, c.contains);
    case ClaimCondition::Kind::kValue:
      if (values == nullptr) return false;
      return std::any_of(values->begin(), values->end(),
                         [&](const std::string& v) { return c.value->matches(v); });
  }
  return false;
}

}  // namespace

absl::StatusOr<StringMatcher> StringMatcher::compile(const config::v1::StringMatcher& config) {
  StringMatcher m;
  switch (config.match_case()) {
    case config::v1::StringMatcher::kExact:
      m.kind_ = Kind::kExact;
      m.value_ = config.exact();
      break;
    case config::v1::StringMatcher::kPrefix:
      m.kind_ = Kind::kPrefix;
      m.value_ = config.prefix();
      break;
    case config::v1::StringMatcher::kSuffix:
      m.kind_ = Kind::kSuffix;
      m.value_ = config.suffix();
      break;
    case config::v1::StringMatcher::kContains:
      m.kind_ = Kind::kContains;
      m.value_ = config.contains();
      break;
    case config::v1::StringMatcher::kRegex: {
      RE2::Options options;
      options.set_log_errors(false);
      auto re = std::make_shared<const RE2>(config.regex(), options);
      if (!re->ok()) return absl::InvalidArgumentError(absl::StrCat("bad regex: ", re->error()));
      m.kind_ = Kind::kRegex;
      m.regex_ = std::move(re);
      break;
    }
    case config::v1::StringMatcher::MATCH_NOT_SET:
      return absl::InvalidArgumentError(
          "a string matcher needs exact, prefix, suffix, contains "
          "or regex");
  }
  return m;
}

bool StringMatcher::matches(std::string_view value) const {
  absl::string_view v(value.data(), value.size());
  switch (kind_) {
    case Kind::kExact:
      return v == value_;
    case Kind::kPrefix:
      return absl::StartsWith(v, value_);
    case Kind::kSuffix:
      return absl::EndsWith(v, value_);
    case Kind::kContains:
      return absl::StrContains(v, value_);
    case Kind::kRegex:
      return RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *regex_);
  }
  return false;
}

bool Rule::matches(const http::AccessContext& ctx) const {
  const authn::Consumer* consumer = ctx.consumer;
  if (!consumers.empty() && (consumer == nullptr || !anyOf(consumers, consumer->name))) {
    return false;
  }
  if (!groups.empty()) {
    if (consumer == nullptr) return false;
    if (std::none_of(groups.begin(), groups.end(),
                     [&](const std::string& g) { return anyOf(consumer->groups, g); })) {
      return false;
    }
  }
  for (const ClaimCondition& c : claims) {
    if (!claimHolds(c, ctx.claims.get())) return false;
  }
  if (!certificates.empty()) {
    if (!ctx.cert_verified) return false;
    bool any = std::any_of(certificates.begin(), certificates.end(), [&](const StringMatcher& m) {
      return m.matches(ctx.cert_subject) ||
             (ctx.cert_sans != nullptr &&
              std::any_of(ctx.cert_sans->begin(), ctx.cert_sans->end(),
                          [&](const std::string& san) { return m.matches(san); }));
    });
    if (!any) return false;
  }
  if (!methods.empty() && !anyOf(methods, ctx.head->method)) return false;
  if (!paths.empty() && std::none_of(paths.begin(), paths.end(), [&](const StringMatcher& m) {
        return m.matches(ctx.head->path);
      })) {
    return false;
  }
  if (has_sources && !sources.contains(ctx.client)) return false;
  if (authenticated.has_value() && *authenticated != ctx.authenticated) return false;
  return true;
}

bool Policy::allows(const http::AccessContext& ctx, int* rule) const {
  for (size_t i = 0; i < rules.size(); ++i) {
    if (rules[i].matches(ctx)) {
      *rule = static_cast<int>(i);
      return rules[i].allow;
    }
  }
  *rule = -1;
  return default_allow;
}

absl::StatusOr<Policy> compilePolicy(const config::v1::Rbac& config) {
  Policy policy;
  policy.default_allow = config.default_action() == config::v1::Rbac::ALLOW;
  policy.shadow = config.shadow();
  for (int i = 0; i < config.rules_size(); ++i) {
    const config::v1::RbacRule& rc = config.rules(i);
    auto fail = [&](const absl::Status& s) {
      return absl::InvalidArgumentError(absl::StrCat("rules[", i, "]: ", s.message()));
    };
    Rule r;
    r.name = rc.name().empty() ? absl::StrCat("rules[", i, "]") : rc.name();
    r.allow = rc.action() == config::v1::Rbac::ALLOW;
    r.consumers.assign(rc.consumers().begin(), rc.consumers().end());
    r.groups.assign(rc.groups().begin(), rc.groups().end());
    for (const config::v1::ClaimMatcher& cm : rc.claims()) {
      ClaimCondition c;
      c.name = cm.name();
      switch (cm.match_case()) {
        case config::v1::ClaimMatcher::kContains:
          c.kind = ClaimCondition::Kind::kContains;
          c.contains = cm.contains();
          break;
        case config::v1::ClaimMatcher::kValue: {
          auto m = StringMatcher::compile(cm.value());
          if (!m.ok()) return fail(m.status());
          c.kind = ClaimCondition::Kind::kValue;
          c.value = *std::move(m);
          break;
        }
        default:
          c.kind = ClaimCondition::Kind::kPresent;
          c.present = cm.present();
          break;
      }
      r.claims.push_back(std::move(c));
    }
    for (const auto& cert : rc.client_certificates()) {
      auto m = StringMatcher::compile(cert);
      if (!m.ok()) return fail(m.status());
      r.certificates.push_back(*std::move(m));
    }
    r.methods.assign(rc.methods().begin(), rc.methods().end());
    for (const auto& p : rc.paths()) {
      auto m = StringMatcher::compile(p);
      if (!m.ok()) return fail(m.status());
      r.paths.push_back(*std::move(m));
    }
    if (rc.source_ips_size() > 0) {
      auto set = ip_filter::CidrSet::parse({rc.source_ips().begin(), rc.source_ips().end()});
      if (!set.ok()) return fail(set.status());
      r.sources = *std::move(set);
      r.has_sources = true;
    }
    if (rc.has_authenticated()) r.authenticated = rc.authenticated();
    policy.rules.push_back(std::move(r));
  }
  return policy;
}

absl::StatusOr<std::unique_ptr<RouteFilter>> RouteFilter::compile(const config::v1::Rbac& config,
                                                                  stats::Store* store) {
  auto policy = compilePolicy(config);
  if (!policy.ok()) return policy.status();
  auto f = std::unique_ptr<RouteFilter>(new RouteFilter());
  f->policy_ = *std::move(policy);
  f->allowed_ = store->counter("sluice_rbac_allowed_total", "Requests authorization allowed.", {});
  f->denied_ =
      store->counter("sluice_rbac_denied_total", "Requests authorization answered 403.", {});
  f->shadow_denied_ = store->counter("sluice_rbac_shadow_denied_total",
                                     "Requests a shadow-mode policy would have denied.", {});
  return f;
}

http::FilterStatus RouteFilter::onRequest(http::AccessContext& ctx, http::LocalReply* reply) const {
  int rule = -1;
  if (policy_.allows(ctx, &rule)) {
    ctx.cells->add(allowed_);
    return http::FilterStatus::kContinue;
  }
  if (policy_.shadow) {
    ctx.cells->add(shadow_denied_);
    return http::FilterStatus::kContinue;
  }
  ctx.cells->add(denied_);
  reply->status = 403;
  reply->body = "forbidden\n";
  return http::FilterStatus::kReply;
}

}  // namespace sluice::rbac
