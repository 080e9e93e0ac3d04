// sluice end to end in --config-dir mode: a real proxy with two workers in front of two
// sluice-echo upstreams ("a" and "b"), all on loopback, driven with raw HTTP/1.1 bytes.
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/integration/echo.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSluice[] = "proxy/server/sluice";

constexpr size_t kMiB = 1024 * 1024;

// One config for every test; {A}, {B}, {DEAD}, {ONESHOT} and {LISTEN} are ports filled in at
// start.
constexpr char kConfig[] = R"(kind: Cluster
name: a
endpoints:
  - {address: 127.0.0.1, port: {A}}
---
kind: Cluster
name: b
endpoints:
  - {address: 127.0.0.1, port: {B}}
---
kind: Cluster
name: ab
lb_policy: ROUND_ROBIN
endpoints:
  - {address: 127.0.0.1, port: {A}}
  - {address: 127.0.0.1, port: {B}}
---
# Nothing listens on this port.
kind: Cluster
name: dead
connect_timeout: 2s
endpoints:
  - {address: 127.0.0.1, port: {DEAD}}
---
# Only the test that needs it starts an upstream here (OneShotUpstream).
kind: Cluster
name: oneshot
endpoints:
  - {address: 127.0.0.1, port: {ONESHOT}}
---
# EDS without any ClusterLoadAssignment: no endpoints.
kind: Cluster
name: empty
type: EDS
---
kind: Listener
name: main
address: 127.0.0.1
port: {LISTEN}
route_config: main
---
kind: Listener
name: strict
address: 127.0.0.1
port: {STRICT}
route_config: main
timeouts: {request_headers: 300ms, idle: 300ms}
limits: {max_connections: 2}
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: exact
    domains: ["exact.test"]
    routes:
      - match: {prefix: /}
        direct_response: {status: 200, body: "vhost exact\n"}
  - name: wild
    domains: ["*.wild.test"]
    routes:
      - match: {prefix: /}
        direct_response: {status: 200, body: "vhost wild\n"}
  - name: to-b
    domains: ["b.test"]
    routes:
      - match: {prefix: /}
        route: {cluster: b}
  - name: strict
    domains: ["strict.test"]
    routes:
      - match: {path: /only, methods: [GET]}
        direct_response: {status: 200, body: "only\n"}
  - name: default
    domains: ["*"]
    response_headers:
      add:
        - {name: x-vhost, value: default}
    routes:
      - match: {path: /exact}
        route: {cluster: b}
      - match: {prefix: /pre/}
        route: {cluster: b, prefix_rewrite: /rewritten/}
      - match: {regex: "/re/[0-9]+"}
        route: {cluster: b}
      - match: {path: /method, methods: [DELETE, PUT]}
        route: {cluster: b}
      - match:
          path: /hdr
          headers:
            - {name: x-route, exact: "yes"}
        route: {cluster: b}
      - match:
          path: /query
          query_parameters:
            - {name: v, exact: "1"}
        route: {cluster: b}
      - match: {path: /a/c/d}
        route: {cluster: b}
      - match: {path: /direct}
        direct_response: {status: 202, body: "direct answer\n"}
      - match: {path: /no-content}
        direct_response: {status: 204}
      - match: {path: /not-modified}
        direct_response: {status: 304}
      - match: {prefix: /old/}
        redirect: {prefix_rewrite: /new/}
      - match: {prefix: /old308/}
        redirect: {prefix_rewrite: /new/, response_code: 308, strip_query: true}
      - match: {path: /moved}
        redirect:
          scheme_redirect: https
          host_redirect: "example.com:8443"
          path_redirect: /landing
      - match: {path: /headers}
        route: {cluster: a}
        request_headers:
          add:
            - {name: x-added, value: req-added}
            - {name: x-replaced, value: new}
            - {name: x-appended, value: two, append: true}
          remove: [x-remove-me]
        response_headers:
          add:
            - {name: x-resp-added, value: resp}
          remove: [x-drop-me]
      - match: {path: /hostrw}
        route: {cluster: a, host_rewrite: rewritten.internal}
      - match: {prefix: /rr}
        route: {cluster: ab}
      - match: {prefix: /split}
        route:
          weighted_clusters:
            clusters:
              - {name: a, weight: 80}
              - {name: b, weight: 20}
      - match: {prefix: /dead}
        route: {cluster: dead}
      - match: {prefix: /oneshot}
        route: {cluster: oneshot}
      - match: {prefix: /empty}
        route: {cluster: empty}
      - match: {prefix: /slow}
        route: {cluster: a, timeout: 200ms}
      - match: {prefix: /}
        route: {cluster: a}
)";

std::string sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), len));
}

// The body sluice-echo generates for x-echo-body-size: byte i is 'a' + i % 26.
std::string echoPattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

// Deterministic, not periodic in any short way: a test upload.
std::string uploadBody(size_t size) {
  std::string s(size, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// What sluice-echo says it received (see tools/echo/README.md).
struct Echoed {
  std::string method, target, version;
  std::vector<std::pair<std::string, std::string>> headers;
  uint64_t body_bytes = 0;
  std::string body_sha256;

  int count(absl::string_view name) const {
    int n = 0;
    for (const auto& h : headers) n += absl::EqualsIgnoreCase(h.first, name) ? 1 : 0;
    return n;
  }
  std::string get(absl::string_view name) const {
    for (const auto& h : headers) {
      if (absl::EqualsIgnoreCase(h.first, name)) return h.second;
    }
    return "";
  }
  std::vector<std::string> all(absl::string_view name) const {
    std::vector<std::string> out;
    for (const auto& h : headers) {
      if (absl::EqualsIgnoreCase(h.first, name)) out.push_back(h.second);
    }
    return out;
  }
};

std::optional<Echoed> parseEcho(const std::string& body) {
  std::vector<std::string> lines = absl::StrSplit(body, '\n');
  if (lines.size() < 5) return std::nullopt;
  Echoed e;
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() != 3) return std::nullopt;
  e.method = first[0];
  e.target = first[1];
  e.version = first[2];
  size_t i = 1;
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) return std::nullopt;
    e.headers.emplace_back(lines[i].substr(0, colon),
                           std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  for (++i; i < lines.size(); ++i) {
    if (absl::StartsWith(lines[i], "body-bytes: ")) {
      if (!absl::SimpleAtoi(lines[i].substr(12), &e.body_bytes)) return std::nullopt;
    } else if (absl::StartsWith(lines[i], "body-sha256: ")) {
      e.body_sha256 = lines[i].substr(13);
    }
  }
  if (e.body_sha256.size() != 64) return std::nullopt;
  return e;
}

// Reads VmRSS (KiB) of `pid`, or -1.
int64_t rssKiB(pid_t pid) {
  std::string status = readFile(absl::StrCat("/proc/", pid, "/status"));
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, "VmRSS:")) {
      line = absl::StripAsciiWhitespace(line);
      absl::ConsumeSuffix(&line, " kB");
      int64_t v = -1;
      return absl::SimpleAtoi(line, &v) ? v : -1;
    }
  }
  return -1;
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(a_.start()) << a_.log();
    ASSERT_TRUE(b_.start()) << b_.log();
    dead_port_ = freePort();
    oneshot_port_ = freePort();
    port_ = freePort();
    strict_port_ = freePort();
    admin_port_ = freePort();
    dir_ = makeTempDir("proxy-config");
    writeFile(dir_ + "/config.yaml",
              absl::StrReplaceAll(kConfig, {
                                               {"{A}", absl::StrCat(a_.port())},
                                               {"{B}", absl::StrCat(b_.port())},
                                               {"{DEAD}", absl::StrCat(dead_port_)},
                                               {"{ONESHOT}", absl::StrCat(oneshot_port_)},
                                               {"{LISTEN}", absl::StrCat(port_)},
                                               {"{STRICT}", absl::StrCat(strict_port_)},
                                           }));
    sluice_ = std::make_unique<Process>(
        kSluice,
        std::vector<std::string>{"--config-dir", dir_, "--workers", "2", "--admin",
                                 absl::StrCat("127.0.0.1:", admin_port_)},
        "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(15), [&] {
      return httpGet(admin_port_, "/ready") == "ready\n" && HttpConnection::connect(port_).ok();
    })) << sluice_->log();
  }

  void TearDown() override {
    if (sluice_ == nullptr) return;
    // Whatever the test did, the proxy is still up and shuts down cleanly.
    EXPECT_TRUE(sluice_->running()) << "sluice exited during the test";
    int status = sluice_->stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
    if (HasFailure()) std::cerr << "--- sluice log ---\n" << sluice_->log();
  }

  std::unique_ptr<HttpConnection> connect(absl::Duration timeout = absl::Seconds(10)) {
    auto c = HttpConnection::connect(port_, timeout);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  static std::string req(absl::string_view method, absl::string_view target,
                         absl::string_view host = "test", absl::string_view extra = "") {
    return absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: ", host, "\r\n", extra, "\r\n");
  }

  // One GET on a fresh connection.
  HttpResponse get(absl::string_view target, absl::string_view host = "test",
                   absl::string_view extra = "") {
    auto c = connect();
    if (c == nullptr) return {};
    auto r = c->roundTrip(req("GET", target, host, extra));
    EXPECT_TRUE(r.ok()) << r.status() << " for " << target;
    return r.ok() ? *r : HttpResponse{};
  }

  // The value of one series ("name{labels}") on the admin /metrics page, or -1.
  double metric(const std::string& series) { return metricSeries(admin_port_, series); }

  Echo a_{"a"}, b_{"b"};
  int dead_port_ = 0, oneshot_port_ = 0, port_ = 0, strict_port_ = 0, admin_port_ = 0;
  std::string dir_;
  std::unique_ptr<Process> sluice_;
};

// Sends `request` on `conn`; what the upstream saw if it answered with its echo, else a failure.
std::optional<Echoed> echoed(HttpConnection& conn, const std::string& request) {
  auto r = conn.roundTrip(request);
  if (!r.ok()) {
    ADD_FAILURE() << r.status();
    return std::nullopt;
  }
  auto e = r->status == 200 ? parseEcho(r->body) : std::nullopt;
  if (!e.has_value()) ADD_FAILURE() << "not an echo: " << r->status << " " << r->body;
  return e;
}

// --- 1. Routing -------------------------------------------------------------------------------

TEST_F(ProxyTest, VirtualHostChosenByHost) {
  EXPECT_EQ(get("/x", "exact.test").body, "vhost exact\n");
  // A port in Host is ignored when no domain names one.
  EXPECT_EQ(get("/x", "exact.test:8080").body, "vhost exact\n");
  // Host names are case-insensitive.
  EXPECT_EQ(get("/x", "EXACT.Test").body, "vhost exact\n");
  EXPECT_EQ(get("/x", "api.wild.test").body, "vhost wild\n");
  EXPECT_EQ(get("/x", "a.b.wild.test").body, "vhost wild\n");
  // "*.wild.test" needs something before the dot.
  HttpResponse bare = get("/x", "wild.test");
  EXPECT_EQ(bare.status, 200);
  EXPECT_EQ(bare.header("x-echo-name"), "a");
  EXPECT_EQ(get("/x", "b.test").header("x-echo-name"), "b");
  EXPECT_EQ(get("/x", "other.test").header("x-echo-name"), "a");
  EXPECT_EQ(get("/x", "exact.test.evil").header("x-echo-name"), "a");
}

TEST_F(ProxyTest, RoutesByExactPrefixAndRegexPath) {
  EXPECT_EQ(get("/exact").header("x-echo-name"), "b");
  EXPECT_EQ(get("/exact/more").header("x-echo-name"), "a");
  EXPECT_EQ(get("/exactly").header("x-echo-name"), "a");
  EXPECT_EQ(get("/pre/x").header("x-echo-name"), "b");
  EXPECT_EQ(get("/pre").header("x-echo-name"), "a");
  EXPECT_EQ(get("/re/123").header("x-echo-name"), "b");
  // The regex must match the whole path.
  EXPECT_EQ(get("/re/123x").header("x-echo-name"), "a");
  EXPECT_EQ(get("/x/re/123").header("x-echo-name"), "a");
  EXPECT_EQ(get("/re/abc").header("x-echo-name"), "a");
  // The query is not part of the path.
  EXPECT_EQ(get("/exact?x=1").header("x-echo-name"), "b");
}

TEST_F(ProxyTest, RoutesByMethodHeaderAndQuery) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto name = [&](const std::string& request) {
    auto r = c->roundTrip(request);
    EXPECT_TRUE(r.ok()) << r.status() << " for " << request;
    return r.ok() ? r->header("x-echo-name") : "";
  };
  EXPECT_EQ(name(req("GET", "/method")), "a");
  EXPECT_EQ(name(req("DELETE", "/method")), "b");
  EXPECT_EQ(name(req("PUT", "/method", "test", "Content-Length: 0\r\n")), "b");
  EXPECT_EQ(name(req("POST", "/method", "test", "Content-Length: 0\r\n")), "a");

  EXPECT_EQ(name(req("GET", "/hdr")), "a");
  EXPECT_EQ(name(req("GET", "/hdr", "test", "x-route: yes\r\n")), "b");
  EXPECT_EQ(name(req("GET", "/hdr", "test", "X-Route: yes\r\n")), "b");
  EXPECT_EQ(name(req("GET", "/hdr", "test", "x-route: no\r\n")), "a");
  EXPECT_EQ(name(req("GET", "/hdr", "test", "x-route: yess\r\n")), "a");

  EXPECT_EQ(name(req("GET", "/query")), "a");
  EXPECT_EQ(name(req("GET", "/query?v=1")), "b");
  EXPECT_EQ(name(req("GET", "/query?w=2&v=1")), "b");
  EXPECT_EQ(name(req("GET", "/query?v=2")), "a");
  EXPECT_EQ(name(req("GET", "/query?vv=1")), "a");
}

TEST_F(ProxyTest, NoMatchingRouteIs404) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto ok = c->roundTrip(req("GET", "/only", "strict.test"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "only\n");
  auto r = c->roundTrip(req("GET", "/other", "strict.test"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "no route\n");
  // The method is part of the match.
  r = c->roundTrip(req("DELETE", "/only", "strict.test"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(a_.stats().requests, 0);
  EXPECT_EQ(b_.stats().requests, 0);
}

TEST_F(ProxyTest, DirectResponse) {
  HttpResponse r = get("/direct");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "direct answer\n");
  EXPECT_EQ(r.header("content-length"), "14");
  EXPECT_EQ(r.header("content-type"), "text/plain");
  EXPECT_EQ(a_.stats().requests, 0);
}

TEST_F(ProxyTest, Redirects) {
  HttpResponse r = get("/old/x/y?q=1&r=2", "www.test");
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(r.header("location"), "http://www.test/new/x/y?q=1&r=2");

  r = get("/old308/x?q=1", "www.test:8080");
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.header("location"), "http://www.test:8080/new/x");

  r = get("/moved?keep=1");
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(r.header("location"), "https://example.com:8443/landing?keep=1");
  EXPECT_EQ(a_.stats().requests, 0);
}

TEST_F(ProxyTest, PrefixRewriteSeenByUpstream) {
  HttpResponse r = get("/pre/x/y?z=1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-echo-name"), "b");
  auto e = parseEcho(r.body);
  ASSERT_TRUE(e.has_value()) << r.body;
  EXPECT_EQ(e->target, "/rewritten/x/y?z=1");
}

TEST_F(ProxyTest, HeaderMutations) {
  HttpResponse r = get("/headers", "test",
                       "x-replaced: old\r\n"
                       "x-remove-me: 1\r\n"
                       "x-appended: one\r\n"
                       "x-keep: kept\r\n"
                       "x-echo-header: x-drop-me=1\r\n"
                       "x-echo-header: x-stay=2\r\n");
  ASSERT_EQ(r.status, 200);
  auto e = parseEcho(r.body);
  ASSERT_TRUE(e.has_value()) << r.body;
  EXPECT_EQ(e->get("x-added"), "req-added");
  EXPECT_EQ(e->all("x-replaced"), std::vector<std::string>{"new"});
  EXPECT_EQ(e->count("x-remove-me"), 0);
  EXPECT_THAT(e->all("x-appended"), ::testing::UnorderedElementsAre("one", "two"));
  EXPECT_EQ(e->get("x-keep"), "kept");

  EXPECT_EQ(r.header("x-resp-added"), "resp");
  EXPECT_EQ(r.headerCount("x-drop-me"), 0);
  EXPECT_EQ(r.header("x-stay"), "2");
  // The virtual host's response headers apply to its routes.
  EXPECT_EQ(r.header("x-vhost"), "default");
}

TEST_F(ProxyTest, HostRewrite) {
  HttpResponse r = get("/hostrw", "public.test");
  ASSERT_EQ(r.status, 200);
  auto e = parseEcho(r.body);
  ASSERT_TRUE(e.has_value()) << r.body;
  EXPECT_EQ(e->all("host"), std::vector<std::string>{"rewritten.internal"});

  r = get("/", "public.test");
  e = parseEcho(r.body);
  ASSERT_TRUE(e.has_value()) << r.body;
  EXPECT_EQ(e->all("host"), std::vector<std::string>{"public.test"});
}

// --- 2, 3. Load balancing ---------------------------------------------------------------------

TEST_F(ProxyTest, RoundRobinAlternatesOnOneConnection) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  std::vector<std::string> names;
  for (int i = 0; i < 8; ++i) {
    auto r = c->roundTrip(req("GET", absl::StrCat("/rr/", i)));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200);
    names.push_back(r->header("x-echo-name"));
  }
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(names[i] == "a" || names[i] == "b") << names[i];
    if (i > 0) {
      EXPECT_NE(names[i], names[i - 1]) << "request " << i << " of " << names.size();
    }
  }
}

TEST_F(ProxyTest, WeightedSplitFollowsWeights) {
  constexpr int kConnections = 4, kRequests = 1000;
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < kConnections; ++i) {
    conns.push_back(connect());
    ASSERT_NE(conns.back(), nullptr);
  }
  std::map<std::string, int> counts;
  for (int i = 0; i < kRequests; ++i) {
    auto r = conns[i % kConnections]->roundTrip(req("GET", "/split"));
    ASSERT_TRUE(r.ok()) << r.status() << " at request " << i;
    ASSERT_EQ(r->status, 200);
    ++counts[r->header("x-echo-name")];
  }
  EXPECT_EQ(counts["a"] + counts["b"], kRequests);
  EXPECT_NEAR(counts["a"] * 100.0 / kRequests, 80.0, 6.0) << "a=" << counts["a"];
  EXPECT_EQ(a_.stats().requests, counts["a"]);
  EXPECT_EQ(b_.stats().requests, counts["b"]);
}

// --- 4. Large bodies --------------------------------------------------------------------------

TEST_F(ProxyTest, UploadChunked10MiB) {
  const std::string body = uploadBody(10 * kMiB);
  auto c = connect(absl::Seconds(60));
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(absl::StrCat(
      req("POST", "/upload", "test", "Transfer-Encoding: chunked\r\n"), chunkedBody(body, 100000)));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  auto e = parseEcho(r->body);
  ASSERT_TRUE(e.has_value()) << r->body;
  EXPECT_EQ(e->get("transfer-encoding"), "chunked");
  EXPECT_EQ(e->body_bytes, body.size());
  EXPECT_EQ(e->body_sha256, sha256Hex(body));
  // The connection is still usable.
  auto next = c->roundTrip(req("GET", "/after"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->status, 200);
}

TEST_F(ProxyTest, UploadContentLength10MiB) {
  const std::string body = uploadBody(10 * kMiB);
  auto c = connect(absl::Seconds(60));
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(absl::StrCat(
      req("PUT", "/upload", "test", absl::StrCat("Content-Length: ", body.size(), "\r\n")), body));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  auto e = parseEcho(r->body);
  ASSERT_TRUE(e.has_value()) << r->body;
  EXPECT_EQ(e->get("content-length"), absl::StrCat(body.size()));
  EXPECT_EQ(e->body_bytes, body.size());
  EXPECT_EQ(e->body_sha256, sha256Hex(body));
}

TEST_F(ProxyTest, Download10MiBChunkedAndContentLength) {
  const size_t size = 10 * kMiB;
  const std::string expected_sha = sha256Hex(echoPattern(size));
  auto c = connect(absl::Seconds(60));
  ASSERT_NE(c, nullptr);

  auto r = c->roundTrip(
      req("GET", "/download", "test", absl::StrCat("x-echo-body-size: ", size, "\r\n")));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->header("transfer-encoding"), "chunked");
  EXPECT_EQ(r->headerCount("content-length"), 0);
  EXPECT_GT(r->chunks, 1);
  EXPECT_EQ(r->body.size(), size);
  EXPECT_EQ(sha256Hex(r->body), expected_sha);

  r = c->roundTrip(req("GET", "/download", "test",
                       absl::StrCat("x-echo-body-size: ", size, "\r\nx-echo-chunked: 0\r\n")));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), absl::StrCat(size));
  EXPECT_EQ(r->headerCount("transfer-encoding"), 0);
  EXPECT_EQ(r->body.size(), size);
  EXPECT_EQ(sha256Hex(r->body), expected_sha);
}

// --- 5. Upstream keep-alive -------------------------------------------------------------------

TEST_F(ProxyTest, UpstreamConnectionsAreReused) {
  constexpr int kConnections = 5, kPerConnection = 10;
  const EchoStats before = a_.stats();
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < kConnections; ++i) {
    conns.push_back(connect());
    ASSERT_NE(conns.back(), nullptr);
  }
  for (int round = 0; round < kPerConnection; ++round) {
    for (auto& c : conns) {
      auto r = c->roundTrip(req("GET", "/reuse"));
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->status, 200);
      ASSERT_EQ(r->header("x-echo-name"), "a");
    }
  }
  const EchoStats after = a_.stats();
  const double cx = metric("sluice_cluster_upstream_cx_total{cluster=\"a\"}");
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_total{cluster=\"a\"}"), 50);
  EXPECT_GE(metric("sluice_cluster_upstream_rq_reused_total{cluster=\"a\"}"), 40);
  EXPECT_GE(cx, 1);
  EXPECT_LE(cx, 4);  // at most two per worker
  EXPECT_EQ(metric("sluice_http_downstream_rq_total{listener=\"main\",code_class=\"2xx\"}"), 50);
  // The echo agrees: 50 requests on as many connections as the proxy opened (the second
  // /__stats request's own connection aside).
  EXPECT_EQ(after.requests - before.requests, 50);
  EXPECT_EQ(after.connections_accepted - before.connections_accepted - 1, cx);
}

// --- 6. Forwarding headers and normalization --------------------------------------------------

TEST_F(ProxyTest, ForwardingHeaders) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto e = echoed(*c, req("GET", "/fwd", "test", "x-forwarded-proto: https\r\n"));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->all("x-forwarded-for"), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(e->all("x-forwarded-proto"), std::vector<std::string>{"http"});
  EXPECT_EQ(e->all("via"), std::vector<std::string>{"1.1 sluice"});
  ASSERT_EQ(e->count("x-request-id"), 1);
  const std::string id1 = e->get("x-request-id");
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  EXPECT_TRUE(std::regex_match(id1, uuid)) << id1;

  e = echoed(*c, req("GET", "/fwd"));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(std::regex_match(e->get("x-request-id"), uuid)) << e->get("x-request-id");
  EXPECT_NE(e->get("x-request-id"), id1);

  e = echoed(*c, req("GET", "/fwd", "test", "X-Request-Id: my-id-123\r\n"));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->all("x-request-id"), std::vector<std::string>{"my-id-123"});

  // A client's own list is kept, with the client's address appended, in one header.
  e = echoed(*c, req("GET", "/fwd", "test",
                     "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n"));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->all("x-forwarded-for"),
            std::vector<std::string>{"10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"});

  auto r = c->roundTrip(req("GET", "/fwd"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header("via"), "1.1 sluice");
  EXPECT_EQ(r->headerCount("via"), 1);
}

TEST_F(ProxyTest, HopByHopAndInternalHeadersNotForwarded) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto e = echoed(*c, req("GET", "/hop", "test",
                          "Connection: foo\r\n"
                          "foo: x\r\n"
                          "Keep-Alive: timeout=5\r\n"
                          "TE: trailers\r\n"
                          "Upgrade: websocket\r\n"
                          "Proxy-Connection: keep-alive\r\n"
                          "x-sluice-internal: secret\r\n"
                          "X-Sluice-Auth: user\r\n"
                          "x-end-to-end: kept\r\n"));
  ASSERT_TRUE(e.has_value());
  for (const char* h : {"foo", "keep-alive", "te", "upgrade", "proxy-connection",
                        "x-sluice-internal", "x-sluice-auth"}) {
    EXPECT_EQ(e->count(h), 0) << h << " was forwarded";
  }
  for (const std::string& v : e->all("connection"))
    EXPECT_THAT(v, ::testing::Not(HasSubstr("foo")));
  EXPECT_EQ(e->get("x-end-to-end"), "kept");
  // The client's keep-alive is not affected by the options it named.
  auto r = c->roundTrip(req("GET", "/again"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);

  // Nor does the client get the upstream's hop-by-hop response headers.
  r = c->roundTrip(req("GET", "/hop-response", "test",
                       "x-echo-header: keep-alive=timeout=5\r\n"
                       "x-echo-header: upgrade=h2c\r\n"
                       "x-echo-header: trailer=x-t\r\n"
                       "x-echo-header: x-end-to-end=yes\r\n"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  for (const char* h : {"keep-alive", "upgrade", "trailer"}) {
    EXPECT_EQ(r->headerCount(h), 0) << h << " was forwarded to the client";
  }
  EXPECT_EQ(r->header("x-end-to-end"), "yes");
}

TEST_F(ProxyTest, PathIsNormalizedForRoutingAndUpstream) {
  HttpResponse r = get("/a/./b/../c//d?x=1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-echo-name"), "b");  // routed by path /a/c/d
  auto e = parseEcho(r.body);
  ASSERT_TRUE(e.has_value()) << r.body;
  EXPECT_EQ(e->target, "/a/c/d?x=1");

  // Escaped unreserved characters are decoded before matching.
  r = get("/%65xact");
  EXPECT_EQ(r.header("x-echo-name"), "b");
  // Climbing above the root is refused, not clamped.
  r = get("/../exact");
  EXPECT_EQ(r.status, 400);
}

// --- 7. Pipelining ----------------------------------------------------------------------------

TEST_F(ProxyTest, PipelinedRequestsAnsweredInOrder) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  // The first is the slowest, and goes to another upstream than the second.
  ASSERT_TRUE(c->send(absl::StrCat(req("GET", "/exact", "test", "x-echo-delay-ms: 300\r\n"),
                                   req("GET", "/second"), req("GET", "/direct")))
                  .ok());
  auto r1 = c->read();
  ASSERT_TRUE(r1.ok()) << r1.status();
  auto r2 = c->read();
  ASSERT_TRUE(r2.ok()) << r2.status();
  auto r3 = c->read();
  ASSERT_TRUE(r3.ok()) << r3.status();
  auto e1 = parseEcho(r1->body);
  auto e2 = parseEcho(r2->body);
  ASSERT_TRUE(e1.has_value()) << r1->body;
  ASSERT_TRUE(e2.has_value()) << r2->body;
  EXPECT_EQ(e1->target, "/exact");
  EXPECT_EQ(r1->header("x-echo-name"), "b");
  EXPECT_EQ(e2->target, "/second");
  EXPECT_EQ(r2->header("x-echo-name"), "a");
  EXPECT_EQ(r3->status, 202);
  EXPECT_EQ(r3->body, "direct answer\n");
}

// --- 8. Interim responses and bodiless responses ----------------------------------------------

TEST_F(ProxyTest, ExpectContinue) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->send(req("POST", "/upload", "test", "Content-Length: 11\r\nExpect: 100-continue\r\n"))
          .ok());
  auto interim = c->read();
  ASSERT_TRUE(interim.ok()) << interim.status();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c->send("hello world").ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200);
  auto e = parseEcho(r->body);
  ASSERT_TRUE(e.has_value()) << r->body;
  EXPECT_EQ(e->body_bytes, 11u);
  EXPECT_EQ(e->body_sha256, sha256Hex("hello world"));
  EXPECT_EQ(e->count("expect"), 0);
}

TEST_F(ProxyTest, HeadHasNoBody) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  // A local answer: the length of the GET body, and no body.
  auto r = c->roundTrip(req("HEAD", "/direct"), /*head=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->header("content-length"), "14");
  // Through the upstream.
  r = c->roundTrip(req("HEAD", "/head"), /*head=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-echo-name"), "a");
  EXPECT_EQ(r->headerCount("transfer-encoding"), 0);
  // Had a body followed either answer, this would read it instead of a status line.
  EXPECT_FALSE(c->readable(absl::Milliseconds(200)));
  r = c->roundTrip(req("GET", "/direct"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "direct answer\n");
}

TEST_F(ProxyTest, NoContentAndNotModifiedPassThroughWithoutBody) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (int status : {204, 304}) {
    auto r = c->roundTrip(
        req("GET", "/status", "test", absl::StrCat("x-echo-status: ", status, "\r\n")));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(r->headerCount("transfer-encoding"), 0) << status;
    EXPECT_FALSE(c->readable(absl::Milliseconds(200))) << "bytes after a " << status;
    auto next = c->roundTrip(req("GET", "/next"));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->status, 200);
    auto e = parseEcho(next->body);
    ASSERT_TRUE(e.has_value()) << next->body;
    EXPECT_EQ(e->target, "/next");
  }
}

// --- 9. Local errors --------------------------------------------------------------------------

TEST_F(ProxyTest, UpstreamConnectRefusedIs502) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(req("GET", "/dead"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 502);
  EXPECT_THAT(r->body, HasSubstr("upstream connect error"));
  EXPECT_THAT(r->body, HasSubstr("refused"));
  // The client connection survives a failed upstream.
  r = c->roundTrip(req("GET", "/fine"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(metric("sluice_cluster_upstream_rq_local_5xx_total{cluster=\"dead\"}"), 1);
}

TEST_F(ProxyTest, ClusterWithoutEndpointsIs503) {
  HttpResponse r = get("/empty");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "no healthy upstream\n");
  EXPECT_EQ(metric("sluice_cluster_upstream_no_healthy_total{cluster=\"empty\"}"), 1);
}

TEST_F(ProxyTest, RouteTimeoutIs504) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(req("GET", "/slow", "test", "x-echo-delay-ms: 2000\r\n"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(r->body, "upstream request timeout\n");
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_timeout_total{cluster=\"a\"}"), 1);
  // The late answer to the timed-out request never reaches this connection.
  r = c->roundTrip(req("GET", "/slow"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  auto e = parseEcho(r->body);
  ASSERT_TRUE(e.has_value()) << r->body;
  EXPECT_EQ(e->count("x-echo-delay-ms"), 0);
}

TEST_F(ProxyTest, UpstreamCloseAfterResponseIsNotReused) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(req("GET", "/first", "test", "x-echo-close: 1\r\n"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  // The upstream's Connection: close is hop-by-hop: the client keeps its connection.
  EXPECT_NE(absl::AsciiStrToLower(r->header("connection")), "close");
  for (int i = 0; i < 3; ++i) {
    r = c->roundTrip(req("GET", "/next"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
  }
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_local_5xx_total{cluster=\"a\"}"), 0);
  EXPECT_EQ(a_.stats().requests, 4);
}

TEST_F(ProxyTest, IdleUpstreamConnectionClosedByRestartIsNotUsed) {
  // Several client connections, so that both workers likely hold an idle pooled connection.
  constexpr int kConnections = 6;
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < kConnections; ++i) {
    conns.push_back(connect());
    ASSERT_NE(conns.back(), nullptr);
    auto r = conns.back()->roundTrip(req("GET", "/warm"));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200);
  }
  ASSERT_GE(metric("sluice_cluster_upstream_cx_idle{cluster=\"a\"}"), 1);
  ASSERT_TRUE(a_.restart()) << a_.log();
  for (auto& c : conns) {
    auto r = c->roundTrip(req("GET", "/after-restart"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
  }
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_local_5xx_total{cluster=\"a\"}"), 0);
  EXPECT_EQ(a_.stats().requests, kConnections);
  // The scenario happened: pooled connections were found closed (while idle, or when reused).
  EXPECT_GE(metric("sluice_cluster_upstream_cx_idle_closed_total{cluster=\"a\"}") +
                metric("sluice_cluster_upstream_rq_retry_total{cluster=\"a\"}"),
            1);
}

// An upstream that answers the first request on each connection (keep-alive) and closes the
// connection, unanswered, when a second request arrives on it: the race of a server closing an
// idle connection just as the proxy reuses it, made deterministic.
class OneShotUpstream {
 public:
  ~OneShotUpstream() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  bool start(int port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 16) != 0) {
      return false;
    }
    thread_ = std::thread([this] { loop(); });
    return true;
  }

  int accepted() const { return accepted_; }
  int answered() const { return answered_; }
  int closed_unanswered() const { return closed_unanswered_; }

 private:
  struct Conn {
    int fd;
    std::string in;
    int served = 0;
  };

  void loop() {
    std::vector<Conn> conns;
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const Conn& c : conns) fds.push_back({c.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          conns.push_back({fd});
          ++accepted_;
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Conn& c = conns[i - 1];
        char buf[16384];
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          close(c.fd);
          c.fd = -1;
          continue;
        }
        c.in.append(buf, n);
        size_t end;
        while (c.fd >= 0 && (end = c.in.find("\r\n\r\n")) != std::string::npos) {
          c.in.erase(0, end + 4);
          if (c.served++ > 0) {
            ++closed_unanswered_;
            close(c.fd);
            c.fd = -1;
            break;
          }
          std::string body = absl::StrCat("answer ", ++answered_, "\n");
          std::string response =
              absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
          ::send(c.fd, response.data(), response.size(), MSG_NOSIGNAL);
        }
      }
      std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
    }
    for (const Conn& c : conns) close(c.fd);
  }

  int listen_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0}, answered_{0}, closed_unanswered_{0};
};

TEST_F(ProxyTest, PooledConnectionClosedAsItIsReusedIsRetriedFresh) {
  OneShotUpstream upstream;
  ASSERT_TRUE(upstream.start(oneshot_port_));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (int i = 1; i <= 3; ++i) {
    auto r = c->roundTrip(req("GET", "/oneshot"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->body, absl::StrCat("answer ", i, "\n"));
  }
  // Requests 2 and 3 each met a pooled connection that the upstream closed unanswered.
  EXPECT_EQ(upstream.closed_unanswered(), 2);
  EXPECT_EQ(upstream.answered(), 3);
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_retry_total{cluster=\"oneshot\"}"), 2);
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_local_5xx_total{cluster=\"oneshot\"}"), 0);
}

// --- 10. Backpressure -------------------------------------------------------------------------

// A client with a small receive window that can stop reading: HttpConnection has no way to set
// SO_RCVBUF before connecting, and loopback autotuning would otherwise let the kernel hold much
// of the body.
class SlowReader {
 public:
  explicit SlowReader(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rcvbuf = 64 * 1024;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~SlowReader() { close(fd_); }

  bool connected() const { return connected_; }
  bool send(absl::string_view bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Reads until `done` says the response is complete, the peer closes, or nothing arrives for
  // `idle`.
  std::string readAll(const std::function<bool(const std::string&)>& done, absl::Duration idle) {
    std::string data;
    std::vector<char> buf(256 * 1024);
    while (!done(data)) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, absl::ToInt64Milliseconds(idle)) <= 0) break;
      ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      data.append(buf.data(), n);
    }
    return data;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Removes chunked framing; nullopt if `body` is not exactly a complete chunked body.
std::optional<std::string> dechunk(absl::string_view body) {
  std::string out;
  for (;;) {
    size_t eol = body.find("\r\n");
    if (eol == absl::string_view::npos) return std::nullopt;
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(body.substr(0, eol), &size)) return std::nullopt;
    body.remove_prefix(eol + 2);
    if (size == 0) return body == "\r\n" ? std::optional<std::string>(out) : std::nullopt;
    if (body.size() < size + 2 || body.substr(size, 2) != "\r\n") return std::nullopt;
    out.append(body.data(), size);
    body.remove_prefix(size + 2);
  }
}

class ProxyBackpressureTest : public ProxyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ProxyBackpressureTest, SlowClientDoesNotMakeTheProxyBufferTheBody) {
  const bool chunked = GetParam();
  const size_t size = 20 * kMiB;
  const std::string extra =
      absl::StrCat("x-echo-body-size: ", size, "\r\n", chunked ? "" : "x-echo-chunked: 0\r\n");
  // Warm up: the same download read at full speed, so that buffers the worker keeps anyway are
  // part of the baseline.
  {
    auto c = connect(absl::Seconds(60));
    ASSERT_NE(c, nullptr);
    auto r = c->roundTrip(req("GET", "/warm", "test", extra));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->body.size(), size);
  }
  const pid_t pid = sluice_->pid();
  const int64_t baseline = rssKiB(pid);
  ASSERT_GT(baseline, 0);

  SlowReader client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(req("GET", "/big", "test", extra)));
  // Do not read for a while; a proxy that buffers would hold most of the body by now.
  int64_t peak = baseline;
  for (int i = 0; i < 20; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    peak = std::max(peak, rssKiB(pid));
  }
  RecordProperty("rss_baseline_kib", absl::StrCat(baseline));
  RecordProperty("rss_growth_kib", absl::StrCat(peak - baseline));
  EXPECT_LT(peak - baseline, 12 * 1024)
      << "VmRSS grew from " << baseline << " to " << peak << " KiB while the client did not read";

  std::string raw = client.readAll(
      [&](const std::string& data) {
        size_t head_end = data.find("\r\n\r\n");
        if (head_end == std::string::npos) return false;
        if (chunked) return absl::EndsWith(data, "\r\n0\r\n\r\n");
        return data.size() >= head_end + 4 + size;
      },
      absl::Seconds(10));
  size_t head_end = raw.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << raw.substr(0, 200);
  std::string head = absl::AsciiStrToLower(raw.substr(0, head_end));
  ASSERT_TRUE(absl::StartsWith(head, "http/1.1 200")) << head;
  std::string body = raw.substr(head_end + 4);
  if (chunked) {
    EXPECT_THAT(head, HasSubstr("transfer-encoding: chunked"));
    auto plain = dechunk(body);
    ASSERT_TRUE(plain.has_value()) << "bad chunked body of " << body.size() << " bytes";
    body = std::move(*plain);
  } else {
    EXPECT_THAT(head, HasSubstr(absl::StrCat("content-length: ", size)));
  }
  ASSERT_EQ(body.size(), size);
  EXPECT_EQ(sha256Hex(body), sha256Hex(echoPattern(size)));
}

INSTANTIATE_TEST_SUITE_P(Framing, ProxyBackpressureTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Chunked" : "ContentLength";
                         });

// --- 11. Limits -------------------------------------------------------------------------------

// Sends `request` on a fresh connection; expects `status` and the connection closed after it.
void expectRejected(int port, const std::string& request, int status) {
  auto c = HttpConnection::connect(port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->send(request).ok());
  auto r = (*c)->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(absl::AsciiStrToLower(r->header("connection")), "close");
  EXPECT_TRUE((*c)->closedByPeer(absl::Seconds(5)));
}

TEST_F(ProxyTest, LongRequestLineIs414) {
  // "GET " + target + " HTTP/1.1": 8192 bytes is the longest allowed.
  const size_t overhead = strlen("GET / HTTP/1.1");
  auto longest = connect();
  ASSERT_NE(longest, nullptr);
  auto r = longest->roundTrip(req("GET", "/" + std::string(8192 - overhead, 'x')));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  const int64_t before = a_.stats().requests;

  expectRejected(port_, req("GET", "/" + std::string(8193 - overhead, 'x')), 414);
  expectRejected(port_, req("GET", "/" + std::string(20000, 'x')), 414);
  // Answered as soon as the line is too long, without waiting for its end.
  expectRejected(port_, "GET /" + std::string(9000, 'x'), 414);
  EXPECT_EQ(a_.stats().requests, before);
  EXPECT_EQ(b_.stats().requests, 0);
}

TEST_F(ProxyTest, LargeHeadersAre431) {
  std::string headers;
  for (int i = 0; i < 20; ++i)
    absl::StrAppend(&headers, "x-big-", i, ": ", std::string(4000, 'v'), "\r\n");
  expectRejected(port_, req("GET", "/big-headers", "test", headers), 431);
  // Answered as soon as the limit is passed, without waiting for the end of the head.
  expectRejected(port_, absl::StrCat("GET /big-headers HTTP/1.1\r\nHost: test\r\n", headers), 431);
  EXPECT_EQ(a_.stats().requests, 0);
  EXPECT_EQ(b_.stats().requests, 0);
}

TEST_F(ProxyTest, HeadOfExactly60KiBIsAccepted) {
  // The limit counts the whole head: request line, fields and the blank line with their CRLFs.
  const std::string prefix = "GET /h HTTP/1.1\r\nHost: test\r\nx-fill: ";
  const std::string largest =
      absl::StrCat(prefix, std::string(60 * 1024 - prefix.size() - 4, 'f'), "\r\n\r\n");
  ASSERT_EQ(largest.size(), 60u * 1024);
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(largest);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);

  expectRejected(port_,
                 absl::StrCat(prefix, std::string(60 * 1024 - prefix.size() - 3, 'f'), "\r\n\r\n"),
                 431);
  EXPECT_EQ(a_.stats().requests, 1);
}

TEST_F(ProxyTest, TooManyHeadersAre431) {
  // Host plus 99: 100 fields, the most allowed.
  std::string fields;
  for (int i = 0; i < 99; ++i) absl::StrAppend(&fields, "x-h-", i, ": v\r\n");
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(req("GET", "/hundred", "test", fields));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);

  expectRejected(port_, req("GET", "/hundred-and-one", "test", fields + "x-h-99: v\r\n"), 431);
  EXPECT_EQ(a_.stats().requests, 1);
  EXPECT_EQ(b_.stats().requests, 0);
}

// --- Timeouts and the admin endpoint -----------------------------------------------------------

TEST_F(ProxyTest, SlowRequestHeadIs408AndClosed) {
  auto c = HttpConnection::connect(strict_port_);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->send("GET /slow HTTP/1.1\r\nHost: test\r\n").ok());  // never finished
  auto r = (*c)->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE((*c)->closedByPeer(absl::Seconds(5)));
  EXPECT_EQ(metric("sluice_http_downstream_rq_header_timeout_total{listener=\"strict\"}"), 1);
}

TEST_F(ProxyTest, SilentConnectionIsClosedWithoutAnAnswer) {
  auto c = HttpConnection::connect(strict_port_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->closedByPeer(absl::Seconds(5)));
}

TEST_F(ProxyTest, IdleKeepAliveConnectionIsClosed) {
  auto c = HttpConnection::connect(strict_port_);
  ASSERT_TRUE(c.ok()) << c.status();
  auto r = (*c)->roundTrip(req("GET", "/idle"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("connection"), "");             // kept alive ...
  EXPECT_TRUE((*c)->closedByPeer(absl::Seconds(5)));  // ... until idle too long
  // The default listener's 60 s idle timeout keeps its connection open meanwhile.
  auto d = connect();
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->roundTrip(req("GET", "/idle")).ok());
  EXPECT_FALSE(d->closedByPeer(absl::Milliseconds(700)));
  EXPECT_TRUE(d->roundTrip(req("GET", "/idle")).ok());
}

TEST_F(ProxyTest, ClustersEndpointListsEndpointsAndCounts) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 4; ++i) {
    auto r = c->roundTrip(req("GET", "/reuse"));
    ASSERT_TRUE(r.ok()) << r.status();
  }
  const std::string json = httpGet(admin_port_, "/clusters");
  const std::string a = absl::StrCat("\"address\":\"127.0.0.1:", a_.port(), "\"");
  EXPECT_NE(json.find("\"name\":\"a\""), std::string::npos) << json;
  EXPECT_NE(json.find(a + ",\"weight\":1,\"priority\":0,\"health\":\"healthy\""), std::string::npos)
      << json;
  EXPECT_NE(json.find("\"rq_active\":0,\"rq_total\":4,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"lb_policy\":\"ROUND_ROBIN\""), std::string::npos) << json;
  const std::string dump = httpGet(admin_port_, "/config_dump");
  EXPECT_NE(dump.find("\"name\":\"strict\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"versions\":{\"Cluster\":\"local-"), std::string::npos) << dump;
}

TEST_F(ProxyTest, ListenerConnectionLimit) {
  auto c1 = HttpConnection::connect(strict_port_);
  auto c2 = HttpConnection::connect(strict_port_);
  ASSERT_TRUE(c1.ok() && c2.ok());
  ASSERT_TRUE((*c1)->roundTrip(req("GET", "/one")).ok());
  ASSERT_TRUE((*c2)->roundTrip(req("GET", "/two")).ok());
  auto c3 = HttpConnection::connect(strict_port_);
  ASSERT_TRUE(c3.ok());  // the kernel accepts; the proxy closes it at once
  EXPECT_TRUE((*c3)->closedByPeer(absl::Seconds(5)));
  EXPECT_EQ(metric("sluice_http_downstream_cx_overflow_total{listener=\"strict\"}"), 1);
  // Closing one makes room again.
  c1->reset();
  ASSERT_TRUE(waitFor(absl::Seconds(5), [&] {
    return metric("sluice_http_downstream_cx_active{listener=\"strict\"}") == 1;
  }));
  auto c4 = HttpConnection::connect(strict_port_);
  ASSERT_TRUE(c4.ok());
  auto r = (*c4)->roundTrip(req("GET", "/four"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
}

TEST_F(ProxyTest, Http10Clients) {
  {
    // No keep-alive: the answer is HTTP/1.0 and the connection closes after it.
    auto c = connect();
    ASSERT_NE(c, nullptr);
    auto r = c->roundTrip("GET /ten HTTP/1.0\r\nHost: test\r\n\r\n");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->version, "HTTP/1.0");
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(c->closedByPeer(absl::Seconds(5)));
  }
  {
    // Keep-alive asked for: kept, and said so.
    auto c = connect();
    ASSERT_NE(c, nullptr);
    const std::string ka = "GET /ten HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n\r\n";
    auto r = c->roundTrip(ka);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->header("connection"), "keep-alive");
    r = c->roundTrip(ka);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
  }
  {
    // A chunked upstream body reaches an HTTP/1.0 client de-chunked, delimited by the close.
    auto c = connect();
    ASSERT_NE(c, nullptr);
    auto r = c->roundTrip(
        "GET /ten HTTP/1.0\r\nHost: test\r\nx-echo-body-size: 100000\r\nx-echo-chunked: 1\r\n"
        "\r\n");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->header("transfer-encoding"), "");
    EXPECT_EQ(r->chunks, 0);
    EXPECT_EQ(r->body.size(), 100000u);
    EXPECT_EQ(r->body.substr(0, 3), "abc");
  }
}

// --- 12. Connection manager edge cases ---------------------------------------------------------

// A raw loopback client whose receive buffer, if `rcvbuf` > 0, is set before connecting (a small
// one keeps the kernel from holding much of what the proxy sends), for tests that choose when it
// reads, how much, and when it half-closes.
class RawClient {
 public:
  RawClient(int port, int rcvbuf) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  // Sends all of `bytes`, blocking.
  bool send(absl::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(n);
    }
    return true;
  }

  // Sends what the socket takes of `bytes` once it has room, waiting at most `wait` for room:
  // how many bytes went (0: no room in time), or -1 on an error.
  ssize_t sendSome(absl::string_view bytes, absl::Duration wait) {
    pollfd p{fd_, POLLOUT, 0};
    int r = poll(&p, 1, absl::ToInt64Milliseconds(wait));
    if (r < 0) return errno == EINTR ? 0 : -1;
    if (r == 0) return 0;
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    return n;
  }

  // Appends at most `max` bytes to `*data`, waiting at most `wait` for some: how many (0: none
  // came in time), or -1 once the peer closed or reset the connection.
  ssize_t recvSome(std::string* data, size_t max, absl::Duration wait) {
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, absl::ToInt64Milliseconds(wait));
    if (r < 0) return errno == EINTR ? 0 : -1;
    if (r == 0) return 0;
    const size_t old = data->size();
    data->resize(old + max);
    ssize_t n = recv(fd_, data->data() + old, max, 0);
    data->resize(old + std::max<ssize_t>(n, 0));
    if (n < 0 && errno == EINTR) return 0;
    return n > 0 ? n : -1;
  }

  // Reads into `*data` until the peer closes (true) or nothing arrives for `idle` (false).
  bool readToClose(std::string* data, absl::Duration idle) {
    for (;;) {
      ssize_t n = recvSome(data, 64 * 1024, idle);
      if (n < 0) return true;
      if (n == 0) return false;
    }
  }

  void shutdownWrite() { shutdown(fd_, SHUT_WR); }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Takes one complete response off the front of `*buf`. nullopt while `*buf` holds less than a
// whole one, or when what it holds is not a response: then `*bad` is set. `head`: the answer to
// a HEAD request. Bodies must be framed (close-delimited ones are `bad`); trailers are not
// supported.
std::optional<HttpResponse> takeResponse(std::string* buf, bool* bad, bool head = false) {
  *bad = false;
  const size_t head_end = buf->find("\r\n\r\n");
  if (head_end == std::string::npos) return std::nullopt;
  HttpResponse r;
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(*buf).substr(0, head_end), "\r\n");
  std::vector<absl::string_view> first = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (first.size() < 2 || !absl::StartsWith(first[0], "HTTP/1.") ||
      !absl::SimpleAtoi(first[1], &r.status)) {
    *bad = true;
    return std::nullopt;
  }
  r.version = std::string(first[0]);
  if (first.size() > 2) r.reason = std::string(first[2]);
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) {
      *bad = true;
      return std::nullopt;
    }
    r.headers.emplace_back(std::string(lines[i].substr(0, colon)),
                           std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  size_t end = head_end + 4;
  const absl::string_view rest = absl::string_view(*buf).substr(end);
  if (head || r.status / 100 == 1 || r.status == 204 || r.status == 304) {
    // No body.
  } else if (absl::EndsWithIgnoreCase(r.header("transfer-encoding"), "chunked")) {
    size_t at = 0;
    for (;;) {
      const size_t eol = rest.find("\r\n", at);
      if (eol == absl::string_view::npos) return std::nullopt;
      uint64_t size = 0;
      if (!absl::SimpleHexAtoi(rest.substr(at, eol - at), &size)) {
        *bad = true;
        return std::nullopt;
      }
      at = eol + 2;
      if (rest.size() < at + size + 2) return std::nullopt;
      if (rest.substr(at + size, 2) != "\r\n") {
        *bad = true;
        return std::nullopt;
      }
      if (size == 0) {
        at += 2;
        break;
      }
      r.body.append(rest.data() + at, size);
      ++r.chunks;
      at += size + 2;
    }
    end += at;
  } else if (r.headerCount("content-length") > 0) {
    size_t length = 0;
    if (!absl::SimpleAtoi(r.header("content-length"), &length)) {
      *bad = true;
      return std::nullopt;
    }
    if (rest.size() < length) return std::nullopt;
    r.body = std::string(rest.substr(0, length));
    end += length;
  } else {
    *bad = true;
    return std::nullopt;
  }
  buf->erase(0, end);
  return r;
}

// An upstream the test scripts: each connection accepted on 127.0.0.1:`port` runs `serve` on a
// thread of its own with a blocking socket, and returning from `serve` closes the connection.
// The destructor shuts down the connections still open (which ends blocked reads and writes)
// and joins every thread.
class ScriptedUpstream {
 public:
  explicit ScriptedUpstream(std::function<void(int fd)> serve) : serve_(std::move(serve)) {}
  ~ScriptedUpstream() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) {
        if (fd >= 0) shutdown(fd, SHUT_RDWR);
      }
    }
    for (std::thread& t : threads_) t.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  ScriptedUpstream(const ScriptedUpstream&) = delete;
  ScriptedUpstream& operator=(const ScriptedUpstream&) = delete;

  bool start(int port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 16) != 0) {
      return false;
    }
    acceptor_ = std::thread([this] { acceptLoop(); });
    return true;
  }

  int accepted() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(fds_.size());
  }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      const size_t i = fds_.size();
      fds_.push_back(fd);
      threads_.emplace_back([this, fd, i] {
        serve_(fd);
        std::lock_guard<std::mutex> lock(mu_);
        close(fd);
        fds_[i] = -1;
      });
    }
  }

  const std::function<void(int fd)> serve_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;  // by accept order; -1 once closed
  std::vector<std::thread> threads_;
};

TEST_F(ProxyTest, ChunkedBodyOfTinyChunksReachesAClientThatReadsSlowlyThenFast) {
  // About 3 MB on the wire: 7-byte chunks, all sent at once, so that the proxy often holds
  // upstream bytes it has read but not yet moved to the client when the upstream has nothing
  // more to send.
  constexpr size_t kData = 1750 * 1000;
  const std::string data = echoPattern(kData);
  std::string response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t i = 0; i < kData; i += 7) {
    absl::string_view piece = absl::string_view(data).substr(i, 7);
    absl::StrAppend(&response, piece.size(), "\r\n", piece, "\r\n");  // sizes < 10: hex too
  }
  response += "0\r\n\r\n";
  ScriptedUpstream upstream([&response](int fd) {
    std::string buf, head;
    while (readRequestHead(fd, &buf, &head)) {
      if (!sendAll(fd, response)) return;
    }
  });
  ASSERT_TRUE(upstream.start(oneshot_port_));

  for (int i = 0; i < 20; ++i) {
    // A small receive window and a slow start of varying length: the proxy's writes come out
    // partial for a while, then whole.
    RawClient client(port_, i % 2 == 0 ? 2048 : 4096);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send(req("GET", "/oneshot/tiny-chunks")));
    const size_t slow_bytes = (i % 10) * 40 * 1024;
    std::string raw;
    bool stalled = false, closed = false;
    while (!absl::EndsWith(raw, "\r\n0\r\n\r\n")) {
      const bool slow = raw.size() < slow_bytes;
      ssize_t n =
          client.recvSome(&raw, slow ? 700 + raw.size() % 3 * 1100 : kMiB, absl::Seconds(3));
      if (n <= 0) {
        (n == 0 ? stalled : closed) = true;
        break;
      }
      if (slow) absl::SleepFor(absl::Microseconds(300));
    }
    ASSERT_FALSE(stalled) << "round " << i << ": nothing for 3 s after " << raw.size() << " bytes";
    ASSERT_FALSE(closed) << "round " << i << ": closed after " << raw.size() << " bytes";
    const size_t head_end = raw.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos);
    ASSERT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200 ")) << raw.substr(0, head_end);
    std::optional<std::string> body = dechunk(absl::string_view(raw).substr(head_end + 4));
    ASSERT_TRUE(body.has_value()) << "round " << i << ": bad chunked body";
    ASSERT_EQ(body->size(), kData) << "round " << i;
    ASSERT_TRUE(*body == data) << "round " << i << ": body differs";
  }
}

TEST_F(ProxyTest, StalledRequestBodyIs408AndClosed) {
  // The strict listener's idle timeout (300ms) bounds a request whose body stops coming.
  auto c = HttpConnection::connect(strict_port_, absl::Seconds(5));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->send(absl::StrCat(req("POST", "/stalled", "test", "Content-Length: 100\r\n"),
                                      std::string(10, 'x')))
                  .ok());
  auto r = (*c)->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(r->body, "request body timeout\n");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE((*c)->closedByPeer(absl::Seconds(5)));
  EXPECT_EQ(metric("sluice_http_downstream_rq_total{listener=\"strict\",code_class=\"4xx\"}"), 1);
}

TEST_F(ProxyTest, PipelinedLocalAnswersToAClientThatDoesNotReadAreBounded) {
  // Request i goes to one of two virtual hosts, in an order with no short period: the answers
  // show which request they answer.
  auto exact = [](uint64_t i) { return ((i * 0x9E3779B97F4A7C15ULL) >> 63) != 0; };
  auto request = [&](uint64_t i) {
    return req("GET", "/", exact(i) ? "exact.test" : "x.wild.test");
  };
  const pid_t pid = sluice_->pid();
  const int64_t baseline = rssKiB(pid);
  ASSERT_GT(baseline, 0);

  RawClient client(port_, 4096);
  ASSERT_TRUE(client.connected());
  // Up to 30 MB of requests, never reading: a proxy that keeps reading them piles up the
  // answers. One that stops reading soon leaves no room to send more.
  const size_t kTotal = 30 * kMiB;
  const absl::Time give_up = absl::Now() + absl::Seconds(4);
  size_t sent = 0, next_rss = 0;
  uint64_t next = 0;
  std::string pending;
  int64_t peak = baseline;
  while (sent < kTotal && absl::Now() < give_up) {
    while (pending.size() < 64 * 1024) pending += request(next++);
    ssize_t n = client.sendSome(pending, absl::Seconds(1));
    ASSERT_GE(n, 0) << "send failed after " << sent << " bytes";
    if (n == 0) break;  // the proxy stopped reading
    pending.erase(0, n);
    sent += n;
    if (sent >= next_rss) {
      peak = std::max(peak, rssKiB(pid));
      next_rss = sent + kMiB;
    }
  }
  peak = std::max(peak, rssKiB(pid));
  RecordProperty("pipelined_bytes_sent", absl::StrCat(sent));
  RecordProperty("rss_growth_kib", absl::StrCat(peak - baseline));
  EXPECT_LT(peak - baseline, 10 * 1024) << "VmRSS grew from " << baseline << " to " << peak
                                        << " KiB; " << sent << " bytes of requests were taken";

  // Reading now: the answers come, in order.
  std::string buf;
  for (uint64_t i = 0; i < 2000; ++i) {
    bool bad = false;
    std::optional<HttpResponse> r;
    while (!(r = takeResponse(&buf, &bad)).has_value() && !bad) {
      ASSERT_GT(client.recvSome(&buf, 64 * 1024, absl::Seconds(5)), 0) << "answer " << i;
    }
    ASSERT_FALSE(bad) << "answer " << i << ": " << buf.substr(0, 200);
    ASSERT_EQ(r->status, 200) << "answer " << i;
    ASSERT_EQ(r->body, exact(i) ? "vhost exact\n" : "vhost wild\n") << "answer " << i;
  }
}

TEST_F(ProxyTest, DirectResponse204And304HaveNoBody) {
  auto c = connect();
  ASSERT_NE(c, nullptr);
  // Pipelined: a body after either answer would be read as the start of the next one.
  ASSERT_TRUE(c->send(absl::StrCat(req("GET", "/no-content"), req("GET", "/not-modified"),
                                   req("GET", "/direct")))
                  .ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->headerCount("content-length"), 0);
  EXPECT_EQ(r->headerCount("transfer-encoding"), 0);
  EXPECT_EQ(r->headerCount("content-type"), 0);
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 304);
  EXPECT_EQ(r->headerCount("transfer-encoding"), 0);
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "direct answer\n");
}

TEST_F(ProxyTest, UpstreamResetIsNotTheEndOfACloseDelimitedBody) {
  // A body delimited by the connection's close (no length, not chunked): FIN ends it, RST cuts
  // it short.
  ScriptedUpstream upstream([](int fd) {
    std::string buf, head;
    if (!readRequestHead(fd, &buf, &head)) return;
    if (!sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial-body-")) return;
    if (absl::StrContains(head, "/oneshot/reset")) {
      absl::SleepFor(absl::Milliseconds(50));
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);  // the close below resets
    } else {
      sendAll(fd, "end");
    }
  });
  ASSERT_TRUE(upstream.start(oneshot_port_));
  {
    // An HTTP/1.1 client gets it chunked, the last chunk when the body ends.
    auto c = connect();
    ASSERT_NE(c, nullptr);
    auto r = c->roundTrip(req("GET", "/oneshot/close"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("transfer-encoding"), "chunked");
    EXPECT_EQ(r->body, "partial-body-end");
  }
  RawClient client(port_, 0);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(req("GET", "/oneshot/reset")));
  std::string raw;
  EXPECT_TRUE(client.readToClose(&raw, absl::Seconds(5))) << "still open after: " << raw;
  const size_t head_end = raw.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << raw;
  EXPECT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200 ")) << raw;
  EXPECT_THAT(absl::AsciiStrToLower(raw.substr(0, head_end)),
              HasSubstr("transfer-encoding: chunked"));
  const std::string body = raw.substr(head_end + 4);
  EXPECT_THAT(body, HasSubstr("partial-body-"));
  // Truncated: no last chunk, so the client can tell.
  EXPECT_FALSE(dechunk(body).has_value()) << body;
  EXPECT_FALSE(absl::EndsWith(body, "0\r\n\r\n")) << body;
}

TEST_F(ProxyTest, UpstreamConnectionIsNotReusedAfterHead) {
  // An upstream that sends the body it announced in answer to HEAD, a little later: bytes that
  // look like a response.
  const std::string junk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nXY";
  ASSERT_EQ(junk.size(), 40u);
  ScriptedUpstream upstream([&junk](int fd) {
    std::string buf, head;
    while (readRequestHead(fd, &buf, &head)) {
      if (absl::StartsWith(head, "HEAD ")) {
        if (!sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")) return;
        absl::SleepFor(absl::Milliseconds(50));
        if (!sendAll(fd, junk)) return;
      } else if (!sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nreal answer\n")) {
        return;
      }
    }
  });
  ASSERT_TRUE(upstream.start(oneshot_port_));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->send(absl::StrCat(req("HEAD", "/oneshot/head"), req("GET", "/oneshot/get"))).ok());
  auto r = c->read(/*head=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "40");
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "real answer\n");
  EXPECT_EQ(upstream.accepted(), 2);
}

TEST_F(ProxyTest, HalfClosedClientGetsAnswersToItsPipelinedRequests) {
  RawClient client(port_, 0);
  ASSERT_TRUE(client.connected());
  // The first answer comes late: the proxy has long seen the client's FIN by then.
  ASSERT_TRUE(client.send(absl::StrCat(req("GET", "/first", "test", "x-echo-delay-ms: 200\r\n"),
                                       req("GET", "/second"))));
  client.shutdownWrite();
  std::string raw;
  EXPECT_TRUE(client.readToClose(&raw, absl::Seconds(5))) << "still open after: " << raw;
  for (const char* target : {"/first", "/second"}) {
    bool bad = false;
    std::optional<HttpResponse> r = takeResponse(&raw, &bad);
    ASSERT_TRUE(r.has_value()) << "no answer for " << target << (bad ? " (garbled)" : "") << ": "
                               << raw.substr(0, 300);
    EXPECT_EQ(r->status, 200);
    auto e = parseEcho(r->body);
    ASSERT_TRUE(e.has_value()) << r->body;
    EXPECT_EQ(e->target, target);
  }
  EXPECT_EQ(raw, "");
}

TEST_F(ProxyTest, NonIdempotentRequestOnAPooledConnectionClosedUnansweredIsNotRetried) {
  OneShotUpstream upstream;
  ASSERT_TRUE(upstream.start(oneshot_port_));
  auto c = connect();
  ASSERT_NE(c, nullptr);
  auto r = c->roundTrip(req("GET", "/oneshot"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "answer 1\n");
  // On the pooled connection, which the upstream closes after reading the POST: it may have
  // acted on it, so the POST is not sent again.
  r = c->roundTrip(req("POST", "/oneshot", "test", "Content-Length: 0\r\n"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 502) << r->body;
  EXPECT_THAT(r->body, HasSubstr("upstream connection closed"));
  EXPECT_EQ(upstream.closed_unanswered(), 1);
  EXPECT_EQ(upstream.answered(), 1);
  EXPECT_EQ(upstream.accepted(), 1);
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_retry_total{cluster=\"oneshot\"}"), 0);
  // A GET in the same situation is retried: a fresh connection, then a reused one closed
  // unanswered.
  for (int i = 2; i <= 3; ++i) {
    r = c->roundTrip(req("GET", "/oneshot"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->body, absl::StrCat("answer ", i, "\n"));
  }
  EXPECT_EQ(upstream.closed_unanswered(), 2);
  EXPECT_EQ(metric("sluice_cluster_upstream_rq_retry_total{cluster=\"oneshot\"}"), 1);
}

}  // namespace
}  // namespace sluice::testing
