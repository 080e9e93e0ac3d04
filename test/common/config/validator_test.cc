// Semantic errors: what validateConfig finds in a config set that parsed.
#include "common/config/validator.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/config/loader.h"
#include "gtest/gtest.h"
#include "test/common/config/test_util.h"

namespace sluice::config {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::isDiagnostic;
using ::testing::IsEmpty;
using testing::loadYaml;
using ::testing::Not;
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

TEST(ValidatorTest, ListenerHardeningFieldsInRange) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
kind: Listener
name: http
port: 8080
route_config: main
limits:
  max_connections: 1000
  max_connections_per_ip: 50
  max_connection_rate: 200
  max_request_body_bytes: 10485760
  min_bytes_per_second: 1024
timeouts:
  request_body_idle: 15s
path_handling: {escaped_slashes: KEEP_ENCODED}
)"));
  EXPECT_THAT(r.errors, IsEmpty());
}

TEST(ValidatorTest, ListenerHardeningFieldsOutOfRange) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
kind: Listener
name: http
port: 8080
route_config: main
limits:
  max_connections_per_ip: 100001
  max_connection_rate: 1000001
  max_request_body_bytes: 1099511627777
  min_bytes_per_second: 1048577
timeouts:
  request_body_idle: 0.0001s
)"));
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(15, "Listener", "http", "limits.max_connections_per_ip",
                                       "must be between 1 and 100000, got 100001"),
                          isDiagnostic(16, "Listener", "http", "limits.max_connection_rate",
                                       "must be between 1 and 1000000, got 1000001"),
                          isDiagnostic(17, "Listener", "http", "limits.max_request_body_bytes",
                                       "must be between 1 and 1099511627776, got 1099511627777"),
                          isDiagnostic(18, "Listener", "http", "limits.min_bytes_per_second",
                                       "must be between 1 and 1048576, got 1048577"),
                          isDiagnostic(20, "Listener", "http", "timeouts.request_body_idle",
                                       "must be between 1ms and 3600s, got 0.0001s")));
}

TEST(ValidatorTest, ListenerPerIpLimitAboveTheListenersLimit) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
kind: Listener
name: http
port: 8080
route_config: main
limits: {max_connections: 10, max_connections_per_ip: 11}
timeouts: {request_body_idle: 2h}
)"));
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(14, "Listener", "http", "limits.max_connections_per_ip",
                                       "must not exceed limits.max_connections (10), got 11"),
                          isDiagnostic(15, "Listener", "http", "timeouts.request_body_idle",
                                       "must be between 1ms and 3600s, got 7200s")));
}

TEST(ValidatorTest, UnknownEscapedSlashesValueFromXds) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
kind: Listener
name: http
port: 8080
route_config: main
)"));
  ASSERT_THAT(r.errors, IsEmpty());
  ASSERT_EQ(r.config.listeners.size(), 1u);
  r.config.listeners[0].resource.mutable_path_handling()->set_escaped_slashes(
      static_cast<v1::PathHandling::EscapedSlashes>(7));
  EXPECT_THAT(validateConfig(r.config),
              ElementsAre(isDiagnostic(10, "Listener", "http", "path_handling.escaped_slashes",
                                       "must be REJECT or KEEP_ENCODED, got 7")));
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

// Every field of issue 5 (DNS, load balancing, health checks, outlier detection, circuit
// breakers, priorities, retries, mirrors, hashing, fallback, faults, cookie matching), set.
TEST(ValidatorTest, TrafficManagementConfigHasNoDiagnostics) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: STRICT_DNS
lb_policy: RING_HASH
dns_refresh_rate: 30s
dns_lookup_family: V4_ONLY
endpoints:
  - {address: users-a.internal, port: 8080}
  - {address: USERS-A.internal., port: 8081, priority: 1}
  - {address: 10.0.0.12, port: 8080, weight: 2, priority: 7}
ring_hash: {minimum_ring_size: 4096, maximum_ring_size: 4096}
health_check:
  interval: 2s
  timeout: 2s
  interval_jitter: 500ms
  unhealthy_threshold: 1000
  healthy_threshold: 1
  http:
    path: /healthz?full=1
    host: users.internal:8080
    expected_statuses: [{min: 200, max: 299}, {min: 418, max: 418}]
outlier_detection:
  consecutive_5xx: 0
  consecutive_gateway_failure: 1000
  base_ejection_time: 1h
  max_ejection_time: 24h
  max_ejection_percent: 100
circuit_breakers:
  max_connections: 1
  max_pending_requests: 1
  max_requests: 1000
  retry_budget: {budget_percent: 0, min_retry_concurrency: 0}
healthy_panic_threshold: 0
---
kind: Cluster
name: shadow
lb_policy: MAGLEV
maglev: {table_size: 5000011}
endpoints: [{address: "::1", port: 8080}]
health_check: {tcp: {}}
outlier_detection: {base_ejection_time: 100ms}
circuit_breakers: {max_retries: 0}
healthy_panic_threshold: 100
---
kind: Cluster
name: canary
type: EDS
---
kind: ClusterLoadAssignment
cluster_name: canary
endpoints:
  - {address: 10.0.1.10, port: 8080}
  - {address: 10.0.2.10, port: 8080, priority: 1}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match:
          prefix: /
          cookies:
            - {name: canary, exact: always}
            - {name: __Host-session, regex: "[a-f0-9]{32}", invert: true}
            - {name: opt-out, present: false}
        route: {cluster: canary}
      - match: {prefix: /}
        route:
          cluster: users
          retry_policy:
            retry_on: [5xx, gateway-error, connect-failure, reset, retriable-status-codes]
            retriable_status_codes: [409, 429]
            num_retries: 10
            per_try_timeout: 1h
            base_interval: 60s
            max_interval: 60s
            max_buffered_body_bytes: 16777216
            retry_non_idempotent: true
          idle_timeout: 1ms
          request_mirror_policies:
            - {cluster: users}
            - {cluster: shadow, percentage: 0.5}
          hash_policy:
            - {header: x-user-id}
            - {cookie: session}
            - {source_ip: true}
          max_concurrent_requests: 1
          fallback: {status: 204}
          fault:
            delay: {fixed_delay: 1h, percentage: 100}
            abort: {http_status: 599, percentage: 0}
)");
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_EQ(r.config.size(), 5);
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

TEST(ValidatorTest, RetryOnEmptyOrUnknown) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /a}
        route:
          cluster: users
          retry_policy: {num_retries: 2}
      - match: {prefix: /b}
        route:
          cluster: users
          retry_policy:
            retry_on: [5xx, 5XX, timeout]
)");
  const std::string conditions =
      "5xx, gateway-error, connect-failure, reset, retriable-status-codes";
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(15, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.retry_policy.retry_on",
                                       "needs at least one of " + conditions),
                          isDiagnostic(20, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[1].route.retry_policy.retry_on[1]",
                                       "'5XX' is not a retry condition; use one of " + conditions),
                          isDiagnostic(20, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[1].route.retry_policy.retry_on[2]",
                                       "'timeout' is not a retry condition")));
}

TEST(ValidatorTest, RetriableStatusCodesAndTheirCondition) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /a}
        route:
          cluster: users
          retry_policy:
            retry_on: [reset, retriable-status-codes]
      - match: {prefix: /b}
        route:
          cluster: users
          retry_policy:
            retry_on: [5xx]
            retriable_status_codes: [409]
      - match: {prefix: /c}
        route:
          cluster: users
          retry_policy:
            retry_on: [retriable-status-codes]
            retriable_status_codes: [409, 99, 600]
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          isDiagnostic(16, "RouteConfiguration", "main",
                       "virtual_hosts[0].routes[0].route.retry_policy.retry_on[1]",
                       "needs retriable_status_codes, the statuses to retry"),
          isDiagnostic(22, "RouteConfiguration", "main",
                       "virtual_hosts[0].routes[1].route.retry_policy.retriable_status_codes",
                       "apply only with retry_on 'retriable-status-codes'; add it to "
                       "retry_on"),
          isDiagnostic(28, "RouteConfiguration", "main",
                       "virtual_hosts[0].routes[2].route.retry_policy."
                       "retriable_status_codes[1]",
                       "must be between 100 and 599, got 99"),
          isDiagnostic(28, "RouteConfiguration", "main",
                       "virtual_hosts[0].routes[2].route.retry_policy."
                       "retriable_status_codes[2]",
                       "must be between 100 and 599, got 600")));
}

TEST(ValidatorTest, RetryNumbersOutOfRange) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route:
          cluster: users
          retry_policy:
            retry_on: [gateway-error]
            num_retries: 11
            per_try_timeout: 0s
            base_interval: 2m
            max_interval: 2h
            max_buffered_body_bytes: 16777217
)");
  const std::string rp = "virtual_hosts[0].routes[0].route.retry_policy";
  EXPECT_THAT(
      r.errors,
      ElementsAre(isDiagnostic(17, "RouteConfiguration", "main", rp + ".num_retries",
                               "must be between 0 and 10, got 11"),
                  isDiagnostic(18, "RouteConfiguration", "main", rp + ".per_try_timeout",
                               "must be between 1ms and 3600s, got 0s"),
                  isDiagnostic(19, "RouteConfiguration", "main", rp + ".base_interval",
                               "must be between 1ms and 60s, got 120s"),
                  isDiagnostic(20, "RouteConfiguration", "main", rp + ".max_interval",
                               "must be between 1ms and 3600s, got 7200s"),
                  isDiagnostic(21, "RouteConfiguration", "main", rp + ".max_buffered_body_bytes",
                               "must be between 0 and 16777216, got 16777217")));
}

TEST(ValidatorTest, RetryMaxIntervalShorterThanBase) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /a}
        route:
          cluster: users
          retry_policy: {retry_on: [reset], base_interval: 1s, max_interval: 500ms}
      - match: {prefix: /b}
        route:
          cluster: users
          retry_policy: {retry_on: [reset], max_interval: 10ms}
      - match: {prefix: /c}
        route:
          cluster: users
          retry_policy: {retry_on: [reset], base_interval: 1s}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(15, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.retry_policy.max_interval",
                                       "must be at least base_interval (1s), got 0.5s"),
                          isDiagnostic(19, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[1].route.retry_policy.max_interval",
                                       "must be at least base_interval (0.025s by default), got "
                                       "0.01s")));
}

TEST(ValidatorTest, IdleTimeoutAndMaxConcurrentRequests) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /a}
        route: {cluster: users, idle_timeout: 0s, max_concurrent_requests: 0}
      - match: {prefix: /b}
        route:
          cluster: users
          idle_timeout: 2h
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(13, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.idle_timeout",
                                       "must be between 1ms and 3600s, got 0s"),
                          isDiagnostic(13, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.max_concurrent_requests",
                                       "must be at least 1 (0 would refuse every request); leave "
                                       "it out for no limit"),
                          isDiagnostic(17, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[1].route.idle_timeout",
                                       "must be between 1ms and 3600s, got 7200s")));
}

TEST(ValidatorTest, RequestMirrorPolicies) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route:
          cluster: users
          request_mirror_policies:
            - {cluster: users}
            - {cluster: shadow}
            - {percentage: 10}
            - {cluster: users, percentage: 100.01}
)");
  const std::string mp = "virtual_hosts[0].routes[0].route.request_mirror_policies";
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(17, "RouteConfiguration", "main", mp + "[1].cluster",
                                       "names Cluster 'shadow' which does not exist"),
                          isDiagnostic(18, "RouteConfiguration", "main", mp + "[2].cluster",
                                       "needs the name of a Cluster"),
                          isDiagnostic(19, "RouteConfiguration", "main", mp + "[3].percentage",
                                       "must be a percentage between 0 and 100, got 100.01")));
}

TEST(ValidatorTest, MirrorToAClusterOfFewerNodeGroups) {
  LoadResult r = loadYaml(R"(
- {kind: Cluster, name: users, endpoints: [{address: 127.0.0.1, port: 8081}]}
- {kind: Cluster, name: shadow, node_groups: [web], endpoints: [{address: 127.0.0.1, port: 8082}]}
- kind: RouteConfiguration
  name: main
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - match: {prefix: /}
          route:
            cluster: users
            request_mirror_policies: [{cluster: shadow}]
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(12, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.request_mirror_policies["
                                       "0].cluster",
                                       "names Cluster 'shadow', which is served only to node "
                                       "groups web, but this resource is served to every node "
                                       "group")));
}

TEST(ValidatorTest, HashPolicies) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /}
        route:
          cluster: users
          hash_policy:
            - {header: x-user-id}
            - {}
            - {header: "x user"}
            - {cookie: ""}
            - {cookie: "session;"}
            - {source_ip: false}
)");
  const std::string hp = "virtual_hosts[0].routes[0].route.hash_policy";
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(17, "RouteConfiguration", "main", hp + "[1]",
                                       "needs one of header, cookie or source_ip"),
                          isDiagnostic(18, "RouteConfiguration", "main", hp + "[2].header",
                                       "'x user' is not a valid header name"),
                          isDiagnostic(19, "RouteConfiguration", "main", hp + "[3].cookie",
                                       "needs a cookie name"),
                          isDiagnostic(20, "RouteConfiguration", "main", hp + "[4].cookie",
                                       "'session;' is not a valid cookie name"),
                          isDiagnostic(21, "RouteConfiguration", "main", hp + "[5].source_ip",
                                       "must be true; leave the entry out to not hash on the "
                                       "client address")));
}

TEST(ValidatorTest, FallbackFollowsTheDirectResponseRules) {
  LoadResult r = loadRoute(absl::StrCat(R"(
      - match: {prefix: /a}
        route:
          cluster: users
          fallback: {status: 99}
      - match: {prefix: /b}
        route:
          cluster: users
          fallback:
            status: 304
            body: "not modified"
      - match: {prefix: /c}
        route:
          cluster: users
          fallback:
            status: 503
            body: ")",
                                        std::string(64 * 1024 + 1, 'x'), R"("
)"));
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(15, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[0].route.fallback.status",
                                                 "must be between 200 and 599, got 99"),
                                    isDiagnostic(21, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[1].route.fallback.body",
                                                 "must be empty: a 304 response has no body"),
                                    isDiagnostic(27, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[2].route.fallback.body",
                                                 "is 65537 bytes; at most 65536")));
}

TEST(ValidatorTest, FaultInjection) {
  LoadResult r = loadRoute(R"(
      - match: {prefix: /a}
        route: {cluster: users, fault: {}}
      - match: {prefix: /b}
        route:
          cluster: users
          fault:
            delay: {percentage: 10}
            abort: {percentage: 101}
      - match: {prefix: /c}
        route:
          cluster: users
          fault:
            delay:
              fixed_delay: 2h
              percentage: 50
            abort:
              http_status: 100
              percentage: 50
)");
  const std::string b = "virtual_hosts[0].routes[1].route.fault";
  const std::string c = "virtual_hosts[0].routes[2].route.fault";
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(13, "RouteConfiguration", "main",
                                       "virtual_hosts[0].routes[0].route.fault",
                                       "needs delay, abort or both"),
                          isDiagnostic(18, "RouteConfiguration", "main", b + ".delay.fixed_delay",
                                       "is required (1ms-1h)"),
                          isDiagnostic(19, "RouteConfiguration", "main", b + ".abort.http_status",
                                       "must be between 200 and 599, got 0"),
                          isDiagnostic(19, "RouteConfiguration", "main", b + ".abort.percentage",
                                       "must be a percentage between 0 and 100, got 101"),
                          isDiagnostic(25, "RouteConfiguration", "main", c + ".delay.fixed_delay",
                                       "must be between 1ms and 3600s, got 7200s"),
                          isDiagnostic(28, "RouteConfiguration", "main", c + ".abort.http_status",
                                       "must be between 200 and 599, got 100")));
}

TEST(ValidatorTest, CookieMatchers) {
  LoadResult r = loadRoute(R"(
      - match:
          prefix: /
          cookies:
            - {name: canary, exact: "true"}
            - {exact: "true"}
            - {name: "canary=1", present: true}
            - {name: canary}
            - {name: canary, regex: "(?<n>a)\\k<n>"}
        route: {cluster: users}
)");
  const std::string cp = "virtual_hosts[0].routes[0].match.cookies";
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          isDiagnostic(16, "RouteConfiguration", "main", cp + "[1].name", "needs a cookie name"),
          isDiagnostic(17, "RouteConfiguration", "main", cp + "[2].name",
                       "'canary=1' is not a valid cookie name"),
          isDiagnostic(18, "RouteConfiguration", "main", cp + "[3]",
                       "needs one of exact, regex or present"),
          isDiagnostic(19, "RouteConfiguration", "main", cp + "[4].regex", "invalid RE2 regex")));
}

// Percentages that are NaN cannot be written in YAML but can arrive over xDS.
TEST(ValidatorTest, NanPercentagesBuiltInCode) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  ConfigSet config;
  Sourced<v1::Cluster> cluster;
  cluster.origin.file = "api";
  cluster.resource.set_name("users");
  v1::Endpoint* e = cluster.resource.add_endpoints();
  e->set_address("127.0.0.1");
  e->set_port(8081);
  cluster.resource.mutable_circuit_breakers()->mutable_retry_budget()->set_budget_percent(nan);
  config.clusters.push_back(cluster);
  Sourced<v1::RouteConfiguration> routes;
  routes.origin.file = "api";
  routes.resource.set_name("main");
  v1::VirtualHost* vh = routes.resource.add_virtual_hosts();
  vh->set_name("all");
  vh->add_domains("*");
  v1::Route* route = vh->add_routes();
  route->mutable_match()->set_prefix("/");
  v1::RouteAction* action = route->mutable_route();
  action->set_cluster("users");
  v1::RequestMirrorPolicy* mirror = action->add_request_mirror_policies();
  mirror->set_cluster("users");
  mirror->set_percentage(nan);
  action->mutable_fault()->mutable_delay()->mutable_fixed_delay()->set_seconds(1);
  action->mutable_fault()->mutable_delay()->set_percentage(nan);
  action->mutable_fault()->mutable_abort()->set_http_status(503);
  action->mutable_fault()->mutable_abort()->set_percentage(-nan);
  config.route_configs.push_back(routes);
  const std::string ap = "virtual_hosts[0].routes[0].route";
  EXPECT_THAT(
      validateConfig(config),
      ElementsAre(testing::isDiagnosticIn("api", 0, "RouteConfiguration", "main",
                                          ap + ".request_mirror_policies[0].percentage",
                                          "must be a percentage between 0 and 100, got nan"),
                  testing::isDiagnosticIn("api", 0, "RouteConfiguration", "main",
                                          ap + ".fault.delay.percentage",
                                          "must be a percentage between 0 and 100, got nan"),
                  testing::isDiagnosticIn("api", 0, "RouteConfiguration", "main",
                                          ap + ".fault.abort.percentage",
                                          "must be a percentage between 0 and 100, got"),
                  testing::isDiagnosticIn("api", 0, "Cluster", "users",
                                          "circuit_breakers.retry_budget.budget_percent",
                                          "must be a percentage between 0 and 100, got nan")));
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

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.field + ": " + e.message);
  return out;
}

TEST(ValidatorTest, ConsumersCredentialsAreCheckedAndUnique) {
  LoadResult r = loadYaml(R"(
kind: Consumer
name: alice
api_keys:
  - value: {inline_string: short}
  - sha256: nothex
basic_auth:
  - {username: "a:b", password_hash: "$apr1$xyz"}
hmac_keys:
  - {key_id: k1, secret: {inline_string: tooshort}}
jwt_subjects: [u1]
---
kind: Consumer
name: bob
api_keys:
  - value: {inline_string: short}
hmac_keys:
  - {key_id: k1, secret: {filename: /etc/secret}}
jwt_subjects: [u1]
)");
  std::vector<std::string> m = messages(r);
  EXPECT_THAT(m, Contains(HasSubstr("api_keys[0].value: an API key needs at least 16")));
  EXPECT_THAT(m, Contains(HasSubstr("api_keys[1].sha256: must be 64 hex digits")));
  EXPECT_THAT(m, Contains(HasSubstr("basic_auth[0].username")));
  EXPECT_THAT(m, Contains(HasSubstr("basic_auth[0].password_hash: must be a bcrypt")));
  EXPECT_THAT(m, Contains(HasSubstr("hmac_keys[0].secret: an HMAC secret needs at least 32")));
  EXPECT_THAT(m, Contains(HasSubstr("key id 'k1' is also consumer 'alice'")));
  EXPECT_THAT(m, Contains(HasSubstr("subject 'u1' is also consumer 'alice'")));
  EXPECT_THAT(m, Contains(HasSubstr("this key is also consumer 'alice'")));
  for (const std::string& line : m) EXPECT_THAT(line, Not(HasSubstr("short\n")));
}

TEST(ValidatorTest, RemoteJwksSchemeMatchesTheClusterTls) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: plain
endpoints: [{address: 127.0.0.1, port: 8080}]
---
kind: Cluster
name: secure
endpoints: [{address: 127.0.0.1, port: 8443}]
tls: {validation: {trusted_ca: {filename: /etc/ca.pem}}}
---
kind: RouteConfiguration
name: main
jwt_providers:
  - {name: a, issuer: x, remote_jwks: {uri: "https://idp/jwks", cluster: plain}}
  - {name: b, issuer: x, remote_jwks: {uri: "http://idp/jwks", cluster: secure}}
  - {name: c, issuer: x, remote_jwks: {uri: "https://idp/jwks", cluster: secure}}
  - {name: d, issuer: x, remote_jwks: {uri: "http://idp/jwks", cluster: plain}}
virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: plain}}]}]
)");
  std::vector<std::string> m = messages(r);
  EXPECT_THAT(m, ElementsAre(HasSubstr("jwt_providers[0].remote_jwks.uri: is https:// but Cluster "
                                       "'plain' has no tls"),
                             HasSubstr("jwt_providers[1].remote_jwks.uri: is http:// but Cluster "
                                       "'secure' connects with tls")));
}

TEST(ValidatorTest, AccessPoliciesAreChecked) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: web
endpoints: [{address: 127.0.0.1, port: 8080}]
---
kind: RouteConfiguration
name: main
jwt_providers:
  - {name: idp, remote_jwks: {uri: "ftp://x", cluster: nowhere}}
virtual_hosts:
  - name: default
    domains: ["*"]
    access:
      ip_filter: {allow: [10.0.0.0/33, "not-an-ip"]}
      authentication: {jwt_providers: [other]}
      rbac:
        rules:
          - {consumers: [carol], methods: [get], source_ips: [300.1.1.1], paths: [{regex: "("}]}
    routes:
      - match: {prefix: /}
        route: {cluster: web}
        access: {authentication: {}, rbac: {default_action: DENY}}
---
kind: Listener
name: http
port: 8080
route_config: main
xff_num_trusted_hops: 11
tls: {}
)");
  std::vector<std::string> m = messages(r);
  EXPECT_THAT(m, Contains(HasSubstr("jwt_providers[0].issuer: is required")));
  EXPECT_THAT(m, Contains(HasSubstr("remote_jwks.uri: must be an http:// or https:// URL")));
  EXPECT_THAT(m, Contains(HasSubstr("names Cluster 'nowhere' which does not exist")));
  EXPECT_THAT(m, Contains(HasSubstr("ip_filter.allow[0]: '10.0.0.0/33' is not an address")));
  EXPECT_THAT(m, Contains(HasSubstr("ip_filter.allow[1]: 'not-an-ip'")));
  EXPECT_THAT(m, Contains(HasSubstr("names JWT provider 'other'")));
  EXPECT_THAT(m, Contains(HasSubstr("names Consumer 'carol' which does not exist")));
  EXPECT_THAT(m, Contains(HasSubstr("methods[0]: 'get' is not an upper-case HTTP method")));
  EXPECT_THAT(m, Contains(HasSubstr("source_ips[0]: '300.1.1.1'")));
  EXPECT_THAT(m, Contains(HasSubstr("paths[0].regex: invalid RE2 regex")));
  EXPECT_THAT(m, Contains(HasSubstr("authentication: needs at least one of api_key")));
  EXPECT_THAT(m, Contains(HasSubstr("rbac: denies every request")));
  EXPECT_THAT(m, Contains(HasSubstr("xff_num_trusted_hops: must be between 0 and 10")));
  EXPECT_THAT(m, Contains(HasSubstr("tls.certificates: needs at least one certificate")));
}

// A listener with every TLS field set, valid; kMain fills lines 1-9.
constexpr absl::string_view kTlsListener = R"(
kind: Listener
name: https
port: 8443
route_config: main
tls:
  certificates:
    - certificate_chain: {filename: /etc/sluice/a.pem}
      private_key: {filename: /etc/sluice/a.key}
      server_names: [a.example.com, "*.a.example.com"]
    - certificate_chain: {inline_string: "-----BEGIN CERTIFICATE-----"}
      private_key: {filename: /etc/sluice/b.key}
  params:
    min_version: TLS_V1_2
    max_version: TLS_V1_3
    cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]
  alpn_protocols: [http/1.1, http/1.0]
  client_certificate: REQUIRE
  client_validation:
    trusted_ca: {filename: /etc/sluice/ca.pem}
    match_subject_alt_names: [spiffe://example.com/client, "*.example.com", ops@example.com]
  session_timeout: 10m
)";

TEST(ValidatorTest, TlsListenerWithEveryFieldIsValidAndNoFileIsRead) {
  // The files do not exist here: the validator never reads them (the control plane does not
  // have the proxy's files).
  LoadResult r = loadYaml(absl::StrCat(kMain, kTlsListener));
  EXPECT_THAT(r.errors, IsEmpty());
}

TEST(ValidatorTest, TlsListenerErrors) {
  struct Case {
    const char* tls;  // the listener's tls, in flow style
    const char* field;
    const char* phrase;
  };
  const Case cases[] = {
      {"{}", "tls.certificates", "needs at least one certificate"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}}]}",
       "tls.certificates[0].private_key", "is required: a filename or an inline_string"},
      {"{certificates: [{private_key: {filename: /a.key}}]}",
       "tls.certificates[0].certificate_chain", "is required"},
      {"{certificates: [{certificate_chain: {filename: \"\"}, private_key: {filename: /a.key}}]}",
       "tls.certificates[0].certificate_chain.filename", "must be a file's path"},
      {"{certificates: [{certificate_chain: {inline_string: \"\"}, private_key: {filename: "
       "/a.key}}]}",
       "tls.certificates[0].certificate_chain.inline_string", "is empty"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}, "
       "server_names: [\"*\"]}]}",
       "tls.certificates[0].server_names[0]", "is not a server name"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}, "
       "server_names: [a.test]}, {certificate_chain: {filename: /b.pem}, private_key: "
       "{filename: /b.key}, server_names: [A.test]}]}",
       "tls.certificates[1].server_names[0]", "'A.test' is already served by certificates[0]"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "params: {min_version: TLS_V1_3, max_version: TLS_V1_2}}",
       "tls.params.max_version", "below min_version"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "params: {min_version: TLS_V1_3, cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]}}",
       "tls.params.cipher_suites", "apply to TLS 1.2 only"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "params: {cipher_suites: [\"AES:RC4\"]}}",
       "tls.params.cipher_suites[0]", "is not a cipher suite name"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "alpn_protocols: [h2]}",
       "tls.alpn_protocols[0]", "'h2' is not served"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "alpn_protocols: [\"\"]}",
       "tls.alpn_protocols[0]", "'' is not served"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "alpn_protocols: [http/1.1, http/1.1]}",
       "tls.alpn_protocols[1]", "listed twice"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "client_certificate: OPTIONAL}",
       "tls.client_validation.trusted_ca", "is required: client_certificate is OPTIONAL"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "client_validation: {trusted_ca: {filename: /ca.pem}}}",
       "tls.client_validation", "applies only when client_certificate is OPTIONAL or REQUIRE"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "client_certificate: REQUIRE, client_validation: {trusted_ca: {filename: /ca.pem}, "
       "match_subject_alt_names: [\"*.*.test\"]}}",
       "tls.client_validation.match_subject_alt_names[0]", "is not a subjectAltName to match"},
      {"{certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}], "
       "session_timeout: 25h}",
       "tls.session_timeout", "must be between 0ms and 86400s"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tls);
    LoadResult r = loadYaml(absl::StrCat(
        kMain, "\n{kind: Listener, name: https, port: 8443, route_config: main, tls: ", c.tls,
        "}\n"));
    EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(0, "Listener", "https", c.field, c.phrase)));
  }
}

TEST(ValidatorTest, HttpsRedirect) {
  LoadResult r = loadYaml(absl::StrCat(kMain, R"(
- {kind: Listener, name: ok, port: 80, route_config: main, https_redirect: {}}
- {kind: Listener, name: ok2, port: 81, route_config: main,
   https_redirect: {port: 8443, response_code: 308}}
- {kind: Listener, name: code, port: 82, route_config: main, https_redirect: {response_code: 303}}
- {kind: Listener, name: port, port: 83, route_config: main, https_redirect: {port: 70000}}
- {kind: Listener, name: both, port: 84, route_config: main, https_redirect: {},
   tls: {certificates: [{certificate_chain: {filename: /a.pem}, private_key: {filename: /a.key}}]}}
)"));
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(13, "Listener", "code", "https_redirect.response_code",
                                       "must be 301, 302, 307 or 308, got 303"),
                          isDiagnostic(14, "Listener", "port", "https_redirect.port",
                                       "must be between 1 and 65535, got 70000"),
                          isDiagnostic(15, "Listener", "both", "https_redirect",
                                       "this listener already serves https")));
}

TEST(ValidatorTest, UpstreamTls) {
  EXPECT_THAT(loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8443}]
tls:
  sni: users.internal
  validation:
    trusted_ca: {filename: /etc/sluice/ca.pem}
    match_subject_alt_names: [users.internal]
  client_certificate:
    certificate_chain: {filename: /etc/sluice/client.pem}
    private_key: {filename: /etc/sluice/client.key}
  params: {min_version: TLS_V1_3}
)")
                  .errors,
              IsEmpty());
  struct Case {
    const char* tls;
    const char* field;
    const char* phrase;
  };
  const Case cases[] = {
      {"{}", "tls.validation.trusted_ca", "is required: upstream certificates are always verified"},
      {"{sni: users.internal}", "tls.validation.trusted_ca", "is required"},
      {"{validation: {trusted_ca: {filename: /ca.pem}}, sni: \"bad name\"}", "tls.sni",
       "'bad name' is not a DNS name"},
      {"{validation: {trusted_ca: {filename: /ca.pem}}, client_certificate: "
       "{certificate_chain: {filename: /c.pem}}}",
       "tls.client_certificate.private_key", "is required"},
      {"{validation: {trusted_ca: {filename: /ca.pem}}, client_certificate: "
       "{certificate_chain: {filename: /c.pem}, private_key: {filename: /c.key}, "
       "server_names: [a.test]}}",
       "tls.client_certificate.server_names", "apply to listener certificates only"},
      {"{validation: {trusted_ca: {filename: /ca.pem}}, params: {min_version: TLS_V1_3, "
       "max_version: TLS_V1_2}}",
       "tls.params.max_version", "below min_version"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tls);
    LoadResult r = loadYaml(absl::StrCat(
        "{kind: Cluster, name: users, endpoints: [{address: 127.0.0.1, port: 8443}], tls: ", c.tls,
        "}\n"));
    EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(0, "Cluster", "users", c.field, c.phrase)));
  }
}

}  // namespace
}  // namespace sluice::config
