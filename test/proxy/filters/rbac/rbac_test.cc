// RBAC: first match wins, the default action, every condition kind (claims as scope words and
// arrays, regexes, source addresses), conditions combined, the shadow flag, and evaluation that
// does not allocate.
#include "proxy/filters/rbac/rbac.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Every heap allocation in this test binary, so that a test can show evaluate() makes none.
std::atomic<int64_t> g_allocations{0};

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace sluice::rbac {
namespace {

using ::testing::HasSubstr;
using Kind = StringMatcher::Kind;

StringMatcher matcher(Kind kind, std::string value) {
  absl::StatusOr<StringMatcher> built = StringMatcher::create(kind, value);
  EXPECT_TRUE(built.ok()) << built.status();
  return *std::move(built);
}

ip_filter::CidrSet cidrs(const std::vector<std::string>& entries) {
  absl::StatusOr<ip_filter::CidrSet> set = ip_filter::CidrSet::parse(entries);
  EXPECT_TRUE(set.ok()) << set.status();
  return *std::move(set);
}

using ClaimMap = std::map<std::string, std::vector<std::string>, std::less<>>;

class FakeClaims : public ClaimSource {
 public:
  explicit FakeClaims(ClaimMap claims) : claims_(std::move(claims)) {}
  const std::vector<std::string>* values(std::string_view name) const override {
    auto it = claims_.find(name);
    return it == claims_.end() ? nullptr : &it->second;
  }

 private:
  ClaimMap claims_;
};

Rule allow(std::string name) {
  Rule rule;
  rule.name = std::move(name);
  rule.action = Action::kAllow;
  return rule;
}

Rule deny(std::string name) {
  Rule rule;
  rule.name = std::move(name);
  rule.action = Action::kDeny;
  return rule;
}

// Whether `rule`, alone in a default-deny policy, matches `subject`.
bool ruleMatches(Rule rule, const Subject& subject) {
  rule.action = Action::kAllow;
  Policy policy;
  policy.rules.push_back(std::move(rule));
  const Decision decision = evaluate(policy, subject);
  EXPECT_EQ(decision.action == Action::kAllow, decision.rule == 0);
  return decision.rule == 0;
}

TEST(EvaluateTest, FirstMatchWins) {
  Policy policy;
  policy.rules.push_back(deny("block-bob"));
  policy.rules.back().consumers = {"bob"};
  policy.rules.push_back(allow("authenticated"));
  policy.rules.back().authenticated = true;
  policy.rules.push_back(deny("never-reached"));
  policy.rules.back().authenticated = true;

  const std::string bob = "bob", alice = "alice";
  Decision decision = evaluate(policy, {.consumer = &bob, .authenticated = true});
  EXPECT_EQ(decision.action, Action::kDeny);
  EXPECT_EQ(decision.rule, 0);
  decision = evaluate(policy, {.consumer = &alice, .authenticated = true});
  EXPECT_EQ(decision.action, Action::kAllow);
  EXPECT_EQ(decision.rule, 1);
}

TEST(EvaluateTest, DefaultActionWhenNothingMatches) {
  Policy policy;
  policy.rules.push_back(allow("admins"));
  policy.rules.back().groups = {"admin"};
  const std::vector<std::string> groups = {"dev"};
  for (Action action : {Action::kAllow, Action::kDeny}) {
    policy.default_action = action;
    const Decision decision = evaluate(policy, {.groups = &groups});
    EXPECT_EQ(decision.action, action);
    EXPECT_EQ(decision.rule, -1);
  }
  EXPECT_EQ(evaluate(Policy(), {}).action, Action::kDeny);
}

TEST(EvaluateTest, RuleWithoutConditionsMatchesEverything) {
  EXPECT_TRUE(ruleMatches(allow("any"), {}));
  const std::string consumer = "carol";
  EXPECT_TRUE(ruleMatches(allow("any"), {.consumer = &consumer, .method = "DELETE"}));
}

TEST(ConditionTest, Consumers) {
  Rule rule = allow("r");
  rule.consumers = {"alice", "bob"};
  const std::string alice = "alice", carol = "carol", upper = "Alice";
  EXPECT_TRUE(ruleMatches(rule, {.consumer = &alice}));
  EXPECT_FALSE(ruleMatches(rule, {.consumer = &carol}));
  EXPECT_FALSE(ruleMatches(rule, {.consumer = &upper}));
  EXPECT_FALSE(ruleMatches(rule, {}));  // anonymous
}

TEST(ConditionTest, Groups) {
  Rule rule = allow("r");
  rule.groups = {"admin", "ops"};
  const std::vector<std::string> ops = {"dev", "ops"}, dev = {"dev"}, none;
  EXPECT_TRUE(ruleMatches(rule, {.groups = &ops}));
  EXPECT_FALSE(ruleMatches(rule, {.groups = &dev}));
  EXPECT_FALSE(ruleMatches(rule, {.groups = &none}));
  EXPECT_FALSE(ruleMatches(rule, {}));
}

TEST(ConditionTest, ClaimPresent) {
  Rule rule = allow("r");
  rule.claims.push_back({"email_verified", std::nullopt});
  const FakeClaims with(ClaimMap{{"email_verified", {"true"}}}), without(ClaimMap{{"sub", {"u1"}}});
  EXPECT_TRUE(ruleMatches(rule, {.claims = &with}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &without}));
  EXPECT_FALSE(ruleMatches(rule, {}));
}

TEST(ConditionTest, ClaimScopeWords) {
  Rule rule = allow("r");
  rule.claims.push_back({"scope", matcher(Kind::kContains, "orders:write")});
  const FakeClaims middle(ClaimMap{{"scope", {"openid orders:write profile"}}}),
      first(ClaimMap{{"scope", {"orders:write openid"}}}),
      only(ClaimMap{{"scope", {"orders:write"}}}),
      array(ClaimMap{{"scope", {"openid", "orders:write"}}}),
      longer(ClaimMap{{"scope", {"openid orders:writer"}}}),
      shorter(ClaimMap{{"scope", {"orders:writ"}}}), other(ClaimMap{{"scp", {"orders:write"}}});
  EXPECT_TRUE(ruleMatches(rule, {.claims = &middle}));
  EXPECT_TRUE(ruleMatches(rule, {.claims = &first}));
  EXPECT_TRUE(ruleMatches(rule, {.claims = &only}));
  EXPECT_TRUE(ruleMatches(rule, {.claims = &array}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &longer}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &shorter}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &other}));
}

TEST(ConditionTest, ClaimArraysMatchAnyElement) {
  Rule rule = allow("r");
  rule.claims.push_back({"roles", matcher(Kind::kExact, "auditor")});
  const FakeClaims match(ClaimMap{{"roles", {"viewer", "auditor"}}}),
      no_match(ClaimMap{{"roles", {"viewer"}}}), empty(ClaimMap{{"roles", {}}}),
      joined(ClaimMap{{"roles", {"viewer auditor"}}});
  EXPECT_TRUE(ruleMatches(rule, {.claims = &match}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &no_match}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &empty}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &joined}));  // exact is not word-wise
}

TEST(ConditionTest, AllClaimsMustHold) {
  Rule rule = allow("r");
  rule.claims.push_back({"iss", matcher(Kind::kExact, "https://idp.example")});
  rule.claims.push_back({"sub", matcher(Kind::kRegex, "svc-[a-z]+")});
  const FakeClaims both(ClaimMap{{"iss", {"https://idp.example"}}, {"sub", {"svc-billing"}}}),
      wrong_sub(ClaimMap{{"iss", {"https://idp.example"}}, {"sub", {"user-1"}}}),
      no_sub(ClaimMap{{"iss", {"https://idp.example"}}});
  EXPECT_TRUE(ruleMatches(rule, {.claims = &both}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &wrong_sub}));
  EXPECT_FALSE(ruleMatches(rule, {.claims = &no_sub}));
}

TEST(ConditionTest, CertSubject) {
  Rule rule = allow("r");
  rule.cert_names = {matcher(Kind::kSuffix, ",O=Example Corp")};
  EXPECT_TRUE(ruleMatches(rule, {.cert_subject = "CN=payments,O=Example Corp"}));
  EXPECT_FALSE(ruleMatches(rule, {.cert_subject = "CN=payments,O=Example Corp Ltd"}));
  EXPECT_FALSE(ruleMatches(rule, {}));
  // No certificate is not a certificate with an empty subject.
  rule.cert_names = {matcher(Kind::kPrefix, "")};
  EXPECT_FALSE(ruleMatches(rule, {}));
  // A SAN does not stand in for a subject the matcher does not accept, and vice versa.
  const std::vector<std::string> sans = {"payments.internal"};
  rule.cert_names = {matcher(Kind::kSuffix, ",O=Example Corp")};
  EXPECT_FALSE(ruleMatches(rule, {.cert_subject = "CN=x,O=Other", .cert_sans = &sans}));
  EXPECT_TRUE(ruleMatches(rule, {.cert_subject = "CN=x,O=Example Corp", .cert_sans = &sans}));
}

TEST(ConditionTest, CertSans) {
  Rule rule = allow("r");
  rule.cert_names = {matcher(Kind::kRegex, "spiffe://prod\\.example/ns/[^/]+/sa/billing"),
                     matcher(Kind::kExact, "billing.internal")};
  const std::vector<std::string> spiffe = {"dns:other", "spiffe://prod.example/ns/pay/sa/billing"},
                                 dns = {"billing.internal"},
                                 staging = {"spiffe://staging.example/ns/pay/sa/billing"}, none;
  EXPECT_TRUE(ruleMatches(rule, {.cert_sans = &spiffe}));
  EXPECT_TRUE(ruleMatches(rule, {.cert_sans = &dns}));
  EXPECT_FALSE(ruleMatches(rule, {.cert_sans = &staging}));
  EXPECT_FALSE(ruleMatches(rule, {.cert_sans = &none}));
  EXPECT_FALSE(ruleMatches(rule, {}));
}

TEST(ConditionTest, Methods) {
  Rule rule = allow("r");
  rule.methods = {"GET", "HEAD"};
  EXPECT_TRUE(ruleMatches(rule, {.method = "GET"}));
  EXPECT_TRUE(ruleMatches(rule, {.method = "HEAD"}));
  EXPECT_FALSE(ruleMatches(rule, {.method = "get"}));
  EXPECT_FALSE(ruleMatches(rule, {.method = "POST"}));
}

TEST(ConditionTest, Paths) {
  Rule rule = allow("r");
  rule.paths = {matcher(Kind::kPrefix, "/admin/"), matcher(Kind::kExact, "/health"),
                matcher(Kind::kRegex, "/v[0-9]+/orders/[0-9]+")};
  EXPECT_TRUE(ruleMatches(rule, {.path = "/admin/users"}));
  EXPECT_TRUE(ruleMatches(rule, {.path = "/health"}));
  EXPECT_TRUE(ruleMatches(rule, {.path = "/v2/orders/17"}));
  EXPECT_FALSE(ruleMatches(rule, {.path = "/admin"}));
  EXPECT_FALSE(ruleMatches(rule, {.path = "/healthz"}));
  EXPECT_FALSE(ruleMatches(rule, {.path = "/v2/orders/17/items"}));  // regexes match whole paths
}

TEST(ConditionTest, SourceAddresses) {
  Rule rule = allow("r");
  rule.source_ips = cidrs({"10.0.0.0/8", "2001:db8::/32"});
  const auto address = [](std::string_view text) { return *ip_filter::IpAddress::parse(text); };
  const ip_filter::IpAddress inside = address("10.1.2.3"), mapped = address("::ffff:10.9.9.9"),
                             v6 = address("2001:db8::5"), outside = address("192.0.2.1");
  EXPECT_TRUE(ruleMatches(rule, {.source = &inside}));
  EXPECT_TRUE(ruleMatches(rule, {.source = &mapped}));
  EXPECT_TRUE(ruleMatches(rule, {.source = &v6}));
  EXPECT_FALSE(ruleMatches(rule, {.source = &outside}));
  EXPECT_FALSE(ruleMatches(rule, {}));
}

TEST(ConditionTest, Authenticated) {
  Rule rule = allow("r");
  rule.authenticated = true;
  EXPECT_TRUE(ruleMatches(rule, {.authenticated = true}));
  EXPECT_FALSE(ruleMatches(rule, {.authenticated = false}));
  rule.authenticated = false;
  EXPECT_TRUE(ruleMatches(rule, {.authenticated = false}));
  EXPECT_FALSE(ruleMatches(rule, {.authenticated = true}));
}

TEST(ConditionTest, EveryPresentConditionMustHold) {
  Rule rule = allow("r");
  rule.methods = {"DELETE"};
  rule.paths = {matcher(Kind::kPrefix, "/admin/")};
  rule.groups = {"admin"};
  const std::vector<std::string> admin = {"admin"}, dev = {"dev"};
  EXPECT_TRUE(ruleMatches(rule, {.groups = &admin, .method = "DELETE", .path = "/admin/x"}));
  EXPECT_FALSE(ruleMatches(rule, {.groups = &dev, .method = "DELETE", .path = "/admin/x"}));
  EXPECT_FALSE(ruleMatches(rule, {.groups = &admin, .method = "GET", .path = "/admin/x"}));
  EXPECT_FALSE(ruleMatches(rule, {.groups = &admin, .method = "DELETE", .path = "/public"}));
}

TEST(EvaluateTest, ShadowFlagIsCarriedThrough) {
  Policy policy;
  policy.rules.push_back(deny("everyone"));
  Decision decision = evaluate(policy, {});
  EXPECT_FALSE(decision.shadow);
  EXPECT_FALSE(decision.proceeds());
  policy.shadow = true;
  decision = evaluate(policy, {});
  EXPECT_EQ(decision.action, Action::kDeny);
  EXPECT_EQ(decision.rule, 0);
  EXPECT_TRUE(decision.shadow);
  EXPECT_TRUE(decision.proceeds());
  policy.rules.clear();
  decision = evaluate(policy, {});
  EXPECT_EQ(decision.rule, -1);
  EXPECT_TRUE(decision.shadow);
}

TEST(StringMatcherTest, Kinds) {
  EXPECT_TRUE(matcher(Kind::kExact, "abc").matches("abc"));
  EXPECT_FALSE(matcher(Kind::kExact, "abc").matches("abcd"));
  EXPECT_TRUE(matcher(Kind::kPrefix, "ab").matches("abc"));
  EXPECT_FALSE(matcher(Kind::kPrefix, "bc").matches("abc"));
  EXPECT_TRUE(matcher(Kind::kSuffix, "bc").matches("abc"));
  EXPECT_FALSE(matcher(Kind::kSuffix, "ab").matches("abc"));
  // Outside claims, contains is a substring.
  EXPECT_TRUE(matcher(Kind::kContains, "b").matches("abc"));
  EXPECT_FALSE(matcher(Kind::kContains, "d").matches("abc"));
  EXPECT_TRUE(matcher(Kind::kRegex, "a.c").matches("abc"));
  EXPECT_FALSE(matcher(Kind::kRegex, "a.c").matches("xabc"));
  EXPECT_FALSE(matcher(Kind::kRegex, "a.c").matches("abcx"));
}

TEST(StringMatcherTest, BadRegexSaysWhy) {
  const absl::StatusOr<StringMatcher> built = StringMatcher::create(Kind::kRegex, "(unclosed");
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(built.status().message(), HasSubstr("regex '(unclosed' does not compile: "));
  EXPECT_THAT(built.status().message(), HasSubstr("missing )"));
}

TEST(EvaluateTest, DoesNotAllocate) {
  const int64_t at_start = g_allocations.load();
  Policy policy;
  policy.rules.push_back(deny("internal-only"));
  policy.rules.back().paths = {matcher(Kind::kRegex, "/internal/.*")};
  policy.rules.back().source_ips = cidrs({"192.0.2.0/24"});
  policy.rules.push_back(allow("writers"));
  policy.rules.back().claims.push_back({"scope", matcher(Kind::kContains, "orders:write")});
  policy.rules.back().cert_names = {matcher(Kind::kSuffix, ".internal")};
  policy.rules.back().methods = {"POST"};
  ASSERT_GT(g_allocations.load(), at_start);  // the counter sees the policy's allocations

  const FakeClaims claims(ClaimMap{{"scope", {"openid orders:write"}}});
  const std::vector<std::string> sans = {"billing.internal"};
  const ip_filter::IpAddress source = *ip_filter::IpAddress::parse("198.51.100.7");
  const Subject subject = {.claims = &claims,
                           .cert_sans = &sans,
                           .method = "POST",
                           .path = "/internal/orders",
                           .source = &source,
                           .authenticated = true};
  evaluate(policy, subject);  // RE2 fills its DFA cache on first use
  const int64_t before = g_allocations.load();
  Decision decision;
  for (int i = 0; i < 100; ++i) decision = evaluate(policy, subject);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_EQ(decision.rule, 1);
}

}  // namespace
}  // namespace sluice::rbac
