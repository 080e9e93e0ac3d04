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
