#pragma once

// Role-based access control: an ordered list of rules, the first rule whose conditions all hold
// decides, and a default action when none does. Policies are built once per config generation
// and read by every worker; evaluation neither allocates nor locks (RE2 keeps its own DFA cache).
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/filters/ip_filter/cidr.h"

namespace re2 {
class RE2;
}

namespace sluice::rbac {

enum class Action { kAllow, kDeny };

class StringMatcher {
 public:
  enum class Kind { kExact, kPrefix, kSuffix, kContains, kRegex };

  // A regex is RE2 syntax and must match the whole text (as Envoy's safe_regex); the error says
  // why one does not compile.
  static absl::StatusOr<StringMatcher> create(Kind kind, std::string value);

  bool matches(std::string_view text) const;

  Kind kind() const { return kind_; }
  const std::string& value() const { return value_; }

 private:
  StringMatcher(Kind kind, std::string value, std::shared_ptr<const re2::RE2> regex);

  Kind kind_;
  std::string value_;
  std::shared_ptr<const re2::RE2> regex_;  // kRegex only; shared so that rules copy cheaply
};

// The authenticated principal's claims (a JWT's, an introspected token's), implemented by the
// authentication filter that produced them.
class ClaimSource {
 public:
  virtual ~ClaimSource() = default;
  // An array claim's elements, a string claim as its one value, a number or boolean as its JSON
  // text; nullptr when the claim is absent.
  virtual const std::vector<std::string>* values(std::string_view name) const = 0;
};

struct ClaimCondition {
  std::string name;
  // Without a matcher the claim need only be present. With one, some value must match; kContains
  // asks for a word, so {"scope", contains "orders:write"} holds for the scope
  // "openid orders:write" and for the array ["orders:write"], not for "orders:writer".
  std::optional<StringMatcher> matcher;
};

// Every condition that is not empty must hold; a rule without conditions matches every request.
struct Rule {
  std::string name;
  Action action = Action::kDeny;
  std::vector<std::string> consumers;  // any of, exact
  std::vector<std::string> groups;     // any of the consumer's groups, exact
  std::vector<ClaimCondition> claims;  // all of
  // Any of, matching the verified client certificate's subject (RFC 2253) or one of its SANs.
  std::vector<StringMatcher> cert_names;
  std::vector<std::string> methods;   // any of, exact ("GET")
  std::vector<StringMatcher> paths;   // any of, the normalized path without the query
  ip_filter::CidrSet source_ips;      // the client address
  std::optional<bool> authenticated;  // whether some authentication filter succeeded
};

struct Policy {
  std::vector<Rule> rules;
  Action default_action = Action::kDeny;
  // Decide and report, but let every request through: to try a policy on live traffic.
  bool shadow = false;
};

// What a request shows about its sender. Pointers may be null and views empty when there is no
// such thing (an anonymous request, no client certificate); a condition on it then fails.
struct Subject {
  const std::string* consumer = nullptr;
  const std::vector<std::string>* groups = nullptr;
  const ClaimSource* claims = nullptr;
  std::string_view cert_subject;
  const std::vector<std::string>* cert_sans = nullptr;
  std::string_view method;
  std::string_view path;
  const ip_filter::IpAddress* source = nullptr;
  bool authenticated = false;
};

struct Decision {
  Action action = Action::kDeny;
  int rule = -1;  // index of the deciding rule, -1 for the default action
  bool shadow = false;

  // Whether the request goes on: always in shadow mode, where `action` is only reported.
  bool proceeds() const { return shadow || action == Action::kAllow; }
};

Decision evaluate(const Policy& policy, const Subject& subject);

}  // namespace sluice::rbac
