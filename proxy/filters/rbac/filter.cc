#include "proxy/filters/rbac/filter.h"

#include "absl/strings/str_cat.h"
#include "proxy/filters/authn/consumers.h"
#include "proxy/filters/jwt_authn/jwt.h"

namespace sluice::rbac {
namespace {

// A verified JWT's claims as the policy reads them.
class JwtClaims : public ClaimSource {
 public:
  explicit JwtClaims(const jwt_authn::Claims& claims) : claims_(claims) {}
  const std::vector<std::string>* values(std::string_view name) const override {
    return claims_.values(name);
  }

 private:
  const jwt_authn::Claims& claims_;
};

absl::StatusOr<StringMatcher> matcher(const config::v1::StringMatcher& m) {
  switch (m.match_case()) {
    case config::v1::StringMatcher::kExact:
      return StringMatcher::create(StringMatcher::Kind::kExact, m.exact());
    case config::v1::StringMatcher::kPrefix:
      return StringMatcher::create(StringMatcher::Kind::kPrefix, m.prefix());
    case config::v1::StringMatcher::kSuffix:
      return StringMatcher::create(StringMatcher::Kind::kSuffix, m.suffix());
    case config::v1::StringMatcher::kContains:
      return StringMatcher::create(StringMatcher::Kind::kContains, m.contains());
    case config::v1::StringMatcher::kRegex:
      return StringMatcher::create(StringMatcher::Kind::kRegex, m.regex());
    case config::v1::StringMatcher::MATCH_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "a string matcher needs exact, prefix, suffix, contains or "
      "regex");
}

}  // namespace

absl::StatusOr<Policy> compilePolicy(const config::v1::Rbac& config) {
  Policy policy;
  policy.default_action =
      config.default_action() == config::v1::Rbac::ALLOW ? Action::kAllow : Action::kDeny;
  policy.shadow = config.shadow();
  for (int i = 0; i < config.rules_size(); ++i) {
    const config::v1::RbacRule& rc = config.rules(i);
    auto fail = [&](const absl::Status& s) {
      return absl::InvalidArgumentError(absl::StrCat("rules[", i, "]: ", s.message()));
    };
    Rule r;
    r.name = rc.name().empty() ? absl::StrCat("rules[", i, "]") : rc.name();
    r.action = rc.action() == config::v1::Rbac::ALLOW ? Action::kAllow : Action::kDeny;
    r.consumers.assign(rc.consumers().begin(), rc.consumers().end());
    r.groups.assign(rc.groups().begin(), rc.groups().end());
    for (const config::v1::ClaimMatcher& cm : rc.claims()) {
      ClaimCondition c;
      c.name = cm.name();
      if (cm.has_contains()) {
        auto m = StringMatcher::create(StringMatcher::Kind::kContains, cm.contains());
        if (!m.ok()) return fail(m.status());
        c.matcher = *std::move(m);
      } else if (cm.has_value()) {
        auto m = matcher(cm.value());
        if (!m.ok()) return fail(m.status());
        c.matcher = *std::move(m);
      } else if (cm.has_present() && !cm.present()) {
        return fail(absl::InvalidArgumentError("a claim condition cannot ask for an absent claim"));
      }
      r.claims.push_back(std::move(c));
    }
    for (const auto& cert : rc.client_certificates()) {
      auto m = matcher(cert);
      if (!m.ok()) return fail(m.status());
      r.cert_names.push_back(*std::move(m));
    }
    r.methods.assign(rc.methods().begin(), rc.methods().end());
    for (const auto& p : rc.paths()) {
      auto m = matcher(p);
      if (!m.ok()) return fail(m.status());
      r.paths.push_back(*std::move(m));
    }
    if (rc.source_ips_size() > 0) {
      auto set = ip_filter::CidrSet::parse({rc.source_ips().begin(), rc.source_ips().end()});
      if (!set.ok()) return fail(set.status());
      r.source_ips = *std::move(set);
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
  std::optional<JwtClaims> claims;
  if (ctx.claims != nullptr) claims.emplace(*ctx.claims);
  Subject subject{
      .consumer = ctx.consumer != nullptr ? &ctx.consumer->name : nullptr,
      .groups = ctx.consumer != nullptr ? &ctx.consumer->groups : nullptr,
      .claims = claims.has_value() ? &*claims : nullptr,
      .cert_subject = ctx.cert_verified ? ctx.cert_subject : std::string_view(),
      .cert_sans = ctx.cert_verified ? ctx.cert_sans : nullptr,
      .method = ctx.head->method,
      .path = ctx.head->path,
      .source = &ctx.client,
      .authenticated = ctx.authenticated,
  };
  Decision decision = evaluate(policy_, subject);
  if (decision.action == Action::kAllow) {
    ctx.cells->add(allowed_);
    return http::FilterStatus::kContinue;
  }
  if (decision.shadow) {
    ctx.cells->add(shadow_denied_);
    return http::FilterStatus::kContinue;
  }
  ctx.cells->add(denied_);
  reply->status = 403;
  reply->body = "forbidden\n";
  return http::FilterStatus::kReply;
}

}  // namespace sluice::rbac
