// sluice-echo end to end: the real binary on loopback, spoken to over raw sockets.
#include <openssl/evp.h>
#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/integration/http_client.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kEcho[] = "tools/echo/sluice-echo";

std::string sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

// What x-echo-body-size generates: byte i is 'a' + (i % 26).
std::string generatedBody(size_t size) {
  std::string body(size, '\0');
  for (size_t i = 0; i < size; ++i) body[i] = static_cast<char>('a' + i % 26);
  return body;
}

// The port from sluice-echo's "listening on 127.0.0.1:PORT" line, or 0 before it appears.
int listeningPort(const std::string& log) {
  const std::string prefix = "listening on 127.0.0.1:";
  size_t at = log.find(prefix);
  if (at == std::string::npos) return 0;
  size_t start = at + prefix.size();
  size_t end = log.find('\n', start);
  int port = 0;
  if (end == std::string::npos || !absl::SimpleAtoi(log.substr(start, end - start), &port)) {
    return 0;
  }
  return port;
}

// A field of the /__stats JSON, or -1.
int64_t statField(const std::string& json, const std::string& name) {
  std::string key = absl::StrCat("\"", name, "\": ");
  size_t at = json.find(key);
  if (at == std::string::npos) return -1;
  size_t start = at + key.size();
  size_t end = json.find_first_not_of("0123456789", start);
  int64_t value = -1;
  if (!absl::SimpleAtoi(json.substr(start, end - start), &value)) return -1;
  return value;
}

std::string get(const std::string& path, const std::string& extra_headers = "") {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: upstream\r\n", extra_headers, "\r\n");
}

class EchoTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    echo_ = std::make_unique<Process>(kEcho, args, "sluice-echo");
    ASSERT_TRUE(waitFor(absl::Seconds(10), [&] {
      port_ = listeningPort(echo_->log());
      return port_ != 0 || !echo_->running();
    }));
    ASSERT_NE(port_, 0) << echo_->log();
  }

  std::unique_ptr<HttpConnection> connect() {
    absl::StatusOr<std::unique_ptr<HttpConnection>> c = HttpConnection::connect(port_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  HttpResponse roundTrip(HttpConnection& c, const std::string& request, bool head = false) {
    absl::StatusOr<HttpResponse> r = c.roundTrip(request, head);
    EXPECT_TRUE(r.ok()) << r.status() << "\nserver log:\n" << echo_->log();
    return r.ok() ? *r : HttpResponse{};
  }

  std::string stats(HttpConnection& c) { return roundTrip(c, get("/__stats")).body; }

  std::unique_ptr<Process> echo_;
  int port_ = 0;
};

TEST_F(EchoTest, EchoesRequestLineHeadersAndBody) {
  auto c = connect();
  HttpResponse r = roundTrip(*c,
                             "POST /some/path?x=1&y=two HTTP/1.1\r\n"
                             "Host: upstream\r\n"
                             "X-Custom:   spaced value  \r\n"
                             "x-lower: b\r\n"
                             "Content-Length: 5\r\n"
                             "\r\n"
                             "hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/plain");
  EXPECT_EQ(r.header("x-echo-name"), absl::StrCat("127.0.0.1:", port_));
  EXPECT_EQ(r.body, absl::StrCat("POST /some/path?x=1&y=two HTTP/1.1\n"
                                 "Host: upstream\n"
                                 "X-Custom: spaced value\n"
                                 "x-lower: b\n"
                                 "Content-Length: 5\n"
                                 "\n"
                                 "body-bytes: 5\n"
                                 "body-sha256: ",
                                 sha256Hex("hello"), "\n"));
}

TEST_F(EchoTest, FlagsSetTheDefaults) {
  start({"--name", "up-a", "--status", "201", "--body", "fixed\n", "--delay", "20ms"});
  auto c = connect();
  HttpResponse r = roundTrip(*c, get("/"));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("x-echo-name"), "up-a");
  EXPECT_EQ(r.body, "fixed\n");
  EXPECT_EQ(roundTrip(*c, get("/", "x-echo-status: 202\r\n")).status, 202);
}

TEST_F(EchoTest, RequestHeadersSetStatusAndResponseHeaders) {
  auto c = connect();
  HttpResponse r = roundTrip(*c, get("/",
                                     "x-echo-status: 503\r\n"
                                     "x-echo-header: x-one=1\r\n"
                                     "x-echo-header: x-two=a=b\r\n"
                                     "x-echo-header: content-type=application/json\r\n"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("x-one"), "1");
  EXPECT_EQ(r.header("x-two"), "a=b");
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.headerCount("content-type"), 1);
  EXPECT_THAT(r.body, HasSubstr("x-echo-status: 503\n"));
}

TEST_F(EchoTest, RejectsMalformedControlHeadersWith400) {
  auto c = connect();
  HttpResponse r = roundTrip(*c, get("/", "x-echo-status: abc\r\n"));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("x-echo-status"));
  r = roundTrip(*c, get("/", "x-echo-header: no-equals-sign\r\n"));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("x-echo-header"));
  EXPECT_EQ(roundTrip(*c, get("/")).status, 200);
}

TEST_F(EchoTest, DelayedResponseDoesNotHoldUpOtherConnections) {
  auto slow = connect();
  auto fast = connect();
  ASSERT_TRUE(slow->send(get("/slow", "x-echo-delay-ms: 1500\r\n")).ok());
  HttpResponse quick = roundTrip(*fast, get("/fast"));
  EXPECT_EQ(quick.status, 200);
  EXPECT_FALSE(slow->readable()) << "the delayed response came before the fast one";
  absl::StatusOr<HttpResponse> late = slow->read();
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->status, 200);
  EXPECT_THAT(late->body, HasSubstr("GET /slow HTTP/1.1\n"));
}

TEST_F(EchoTest, StreamsTenMiBChunked) {
  constexpr size_t kSize = 10 << 20;
  auto c = connect();
  HttpResponse r = roundTrip(*c, get("/big", absl::StrCat("x-echo-body-size: ", kSize, "\r\n")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  EXPECT_EQ(r.headerCount("content-length"), 0);
  EXPECT_GT(r.chunks, 1);
  EXPECT_EQ(r.body.size(), kSize);
  EXPECT_EQ(sha256Hex(r.body), sha256Hex(generatedBody(kSize)));
  // The connection stays usable after the stream.
  EXPECT_EQ(roundTrip(*c, get("/after")).status, 200);
}

TEST_F(EchoTest, SendsContentLengthWhenChunkingIsOff) {
  constexpr size_t kSize = 1 << 20;
  auto c = connect();
  HttpResponse r = roundTrip(
      *c, get("/", absl::StrCat("x-echo-body-size: ", kSize, "\r\nx-echo-chunked: 0\r\n")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-length"), absl::StrCat(kSize));
  EXPECT_EQ(r.headerCount("transfer-encoding"), 0);
  EXPECT_TRUE(r.body == generatedBody(kSize));
}

TEST_F(EchoTest, HeadAndNoContentResponsesCarryNoBody) {
  auto c = connect();
  HttpResponse head =
      roundTrip(*c, "HEAD / HTTP/1.1\r\nHost: upstream\r\nx-echo-body-size: 1000\r\n\r\n", true);
  EXPECT_EQ(head.status, 200);
  HttpResponse none = roundTrip(*c, get("/", "x-echo-status: 204\r\nx-echo-body-size: 1000\r\n"));
  EXPECT_EQ(none.status, 204);
  // Stray body bytes would corrupt the next response on the connection.
  HttpResponse next = roundTrip(*c, get("/next"));
  EXPECT_EQ(next.status, 200);
  EXPECT_THAT(next.body, HasSubstr("GET /next HTTP/1.1\n"));
}

TEST_F(EchoTest, StatsShowKeepAliveReuseAndClosedConnections) {
  auto c = connect();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(roundTrip(*c, get(absl::StrCat("/", i))).status, 200);
  std::string s = stats(*c);
  EXPECT_EQ(statField(s, "requests"), 5) << s;
  EXPECT_EQ(statField(s, "connections_accepted"), 1) << s;
  EXPECT_EQ(statField(s, "connections_open"), 1) << s;

  auto closing = connect();
  HttpResponse r = roundTrip(*closing, get("/", "x-echo-close: 1\r\n"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(closing->closedByPeer(absl::Seconds(10)));
  s = stats(*c);
  EXPECT_EQ(statField(s, "requests"), 6) << s;
  EXPECT_EQ(statField(s, "connections_accepted"), 2) << s;
  EXPECT_EQ(statField(s, "connections_open"), 1) << s;

  // A connection that never sends a request is counted too.
  { auto silent = connect(); }
  EXPECT_TRUE(waitFor(absl::Seconds(10), [&] {
    s = stats(*c);
    return statField(s, "connections_accepted") == 3 && statField(s, "connections_open") == 1;
  })) << s;
}

TEST_F(EchoTest, HashesAFiveMiBChunkedUpload) {
  constexpr size_t kSize = 5 << 20;
  std::string body(kSize, '\0');
  std::mt19937 random(42);
  for (char& ch : body) ch = static_cast<char>(random());
  auto c = connect();
  HttpResponse r = roundTrip(*c, absl::StrCat("PUT /upload HTTP/1.1\r\nHost: upstream\r\n"
                                              "Transfer-Encoding: chunked\r\n\r\n",
                                              chunkedBody(body, 100000)));
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr(absl::StrCat("\nbody-bytes: ", kSize,
                                             "\nbody-sha256: ", sha256Hex(body), "\n")));
}

TEST_F(EchoTest, SeveralLoopsShareThePort) {
  start({"--threads", "4"});
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < 20; ++i) conns.push_back(connect());
  for (auto& c : conns) EXPECT_EQ(roundTrip(*c, get("/")).status, 200);
  std::string s = stats(*conns[0]);
  EXPECT_EQ(statField(s, "requests"), 20) << s;
  EXPECT_EQ(statField(s, "connections_accepted"), 20) << s;
  EXPECT_EQ(statField(s, "connections_open"), 20) << s;
}

TEST_F(EchoTest, SigtermExitsZeroWithRequestsInFlight) {
  auto idle = connect();
  EXPECT_EQ(roundTrip(*idle, get("/")).status, 200);
  auto delayed = connect();
  ASSERT_TRUE(delayed->send(get("/", "x-echo-delay-ms: 60000\r\n")).ok());
  auto streaming = connect();
  ASSERT_TRUE(streaming->send(get("/", "x-echo-body-size: 1000000000\r\n")).ok());
  ASSERT_TRUE(streaming->readable(absl::Seconds(10)));
  int status = echo_->stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(EchoTest, BadFlagsAndBusyPortFail) {
  RunResult bad = run(kEcho, {"--listen", "localhost"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--listen"));
  RunResult busy = run(kEcho, {"--listen", absl::StrCat("127.0.0.1:", port_)});
  EXPECT_EQ(busy.exit_code, 2);
  EXPECT_THAT(busy.err, HasSubstr("cannot listen"));
}

}  // namespace
}  // namespace sluice::testing
