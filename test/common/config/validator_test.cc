// Semantic errors: what validateConfig finds in a config set that parsed.
#include "common/config/validator.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/config/loader.h"
#include "gtest/gtest.h"
#include "test/common/config/test_util.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using testing::isDiagnostic;
using ::testing::IsEmpty;
using testing::loadYaml;
using ::testing::SizeIs;

// A cluster for routes to name: lines 1 to 5, ending in `---` for the resource under test.
constexpr absl::string_view kUsers = R"(
kind: Cluster
name: users
endpoints:
  - {address: 127.0.0.1, port: 8081}
---)";

// A route configuration for listeners to name: lines 1 to 9, ending in `---`.
constexpr absl::string_view kMain = R"(
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /}
        direct_response: {status: 200}
---)";

// kUsers and a route configuration "main" (virtual host "all" for "*") with `route` as its
// routes, from line 12 on.
LoadResult loadRoute(absl::string_view route) {
  absl::ConsumePrefix(&route, "\n");
  return loadYaml(absl::StrCat(kUsers, R"(
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
)",
                               route));
}

TEST(ValidatorTest, ValidConfigHasNoDiagnostics) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route: {cluster: users, timeout: 2s, prefix_rewrite: /v1/}
)");
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_EQ(r.config.size(), 2);
}

TEST(ValidatorTest, DuplicateNamesPerKind) {
  struct Case {
    const char* kind;
    const char* first;
    const char* second;
    const char* name_field;
    const char* others;  // what the resources need to be valid
  };
  const Case cases[] = {
      {"Cluster", "{kind: Cluster, name: a, type: EDS}", "{kind: Cluster, name: a, type: EDS}",
       "name", "{kind: RouteConfiguration, name: b}"},
      {"ClusterLoadAssignment", "{kind: ClusterLoadAssignment, cluster_name: a}",
       "{kind: ClusterLoadAssignment, cluster_name: a}", "cluster_name",
       "{kind: Cluster, name: a, type: EDS}"},
      {"RouteConfiguration", "{kind: RouteConfiguration, name: a}",
       "{kind: RouteConfiguration, name: a}", "name", "{kind: Cluster, name: b, type: EDS}"},
      {"Listener", "{kind: Listener, name: a, port: 80, route_config: a}",
       "{kind: Listener, name: a, port: 81, route_config: a}", "name",
       "{kind: RouteConfiguration, name: a}"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.kind);
    LoadResult r = loadYaml(absl::StrCat("- ", c.others, "\n- ", c.first, "\n- ", c.second, "\n"));
    EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(3, c.kind, "a", c.name_field,
                                                   absl::StrCat(c.kind,
                                                                " name 'a' is already used at "
                                                                "test.yaml:2"))));
  }
}

TEST(ValidatorTest, RouteNamesAMissingCluster) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route: {cluster: accounts}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(13, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[0].route.cluster",
                                                 "names Cluster 'accounts' which does not exist")));
}

TEST(ValidatorTest, ListenerNamesAMissingRouteConfiguration) {
  LoadResult r = loadYaml(R"(
kind: Listener
name: http
port: 8080
route_config: mian
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(4, "Listener", "http", "route_config",
                                       "names RouteConfiguration 'mian' which does not exist")));
}

TEST(ValidatorTest, WeightedClustersNameAMissingCluster) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route:
          weighted_clusters:
            clusters:
              - {name: users, weight: 90}
              - {name: users-canary, weight: 10}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(
                            17, "RouteConfiguration", "main",
                            "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name",
                            "names Cluster 'users-canary' which does not exist")));
}

TEST(ValidatorTest, WeightedClustersWithZeroTotalWeight) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route:
          weighted_clusters:
            clusters:
              - {name: users, weight: 0}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(14, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.weighted_clusters",
                                       "weights add up to 0")));
}

TEST(ValidatorTest, RegexRejectedByRe2InRouteMatch) {
  // Backreferences are Perl, not RE2.
  LoadResult r = loadRoute(R"(
      - match: {regex: "^/(a+)\\1$"}
        route: {cluster: users}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(12, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[0].match.regex",
                                                 "invalid RE2 regex '^/(a+)\\1$'")));
}

TEST(ValidatorTest, RegexRejectedByRe2InHeaderMatcher) {
  LoadResult r = loadRoute(R"yaml(
      - match:
          prefix: /
          headers:
            - {name: x-user, regex: "(?=admin)"}
        route: {cluster: users}
)yaml");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(15, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].match.headers[0].regex",
                                       "invalid RE2 regex '(?=admin)'")));
}

TEST(ValidatorTest, PortOutOfRange) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
kind: Listener
name: zero
port: 0
route_config: main
---
kind: Listener
name: big
port: 70000
route_config: main
---
kind: Cluster
name: users
endpoints:
  - {address: 127.0.0.1, port: 0}
)"));
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          isDiagnostic(12, "Listener", "zero", "port", "must be between 1 and 65535, got 0"),
          isDiagnostic(17, "Listener", "big", "port", "must be between 1 and 65535, got 70000"),
          isDiagnostic(23, "Cluster", "users", "endpoints[0].port",
                       "must be between 1 and 65535, got 0")));
}

TEST(ValidatorTest, ConnectTimeoutOutOfRange) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: fast
connect_timeout: 0ms
endpoints: [{address: 127.0.0.1, port: 8081}]
---
kind: Cluster
name: slow
connect_timeout: 2m
endpoints: [{address: 127.0.0.1, port: 8081}]
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(3, "Cluster", "fast", "connect_timeout",
                                                 "must be between 1ms and 60s, got 0s"),
                                    isDiagnostic(8, "Cluster", "slow", "connect_timeout",
                                                 "must be between 1ms and 60s, got 120s")));
}

TEST(ValidatorTest, ListenerTimeoutOutOfRange) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
kind: Listener
name: http
port: 8080
route_config: main
timeouts:
  idle: 0s
  request_headers: 2h
)"));
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(15, "Listener", "http", "timeouts.idle",
                                                 "must be between 1ms and 3600s, got 0s"),
                                    isDiagnostic(16, "Listener", "http", "timeouts.request_headers",
                                                 "must be between 1ms and 3600s, got 7200s")));
}

TEST(ValidatorTest, ListenerAddressNotAnIp) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
kind: Listener
name: http
address: localhost
port: 8080
route_config: main
)"));
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(12, "Listener", "http", "address",
                                                 "'localhost' is not an IP address")));
}

TEST(ValidatorTest, OverlappingListenerPorts) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
- {kind: Listener, name: any, port: 8080, route_config: main}
- {kind: Listener, name: local, address: 127.0.0.1, port: 8080, route_config: main}
- {kind: Listener, name: local6, address: "::1", port: 8080, route_config: main}
- {kind: Listener, name: other, address: 127.0.0.1, port: 8081, route_config: main}
)"));
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(11, "Listener", "local", "port",
                                                 "127.0.0.1:8080 overlaps listener 'any' on "
                                                 "0.0.0.0:8080 (test.yaml:10)")));
}

TEST(ValidatorTest, ManyListenersOnOnePortGiveOneDiagnosticEach) {
  std::string yaml(kMain);
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&yaml, "\n- {kind: Listener, name: l", i, ", port: 80, route_config: main}");
  }
  LoadResult r = loadYaml(yaml);
  ASSERT_THAT(r.errors, SizeIs(999));
  EXPECT_THAT(r.errors[0],
              isDiagnostic(11, "Listener", "l1", "port", "0.0.0.0:80 overlaps listener 'l0'"));
}

TEST(ValidatorTest, ListenersOfDisjointNodeGroupsMayShareAPort) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
- {kind: Listener, name: web, node_groups: [web], port: 8080, route_config: main}
- {kind: Listener, name: mobile, node_groups: [mobile], port: 8080, route_config: main}
)"));
  EXPECT_THAT(r.errors, IsEmpty());
}

TEST(ValidatorTest, StaticClusterWithoutEndpoints) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: STATIC
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(1, "Cluster", "users", "endpoints",
                                                 "a STATIC cluster needs at least one endpoint")));
}

TEST(ValidatorTest, EdsClusterWithInlineEndpoints) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: EDS
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(4, "Cluster", "users", "endpoints",
                                                 "an EDS cluster takes its endpoints from a "
                                                 "ClusterLoadAssignment")));
}

TEST(ValidatorTest, AssignmentForAMissingCluster) {
  LoadResult r = loadYaml(R"(
kind: ClusterLoadAssignment
cluster_name: users
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(2, "ClusterLoadAssignment", "users", "cluster_name",
                                       "names Cluster 'users' which does not exist")));
}

TEST(ValidatorTest, AssignmentForAStaticCluster) {
  LoadResult r = loadYaml(absl::StrCat(kUsers, R"(
kind: ClusterLoadAssignment
cluster_name: users
endpoints:
  - {address: 127.0.0.1, port: 8082}
)"));
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(7, "ClusterLoadAssignment", "users", "cluster_name",
                                       "cluster 'users' is STATIC; only EDS clusters")));
}

TEST(ValidatorTest, AssignmentForAnEdsClusterIsValid) {
  LoadResult r = loadYaml(R"(
- {kind: Cluster, name: users, type: EDS}
- kind: ClusterLoadAssignment
  cluster_name: users
  endpoints: [{address: "2001:db8::1", port: 8081, weight: 5}]
)");
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_EQ(r.config.assignments.size(), 1);
}

TEST(ValidatorTest, BadEndpointAddress) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints:
  - {address: 127.0.0.1, port: 8081}
  - {address: users.internal, port: 8081}
  - {address: "127.0.0.2\0", port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(5, "Cluster", "users", "endpoints[1].address",
                                                 "'users.internal' is not an IPv4 or IPv6 address"),
                                    isDiagnostic(6, "Cluster", "users", "endpoints[2].address",
                                                 "is not an IPv4 or IPv6 address")));
}

TEST(ValidatorTest, DuplicateDomainAcrossVirtualHosts) {
  LoadResult r = loadYaml(R"(
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: api
    domains: [api.example.com]
    routes: [{match: {prefix: /}, direct_response: {status: 200}}]
  - name: api2
    domains:
      - API.example.com
    routes: [{match: {prefix: /}, direct_response: {status: 200}}]
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(
                            9, "RouteConfiguration", "main", "virtual_hosts[1].domains[0]",
                            "domain 'API.example.com' is already served by virtual "
                            "host 'api'")));
}

TEST(ValidatorTest, InvalidDomainWildcard) {
  LoadResult r = loadYaml(R"(
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: api
    domains:
      - "*.example.com"
      - "api.*.com"
    routes: [{match: {prefix: /}, direct_response: {status: 200}}]
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(7, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].domains[1]",
                                                 "'api.*.com' is not a host name, '*.suffix' or "
                                                 "'*'")));
}

TEST(ValidatorTest, LowerCaseMethod) {
  LoadResult r = loadRoute(R"(
      - match:
          prefix: /
          methods: [GET, post]
        route: {cluster: users}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(14, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[0].match.methods[1]",
                                                 "methods are case-sensitive; write 'POST'")));
}

TEST(ValidatorTest, ManagedHeaderInAdd) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route: {cluster: users}
        request_headers:
          add:
            - {name: x-request-source, value: gateway}
            - {name: Content-Length, value: "0"}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(17, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].request_headers.add[1].name",
                                       "'Content-Length' is managed by the proxy")));
}

TEST(ValidatorTest, HeaderValueWithCrLf) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route: {cluster: users}
        response_headers:
          add:
            - name: x-injected
              value: "a\r\nSet-Cookie: b"
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(17, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].response_headers.add[0].value",
                                       "may not hold control characters (CR, LF, NUL)")));
}

TEST(ValidatorTest, DirectResponseStatusOutOfRange) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        direct_response:
          status: 99
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(14, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].direct_response.status",
                                       "must be between 200 and 599, got 99")));
}

TEST(ValidatorTest, DirectResponseBodyOnBodilessStatus) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        direct_response:
          status: 204
          body: "HTTP/1.1 200 OK"
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(15, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[0].direct_response.body",
                                                 "must be empty: a 204 response has no body")));
}

TEST(ValidatorTest, RedirectCodeNotARedirect) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        redirect:
          response_code: 304
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(14, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].redirect.response_code",
                                       "must be 301, 302, 303, 307 or 308, got 304")));
}

TEST(ValidatorTest, PrefixRewriteWithoutPrefixMatch) {
  LoadResult r = loadRoute(R"(
      - match: {path: /old}
        route: {cluster: users, prefix_rewrite: /new}
      - match: {regex: "/old/.*"}
        redirect: {prefix_rewrite: /new/}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(13, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.prefix_rewrite",
                                       "needs a prefix match"),
                          isDiagnostic(15, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[1].redirect.prefix_rewrite",
                                       "needs a prefix match")));
}

TEST(ValidatorTest, RouteInEveryGroupNamesAClusterServedOnlyToOne) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
node_groups: [web]
endpoints:
  - {address: 127.0.0.1, port: 8081}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: users}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(14, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.cluster",
                                       "names Cluster 'users', which is served only to node "
                                       "groups web, but this resource is served to every node "
                                       "group")));
}

TEST(ValidatorTest, ReferenceToAClusterOfFewerNodeGroups) {
  LoadResult r = loadYaml(R"(
- {kind: Cluster, name: users, node_groups: [web], type: EDS}
- {kind: ClusterLoadAssignment, cluster_name: users, node_groups: [web, mobile]}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(2, "ClusterLoadAssignment", "users", "cluster_name",
                                       "served only to node groups web, but this "
                                       "resource is served to node groups web, mobile")));
}

TEST(ValidatorTest, BadNodeGroupName) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
node_groups: [web, "mobile apps"]
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(3, "Cluster", "users", "node_groups",
                                       "node group 'mobile apps' may hold only letters, digits")));
}

TEST(ValidatorTest, ReportsEveryError) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
connect_timeout: 5m
endpoints:
  - {address: 127.0.0.1, port: 8081, weight: 5000}
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(3, "Cluster", "users", "connect_timeout",
                                                 "must be between 1ms and 60s"),
                                    isDiagnostic(5, "Cluster", "users", "endpoints[0].weight",
                                                 "must be between 1 and 1000, got 5000"),
                                    isDiagnostic(6, "Cluster", "users", "endpoints[1]",
                                                 "endpoint 127.0.0.1:8081 is listed twice")));
}

TEST(ValidatorTest, ReportsEverySchemaError) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
lb_policy: fastest
connect_timeout: soon
endpoints:
  - {address: 127.0.0.1, port: eighty}
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(isDiagnostic(3, "Cluster", "users", "lb_policy", "got 'fastest'"),
                  isDiagnostic(4, "Cluster", "users", "connect_timeout", "expected a duration"),
                  isDiagnostic(6, "Cluster", "users", "endpoints[0].port", "got 'eighty'")));
}

TEST(ValidatorTest, ResourceWithASchemaErrorIsNotReportedMissing) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
lb_policy: fastest
endpoints:
  - {address: 127.0.0.1, port: 8081}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: users}
      - match: {prefix: /accounts}
        route: {cluster: accounts}
)");
  // 'users' is there but broken: one error for it, none for the route naming it.
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(3, "Cluster", "users", "lb_policy", "got"),
                                    isDiagnostic(16, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[1].route.cluster",
                                                 "names Cluster 'accounts' which does not exist")));
}

TEST(ValidatorTest, StrictDnsClusterWithoutEndpoints) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: STRICT_DNS
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(1, "Cluster", "users", "endpoints",
                                       "a STRICT_DNS cluster needs at least one endpoint")));
}

TEST(ValidatorTest, StrictDnsEndpointNotAHostName) {
  const std::string label63(63, 'a');
  const std::string name253 =
      absl::StrCat(label63, ".", label63, ".", label63, ".", label63.substr(0, 61));
  ASSERT_EQ(name253.size(), 253);
  struct Case {
    std::string address;
    bool valid;
  };
  const Case cases[] = {
      {"users.internal", true},
      {"users", true},
      {"users.internal.", true},
      {"10.0.0.1", true},
      {"2001:db8::1", true},
      {"xn--bcher-kva.example", true},
      {label63 + ".example", true},
      {name253, true},
      {name253 + ".", true},
      {label63 + "a.example", false},
      {name253 + "a", false},
      {"-users.internal", false},
      {"users-.internal", false},
      {"users_a.internal", false},
      {"users..internal", false},
      {".users", false},
      {"users.internal..", false},
      {"users.internal:8080", false},
      {"[::1]", false},
      {"10.0.0.256", false},
      {"10.1", false},
      {"users internal", false},
      {"", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.address);
    LoadResult r = loadYaml(absl::StrCat(R"(
kind: Cluster
name: users
type: STRICT_DNS
endpoints:
  - {address: ")",
                                         c.address, R"(", port: 8080}
)"));
    if (c.valid) {
      EXPECT_THAT(r.errors, IsEmpty());
    } else {
      EXPECT_THAT(r.errors,
                  ElementsAre(isDiagnostic(5, "Cluster", "users", "endpoints[0].address",
                                           absl::StrCat("'", c.address,
                                                        "' is neither an IP address nor a host "
                                                        "name (labels of 1-63"))));
    }
  }
}

TEST(ValidatorTest, StaticEndpointWithAHostNameSuggestsStrictDns) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints:
  - {address: users.internal, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(4, "Cluster", "users", "endpoints[0].address",
                                                 "'users.internal' is not an IPv4 or IPv6 "
                                                 "address; a host name needs type STRICT_DNS")));
}

TEST(ValidatorTest, StrictDnsEndpointListedTwiceInAnotherCase) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: STRICT_DNS
endpoints:
  - {address: users.internal, port: 8081}
  - {address: Users.Internal, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(6, "Cluster", "users", "endpoints[1]",
                                                 "endpoint Users.Internal:8081 is listed twice")));
}

TEST(ValidatorTest, AssignmentForAStrictDnsCluster) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: STRICT_DNS
endpoints: [{address: users.internal, port: 8081}]
---
kind: ClusterLoadAssignment
cluster_name: users
endpoints: [{address: 127.0.0.1, port: 8082}]
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(7, "ClusterLoadAssignment", "users", "cluster_name",
                                       "cluster 'users' is STRICT_DNS; only EDS clusters take "
                                       "assignments")));
}

TEST(ValidatorTest, DnsSettingsOnClustersThatDoNotResolve) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
dns_refresh_rate: 10s
dns_lookup_family: V4_ONLY
endpoints: [{address: 127.0.0.1, port: 8081}]
---
kind: Cluster
name: accounts
type: EDS
dns_lookup_family: AUTO
dns_refresh_rate: 1s
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(3, "Cluster", "users", "dns_refresh_rate",
                                       "applies only to STRICT_DNS clusters; this one is STATIC"),
                          isDiagnostic(4, "Cluster", "users", "dns_lookup_family",
                                       "applies only to STRICT_DNS clusters; this one is STATIC"),
                          isDiagnostic(11, "Cluster", "accounts", "dns_refresh_rate",
                                       "applies only to STRICT_DNS clusters; this one is EDS")));
}

TEST(ValidatorTest, DnsRefreshRateOutOfRange) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: STRICT_DNS
dns_refresh_rate: 50ms
endpoints: [{address: users.internal, port: 8081}]
---
kind: Cluster
name: accounts
type: STRICT_DNS
dns_refresh_rate: 61m
endpoints: [{address: accounts.internal, port: 8081}]
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(4, "Cluster", "users", "dns_refresh_rate",
                                                 "must be between 100ms and 3600s, got 0.05s"),
                                    isDiagnostic(10, "Cluster", "accounts", "dns_refresh_rate",
                                                 "must be between 100ms and 3600s, got 3660s")));
}

TEST(ValidatorTest, EndpointPriorityOutOfRange) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8081, priority: 8}]
---
kind: Cluster
name: accounts
type: EDS
---
kind: ClusterLoadAssignment
cluster_name: accounts
endpoints:
  - {address: 127.0.0.1, port: 8081, priority: 7}
  - {address: 127.0.0.2, port: 8081, priority: 100}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(3, "Cluster", "users", "endpoints[0].priority",
                                                 "must be between 0 and 7, got 8"),
                                    isDiagnostic(13, "ClusterLoadAssignment", "accounts",
                                                 "endpoints[1].priority",
                                                 "must be between 0 and 7, got 100")));
}

TEST(ValidatorTest, HashConfigForAnotherLbPolicy) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
ring_hash: {minimum_ring_size: 1024}
endpoints: [{address: 127.0.0.1, port: 8081}]
---
kind: Cluster
name: accounts
lb_policy: RING_HASH
maglev: {}
endpoints: [{address: 127.0.0.1, port: 8081}]
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(3, "Cluster", "users", "ring_hash",
                                       "applies only with lb_policy RING_HASH; this cluster's "
                                       "lb_policy is ROUND_ROBIN"),
                          isDiagnostic(9, "Cluster", "accounts", "maglev",
                                       "applies only with lb_policy MAGLEV; this cluster's "
                                       "lb_policy is RING_HASH")));
}

TEST(ValidatorTest, RingSizes) {
  LoadResult r = loadYaml(R"(
- kind: Cluster
  name: too-big
  lb_policy: RING_HASH
  ring_hash: {minimum_ring_size: 8388609}
  endpoints: [{address: 127.0.0.1, port: 8081}]
- kind: Cluster
  name: inverted
  lb_policy: RING_HASH
  ring_hash:
    minimum_ring_size: 2048
    maximum_ring_size: 1024
  endpoints: [{address: 127.0.0.1, port: 8081}]
- kind: Cluster
  name: below-default
  lb_policy: RING_HASH
  ring_hash:
    maximum_ring_size: 512
  endpoints: [{address: 127.0.0.1, port: 8081}]
- kind: Cluster
  name: above-default
  lb_policy: RING_HASH
  ring_hash: {minimum_ring_size: 8388608}
  endpoints: [{address: 127.0.0.1, port: 8081}]
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(isDiagnostic(4, "Cluster", "too-big", "ring_hash.minimum_ring_size",
                               "must be between 1 and 8388608, got 8388609"),
                  isDiagnostic(11, "Cluster", "inverted", "ring_hash.maximum_ring_size",
                               "must be at least minimum_ring_size (2048), got 1024"),
                  isDiagnostic(17, "Cluster", "below-default", "ring_hash.maximum_ring_size",
                               "must be at least minimum_ring_size (1024 by default), got 512")));
}

TEST(ValidatorTest, MaglevTableSizeNotAPrime) {
  struct Case {
    uint32_t size;
    const char* phrase;  // empty: valid
  };
  const Case cases[] = {
      {0, ""},
      {2, ""},
      {65537, ""},
      {5000011, ""},
      {1, "must be a prime number, got 1; the next prime is 2"},
      {65536, "must be a prime number, got 65536; the next prime is 65537"},
      {5000010, "must be a prime number, got 5000010; the next prime is 5000011"},
      {5000012, "must be a prime of at most 5000011, got 5000012"},
      {4294967295, "must be a prime of at most 5000011, got 4294967295"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.size);
    LoadResult r = loadYaml(absl::StrCat(R"(
kind: Cluster
name: users
lb_policy: MAGLEV
maglev: {table_size: )",
                                         c.size, R"(}
endpoints: [{address: 127.0.0.1, port: 8081}]
)"));
    if (*c.phrase == '\0') {
      EXPECT_THAT(r.errors, IsEmpty());
    } else {
      EXPECT_THAT(r.errors,
                  ElementsAre(isDiagnostic(4, "Cluster", "users", "maglev.table_size", c.phrase)));
    }
  }
}

TEST(ValidatorTest, HealthCheckWithoutAChecker) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8081}]
health_check:
  interval: 5s
  tcp:
)");
  // `tcp:` with nothing after it is no checker; `tcp: {}` is.
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(4, "Cluster", "users", "health_check",
                                                 "needs http (e.g. http: {path: /healthz}) or "
                                                 "tcp (tcp: {})")));
}

TEST(ValidatorTest, HttpHealthCheckPathAndHost) {
  LoadResult r = loadYaml(R"(
- kind: Cluster
  name: no-path
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check: {http: {host: users.internal}}
- kind: Cluster
  name: relative
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check: {http: {path: healthz}}
- kind: Cluster
  name: spaces
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check:
    http:
      path: "/health check"
- kind: Cluster
  name: crlf
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check:
    http:
      path: "/healthz\r\nX-Injected: 1"
      host: "users internal"
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          isDiagnostic(4, "Cluster", "no-path", "health_check.http.path",
                       "is required, e.g. /healthz"),
          isDiagnostic(8, "Cluster", "relative", "health_check.http.path", "must start with '/'"),
          isDiagnostic(14, "Cluster", "spaces", "health_check.http.path",
                       "may hold only visible ASCII characters (no spaces, CR or LF)"),
          isDiagnostic(20, "Cluster", "crlf", "health_check.http.path",
                       "may hold only visible ASCII characters"),
          isDiagnostic(21, "Cluster", "crlf", "health_check.http.host",
                       "'users internal' is not a host name")));
}

TEST(ValidatorTest, HealthCheckExpectedStatuses) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8081}]
health_check:
  http:
    path: /healthz
    expected_statuses:
      - {min: 200, max: 200}
      - {min: 99, max: 200}
      - {min: 300, max: 204}
      - {min: 200}
      - {min: 500, max: 600}
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(isDiagnostic(9, "Cluster", "users", "health_check.http.expected_statuses[1].min",
                               "must be between 100 and 599, got 99"),
                  isDiagnostic(10, "Cluster", "users", "health_check.http.expected_statuses[2].max",
                               "must be at least min (300), got 204"),
                  isDiagnostic(11, "Cluster", "users", "health_check.http.expected_statuses[3].max",
                               "must be between 100 and 599, got 0"),
                  isDiagnostic(12, "Cluster", "users", "health_check.http.expected_statuses[4].max",
                               "must be between 100 and 599, got 600")));
}

TEST(ValidatorTest, HealthCheckDurationsAndThresholdsOutOfRange) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8081}]
health_check:
  tcp: {}
  interval: 5ms
  timeout: 0s
  interval_jitter: 2h
  unhealthy_threshold: 1001
  healthy_threshold: 5000
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(6, "Cluster", "users", "health_check.interval",
                                       "must be between 10ms and 3600s, got 0.005s"),
                          isDiagnostic(7, "Cluster", "users", "health_check.timeout",
                                       "must be between 1ms and 3600s, got 0s"),
                          isDiagnostic(8, "Cluster", "users", "health_check.interval_jitter",
                                       "must be between 0ms and 3600s, got 7200s"),
                          isDiagnostic(9, "Cluster", "users", "health_check.unhealthy_threshold",
                                       "must be between 1 and 1000, got 1001"),
                          isDiagnostic(10, "Cluster", "users", "health_check.healthy_threshold",
                                       "must be between 1 and 1000, got 5000")));
}

TEST(ValidatorTest, HealthCheckTimeoutLongerThanInterval) {
  LoadResult r = loadYaml(R"(
- kind: Cluster
  name: written
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check: {tcp: {}, interval: 2s, timeout: 3s}
- kind: Cluster
  name: default-timeout
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check: {tcp: {}, interval: 500ms}
- kind: Cluster
  name: default-interval
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check: {tcp: {}, timeout: 10s}
- kind: Cluster
  name: equal
  endpoints: [{address: 127.0.0.1, port: 8081}]
  health_check: {tcp: {}, timeout: 5s}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(4, "Cluster", "written", "health_check.timeout",
                                       "must be at most interval (2s), got 3s"),
                          isDiagnostic(8, "Cluster", "default-timeout", "health_check.timeout",
                                       "must be at most interval (0.5s), is 1s by default"),
                          isDiagnostic(12, "Cluster", "default-interval", "health_check.timeout",
                                       "must be at most interval (5s by default), got 10s")));
}

TEST(ValidatorTest, OutlierDetectionOutOfRange) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8081}]
outlier_detection:
  consecutive_5xx: 1001
  consecutive_gateway_failure: 2000
  base_ejection_time: 0s
  max_ejection_time: 25h
  max_ejection_percent: 101
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          isDiagnostic(5, "Cluster", "users", "outlier_detection.consecutive_5xx",
                       "must be between 0 and 1000, got 1001"),
          isDiagnostic(6, "Cluster", "users", "outlier_detection.consecutive_gateway_failure",
                       "must be between 0 and 1000, got 2000"),
          isDiagnostic(7, "Cluster", "users", "outlier_detection.base_ejection_time",
                       "must be between 1ms and 3600s, got 0s"),
          isDiagnostic(8, "Cluster", "users", "outlier_detection.max_ejection_time",
                       "must be between 1ms and 86400s, got 90000s"),
          isDiagnostic(9, "Cluster", "users", "outlier_detection.max_ejection_percent",
                       "must be between 0 and 100, got 101")));
}

TEST(ValidatorTest, MaxEjectionTimeShorterThanBase) {
  LoadResult r = loadYaml(R"(
- kind: Cluster
  name: written
  endpoints: [{address: 127.0.0.1, port: 8081}]
  outlier_detection: {base_ejection_time: 1m, max_ejection_time: 30s}
- kind: Cluster
  name: default-max
  endpoints: [{address: 127.0.0.1, port: 8081}]
  outlier_detection: {base_ejection_time: 10m}
- kind: Cluster
  name: default-base
  endpoints: [{address: 127.0.0.1, port: 8081}]
  outlier_detection: {max_ejection_time: 10s}
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(isDiagnostic(4, "Cluster", "written", "outlier_detection.max_ejection_time",
                               "must be at least base_ejection_time (60s), got 30s"),
                  isDiagnostic(8, "Cluster", "default-max", "outlier_detection.max_ejection_time",
                               "must be at least base_ejection_time (600s), is 300s by "
                               "default"),
                  isDiagnostic(12, "Cluster", "default-base", "outlier_detection.max_ejection_time",
                               "must be at least base_ejection_time (30s by default), got "
                               "10s")));
}

TEST(ValidatorTest, CircuitBreakers) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8081}]
healthy_panic_threshold: 101
circuit_breakers:
  max_connections: 0
  max_pending_requests: 0
  max_requests: 0
  max_retries: 5
  retry_budget:
    budget_percent: 100.5
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          isDiagnostic(4, "Cluster", "users", "healthy_panic_threshold",
                       "must be between 0 and 100, got 101"),
          isDiagnostic(6, "Cluster", "users", "circuit_breakers.max_connections",
                       "must be at least 1 (0 would refuse every connection); leave it "
                       "out for no limit"),
          isDiagnostic(7, "Cluster", "users", "circuit_breakers.max_pending_requests",
                       "must be at least 1 (0 would refuse every new connection)"),
          isDiagnostic(8, "Cluster", "users", "circuit_breakers.max_requests",
                       "must be at least 1 (0 would refuse every request)"),
          isDiagnostic(10, "Cluster", "users", "circuit_breakers.retry_budget",
                       "retry_budget replaces max_retries; set only one"),
          isDiagnostic(11, "Cluster", "users", "circuit_breakers.retry_budget.budget_percent",
                       "must be a percentage between 0 and 100, got 100.5")));
}

TEST(ValidatorTest, ValidateConfigOnAConfigSetBuiltInCode) {
  ConfigSet config;
  Sourced<v1::Cluster> cluster;
  cluster.resource.set_name("users");
  cluster.origin.file = "api";
  config.clusters.push_back(cluster);
  EXPECT_THAT(validateConfig(config),
              ElementsAre(testing::isDiagnosticIn("api", 0, "Cluster", "users", "endpoints",
                                                  "needs at least one endpoint")));
}

}  // namespace
}  // namespace sluice::config
