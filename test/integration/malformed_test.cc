// The malformed and smuggling-shaped request table (test/proxy/http/malformed_requests.h) sent
// as raw bytes through a real sluice to a real upstream: each gets its status, the connection is
// closed, and the upstream receives nothing (or only the legitimate request before the bad one).
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"
#include "test/proxy/http/malformed_requests.h"

namespace sluice::testing {
namespace {

constexpr char kProxy[] = "proxy/server/sluice";
constexpr char kEcho[] = "tools/echo/sluice-echo";

// The upstream's count of requests, from its /__stats (which does not count itself).
int64_t upstreamRequests(int port) {
  std::string stats = httpGet(port, "/__stats");
  size_t at = stats.find("\"requests\": ");
  if (at == std::string::npos) return -1;
  int64_t n = -1;
  std::string digits;
  for (size_t i = at + 12; i < stats.size() && isdigit(stats[i]); ++i) digits += stats[i];
  return absl::SimpleAtoi(digits, &n) ? n : -1;
}

class MalformedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    echo_port_ = freePort();
    echo_ = new Process(kEcho, {"--listen", absl::StrCat("127.0.0.1:", echo_port_)}, "echo");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [] { return upstreamRequests(echo_port_) >= 0; }));
    proxy_port_ = freePort();
    admin_port_ = freePort();
    std::string dir = makeTempDir("malformed");
    writeFile(dir + "/config.yaml", absl::StrCat(R"(kind: Cluster
name: echo
endpoints: [{address: 127.0.0.1, port: )",
                                                 echo_port_, R"(}]
---
kind: RouteConfiguration
name: main
virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: echo}
---
kind: Listener
name: public
address: 127.0.0.1
port: )",
                                                 proxy_port_, R"(
route_config: main
)"));
    proxy_ = new Process(
        kProxy,
        {"--config-dir", dir, "--workers", "2", "--admin", absl::StrCat("127.0.0.1:", admin_port_)},
        "sluice");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [] {
      return httpGet(admin_port_, "/ready") == "ready\n";
    })) << proxy_->log();
  }
  static void TearDownTestSuite() {
    delete proxy_;
    delete echo_;
  }

  static int echo_port_, proxy_port_, admin_port_;
  static Process* echo_;
  static Process* proxy_;
};

int MalformedTest::echo_port_ = 0;
int MalformedTest::proxy_port_ = 0;
int MalformedTest::admin_port_ = 0;
Process* MalformedTest::echo_ = nullptr;
Process* MalformedTest::proxy_ = nullptr;

TEST_F(MalformedTest, EveryEntryIsAnsweredAndNeverReachesTheUpstream) {
  size_t checked = 0;
  for (const http::test::MalformedRequest& m : http::test::kMalformedRequests) {
    SCOPED_TRACE(m.name);
    const int64_t before = upstreamRequests(echo_port_);
    auto conn = HttpConnection::connect(proxy_port_);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->send(absl::string_view(m.raw.data(), m.raw.size())).ok());
    auto response = (*conn)->read();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, m.status);
    EXPECT_EQ(response->header("connection"), "close");
    EXPECT_TRUE((*conn)->closedByPeer(absl::Seconds(5)));
    EXPECT_EQ(upstreamRequests(echo_port_), before) << "the upstream saw the request";
    ++checked;
  }
  EXPECT_GE(checked, 30u);
}

// A legitimate request followed, on the same connection, by a smuggling-shaped one: the first
// is forwarded and answered, the second rejected; the upstream sees exactly one request.
TEST_F(MalformedTest, LegitimateRequestThenSmuggledOneReachesUpstreamOnce) {
  const std::string smuggled[] = {
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-Bad : 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n",
  };
  for (const std::string& bad : smuggled) {
    SCOPED_TRACE(bad);
    const int64_t before = upstreamRequests(echo_port_);
    auto conn = HttpConnection::connect(proxy_port_);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + bad).ok());
    auto first = (*conn)->read();
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->status, 200);
    auto second = (*conn)->read();
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(second->status / 100, 4);
    EXPECT_TRUE((*conn)->closedByPeer(absl::Seconds(5)));
    EXPECT_EQ(upstreamRequests(echo_port_), before + 1);  // /first only
  }
}

}  // namespace
}  // namespace sluice::testing
