#pragma once

// Authorization (AccessPolicy.rbac), after authentication: ordered allow/deny rules over who
// the request comes from (consumer, groups, JWT claims, client certificate, address) and what
// it asks for (method, normalized path). The first rule whose conditions all hold decides;
// none: the default action. A denied request is answered 403; in shadow mode it is only
// counted.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/filters/ip_filter/cidr.h"
#include "proxy/http/filter.h"
#include "proxy/stats/store.h"
#include "re2/re2.h"
#include "sluice/config/v1/security.pb.h"

namespace sluice::rbac {

class StringMatcher {
 public:
  static absl::StatusOr<StringMatcher> compile(const config::v1::StringMatcher& config);
  bool matches(std::string_view value) const;

 private:
  enum class Kind { kExact, kPrefix, kSuffix, kContains, kRegex };
  Kind kind_ = Kind::kExact;
  std::string value_;
  std::shared_ptr<const RE2> regex_;
};

struct ClaimCondition {
  std::string name;
  enum class Kind { kContains, kValue, kPresent } kind = Kind::kPresent;
  std::string contains;
  std::optional<StringMatcher> value;
  bool present = true;
};

struct Rule {
  std::string name;
  bool allow = true;
  std::vector<std::string> consumers;
  std::vector<std::string> groups;
  std::vector<ClaimCondition> claims;
  std::vector<StringMatcher> certificates;
  std::vector<std::string> methods;
  std::vector<StringMatcher> paths;
  ip_filter::CidrSet sources;
  bool has_sources = false;
  std::optional<bool> authenticated;

  bool matches(const http::AccessContext& ctx) const;
};

struct Policy {
  std::vector<Rule> rules;
  bool default_allow = true;
  bool shadow = false;

  // Whether the request is allowed, and the index of the deciding rule (-1: the default).
  bool allows(const http::AccessContext& ctx, int* rule) const;
};

absl::StatusOr<Policy> compilePolicy(const config::v1::Rbac& config);

class RouteFilter : public http::AccessFilter {
 public:
  static absl::StatusOr<std::unique_ptr<RouteFilter>> compile(const config::v1::Rbac& config,
                                                              stats::Store* store);
  http::FilterStatus onRequest(http::AccessContext& ctx, http::LocalReply* reply) const override;

 private:
  Policy policy_;
  stats::CounterId allowed_, denied_, shadow_denied_;
};

}  // namespace sluice::rbac
