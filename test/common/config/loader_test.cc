// Reading config directories and files, and the file-level errors of parsing.
#include "common/config/loader.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "test/common/config/test_util.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using testing::isDiagnostic;
using testing::isDiagnosticIn;
using ::testing::IsEmpty;
using testing::loadYaml;
using ::testing::SizeIs;
using testing::writeTempDir;

constexpr absl::string_view kClusters = R"(kind: Cluster
name: users
connect_timeout: 250ms
endpoints:
  - {address: 127.0.0.1, port: 8081}
---
kind: Cluster
name: orders
type: EDS
)";

constexpr absl::string_view kEndpoints = R"(kind: ClusterLoadAssignment
cluster_name: orders
endpoints:
  - {address: 10.0.0.1, port: 9000}
  - {address: 10.0.0.2, port: 9000}
)";

constexpr absl::string_view kRoutes = R"(kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /orders}
        route: {cluster: orders}
      - match: {prefix: /}
        route: {cluster: users}
)";

constexpr absl::string_view kListeners = R"(- kind: Listener
  name: http
  port: 8080
  route_config: main
- kind: Listener
  name: admin-api
  address: 127.0.0.1
  port: 8081
  route_config: main
)";

TEST(LoaderTest, LoadsAValidDirectory) {
  std::string dir = writeTempDir({{"clusters.yaml", std::string(kClusters)},
                                  {"endpoints.yml", std::string(kEndpoints)},
                                  {"listeners.yaml", std::string(kListeners)},
                                  {"routes.yaml", std::string(kRoutes)}});
  LoadResult r = loadDirectory(dir);
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_TRUE(r.ok());
  EXPECT_THAT(r.files, SizeIs(4));
  EXPECT_THAT(r.config.clusters, SizeIs(2));
  EXPECT_THAT(r.config.assignments, SizeIs(1));
  EXPECT_THAT(r.config.route_configs, SizeIs(1));
  EXPECT_THAT(r.config.listeners, SizeIs(2));
  EXPECT_EQ(r.config.size(), 6);
  EXPECT_FALSE(r.config.incomplete);
  EXPECT_EQ(r.config.clusters[1].resource.name(), "orders");
  EXPECT_EQ(r.config.clusters[1].origin.file, "clusters.yaml");
  EXPECT_EQ(r.config.clusters[1].origin.line, 7);
  EXPECT_EQ(r.config.listeners[1].origin.line, 5);
}

TEST(LoaderTest, ReadsFilesSortedByName) {
  std::string dir = writeTempDir({{"b.yaml", ""}, {"a.yml", "# empty\n"}, {"c.yaml", "---\n"}});
  Diagnostics errors;
  std::vector<SourceFile> files = readConfigDirectory(dir, &errors);
  EXPECT_THAT(errors, IsEmpty());
  ASSERT_THAT(files, SizeIs(3));
  EXPECT_EQ(files[0].name, "a.yml");
  EXPECT_EQ(files[0].content, "# empty\n");
  EXPECT_EQ(files[1].name, "b.yaml");
  EXPECT_EQ(files[2].name, "c.yaml");
  EXPECT_EQ(loadFiles(files).config.size(), 0);
}

TEST(LoaderTest, MultiDocumentFilesAndTopLevelLists) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: a
endpoints: [{address: 127.0.0.1, port: 1}]
---
- {kind: Cluster, name: b, endpoints: [{address: 127.0.0.1, port: 2}]}
- {kind: Cluster, name: c, endpoints: [{address: 127.0.0.1, port: 3}]}
---
---
- kind: Cluster
  name: d
  endpoints: [{address: 127.0.0.1, port: 4}]
)");
  EXPECT_THAT(r.errors, IsEmpty());
  ASSERT_THAT(r.config.clusters, SizeIs(4));
  const int lines[] = {1, 5, 6, 9};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(r.config.clusters[i].resource.name(), std::string(1, 'a' + i));
    EXPECT_EQ(r.config.clusters[i].origin.line, lines[i]);
  }
}

TEST(LoaderTest, IgnoresHiddenAndNonYamlFiles) {
  const std::string broken = "kind: [";
  std::string dir = writeTempDir({{"routes.yaml", std::string(kRoutes)},
                                  {"clusters.yaml", std::string(kClusters)},
                                  {"endpoints.yaml", std::string(kEndpoints)},
                                  {".routes.yaml.swp", broken},
                                  {".hidden.yaml", broken},
                                  {"notes.txt", broken},
                                  {"routes.yaml~", broken},
                                  {"old.yaml.bak", broken},
                                  {"README", broken}});
  LoadResult r = loadDirectory(dir);
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_THAT(r.files, SizeIs(3));
  EXPECT_EQ(r.config.size(), 4);
}

TEST(LoaderTest, ConfigFileNames) {
  EXPECT_TRUE(isConfigFileName("routes.yaml"));
  EXPECT_TRUE(isConfigFileName("routes.yml"));
  EXPECT_TRUE(isConfigFileName("a.b.yaml"));
  EXPECT_FALSE(isConfigFileName(""));
  EXPECT_FALSE(isConfigFileName(".yaml"));
  EXPECT_FALSE(isConfigFileName(".routes.yaml"));
  EXPECT_FALSE(isConfigFileName("routes.yaml.tmp"));
  EXPECT_FALSE(isConfigFileName("routes.json"));
  EXPECT_FALSE(isConfigFileName("routes.YAML~"));
}

TEST(LoaderTest, MissingDirectory) {
  std::string dir = absl::StrCat(writeTempDir({}), "/nowhere");
  LoadResult r = loadDirectory(dir);
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnosticIn(dir, 0, "", "", "", "config directory does not exist")));
  EXPECT_FALSE(r.ok());
}

TEST(LoaderTest, ReadConfigPathReadsOneFileOrADirectory) {
  std::string dir = writeTempDir(
      {{"clusters.yaml", std::string(kClusters)}, {"routes.yaml", std::string(kRoutes)}});
  Diagnostics errors;
  std::vector<SourceFile> one = readConfigPath(dir + "/routes.yaml", &errors);
  ASSERT_THAT(one, SizeIs(1));
  EXPECT_EQ(one[0].name, dir + "/routes.yaml");
  EXPECT_EQ(one[0].content, kRoutes);
  EXPECT_THAT(readConfigPath(dir, &errors), SizeIs(2));
  EXPECT_THAT(errors, IsEmpty());

  EXPECT_THAT(readConfigPath(dir + "/missing.yaml", &errors), IsEmpty());
  EXPECT_THAT(errors, ElementsAre(isDiagnosticIn(dir + "/missing.yaml", 0, "", "", "",
                                                 "cannot read: No such file or directory")));
}

TEST(LoaderTest, FileOverTheSizeLimit) {
  std::string dir = writeTempDir({{"clusters.yaml", std::string(kClusters)}});
  // Sparse: the loader must refuse it from its size, without reading it.
  int fd = ::open((dir + "/huge.yaml").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, kMaxFileBytes + 1), 0);
  ::close(fd);
  LoadResult r = loadDirectory(dir);
  EXPECT_THAT(r.errors, ElementsAre(isDiagnosticIn(
                            "huge.yaml", 0, "", "", "",
                            "file is 16777217 bytes; config files are limited to 16 MiB")));
  EXPECT_THAT(r.files, SizeIs(1));  // the other file is still read
  EXPECT_THAT(r.config.clusters, SizeIs(2));
}

TEST(LoaderTest, FileAtTheSizeLimitIsRead) {
  std::string content = absl::StrCat(kClusters, "# ");
  content.resize(kMaxFileBytes - 1, '-');
  content += '\n';
  std::string dir = writeTempDir({{"clusters.yaml", content}});
  LoadResult r = loadDirectory(dir);
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_THAT(r.config.clusters, SizeIs(2));
}

TEST(LoaderTest, DirectoryNamedLikeAConfigFile) {
  std::string dir = writeTempDir({});
  ASSERT_EQ(::mkdir((dir + "/sub.yaml").c_str(), 0755), 0);
  LoadResult r = loadDirectory(dir);
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnosticIn("sub.yaml", 0, "", "", "", "not a regular file")));
}

TEST(LoaderTest, BinaryFile) {
  using std::string_literals::operator""s;
  // Two lines of text, then an ELF header.
  LoadResult r = loadYaml(
      "kind: Cluster\nname: users\n\x7f"
      "ELF\x02\x01\x01\x00\x03\x00\x3e"s);
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(3, "", "", "", "not a text file (NUL byte at offset 33)")));
  EXPECT_TRUE(r.config.incomplete);
}

TEST(LoaderTest, TextThatIsNotUtf8) {
  // Latin-1 "café": the proxy could not parse a resource holding it (proto3 strings are UTF-8).
  LoadResult r = loadYaml(
      "kind: RouteConfiguration\nname: main\nvirtual_hosts:\n  - name: caf\xe9\n"
      "    domains: [\"*\"]\n");
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnostic(4, "", "", "", "not UTF-8 text (byte 0xe9 at offset 64)")));
  EXPECT_TRUE(loadYaml("kind: Cluster\nname: caf\xc3\xa9\ntype: EDS\n").ok());
}

TEST(LoaderTest, YamlSyntaxErrorHasItsLine) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints:
  - {address: 127.0.0.1, port: 8081}
    - {address: 127.0.0.1, port: 8082}
)");
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_THAT(r.errors[0], isDiagnostic(5, "", "", "", "invalid YAML: "));
  EXPECT_THAT(r.errors[0].message, ::testing::HasSubstr("(column "));
}

TEST(LoaderTest, StrayCommaIsASyntaxErrorNotAHang) {
  // yaml-cpp 0.7's LoadAll loops forever on these, allocating all the while.
  const std::pair<const char*, int> cases[] = {
      {",", 1}, {"kind: Cluster\n---\n,\n", 3}, {"&a ,", 1}, {"--- ,", 1}};
  for (const auto& [yaml, line] : cases) {
    SCOPED_TRACE(yaml);
    EXPECT_THAT(loadYaml(yaml).errors,
                ElementsAre(isDiagnostic(line, "", "", "",
                                         "invalid YAML: unexpected token at the start of a "
                                         "document")));
  }
}

TEST(LoaderTest, SyntaxErrorInOneFileKeepsTheOthersAndHidesMissingReferences) {
  LoadResult r = loadFiles(
      {{"clusters.yaml", "kind: Cluster\nname: [users\n"}, {"routes.yaml", std::string(kRoutes)}});
  // Whatever routes.yaml names may be in the broken file: no "does not exist" noise.
  EXPECT_THAT(r.errors,
              ElementsAre(isDiagnosticIn("clusters.yaml", 0, "", "", "", "invalid YAML")));
  EXPECT_THAT(r.config.route_configs, SizeIs(1));
  EXPECT_TRUE(r.config.incomplete);
}

TEST(LoaderTest, MissingKind) {
  LoadResult r = loadYaml(R"(
name: users
endpoints:
  - {address: 127.0.0.1, port: 8081}
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(1, "", "", "", "resource has no 'kind:'")));
}

TEST(LoaderTest, UnknownKind) {
  LoadResult r = loadYaml(R"(
name: users
kind: Clustr
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(
                            2, "", "", "kind", "unknown kind 'Clustr'; expected one of Listener")));
}

TEST(LoaderTest, DocumentThatIsNotAResource) {
  LoadResult r = loadYaml(R"(
kind: Cluster
name: users
endpoints: [{address: 127.0.0.1, port: 8081}]
---
just a string
)");
  EXPECT_THAT(r.errors, ElementsAre(isDiagnostic(5, "", "", "",
                                                 "expected a resource (a mapping with a 'kind:'")));
  EXPECT_THAT(r.config.clusters, SizeIs(1));
}

TEST(DiagnosticTest, ToString) {
  Diagnostic full{.file = "routes.yaml",
                  .line = 12,
                  .kind = "RouteConfiguration",
                  .resource = "main",
                  .field = "virtual_hosts[0].domains",
                  .message = "is empty"};
  EXPECT_EQ(
      full.toString(),
      "routes.yaml:12: RouteConfiguration 'main': field 'virtual_hosts[0].domains': is empty");
  EXPECT_EQ((Diagnostic{.message = "no files"}).toString(), "<config>: no files");
  EXPECT_EQ((Diagnostic{.file = "a.yaml", .kind = "Cluster", .message = "m"}).toString(),
            "a.yaml: Cluster: m");
  EXPECT_EQ(formatDiagnostics({full, Diagnostic{.file = "b.yaml", .line = 1, .message = "x"}}),
            absl::StrCat(full.toString(), "\nb.yaml:1: x\n"));
}

}  // namespace
}  // namespace sluice::config
