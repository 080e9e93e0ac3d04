// The compiled route table: virtual host selection, route order, path, method, header and query
// matchers, weighted splits, compiled actions and header operations, and compile errors.
#include "proxy/router/route_table.h"

#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "test/proxy/router/fake_request.h"

namespace sluice::router {
namespace {

namespace v1 = config::v1;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using testing::FakeHeaders;
using testing::Request;

// The clusters a test configuration may name; a cluster's index is its position.
constexpr std::string_view kClusters[] = {"users", "orders", "canary", "stable"};
constexpr uint32_t kUsers = 0, kCanary = 2, kStable = 3;

int clusterIndex(const std::string& name) {
  for (size_t i = 0; i < std::size(kClusters); ++i) {
    if (kClusters[i] == name) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<std::unique_ptr<RouteTable>> compileText(const std::string& text) {
  v1::RouteConfiguration config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return RouteTable::compile(config, clusterIndex);
}

// Compiles a configuration that must be valid; nullptr (and a failure) if it is not.
std::unique_ptr<RouteTable> mustCompile(const std::string& text) {
  auto table = compileText(text);
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : nullptr;
}

// The name of the virtual host serving `host`, or "<none>".
std::string hostFor(const RouteTable& table, std::string_view host) {
  const VirtualHost* vh = table.findVirtualHost(host);
  return vh == nullptr ? "<none>" : vh->name;
}

// The name of the route chosen for `request`, or "<none>".
std::string routeFor(const RouteTable& table, const Request& request) {
  RequestView view{.method = request.method,
                   .host = request.host,
                   .path = request.path,
                   .query = request.query,
                   .headers = &request.headers};
  const Route* route = table.route(view);
  return route == nullptr ? "<none>" : route->name;
}

// One virtual host serving "*" with one route "r": `match` (RouteMatch fields in text format)
// forwarding to "users".
std::unique_ptr<RouteTable> oneMatch(const std::string& match) {
  return mustCompile(absl::StrCat(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { name: "r" match { )",
                                  match, R"( } route { cluster: "users" } }
    })"));
}

bool matches(const RouteTable& table, const Request& request) {
  return routeFor(table, request) == "r";
}

// One virtual host serving "*" with one route "r" matching every path, with `action` (the
// Route's action field in text format).
std::unique_ptr<RouteTable> oneAction(const std::string& action) {
  return mustCompile(absl::StrCat(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { name: "r" match { prefix: "/" } )",
                                  action, R"( }
    })"));
}

// The one route of a table made by oneAction or oneMatch (an empty route, and a failure, if
// there is not exactly one).
const Route& onlyRoute(const RouteTable& table) {
  static const Route kNone;
  const VirtualHost* vh = table.findVirtualHost("example.com");
  EXPECT_TRUE(vh != nullptr && vh->routes.size() == 1);
  return vh != nullptr && vh->routes.size() == 1 ? vh->routes.front() : kNone;
}

// "name: value", with " (append)" when appending.
std::vector<std::string> adds(const HeaderOps& ops) {
  std::vector<std::string> out;
  for (const HeaderOps::Add& a : ops.add) {
    out.push_back(absl::StrCat(a.name, ": ", a.value, a.append ? " (append)" : ""));
  }
  return out;
}

// Virtual host selection.

TEST(RouteTableHostTest, ExactDomain) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "api" domains: "api.example.com" domains: "api.example.org" }
    virtual_hosts { name: "www" domains: "www.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "api.example.com"), "api");
  EXPECT_EQ(hostFor(*table, "api.example.org"), "api");
  EXPECT_EQ(hostFor(*table, "www.example.com"), "www");
  EXPECT_EQ(hostFor(*table, "example.com"), "<none>");
  EXPECT_EQ(hostFor(*table, "xapi.example.com"), "<none>");
  EXPECT_EQ(hostFor(*table, "api.example.co"), "<none>");
  EXPECT_EQ(hostFor(*table, ""), "<none>");
}

TEST(RouteTableHostTest, CaseInsensitive) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "api" domains: "api.example.com" }
    virtual_hosts { name: "www" domains: "WWW.Example.COM" }
    virtual_hosts { name: "wild" domains: "*.Example.NET" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "API.Example.Com"), "api");
  EXPECT_EQ(hostFor(*table, "www.example.com"), "www");
  EXPECT_EQ(hostFor(*table, "wWw.ExAmPlE.cOm:8080"), "www");
  EXPECT_EQ(hostFor(*table, "A.example.net"), "wild");
}

TEST(RouteTableHostTest, PortIgnoredUnlessADomainNamesIt) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "api" domains: "api.example.com" }
    virtual_hosts { name: "api-8080" domains: "api.example.com:8080" }
    virtual_hosts { name: "admin-9901" domains: "admin.example.com:9901" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "api.example.com"), "api");
  EXPECT_EQ(hostFor(*table, "api.example.com:80"), "api");
  EXPECT_EQ(hostFor(*table, "api.example.com:8080"), "api-8080");
  EXPECT_EQ(hostFor(*table, "API.EXAMPLE.COM:8080"), "api-8080");
  EXPECT_EQ(hostFor(*table, "api.example.com:80800"), "api");
  // A domain with a port serves only that port.
  EXPECT_EQ(hostFor(*table, "admin.example.com:9901"), "admin-9901");
  EXPECT_EQ(hostFor(*table, "admin.example.com"), "<none>");
  EXPECT_EQ(hostFor(*table, "admin.example.com:9902"), "<none>");
}

TEST(RouteTableHostTest, SuffixWildcard) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "wild" domains: "*.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "a.example.com"), "wild");
  EXPECT_EQ(hostFor(*table, "a.b.example.com"), "wild");
  EXPECT_EQ(hostFor(*table, "a.example.com:443"), "wild");
  // The wildcard needs at least one character before the dot, and the dot itself.
  EXPECT_EQ(hostFor(*table, "example.com"), "<none>");
  EXPECT_EQ(hostFor(*table, "example.com:443"), "<none>");
  EXPECT_EQ(hostFor(*table, ".example.com"), "<none>");
  EXPECT_EQ(hostFor(*table, "badexample.com"), "<none>");
  EXPECT_EQ(hostFor(*table, "a.example.com.evil.net"), "<none>");
}

TEST(RouteTableHostTest, LongestSuffixWins) {
  // Shorter suffixes first in the config, so that only the compiled order can pick the longest.
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "com" domains: "*.com" }
    virtual_hosts { name: "example" domains: "*.example.com" }
    virtual_hosts { name: "api" domains: "*.api.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "x.api.example.com"), "api");
  EXPECT_EQ(hostFor(*table, "x.y.api.example.com:8443"), "api");
  EXPECT_EQ(hostFor(*table, "api.example.com"), "example");
  EXPECT_EQ(hostFor(*table, "www.example.com"), "example");
  EXPECT_EQ(hostFor(*table, "example.com"), "com");
  EXPECT_EQ(hostFor(*table, "other.com"), "com");
  EXPECT_EQ(hostFor(*table, "com"), "<none>");

  // And with the longest first.
  table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "api" domains: "*.api.example.com" }
    virtual_hosts { name: "example" domains: "*.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "x.api.example.com"), "api");
  EXPECT_EQ(hostFor(*table, "x.example.com"), "example");
}

TEST(RouteTableHostTest, ExactBeatsSuffixBeatsAny) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "any" domains: "*" }
    virtual_hosts { name: "wild" domains: "*.example.com" }
    virtual_hosts { name: "exact" domains: "api.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "api.example.com"), "exact");
  EXPECT_EQ(hostFor(*table, "api.example.com:8080"), "exact");
  EXPECT_EQ(hostFor(*table, "www.example.com"), "wild");
  EXPECT_EQ(hostFor(*table, "example.com"), "any");
  EXPECT_EQ(hostFor(*table, "other.org"), "any");
  EXPECT_EQ(hostFor(*table, "127.0.0.1:8080"), "any");
  EXPECT_EQ(hostFor(*table, ""), "any");
}

TEST(RouteTableHostTest, SuffixWildcardThatNamesAPort) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "any" domains: "*" }
    virtual_hosts { name: "plain" domains: "*.example.com" }
    virtual_hosts { name: "tls" domains: "*.example.com:8443" }
    virtual_hosts { name: "exact" domains: "api.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "a.example.com:8443"), "tls");
  EXPECT_EQ(hostFor(*table, "A.Example.COM:8443"), "tls");
  EXPECT_EQ(hostFor(*table, "a.example.com:443"), "plain");
  EXPECT_EQ(hostFor(*table, "a.example.com"), "plain");
  EXPECT_EQ(hostFor(*table, "example.com:8443"), "any");
  EXPECT_EQ(hostFor(*table, "a.example.org:8443"), "any");
  // An exact domain still beats a wildcard, port or not.
  EXPECT_EQ(hostFor(*table, "api.example.com:8443"), "exact");
}

TEST(RouteTableHostTest, NoMatchIsNull) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts {
      name: "api" domains: "api.example.com"
      routes { name: "all" match { prefix: "/" } route { cluster: "users" } }
    }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->findVirtualHost("www.example.com"), nullptr);
  EXPECT_EQ(routeFor(*table, {.host = "www.example.com"}), "<none>");
  EXPECT_EQ(routeFor(*table, {.host = "api.example.com"}), "all");
}

TEST(RouteTableHostTest, Ipv6Literals) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "loopback" domains: "[::1]" }
    virtual_hosts { name: "doc-8443" domains: "[2001:db8::1]:8443" }
    virtual_hosts { name: "v4" domains: "127.0.0.1" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, "[::1]"), "loopback");
  EXPECT_EQ(hostFor(*table, "[::1]:8080"), "loopback");
  EXPECT_EQ(hostFor(*table, "[2001:db8::1]:8443"), "doc-8443");
  EXPECT_EQ(hostFor(*table, "[2001:DB8::1]:8443"), "doc-8443");
  EXPECT_EQ(hostFor(*table, "[2001:db8::1]"), "<none>");
  EXPECT_EQ(hostFor(*table, "[2001:db8::1]:443"), "<none>");
  // The colons inside the brackets are not a port.
  EXPECT_EQ(hostFor(*table, "[::2]"), "<none>");
  EXPECT_EQ(hostFor(*table, "[::1"), "<none>");
  EXPECT_EQ(hostFor(*table, "127.0.0.1"), "v4");
  EXPECT_EQ(hostFor(*table, "127.0.0.1:8080"), "v4");
}

TEST(RouteTableHostTest, LongHosts) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "any" domains: "*" }
    virtual_hosts { name: "wild" domains: "*.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  // The longest DNS name with the longest port still matches.
  std::string longest = std::string(253 - 12, 'a') + ".example.com";
  ASSERT_EQ(longest.size(), 253);
  EXPECT_EQ(hostFor(*table, longest), "wild");
  EXPECT_EQ(hostFor(*table, longest + ":65535"), "wild");
  // Anything far longer matches no domain, but "*" still serves it.
  std::string overlong = std::string(1000, 'a') + ".example.com";
  EXPECT_EQ(hostFor(*table, overlong), "any");

  table = mustCompile(R"(
    name: "main"
    virtual_hosts { name: "wild" domains: "*.example.com" }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(hostFor(*table, overlong), "<none>");
}

// Routes.

TEST(RouteTableRouteTest, FirstMatchWins) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { name: "users" match { prefix: "/api/users" } route { cluster: "users" } }
      routes { name: "api" match { prefix: "/api" } route { cluster: "orders" } }
      routes { name: "root" match { prefix: "/" } route { cluster: "stable" } }
      routes { name: "shadowed" match { path: "/api/other" } route { cluster: "canary" } }
    }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(routeFor(*table, {.path = "/api/users/1"}), "users");
  EXPECT_EQ(routeFor(*table, {.path = "/api/other"}), "api");
  EXPECT_EQ(routeFor(*table, {.path = "/index.html"}), "root");
  EXPECT_EQ(routeFor(*table, {.path = "/"}), "root");
}

TEST(RouteTableRouteTest, RoutesOfTheChosenHostOnly) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts {
      name: "any" domains: "*"
      routes { name: "any-root" match { prefix: "/" } route { cluster: "users" } }
    }
    virtual_hosts {
      name: "api" domains: "api.example.com"
      routes { name: "api-v1" match { prefix: "/v1/" } route { cluster: "orders" } }
    }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(routeFor(*table, {.host = "api.example.com", .path = "/v1/x"}), "api-v1");
  // No fallback to another virtual host when none of the chosen host's routes match.
  EXPECT_EQ(routeFor(*table, {.host = "api.example.com", .path = "/v2/x"}), "<none>");
  EXPECT_EQ(routeFor(*table, {.host = "www.example.com", .path = "/v1/x"}), "any-root");
}

TEST(RouteTableRouteTest, ExactPath) {
  auto table = oneMatch(R"(path: "/health")");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.path = "/health"}));
  EXPECT_TRUE(matches(*table, {.path = "/health", .query = "verbose=1"}));
  EXPECT_FALSE(matches(*table, {.path = "/health/"}));
  EXPECT_FALSE(matches(*table, {.path = "/healthz"}));
  EXPECT_FALSE(matches(*table, {.path = "/heal"}));
  EXPECT_FALSE(matches(*table, {.path = "/Health"}));
  EXPECT_FALSE(matches(*table, {.path = "/v1/health"}));
}

TEST(RouteTableRouteTest, PrefixPath) {
  auto table = oneMatch(R"(prefix: "/api")");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.path = "/api"}));
  EXPECT_TRUE(matches(*table, {.path = "/api/"}));
  EXPECT_TRUE(matches(*table, {.path = "/api/v1/users"}));
  // A string prefix, not a segment prefix.
  EXPECT_TRUE(matches(*table, {.path = "/apiary"}));
  EXPECT_FALSE(matches(*table, {.path = "/ap"}));
  EXPECT_FALSE(matches(*table, {.path = "/API"}));
  EXPECT_FALSE(matches(*table, {.path = "/v1/api"}));
  EXPECT_FALSE(matches(*table, {.path = "/"}));
}

TEST(RouteTableRouteTest, RegexPathMatchesTheWholePath) {
  auto table = oneMatch(R"(regex: "/users/[0-9]+")");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.path = "/users/42"}));
  EXPECT_TRUE(matches(*table, {.path = "/users/42", .query = "x=abc"}));
  EXPECT_FALSE(matches(*table, {.path = "/users/42/orders"}));
  EXPECT_FALSE(matches(*table, {.path = "/v1/users/42"}));
  EXPECT_FALSE(matches(*table, {.path = "/users/"}));
  EXPECT_FALSE(matches(*table, {.path = "/users/4a"}));
}

TEST(RouteTableRouteTest, RegexAlternationIsAnchoredAsAWhole) {
  auto table = oneMatch(R"(regex: "/a|/b")");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.path = "/a"}));
  EXPECT_TRUE(matches(*table, {.path = "/b"}));
  EXPECT_FALSE(matches(*table, {.path = "/ab"}));
  EXPECT_FALSE(matches(*table, {.path = "/x/b"}));
}

TEST(RouteTableRouteTest, Methods) {
  auto table = oneMatch(R"(prefix: "/" methods: "GET" methods: "HEAD")");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.method = "GET"}));
  EXPECT_TRUE(matches(*table, {.method = "HEAD"}));
  EXPECT_FALSE(matches(*table, {.method = "POST"}));
  EXPECT_FALSE(matches(*table, {.method = "get"}));
  EXPECT_FALSE(matches(*table, {.method = "GETX"}));
  EXPECT_FALSE(matches(*table, {.method = ""}));

  auto any = oneMatch(R"(prefix: "/")");
  ASSERT_NE(any, nullptr);
  EXPECT_TRUE(matches(*any, {.method = "DELETE"}));
  EXPECT_TRUE(matches(*any, {.method = "PATCH"}));
}

TEST(RouteTableRouteTest, MethodsWithinFirstMatch) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { name: "write" match { prefix: "/users" methods: "POST" methods: "PUT" }
               route { cluster: "users" } }
      routes { name: "read" match { prefix: "/users" } route { cluster: "orders" } }
    }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(routeFor(*table, {.method = "POST", .path = "/users"}), "write");
  EXPECT_EQ(routeFor(*table, {.method = "PUT", .path = "/users/1"}), "write");
  EXPECT_EQ(routeFor(*table, {.method = "GET", .path = "/users"}), "read");
}

TEST(RouteTableRouteTest, EveryConditionMustHold) {
  auto table = oneMatch(R"(
    path: "/search" methods: "GET"
    headers { name: "x-tenant" exact: "acme" }
    query_parameters { name: "q" present: true })");
  ASSERT_NE(table, nullptr);
  const FakeHeaders acme{{"x-tenant", "acme"}};
  EXPECT_TRUE(matches(*table, {.path = "/search", .query = "q=x", .headers = acme}));
  EXPECT_FALSE(matches(*table, {.path = "/searc", .query = "q=x", .headers = acme}));
  EXPECT_FALSE(
      matches(*table, {.method = "POST", .path = "/search", .query = "q=x", .headers = acme}));
  EXPECT_FALSE(matches(*table, {.path = "/search", .query = "q=x"}));
  EXPECT_FALSE(matches(*table, {.path = "/search", .query = "p=x", .headers = acme}));
}

// Header matchers.

TEST(RouteTableHeaderTest, Exact) {
  auto table = oneMatch(R"(prefix: "/" headers { name: "x-tenant" exact: "acme" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.headers = {{"x-tenant", "acme"}}}));
  EXPECT_TRUE(matches(*table, {.headers = {{"x-other", "1"}, {"x-tenant", "acme"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-tenant", "Acme"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-tenant", "acme-corp"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-tenant", "acm"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-tenant", ""}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-tenants", "acme"}}}));
  EXPECT_FALSE(matches(*table, {}));
}

TEST(RouteTableHeaderTest, ExactEmptyValue) {
  auto table = oneMatch(R"(prefix: "/" headers { name: "x-empty" exact: "" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.headers = {{"x-empty", ""}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-empty", "x"}}}));
  EXPECT_FALSE(matches(*table, {}));
}

TEST(RouteTableHeaderTest, Prefix) {
  auto table = oneMatch(R"(prefix: "/" headers { name: "user-agent" prefix: "curl/" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.headers = {{"user-agent", "curl/8.5.0"}}}));
  EXPECT_TRUE(matches(*table, {.headers = {{"user-agent", "curl/"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"user-agent", "curl"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"user-agent", "Curl/8.5.0"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"user-agent", "xcurl/8.5.0"}}}));
  EXPECT_FALSE(matches(*table, {}));
}

TEST(RouteTableHeaderTest, Suffix) {
  auto table = oneMatch(R"(prefix: "/" headers { name: "x-client" suffix: ".internal" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.headers = {{"x-client", "billing.internal"}}}));
  EXPECT_TRUE(matches(*table, {.headers = {{"x-client", ".internal"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-client", "internal"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-client", "billing.internal.evil"}}}));
  EXPECT_FALSE(matches(*table, {}));
}

TEST(RouteTableHeaderTest, RegexMatchesTheWholeValue) {
  auto table = oneMatch(R"(prefix: "/" headers { name: "x-version" regex: "v[0-9]+" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.headers = {{"x-version", "v1"}}}));
  EXPECT_TRUE(matches(*table, {.headers = {{"x-version", "v123"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-version", "v1-beta"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-version", "api-v1"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-version", "v"}}}));
  EXPECT_FALSE(matches(*table, {}));
}

TEST(RouteTableHeaderTest, Present) {
  auto present = oneMatch(R"(prefix: "/" headers { name: "authorization" present: true })");
  ASSERT_NE(present, nullptr);
  EXPECT_TRUE(matches(*present, {.headers = {{"authorization", "Bearer x"}}}));
  EXPECT_TRUE(matches(*present, {.headers = {{"authorization", ""}}}));
  EXPECT_FALSE(matches(*present, {.headers = {{"x-authorization", "Bearer x"}}}));
  EXPECT_FALSE(matches(*present, {}));

  auto absent = oneMatch(R"(prefix: "/" headers { name: "authorization" present: false })");
  ASSERT_NE(absent, nullptr);
  EXPECT_FALSE(matches(*absent, {.headers = {{"authorization", "Bearer x"}}}));
  EXPECT_FALSE(matches(*absent, {.headers = {{"authorization", ""}}}));
  EXPECT_TRUE(matches(*absent, {.headers = {{"x-authorization", "Bearer x"}}}));
  EXPECT_TRUE(matches(*absent, {}));
}

TEST(RouteTableHeaderTest, Invert) {
  auto exact = oneMatch(R"(prefix: "/" headers { name: "x-env" exact: "prod" invert: true })");
  ASSERT_NE(exact, nullptr);
  EXPECT_FALSE(matches(*exact, {.headers = {{"x-env", "prod"}}}));
  EXPECT_TRUE(matches(*exact, {.headers = {{"x-env", "staging"}}}));
  // The condition "x-env is prod" does not hold when there is no x-env.
  EXPECT_TRUE(matches(*exact, {}));

  auto regex = oneMatch(R"(prefix: "/" headers { name: "x-env" regex: "p.*" invert: true })");
  ASSERT_NE(regex, nullptr);
  EXPECT_FALSE(matches(*regex, {.headers = {{"x-env", "prod"}}}));
  EXPECT_TRUE(matches(*regex, {.headers = {{"x-env", "dev"}}}));
  EXPECT_TRUE(matches(*regex, {}));

  auto present = oneMatch(R"(prefix: "/" headers { name: "x-env" present: true invert: true })");
  ASSERT_NE(present, nullptr);
  EXPECT_FALSE(matches(*present, {.headers = {{"x-env", "prod"}}}));
  EXPECT_TRUE(matches(*present, {}));

  auto absent = oneMatch(R"(prefix: "/" headers { name: "x-env" present: false invert: true })");
  ASSERT_NE(absent, nullptr);
  EXPECT_TRUE(matches(*absent, {.headers = {{"x-env", "prod"}}}));
  EXPECT_FALSE(matches(*absent, {}));
}

TEST(RouteTableHeaderTest, NamesAreCaseInsensitive) {
  // FakeHeaders stores lower-case names and answers only lower-case lookups.
  auto table = oneMatch(R"(prefix: "/" headers { name: "X-Tenant" exact: "acme" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.headers = {{"x-tenant", "acme"}}}));
  const Route& r = onlyRoute(*table);
  ASSERT_EQ(r.headers.size(), 1);
  EXPECT_EQ(r.headers[0].name, "x-tenant");
}

TEST(RouteTableHeaderTest, AllMustMatch) {
  auto table = oneMatch(R"(prefix: "/"
    headers { name: "x-a" exact: "1" }
    headers { name: "x-b" prefix: "2" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.headers = {{"x-a", "1"}, {"x-b", "23"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-a", "1"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-b", "23"}}}));
  EXPECT_FALSE(matches(*table, {.headers = {{"x-a", "0"}, {"x-b", "23"}}}));
}

TEST(RouteTableHeaderTest, WithoutAHeaderSource) {
  auto exact = oneMatch(R"(prefix: "/" headers { name: "x-a" exact: "1" })");
  auto absent = oneMatch(R"(prefix: "/" headers { name: "x-a" present: false })");
  ASSERT_NE(exact, nullptr);
  ASSERT_NE(absent, nullptr);
  RequestView view{.method = "GET", .host = "example.com", .path = "/", .headers = nullptr};
  EXPECT_EQ(exact->route(view), nullptr);
  EXPECT_NE(absent->route(view), nullptr);
}

// Query parameter matchers.

TEST(RouteTableQueryTest, Exact) {
  auto table = oneMatch(R"(prefix: "/" query_parameters { name: "debug" exact: "1" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.query = "debug=1"}));
  EXPECT_TRUE(matches(*table, {.query = "a=b&debug=1"}));
  EXPECT_TRUE(matches(*table, {.query = "debug=1&a=b"}));
  EXPECT_TRUE(matches(*table, {.query = "&&debug=1&"}));
  EXPECT_FALSE(matches(*table, {.query = "debug=10"}));
  EXPECT_FALSE(matches(*table, {.query = "debug="}));
  EXPECT_FALSE(matches(*table, {.query = "debug"}));
  EXPECT_FALSE(matches(*table, {.query = "xdebug=1"}));
  EXPECT_FALSE(matches(*table, {.query = "debugx=1"}));
  // Names are case-sensitive.
  EXPECT_FALSE(matches(*table, {.query = "Debug=1"}));
  // Only the part before the first '=' is the name.
  EXPECT_FALSE(matches(*table, {.query = "a=debug=1"}));
  EXPECT_FALSE(matches(*table, {.query = ""}));
}

TEST(RouteTableQueryTest, ExactComparesTheDecodedValue) {
  auto table = oneMatch(R"(prefix: "/" query_parameters { name: "q" exact: "a b/c" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.query = "q=a%20b%2Fc"}));
  EXPECT_TRUE(matches(*table, {.query = "q=a%20b%2fc"}));
  EXPECT_TRUE(matches(*table, {.query = "q=a+b/c"}));
  EXPECT_FALSE(matches(*table, {.query = "q=a%20b%2Fcd"}));
}

TEST(RouteTableQueryTest, RegexOverTheDecodedValue) {
  auto table =
      oneMatch(R"(prefix: "/" query_parameters { name: "path" regex: "/files/[a-z]+\\.txt" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.query = "path=/files/a.txt"}));
  EXPECT_TRUE(matches(*table, {.query = "path=%2Ffiles%2Fabc.txt"}));
  EXPECT_TRUE(matches(*table, {.query = "path=%2ffiles%2f%61.txt"}));
  // The whole value, not a part of it.
  EXPECT_FALSE(matches(*table, {.query = "path=%2Ffiles%2Fa.txt.bak"}));
  EXPECT_FALSE(matches(*table, {.query = "path=x%2Ffiles%2Fa.txt"}));
  EXPECT_FALSE(matches(*table, {.query = "path=%2Ffiles%2F%41.txt"}));
  EXPECT_FALSE(matches(*table, {.query = "path"}));
  EXPECT_FALSE(matches(*table, {.query = "other=/files/a.txt"}));
}

TEST(RouteTableQueryTest, RegexDoesNotSeeTheRawEncoding) {
  auto table = oneMatch(R"(prefix: "/" query_parameters { name: "q" regex: "[^%+]*" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.query = "q=abc"}));
  EXPECT_TRUE(matches(*table, {.query = "q=a%20b"}));
  EXPECT_TRUE(matches(*table, {.query = "q=a+b"}));
  // %25 and %2B decode to the characters themselves.
  EXPECT_FALSE(matches(*table, {.query = "q=100%25"}));
  EXPECT_FALSE(matches(*table, {.query = "q=1%2B1"}));
}

TEST(RouteTableQueryTest, MalformedEscapesAreMatchedRaw) {
  auto table = oneMatch(R"(prefix: "/" query_parameters { name: "p" regex: ".*%.*" })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.query = "p=100%"}));
  EXPECT_TRUE(matches(*table, {.query = "p=%4"}));
  EXPECT_TRUE(matches(*table, {.query = "p=%zz"}));
  EXPECT_TRUE(matches(*table, {.query = "p=%g1"}));
  // One malformed escape leaves the whole value undecoded.
  EXPECT_TRUE(matches(*table, {.query = "p=%41%"}));
  EXPECT_FALSE(matches(*table, {.query = "p=%41"}));

  auto exact = oneMatch(R"(prefix: "/" query_parameters { name: "p" exact: "%41%" })");
  ASSERT_NE(exact, nullptr);
  EXPECT_TRUE(matches(*exact, {.query = "p=%41%"}));
}

TEST(RouteTableQueryTest, LongValues) {
  // Up to 2048 decoded bytes are decoded; longer values are matched as sent.
  auto spaces = oneMatch(R"(prefix: "/" query_parameters { name: "v" regex: " +" })");
  auto pluses = oneMatch(R"(prefix: "/" query_parameters { name: "v" regex: "\\++" })");
  ASSERT_NE(spaces, nullptr);
  ASSERT_NE(pluses, nullptr);
  std::string fits = "v=" + std::string(2048, '+');
  std::string too_long = "v=" + std::string(2049, '+');
  EXPECT_TRUE(matches(*spaces, {.query = fits}));
  EXPECT_FALSE(matches(*pluses, {.query = fits}));
  EXPECT_FALSE(matches(*spaces, {.query = too_long}));
  EXPECT_TRUE(matches(*pluses, {.query = too_long}));
}

TEST(RouteTableQueryTest, Present) {
  auto present = oneMatch(R"(prefix: "/" query_parameters { name: "flag" present: true })");
  ASSERT_NE(present, nullptr);
  EXPECT_TRUE(matches(*present, {.query = "flag"}));
  EXPECT_TRUE(matches(*present, {.query = "flag="}));
  EXPECT_TRUE(matches(*present, {.query = "flag=1"}));
  EXPECT_TRUE(matches(*present, {.query = "a=1&flag"}));
  EXPECT_TRUE(matches(*present, {.query = "flag&a=1"}));
  EXPECT_FALSE(matches(*present, {.query = "flags"}));
  EXPECT_FALSE(matches(*present, {.query = "fla"}));
  EXPECT_FALSE(matches(*present, {.query = "a=flag"}));
  EXPECT_FALSE(matches(*present, {.query = ""}));

  auto absent = oneMatch(R"(prefix: "/" query_parameters { name: "flag" present: false })");
  ASSERT_NE(absent, nullptr);
  EXPECT_FALSE(matches(*absent, {.query = "flag"}));
  EXPECT_FALSE(matches(*absent, {.query = "flag=1"}));
  EXPECT_FALSE(matches(*absent, {.query = "a=1&flag"}));
  EXPECT_TRUE(matches(*absent, {.query = "flags"}));
  EXPECT_TRUE(matches(*absent, {.query = "a=flag"}));
  EXPECT_TRUE(matches(*absent, {.query = ""}));
}

TEST(RouteTableQueryTest, ParameterWithoutEqualsHasAnEmptyValue) {
  auto empty = oneMatch(R"(prefix: "/" query_parameters { name: "flag" exact: "" })");
  ASSERT_NE(empty, nullptr);
  EXPECT_TRUE(matches(*empty, {.query = "flag"}));
  EXPECT_TRUE(matches(*empty, {.query = "a=1&flag&b=2"}));
  EXPECT_TRUE(matches(*empty, {.query = "flag="}));
  EXPECT_FALSE(matches(*empty, {.query = "flag=x"}));
  EXPECT_FALSE(matches(*empty, {.query = ""}));

  auto regex = oneMatch(R"(prefix: "/" query_parameters { name: "flag" regex: "x?" })");
  ASSERT_NE(regex, nullptr);
  EXPECT_TRUE(matches(*regex, {.query = "flag"}));
  EXPECT_TRUE(matches(*regex, {.query = "flag=x"}));
  EXPECT_FALSE(matches(*regex, {.query = "flag=y"}));
}

TEST(RouteTableQueryTest, RepeatedParameterUsesTheFirst) {
  auto first = oneMatch(R"(prefix: "/" query_parameters { name: "v" exact: "1" })");
  auto second = oneMatch(R"(prefix: "/" query_parameters { name: "v" regex: "2" })");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(matches(*first, {.query = "v=1&v=2"}));
  EXPECT_FALSE(matches(*second, {.query = "v=1&v=2"}));
  EXPECT_TRUE(matches(*second, {.query = "v=2&v=1"}));
}

TEST(RouteTableQueryTest, AllMustMatch) {
  auto table = oneMatch(R"(prefix: "/"
    query_parameters { name: "a" exact: "1" }
    query_parameters { name: "b" present: true })");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(matches(*table, {.query = "a=1&b"}));
  EXPECT_TRUE(matches(*table, {.query = "b=2&a=1"}));
  EXPECT_FALSE(matches(*table, {.query = "a=1"}));
  EXPECT_FALSE(matches(*table, {.query = "b=1"}));
  EXPECT_FALSE(matches(*table, {.query = "a=2&b"}));
}

// Clusters and weighted splits.

TEST(RouteTableClusterTest, SingleClusterIgnoresTheDraw) {
  auto table = oneAction(R"(route { cluster: "stable" })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  EXPECT_EQ(r.action, Route::Action::kCluster);
  ASSERT_EQ(r.clusters.size(), 1);
  EXPECT_EQ(r.clusters[0].cluster, kStable);
  for (uint64_t draw :
       {uint64_t{0}, uint64_t{1}, uint64_t{12345}, std::numeric_limits<uint64_t>::max()}) {
    EXPECT_EQ(r.pickCluster(draw), kStable) << draw;
  }
}

TEST(RouteTableClusterTest, WeightedBoundaries) {
  auto table = oneAction(R"(route { weighted_clusters {
    clusters { name: "users" weight: 1 }
    clusters { name: "orders" weight: 0 }
    clusters { name: "canary" weight: 3 }
    clusters { name: "stable" weight: 6 }
  } })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  EXPECT_EQ(r.total_weight, 10);
  ASSERT_EQ(r.clusters.size(), 3);
  EXPECT_EQ(r.clusters[0].cluster, kUsers);
  EXPECT_EQ(r.clusters[0].cumulative, 1);
  EXPECT_EQ(r.clusters[1].cluster, kCanary);
  EXPECT_EQ(r.clusters[1].cumulative, 4);
  EXPECT_EQ(r.clusters[2].cluster, kStable);
  EXPECT_EQ(r.clusters[2].cumulative, 10);

  // Every point of the total, and past it (draws wrap around the total weight).
  const uint32_t want[10] = {kUsers,  kCanary, kCanary, kCanary, kStable,
                             kStable, kStable, kStable, kStable, kStable};
  for (uint64_t draw = 0; draw < 30; ++draw) {
    EXPECT_EQ(r.pickCluster(draw), want[draw % 10]) << draw;
  }
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(r.pickCluster(max), want[max % 10]);

  std::map<uint32_t, int> counts;
  for (uint64_t draw = 0; draw < 10'000; ++draw) ++counts[r.pickCluster(draw)];
  EXPECT_EQ(counts, (std::map<uint32_t, int>{{kUsers, 1000}, {kCanary, 3000}, {kStable, 6000}}));
}

TEST(RouteTableClusterTest, ZeroWeightsAreNeverPicked) {
  auto table = oneAction(R"(route { weighted_clusters {
    clusters { name: "canary" weight: 0 }
    clusters { name: "stable" weight: 7 }
    clusters { name: "orders" weight: 0 }
  } })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  ASSERT_EQ(r.clusters.size(), 1);
  for (uint64_t draw = 0; draw < 100; ++draw) EXPECT_EQ(r.pickCluster(draw), kStable) << draw;
}

TEST(RouteTableClusterTest, LargeWeightsDoNotOverflow) {
  auto table = oneAction(R"(route { weighted_clusters {
    clusters { name: "canary" weight: 4294967295 }
    clusters { name: "stable" weight: 4294967295 }
  } })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  EXPECT_EQ(r.total_weight, 2 * uint64_t{4294967295});
  EXPECT_EQ(r.pickCluster(0), kCanary);
  EXPECT_EQ(r.pickCluster(4294967294), kCanary);
  EXPECT_EQ(r.pickCluster(4294967295), kStable);
  EXPECT_EQ(r.pickCluster(2 * uint64_t{4294967295} - 1), kStable);
  EXPECT_EQ(r.pickCluster(2 * uint64_t{4294967295}), kCanary);
}

TEST(RouteTableClusterTest, UsesTheResolversIndexes) {
  std::map<std::string, int> index = {{"users", 7}, {"orders", 42}};
  v1::RouteConfiguration config;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { name: "r" match { prefix: "/" } route { weighted_clusters {
        clusters { name: "orders" weight: 1 } clusters { name: "users" weight: 1 } } } }
    })",
                                                            &config));
  auto table = RouteTable::compile(config, [&](const std::string& name) {
    auto it = index.find(name);
    return it == index.end() ? -1 : it->second;
  });
  ASSERT_TRUE(table.ok()) << table.status();
  const Route& r = onlyRoute(**table);
  EXPECT_EQ(r.pickCluster(0), 42);
  EXPECT_EQ(r.pickCluster(1), 7);
}

// Actions.

TEST(RouteTableActionTest, RouteActionFields) {
  auto table = oneAction(
      R"(route { cluster: "users" prefix_rewrite: "/v2/" host_rewrite: "users.internal" })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  EXPECT_EQ(r.action, Route::Action::kCluster);
  EXPECT_EQ(r.prefix_rewrite, "/v2/");
  EXPECT_EQ(r.host_rewrite, "users.internal");
}

TEST(RouteTableActionTest, Timeouts) {
  auto timeoutOf = [](const std::string& route_action) -> int64_t {
    auto table = oneAction(absl::StrCat("route { cluster: \"users\" ", route_action, " }"));
    return table == nullptr ? -1 : onlyRoute(*table).timeout_ms;
  };
  EXPECT_EQ(timeoutOf(""), 15'000);
  // "0s" disables the timeout.
  EXPECT_EQ(timeoutOf("timeout {}"), 0);
  EXPECT_EQ(timeoutOf("timeout { seconds: 0 }"), 0);
  EXPECT_EQ(timeoutOf("timeout { seconds: 30 }"), 30'000);
  EXPECT_EQ(timeoutOf("timeout { seconds: 2 nanos: 250000000 }"), 2'250);
  EXPECT_EQ(timeoutOf("timeout { seconds: 3600 }"), 3'600'000);
  // A positive timeout under a millisecond ("100us") is not "none".
  EXPECT_EQ(timeoutOf("timeout { nanos: 100000 }"), 1);
  EXPECT_EQ(timeoutOf("timeout { nanos: 1 }"), 1);
  EXPECT_EQ(timeoutOf("timeout { seconds: 1 nanos: 1000000 }"), 1'001);
}

TEST(RouteTableActionTest, DirectResponse) {
  auto table = oneAction(R"(direct_response { status: 503 body: "down for maintenance\n" })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  EXPECT_EQ(r.action, Route::Action::kDirectResponse);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "down for maintenance\n");
  EXPECT_THAT(r.clusters, IsEmpty());
}

TEST(RouteTableActionTest, RedirectDefaults) {
  auto table = oneAction(R"(redirect { scheme_redirect: "https" })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  EXPECT_EQ(r.action, Route::Action::kRedirect);
  EXPECT_EQ(r.redirect_code, 301);
  EXPECT_EQ(r.scheme_redirect, "https");
  EXPECT_EQ(r.host_redirect, "");
  EXPECT_EQ(r.path_redirect, "");
  EXPECT_EQ(r.prefix_rewrite, "");
  EXPECT_FALSE(r.strip_query);
  EXPECT_THAT(r.clusters, IsEmpty());
}

TEST(RouteTableActionTest, RedirectFields) {
  auto table = oneAction(R"(redirect { response_code: 308 scheme_redirect: "http"
    host_redirect: "new.example.com:8443" path_redirect: "/moved" strip_query: true })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  EXPECT_EQ(r.action, Route::Action::kRedirect);
  EXPECT_EQ(r.redirect_code, 308);
  EXPECT_EQ(r.scheme_redirect, "http");
  EXPECT_EQ(r.host_redirect, "new.example.com:8443");
  EXPECT_EQ(r.path_redirect, "/moved");
  EXPECT_TRUE(r.strip_query);

  table = oneAction(R"(redirect { response_code: 302 prefix_rewrite: "/new/" })");
  ASSERT_NE(table, nullptr);
  const Route& p = onlyRoute(*table);
  EXPECT_EQ(p.redirect_code, 302);
  EXPECT_EQ(p.prefix_rewrite, "/new/");
  EXPECT_EQ(p.path_redirect, "");
}

// Header operations.

TEST(RouteTableHeaderOpsTest, VirtualHostsThenRoutes) {
  auto table = mustCompile(R"(
    name: "main"
    virtual_hosts {
      name: "api" domains: "*"
      request_headers {
        add { name: "X-VHost" value: "Vh-Value" }
        remove: "X-Drop-VHost"
      }
      response_headers {
        add { name: "x-served-by" value: "sluice" append: true }
        remove: "server"
      }
      routes {
        name: "own" match { prefix: "/own" } route { cluster: "users" }
        request_headers {
          add { name: "x-route" value: "r" append: true }
          add { name: "X-VHOST" value: "override" }
          remove: "X-Drop-Route"
        }
        response_headers { remove: "X-Internal" }
      }
      routes { name: "inherit" match { prefix: "/" } direct_response { status: 204 } }
    }
    virtual_hosts {
      name: "bare" domains: "bare.example.com"
      routes {
        name: "plain" match { prefix: "/" } route { cluster: "users" }
        response_headers { add { name: "x-only" value: "route" } }
      }
    }
  )");
  ASSERT_NE(table, nullptr);
  const VirtualHost* api = table->findVirtualHost("api.example.com");
  ASSERT_NE(api, nullptr);
  ASSERT_EQ(api->routes.size(), 2);

  const Route& own = api->routes[0];
  EXPECT_THAT(own.request_headers.remove, ElementsAre("x-drop-vhost", "x-drop-route"));
  EXPECT_THAT(adds(own.request_headers),
              ElementsAre("x-vhost: Vh-Value", "x-route: r (append)", "x-vhost: override"));
  EXPECT_THAT(own.response_headers.remove, ElementsAre("server", "x-internal"));
  EXPECT_THAT(adds(own.response_headers), ElementsAre("x-served-by: sluice (append)"));

  const Route& inherit = api->routes[1];
  EXPECT_THAT(inherit.request_headers.remove, ElementsAre("x-drop-vhost"));
  EXPECT_THAT(adds(inherit.request_headers), ElementsAre("x-vhost: Vh-Value"));
  EXPECT_THAT(inherit.response_headers.remove, ElementsAre("server"));
  EXPECT_THAT(adds(inherit.response_headers), ElementsAre("x-served-by: sluice (append)"));

  const VirtualHost* bare = table->findVirtualHost("bare.example.com");
  ASSERT_NE(bare, nullptr);
  ASSERT_EQ(bare->routes.size(), 1);
  EXPECT_TRUE(bare->routes[0].request_headers.empty());
  EXPECT_THAT(bare->routes[0].response_headers.remove, IsEmpty());
  EXPECT_THAT(adds(bare->routes[0].response_headers), ElementsAre("x-only: route"));
}

// The table as a whole.

TEST(RouteTableTest, NameAndRouteCount) {
  auto table = mustCompile(R"(
    name: "edge"
    virtual_hosts {
      name: "a" domains: "a.example.com"
      routes { match { prefix: "/1" } route { cluster: "users" } }
      routes { match { prefix: "/2" } route { cluster: "users" } }
      routes { match { prefix: "/3" } direct_response { status: 404 } }
    }
    virtual_hosts { name: "empty" domains: "empty.example.com" }
    virtual_hosts {
      name: "b" domains: "b.example.com"
      routes { match { prefix: "/" } redirect { host_redirect: "a.example.com" } }
      routes { match { prefix: "/" } route { cluster: "orders" } }
    }
  )");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->name(), "edge");
  EXPECT_EQ(table->routeCount(), 5);
  // A virtual host without routes is chosen, and routes nothing.
  EXPECT_EQ(hostFor(*table, "empty.example.com"), "empty");
  EXPECT_EQ(routeFor(*table, {.host = "empty.example.com"}), "<none>");
}

TEST(RouteTableTest, EmptyConfiguration) {
  auto table = mustCompile("");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->name(), "");
  EXPECT_EQ(table->routeCount(), 0);
  EXPECT_EQ(table->findVirtualHost("example.com"), nullptr);
  EXPECT_EQ(routeFor(*table, {}), "<none>");
}

// Compile errors.

TEST(RouteTableErrorTest, UnknownCluster) {
  auto table = compileText(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { match { prefix: "/" } route { cluster: "users-v2" } }
    })");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.status().message(),
            "route configuration 'main' names unknown cluster 'users-v2'");
}

TEST(RouteTableErrorTest, UnknownWeightedClusterReportsTheFirst) {
  auto table = compileText(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { match { prefix: "/a" } route { cluster: "users" } }
      routes { match { prefix: "/" } route { weighted_clusters {
        clusters { name: "stable" weight: 9 }
        clusters { name: "canary-v3" weight: 1 }
        clusters { name: "canary-v4" weight: 1 }
      } } }
    })");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.status().message(),
            "route configuration 'main' names unknown cluster 'canary-v3'");
}

TEST(RouteTableErrorTest, NoClusterWithWeight) {
  auto zero = compileText(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { name: "split" match { prefix: "/" } route { weighted_clusters {
        clusters { name: "stable" weight: 0 }
        clusters { name: "canary" weight: 0 }
      } } }
    })");
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(zero.status().message(),
            "route configuration 'main' has route 'split' without a cluster of weight > 0");

  auto none = compileText(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { match { prefix: "/" } route { weighted_clusters {} } }
    })");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(),
            "route configuration 'main' has a route without a cluster of weight > 0");
}

TEST(RouteTableErrorTest, RouteWithoutAction) {
  auto table = compileText(R"(
    name: "main"
    virtual_hosts { name: "all" domains: "*" routes { match { prefix: "/" } } })");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.status().message(), "route configuration 'main' has a route without action");
}

TEST(RouteTableErrorTest, InvalidRegexes) {
  for (const char* match :
       {R"(regex: "/users/(")", R"(prefix: "/" headers { name: "x-a" regex: "/users/(" })",
        R"(prefix: "/" query_parameters { name: "a" regex: "/users/(" })"}) {
    auto table = compileText(absl::StrCat(R"(
      name: "main"
      virtual_hosts {
        name: "all" domains: "*"
        routes { match { )",
                                          match, R"( } route { cluster: "users" } }
      })"));
    ASSERT_FALSE(table.ok()) << match;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument) << match;
    EXPECT_THAT(table.status().message(), HasSubstr("invalid regex '/users/(': ")) << match;
  }
}

TEST(RouteTableCookieTest, FindCookieParsesAHeaderValue) {
  std::string_view v;
  EXPECT_TRUE(findCookie("a=1; canary=yes; b=2", "canary", &v));
  EXPECT_EQ(v, "yes");
  EXPECT_TRUE(findCookie("canary=\"quoted\"", "canary", &v));
  EXPECT_EQ(v, "quoted");
  EXPECT_TRUE(findCookie("canary=", "canary", &v));
  EXPECT_EQ(v, "");
  EXPECT_FALSE(findCookie("xcanary=1; canaryx=2", "canary", &v));
  EXPECT_FALSE(findCookie("canary", "canary", &v));
  EXPECT_FALSE(findCookie("", "canary", &v));
  EXPECT_TRUE(findCookie("  canary=1  ;b=2", "canary", &v));
  EXPECT_EQ(v, "1");
}

TEST(RouteTableCookieTest, ExactRegexPresentAndInverted) {
  auto exact = oneMatch(R"(prefix: "/" cookies { name: "canary" exact: "1" })");
  ASSERT_NE(exact, nullptr);
  EXPECT_TRUE(matches(*exact, {.headers = {{"cookie", "session=x; canary=1"}}}));
  EXPECT_FALSE(matches(*exact, {.headers = {{"cookie", "canary=0"}}}));
  EXPECT_FALSE(matches(*exact, {.headers = {{"x-canary", "1"}}}));
  EXPECT_FALSE(matches(*exact, {}));

  auto regex = oneMatch(R"(prefix: "/" cookies { name: "group" regex: "beta-[0-9]+" })");
  ASSERT_NE(regex, nullptr);
  EXPECT_TRUE(matches(*regex, {.headers = {{"cookie", "group=beta-12"}}}));
  EXPECT_FALSE(matches(*regex, {.headers = {{"cookie", "group=beta-12x"}}}));

  auto absent = oneMatch(R"(prefix: "/" cookies { name: "canary" present: false })");
  ASSERT_NE(absent, nullptr);
  EXPECT_TRUE(matches(*absent, {}));
  EXPECT_FALSE(matches(*absent, {.headers = {{"cookie", "canary=1"}}}));

  auto inverted = oneMatch(R"(prefix: "/" cookies { name: "canary" exact: "1" invert: true })");
  ASSERT_NE(inverted, nullptr);
  EXPECT_FALSE(matches(*inverted, {.headers = {{"cookie", "canary=1"}}}));
  EXPECT_TRUE(matches(*inverted, {.headers = {{"cookie", "canary=2"}}}));
}

TEST(RouteTableTrafficTest, RoutesWithoutTrafficSettingsCarryNoPolicy) {
  auto table = oneAction(R"(route { cluster: "users" timeout { seconds: 3 } })");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(onlyRoute(*table).traffic, nullptr);
}

TEST(RouteTableTrafficTest, RetryPolicyDefaultsAndConditions) {
  auto table =
      oneAction(R"(route { cluster: "users" retry_policy { retry_on: "gateway-error" } })");
  ASSERT_NE(table, nullptr);
  const Route& r = onlyRoute(*table);
  ASSERT_NE(r.traffic, nullptr);
  ASSERT_NE(r.traffic->retry, nullptr);
  const RetryPolicy& p = *r.traffic->retry;
  EXPECT_EQ(p.num_retries, 1u);
  EXPECT_EQ(p.per_try_timeout_ms, 0);
  EXPECT_EQ(p.base_interval_ms, 25);
  EXPECT_EQ(p.max_interval_ms, 250);
  EXPECT_EQ(p.max_buffered_body, 65536u);
  EXPECT_FALSE(p.retry_non_idempotent);
  EXPECT_TRUE(p.on_gateway_error);
  EXPECT_FALSE(p.on_5xx);
  EXPECT_TRUE(p.retriesStatus(502));
  EXPECT_TRUE(p.retriesStatus(504));
  EXPECT_FALSE(p.retriesStatus(500));
  EXPECT_FALSE(p.retriesStatus(200));

  auto all = oneAction(R"(route {
    cluster: "users"
    retry_policy {
      retry_on: ["5xx", "retriable-status-codes", "reset", "connect-failure"]
      retriable_status_codes: 409
      num_retries: 3
      per_try_timeout { nanos: 1500000 }
      base_interval { nanos: 10000000 }
      max_buffered_body_bytes: 0
      retry_non_idempotent: true
    }
  })");
  ASSERT_NE(all, nullptr);
  const RetryPolicy& q = *onlyRoute(*all).traffic->retry;
  EXPECT_TRUE(q.on_reset && q.on_connect_failure && q.on_5xx);
  EXPECT_TRUE(q.retriesStatus(409));
  EXPECT_TRUE(q.retriesStatus(500));
  EXPECT_FALSE(q.retriesStatus(404));
  EXPECT_EQ(q.num_retries, 3u);
  EXPECT_EQ(q.per_try_timeout_ms, 2);  // rounded up, never 0
  EXPECT_EQ(q.max_interval_ms, 100);   // 10 x base
  EXPECT_EQ(q.max_buffered_body, 0u);
  EXPECT_TRUE(q.retry_non_idempotent);
}

// The validator rejects codes without their condition; the table does not rely on it.
TEST(RouteTableTrafficTest, StatusCodesCountOnlyWithTheirCondition) {
  auto table = oneAction(R"(route {
    cluster: "users"
    retry_policy { retry_on: "connect-failure" retriable_status_codes: 503 }
  })");
  ASSERT_NE(table, nullptr);
  const RetryPolicy& p = *onlyRoute(*table).traffic->retry;
  EXPECT_TRUE(p.status_codes.empty());
  EXPECT_FALSE(p.retriesStatus(503));
}

TEST(RouteTableTrafficTest, MirrorsHashFaultFallbackAndLimits) {
  auto table = oneAction(R"(route {
    cluster: "users"
    request_mirror_policies { cluster: "orders" percentage: 12.5 }
    request_mirror_policies { cluster: "users" }
    hash_policy { header: "X-User" }
    hash_policy { cookie: "session" }
    hash_policy { source_ip: true }
    max_concurrent_requests: 7
    idle_timeout { seconds: 2 }
    fallback { status: 200 body: "degraded" }
    fault {
      delay { fixed_delay { nanos: 5000000 } percentage: 50 }
      abort { http_status: 418 percentage: 0.01 }
    }
  })");
  ASSERT_NE(table, nullptr);
  const TrafficPolicy& t = *onlyRoute(*table).traffic;
  ASSERT_EQ(t.mirrors.size(), 2u);
  EXPECT_EQ(t.mirrors[0].cluster, uint32_t(clusterIndex("orders")));
  EXPECT_EQ(t.mirrors[0].per_million, 125000u);
  EXPECT_EQ(t.mirrors[1].per_million, 1000000u);
  ASSERT_EQ(t.hash.size(), 3u);
  EXPECT_EQ(t.hash[0].kind, HashPolicy::Kind::kHeader);
  EXPECT_EQ(t.hash[0].name, "x-user");  // looked up lower case
  EXPECT_EQ(t.hash[1].kind, HashPolicy::Kind::kCookie);
  EXPECT_EQ(t.hash[1].name, "session");
  EXPECT_EQ(t.hash[2].kind, HashPolicy::Kind::kSourceIp);
  EXPECT_EQ(t.max_concurrent, 7u);
  EXPECT_EQ(t.idle_timeout_ms, 2000);
  EXPECT_TRUE(t.has_fallback);
  EXPECT_EQ(t.fallback_status, 200u);
  EXPECT_EQ(t.fallback_body, "degraded");
  EXPECT_EQ(t.fault_delay_ms, 5);
  EXPECT_EQ(t.fault_delay_per_million, 500000u);
  EXPECT_EQ(t.fault_abort_status, 418u);
  EXPECT_EQ(t.fault_abort_per_million, 100u);
}

TEST(RouteTableTrafficTest, MirrorToAnUnknownClusterFails) {
  auto table = compileText(R"(
    name: "main"
    virtual_hosts {
      name: "all" domains: "*"
      routes { match { prefix: "/" }
               route { cluster: "users" request_mirror_policies { cluster: "nope" } } }
    })");
  ASSERT_FALSE(table.ok());
  EXPECT_THAT(std::string(table.status().message()),
              HasSubstr("mirrors to unknown cluster 'nope'"));
}

}  // namespace
}  // namespace sluice::router
