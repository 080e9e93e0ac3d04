#include "proxy/filters/rbac/rbac.h"

#include <re2/re2.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice::rbac {
namespace {

bool hasWord(std::string_view text, std::string_view word) {
  while (!text.empty()) {
    const size_t space = text.find(' ');
    if (text.substr(0, space) == word) return true;
    if (space == text.npos) return false;
    text.remove_prefix(space + 1);
  }
  return false;
}

bool claimValueMatches(const StringMatcher& matcher, std::string_view value) {
  if (matcher.kind() == StringMatcher::Kind::kContains) return hasWord(value, matcher.value());
  return matcher.matches(value);
}

bool claimHolds(const ClaimCondition& condition, const ClaimSource& claims) {
  const std::vector<std::string>* values = claims.values(condition.name);
  if (values == nullptr) return false;
  if (!condition.matcher) return true;
  for (const std::string& value : *values) {
    if (claimValueMatches(*condition.matcher, value)) return true;
  }
  return false;
}

bool anyEquals(const std::vector<std::string>& wanted, std::string_view actual) {
  for (const std::string& w : wanted) {
    if (w == actual) return true;
  }
  return false;
}

bool anyMatches(const std::vector<StringMatcher>& matchers, std::string_view text) {
  for (const StringMatcher& matcher : matchers) {
    if (matcher.matches(text)) return true;
  }
  return false;
}

// Whether some element of a list the subject may not have satisfies `predicate`.
template <class Predicate>
bool anyValue(const std::vector<std::string>* values, Predicate predicate) {
  if (values == nullptr) return false;
  for (const std::string& value : *values) {
    if (predicate(value)) return true;
  }
  return false;
}

bool matches(const Rule& rule, const Subject& subject) {
  if (rule.authenticated && *rule.authenticated != subject.authenticated) return false;
  if (!rule.methods.empty() && !anyEquals(rule.methods, subject.method)) return false;
  if (!rule.paths.empty() && !anyMatches(rule.paths, subject.path)) return false;
  if (!rule.source_ips.empty() &&
      (subject.source == nullptr || !rule.source_ips.contains(*subject.source))) {
    return false;
  }
  if (!rule.consumers.empty() &&
      (subject.consumer == nullptr || !anyEquals(rule.consumers, *subject.consumer))) {
    return false;
  }
  if (!rule.groups.empty() && !anyValue(subject.groups, [&](const std::string& group) {
        return anyEquals(rule.groups, group);
      })) {
    return false;
  }
  // No certificate is not a certificate with an empty subject.
  if (!rule.cert_names.empty() &&
      !(!subject.cert_subject.empty() && anyMatches(rule.cert_names, subject.cert_subject)) &&
      !anyValue(subject.cert_sans,
                [&](const std::string& san) { return anyMatches(rule.cert_names, san); })) {
    return false;
  }
  for (const ClaimCondition& claim : rule.claims) {
    if (subject.claims == nullptr || !claimHolds(claim, *subject.claims)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<StringMatcher> StringMatcher::create(Kind kind, std::string value) {
  std::shared_ptr<const re2::RE2> regex;
  if (kind == Kind::kRegex) {
    re2::RE2::Options options;
    options.set_log_errors(false);  // the error goes into the status instead
    auto compiled = std::make_shared<const re2::RE2>(value, options);
    if (!compiled->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("regex '", value, "' does not compile: ", compiled->error()));
    }
    regex = std::move(compiled);
  }
  return StringMatcher(kind, std::move(value), std::move(regex));
}

StringMatcher::StringMatcher(Kind kind, std::string value, std::shared_ptr<const re2::RE2> regex)
    : kind_(kind), value_(std::move(value)), regex_(std::move(regex)) {}

bool StringMatcher::matches(std::string_view text) const {
  switch (kind_) {
    case Kind::kExact:
      return text == value_;
    case Kind::kPrefix:
      return text.starts_with(value_);
    case Kind::kSuffix:
      return text.ends_with(value_);
    case Kind::kContains:
      return text.find(value_) != text.npos;
    case Kind::kRegex:
      return re2::RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *regex_);
  }
  return false;
}

Decision evaluate(const Policy& policy, const Subject& subject) {
  for (size_t i = 0; i < policy.rules.size(); ++i) {
    if (matches(policy.rules[i], subject)) {
      return {policy.rules[i].action, static_cast<int>(i), policy.shadow};
    }
  }
  return {policy.default_action, -1, policy.shadow};
}

}  // namespace sluice::rbac
