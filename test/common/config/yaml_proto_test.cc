// Schema and type errors (YAML -> proto), durations and the proto -> YAML rendering.
#include "common/config/yaml_proto.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/config/loader.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "test/common/config/test_util.h"
#include "yaml-cpp/yaml.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using testing::isDiagnostic;
using ::testing::IsEmpty;
using testing::loadYaml;
using ::testing::SizeIs;

TEST(YamlProtoTest, UnknownFieldNamesTheKnownOnes) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints:
  - address: 127.0.0.1
    port: 8081
    wieght: 2
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(6, "Cluster", "users", "endpoints[0].wieght",
                                       "unknown field in Endpoint; known fields: address, port, "
                                       "weight")));
  EXPECT_EQ(r.config.size(), 0);
}

TEST(YamlProtoTest, StringForAnIntegerField) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints:
  - {address: 127.0.0.1, port: http}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(4, "Cluster", "users", "endpoints[0].port",
                                                 "expected a non-negative integer, got 'http'")));
}

TEST(YamlProtoTest, NonBooleanForABoolField) {
  LoadResult r = loadYaml(R"(
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /}
        redirect: {strip_query: abc}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(8, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[0].redirect.strip_query",
                                                 "expected true or false, got 'abc'")));
}

TEST(YamlProtoTest, NegativeForAnUnsignedField) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints:
  - {address: 127.0.0.1, port: 8081, weight: -1}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(4, "Cluster", "users", "endpoints[0].weight",
                                                 "must not be negative")));
}

TEST(YamlProtoTest, Uint32OutOfRange) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
max_idle_connections_per_endpoint: 4294967296
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(3, "Cluster", "users", "max_idle_connections_per_endpoint",
                                       "got '4294967296' (out of range)")));
}

TEST(YamlProtoTest, BadEnumListsTheValidValues) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
lb_policy: FASTEST
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(
                  3, "Cluster", "users", "lb_policy",
                  "one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, got 'FASTEST'")));
}

TEST(YamlProtoTest, BadDuration) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
connect_timeout: 5 seconds
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(3, "Cluster", "users", "connect_timeout",
                                                 "expected a duration like '5s'")));
}

TEST(YamlProtoTest, FieldGivenTwice) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
connect_timeout: 1s
connectTimeout: 2s
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(4, "Cluster", "users", "connect_timeout",
                                                 "given more than once")));
}

TEST(YamlProtoTest, TwoMembersOfOneOneof) {
  LoadResult r = loadYaml(R"(
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match:
          prefix: /
          path: /index.html
        direct_response: {status: 200}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(9, "RouteConfiguration", "main",
                                                 "virtual_hosts[0].routes[0].match.path",
                                                 "'prefix' and 'path' are alternatives; give only "
                                                 "one of path, prefix, regex")));
}

TEST(YamlProtoTest, NodeGroupsNotAList) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
node_groups: web
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(3, "Cluster", "", "node_groups",
                                                 "expected a list of node group names")));
}

TEST(YamlProtoTest, CamelCaseKeysAreAccepted) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
connectTimeout: 250ms
lbPolicy: RANDOM
maxIdleConnectionsPerEndpoint: 8
endpoints:
  - {address: 127.0.0.1, port: 8081}
---
kind: Listener
name: http
port: 8080
routeConfig: main
limits: {maxRequestHeadersKb: 32}
---
kind: RouteConfiguration
name: main
virtualHosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: users, prefixRewrite: /v2/}
)");
  ASSERT_THAT(r.errors, IsEmpty());
  ASSERT_THAT(r.config.clusters, SizeIs(1));
  const v1::Cluster& c = r.config.clusters[0].resource;
  EXPECT_EQ(c.connect_timeout().nanos(), 250'000'000);
  EXPECT_EQ(c.lb_policy(), v1::Cluster::RANDOM);
  EXPECT_EQ(c.max_idle_connections_per_endpoint(), 8);
  ASSERT_THAT(r.config.listeners, SizeIs(1));
  EXPECT_EQ(r.config.listeners[0].resource.route_config(), "main");
  EXPECT_EQ(r.config.listeners[0].resource.limits().max_request_headers_kb(), 32);
  ASSERT_THAT(r.config.route_configs, SizeIs(1));
  EXPECT_EQ(r.config.route_configs[0].resource.virtual_hosts(0).routes(0).route().prefix_rewrite(),
            "/v2/");
}

TEST(YamlProtoTest, EnumsIgnoreCase) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
type: eds
lb_policy: Least_Request
)");
  ASSERT_THAT(r.errors, IsEmpty());
  ASSERT_THAT(r.config.clusters, SizeIs(1));
  EXPECT_EQ(r.config.clusters[0].resource.type(), v1::Cluster::EDS);
  EXPECT_EQ(r.config.clusters[0].resource.lb_policy(), v1::Cluster::LEAST_REQUEST);
}

TEST(YamlProtoTest, FieldLinesAreRecorded) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints:
  - address: 127.0.0.1
    port: 8081
)");
  ASSERT_THAT(r.errors, IsEmpty());
  const Origin& origin = r.config.clusters[0].origin;
  EXPECT_EQ(origin.file, "test.yaml");
  EXPECT_EQ(origin.line, 1);
  EXPECT_EQ(origin.lineOf("endpoints[0].port"), 5);
  EXPECT_EQ(origin.lineOf("endpoints[0].weight"), 4);  // not written: its closest ancestor's
  EXPECT_EQ(origin.lineOf("lb_policy"), 1);
}

struct DurationCase {
  const char* text;
  int64_t seconds;
  int32_t nanos;
};

TEST(DurationTest, ParsesAndFormatsBack) {
  const DurationCase cases[] = {
      {"250ms", 0, 250'000'000},
      {"1.5s", 1, 500'000'000},
      {"2m", 120, 0},
      {"1h", 3600, 0},
      {"100us", 0, 100'000},
      {"5s", 5, 0},
      {"0s", 0, 0},
      {"30ns", 0, 30},
      {"2.25s", 2, 250'000'000},
  };
  for (const DurationCase& c : cases) {
    SCOPED_TRACE(c.text);
    int64_t seconds = -1;
    int32_t nanos = -1;
    ASSERT_TRUE(parseDuration(c.text, &seconds, &nanos));
    EXPECT_EQ(seconds, c.seconds);
    EXPECT_EQ(nanos, c.nanos);
    EXPECT_EQ(formatDuration(seconds, nanos), c.text);
  }
}

TEST(DurationTest, OtherSpellingsFormatToTheShortestOne) {
  int64_t seconds;
  int32_t nanos;
  ASSERT_TRUE(parseDuration("90s", &seconds, &nanos));
  EXPECT_EQ(formatDuration(seconds, nanos), "90s");
  ASSERT_TRUE(parseDuration("120s", &seconds, &nanos));
  EXPECT_EQ(formatDuration(seconds, nanos), "2m");
  ASSERT_TRUE(parseDuration("1000ms", &seconds, &nanos));
  EXPECT_EQ(formatDuration(seconds, nanos), "1s");
  ASSERT_TRUE(parseDuration("0.5m", &seconds, &nanos));
  EXPECT_EQ(formatDuration(seconds, nanos), "30s");
}

TEST(DurationTest, RejectsMalformedDurations) {
  for (const char* text : {"", "5", "s", "ms", "-1s", "+1s", "1d", "1.5", "abc", "1e400s", "nans",
                           "infs", "1 h 2m", "400000000000s"}) {
    SCOPED_TRACE(text);
    int64_t seconds;
    int32_t nanos;
    EXPECT_FALSE(parseDuration(text, &seconds, &nanos));
  }
}

TEST(DurationTest, FormatsTheLargestDuration) {
  // protobuf Duration's maximum; the whole-nanoseconds arithmetic must not overflow here.
  EXPECT_EQ(formatDuration(315'576'000'000, 999'999'999), "315576000000.999999999s");
}

TEST(ProtoToYamlTest, OutputParsesBackToTheSameResources) {
  LoadResult original = loadYaml(R"(
kind: Cluster
name: users
node_groups: [web, mobile]
type: STATIC
connect_timeout: 1.5s
lb_policy: LEAST_REQUEST
endpoints:
  - {address: "::1", port: 8081, weight: 3}
  - {address: 127.0.0.1, port: 8082}
---
kind: RouteConfiguration
name: "null"
node_groups: [web, mobile]
virtual_hosts:
  - name: "yes"
    domains: ["*", "*.example.com", "api.example.com:8080"]
    request_headers:
      add:
        - {name: x-note, value: "a: b # not a comment", append: true}
        - {name: x-tilde, value: "~"}
      remove: [x-internal]
    routes:
      - name: "123"
        match:
          regex: "^/v[0-9]+/.*$"
          methods: [GET, HEAD]
          headers:
            - {name: x-canary, present: false}
            - {name: x-user, regex: "[a-z]+", invert: true}
          query_parameters:
            - {name: debug, exact: ""}
        route:
          weighted_clusters:
            clusters:
              - {name: users, weight: 90}
              - {name: users, weight: 10}
          timeout: 100us
          host_rewrite: users.internal
      - match: {prefix: /old/}
        redirect: {response_code: 308, prefix_rewrite: /new/, strip_query: true}
      - match: {path: /health}
        direct_response: {status: 200, body: "ok\n"}
)");
  ASSERT_THAT(original.errors, IsEmpty());
  ASSERT_THAT(original.config.clusters, SizeIs(1));
  ASSERT_THAT(original.config.route_configs, SizeIs(1));
  const auto& cluster = original.config.clusters[0];
  const auto& routes = original.config.route_configs[0];

  std::string yaml =
      absl::StrCat(protoToYaml(cluster.resource, "Cluster", cluster.origin.node_groups), "---\n",
                   protoToYaml(routes.resource, "RouteConfiguration", routes.origin.node_groups));
  SCOPED_TRACE(yaml);
  LoadResult again = loadYaml(yaml);
  ASSERT_THAT(again.errors, IsEmpty());
  ASSERT_THAT(again.config.clusters, SizeIs(1));
  ASSERT_THAT(again.config.route_configs, SizeIs(1));
  using google::protobuf::util::MessageDifferencer;
  EXPECT_TRUE(MessageDifferencer::Equals(again.config.clusters[0].resource, cluster.resource));
  EXPECT_TRUE(MessageDifferencer::Equals(again.config.route_configs[0].resource, routes.resource));
  EXPECT_EQ(again.config.clusters[0].origin.node_groups, cluster.origin.node_groups);
  EXPECT_EQ(again.config.route_configs[0].origin.node_groups, routes.origin.node_groups);
}

TEST(ProtoToYamlTest, LeavesDefaultsOut) {
  v1::Cluster cluster;
  cluster.set_name("users");
  EXPECT_EQ(protoToYaml(cluster), "name: users\n");
  EXPECT_EQ(protoToYaml(cluster, "Cluster", {"web"}),
            "kind: Cluster\nnode_groups: [web]\nname: users\n");
}

// `item` and `count` - 1 aliases of it, as a flow list: "[&a item, *a, *a]".
std::string aliasList(absl::string_view anchor, absl::string_view item, int count) {
  std::string list = absl::StrCat("[&", anchor, " ", item);
  for (int i = 1; i < count; ++i) absl::StrAppend(&list, ", *", anchor);
  return list + "]";
}

// A YAML "billion laughs" along the schema: 1000 virtual hosts of 1000 routes of 1000 methods.
std::string aliasBomb() {
  std::string methods = aliasList("m", "GET", 1000);
  std::string routes = aliasList(
      "r", absl::StrCat("{match: {prefix: /, methods: ", methods, "}, redirect: {}}"), 1000);
  std::string hosts =
      aliasList("v", absl::StrCat("{name: all, domains: [\"*\"], routes: ", routes, "}"), 1000);
  return absl::StrCat("kind: RouteConfiguration\nname: main\nvirtual_hosts: ", hosts, "\n");
}

TEST(YamlProtoTest, AliasBombIsRefused) {
  LoadResult r = loadYaml(aliasBomb());
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(1, "", "", "", "(YAML aliases?); not read")));
  EXPECT_EQ(r.config.size(), 0);
}

TEST(YamlProtoTest, AliasBombIsRefusedByYamlToProtoToo) {
  YamlDocuments yaml = parseYaml(aliasBomb());
  ASSERT_EQ(yaml.documents.size(), 1);
  v1::RouteConfiguration rc;
  Origin origin{.file = "bomb.yaml", .line = 1};
  Diagnostics errors;
  EXPECT_FALSE(yamlToProto(*yaml.documents[0], &rc, &origin, &errors, {"kind"}));
  EXPECT_THAT(errors, ElementsAre(testing::isDiagnosticIn("bomb.yaml", 1, "", "", "",
                                                          "(YAML aliases?); refusing it")));
}

TEST(YamlProtoTest, AliasesOfAWholeResourceAreBoundedPerFile) {
  // 10,000 values a resource, a thousand times: few kilobytes, ten million values.
  std::string routes = aliasList(
      "r", absl::StrCat("{match: {prefix: /, methods: ", aliasList("m", "GET", 100), "}}"), 100);
  std::string yaml = absl::StrCat("- &rc {kind: RouteConfiguration, name: main, virtual_hosts: ",
                                  "[{name: all, domains: [\"*\"], routes: ", routes, "}]}\n");
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&yaml, "- *rc\n");
  LoadResult r = loadYaml(yaml);
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(1, "", "", "", "(YAML aliases?); not read")));
  EXPECT_EQ(r.config.size(), 0);
}

TEST(YamlProtoTest, AliasesOfALongStringAreBounded) {
  // Few values, but each use of the alias is a megabyte of text.
  std::string yaml = absl::StrCat(R"(kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    request_headers:
      add:
        - {name: x-big, value: &big )",
                                  std::string(1 << 20, 'x'), "}\n");
  for (int i = 0; i < 100; ++i) absl::StrAppend(&yaml, "        - {name: x-big, value: *big}\n");
  LoadResult r = loadYaml(yaml);
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(1, "", "", "", "64 MiB of text (YAML aliases?)")));
}

TEST(YamlProtoTest, SelfReferringAliasIsAnError) {
  LoadResult r = loadYaml(R"(
kind: RouteConfiguration
name: main
virtual_hosts: &v [{name: all, domains: ["*"], routes: *v}]
)");
  // Expanded, the document is infinitely deep.
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(1, "", "", "", "(YAML aliases?); not read")));
}

TEST(YamlProtoTest, DeepNestingIsAnErrorNotACrash) {
  for (const auto& [open, close] : {std::pair{"[", "]"}, std::pair{"{a: ", "}"}}) {
    std::string yaml;
    for (int i = 0; i < 100'000; ++i) yaml += open;
    for (int i = 0; i < 100'000; ++i) yaml += close;
    LoadResult r = loadYaml(yaml);
    EXPECT_THAT(r.errors,
                ElementsAre(isDiagnostic(1, "", "", "", "invalid YAML: nested too deeply")));
  }
}

}  // namespace
}  // namespace sluice::config
