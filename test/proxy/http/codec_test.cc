#include "proxy/http/codec.h"

#include <memory>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace sluice::http {
namespace {

constexpr std::string_view kBrowserGet =
    "GET /index.html?lang=en HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=abc123\r\n"
    "\r\n";

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

class RequestHeadTest : public ::testing::Test {
 protected:
  ParseStatus parse(std::string_view data, const Limits& limits = Limits()) {
    err_ = Error();
    return parseRequestHead(data, limits, head_.get(), &err_);
  }
  // Parses a head that must be rejected and returns the status it is rejected with.
  int rejectStatus(std::string_view data, const Limits& limits = Limits()) {
    const ParseStatus status = parse(data, limits);
    EXPECT_EQ(status, ParseStatus::kError) << data;
    return status == ParseStatus::kError ? err_.status : 0;
  }
  std::unique_ptr<RequestHead> head_ = std::make_unique<RequestHead>();
  Error err_;
};

// --- findHeadEnd ---

TEST(FindHeadEndTest, FindsTheBlankLine) {
  HeadScan scan;
  size_t len = 0;
  Error err;
  ASSERT_EQ(findHeadEnd(kBrowserGet, Limits(), &scan, &len, &err), ParseStatus::kDone);
  EXPECT_EQ(len, kBrowserGet.size());
}

TEST(FindHeadEndTest, PipelinedRequestsFindTheFirstHead) {
  const std::string first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string second = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
  const std::string both = first + second;
  HeadScan scan;
  size_t len = 0;
  Error err;
  ASSERT_EQ(findHeadEnd(both, Limits(), &scan, &len, &err), ParseStatus::kDone);
  EXPECT_EQ(len, first.size());

  RequestHead head;
  ASSERT_EQ(parseRequestHead(both, Limits(), &head, &err), ParseStatus::kDone);
  EXPECT_EQ(head.head_len, first.size());
  EXPECT_EQ(head.path, "/a");
  const std::string_view rest = std::string_view(both).substr(head.head_len);
  ASSERT_EQ(parseRequestHead(rest, Limits(), &head, &err), ParseStatus::kDone);
  EXPECT_EQ(head.path, "/b");
  EXPECT_EQ(head.host, "b");
  EXPECT_EQ(head.head_len, second.size());
}

TEST(FindHeadEndTest, SameResultForEverySplit) {
  const std::string data = std::string(kBrowserGet) + "POST /next HTTP/1.1\r\n";
  for (size_t split = 0; split <= data.size(); ++split) {
    HeadScan scan;
    size_t len = 0;
    Error err;
    const ParseStatus first = findHeadEnd(data.substr(0, split), Limits(), &scan, &len, &err);
    if (split < kBrowserGet.size()) {
      ASSERT_EQ(first, ParseStatus::kIncomplete) << split;
      ASSERT_EQ(findHeadEnd(data, Limits(), &scan, &len, &err), ParseStatus::kDone) << split;
    } else {
      ASSERT_EQ(first, ParseStatus::kDone) << split;
    }
    EXPECT_EQ(len, kBrowserGet.size()) << split;
  }
}

TEST(FindHeadEndTest, ByteAtATimeScansEachByteOnce) {
  HeadScan scan;
  size_t len = 0;
  Error err;
  for (size_t n = 0; n < kBrowserGet.size(); ++n) {
    ASSERT_EQ(findHeadEnd(kBrowserGet.substr(0, n), Limits(), &scan, &len, &err),
              ParseStatus::kIncomplete);
    EXPECT_EQ(scan.scanned, n);
  }
  ASSERT_EQ(findHeadEnd(kBrowserGet, Limits(), &scan, &len, &err), ParseStatus::kDone);
  EXPECT_EQ(len, kBrowserGet.size());
}

TEST(FindHeadEndTest, LongRequestLineIs414BeforeTheHeadEnds) {
  Limits limits;
  limits.max_request_line = 20;
  HeadScan scan;
  size_t len = 0;
  Error err;
  // 20 bytes and a CR that may start the CRLF: still fine.
  ASSERT_EQ(findHeadEnd("GET /aaaaaa HTTP/1.1\r", limits, &scan, &len, &err),
            ParseStatus::kIncomplete);
  scan.reset();
  ASSERT_EQ(findHeadEnd("GET /aaaaaaa HTTP/1.1", limits, &scan, &len, &err), ParseStatus::kError);
  EXPECT_EQ(err.status, 414);
  // The same line with its CRLF is also 414.
  scan.reset();
  ASSERT_EQ(findHeadEnd("GET /aaaaaaa HTTP/1.1\r\n", limits, &scan, &len, &err),
            ParseStatus::kError);
  EXPECT_EQ(err.status, 414);
}

// Found by the fuzzer: a bare LF ending an over-long request line was 400 when it arrived in
// one read and 414 when the line arrived first. The verdict must not depend on the reads.
TEST(FindHeadEndTest, VerdictDoesNotDependOnReads) {
  Limits limits;
  limits.max_request_line = 10;
  for (std::string_view data : {"GET /aaaaaaaaaa\nHost: a\r\n\r\n", "GET /aaaaaaaaaa\r\r\n",
                                "GET /aaaaaa\r\n\r\n", "GET /a\n"}) {
    HeadScan scan;
    size_t len = 0;
    Error whole;
    ASSERT_EQ(findHeadEnd(data, limits, &scan, &len, &whole), ParseStatus::kError) << data;
    for (size_t split = 0; split <= data.size(); ++split) {
      scan.reset();
      Error err;
      ParseStatus status = findHeadEnd(data.substr(0, split), limits, &scan, &len, &err);
      if (status == ParseStatus::kIncomplete) status = findHeadEnd(data, limits, &scan, &len, &err);
      ASSERT_EQ(status, ParseStatus::kError) << data << " split at " << split;
      EXPECT_EQ(err.status, whole.status) << data << " split at " << split;
    }
  }
  HeadScan scan;
  size_t len = 0;
  Error err;
  ASSERT_EQ(findHeadEnd("GET /aaaaaaaaaa\n", limits, &scan, &len, &err), ParseStatus::kError);
  EXPECT_EQ(err.status, 414);
}

TEST(FindHeadEndTest, RequestLineAtTheLimitIsAccepted) {
  Limits limits;
  limits.max_request_line = 20;
  const std::string_view head = "GET /aaaaaa HTTP/1.1\r\nHost: a\r\n\r\n";  // line: 20 bytes
  HeadScan scan;
  size_t len = 0;
  Error err;
  ASSERT_EQ(findHeadEnd(head, limits, &scan, &len, &err), ParseStatus::kDone);
  // Long field lines are not request lines.
  const std::string long_field =
      "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'x') + "\r\n\r\n";
  scan.reset();
  EXPECT_EQ(findHeadEnd(long_field, limits, &scan, &len, &err), ParseStatus::kDone);
}

TEST(FindHeadEndTest, HeadSizeLimit) {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Limits limits;
  limits.max_head_bytes = head.size();
  HeadScan scan;
  size_t len = 0;
  Error err;
  ASSERT_EQ(findHeadEnd(head + "body", limits, &scan, &len, &err), ParseStatus::kDone);
  EXPECT_EQ(len, head.size());

  // One byte more does not fit, whether the end has arrived or not.
  const std::string bigger = "GET / HTTP/1.1\r\nHost: ab\r\n\r\n";
  scan.reset();
  ASSERT_EQ(findHeadEnd(bigger, limits, &scan, &len, &err), ParseStatus::kError);
  EXPECT_EQ(err.status, 431);
  scan.reset();
  ASSERT_EQ(findHeadEnd(bigger.substr(0, head.size()), limits, &scan, &len, &err),
            ParseStatus::kError);
  EXPECT_EQ(err.status, 431);
  scan.reset();
  EXPECT_EQ(findHeadEnd(bigger.substr(0, head.size() - 1), limits, &scan, &len, &err),
            ParseStatus::kIncomplete);
}

TEST(FindHeadEndTest, BareLfAndLeadingEmptyLineAre400) {
  for (std::string_view bad : {"GET / HTTP/1.1\n", "GET / HTTP/1.1\r\nHost: a\n",
                               "GET / HTTP/1.1\r\nHost: a\r\n\n", "\n", "\r\nGET /"}) {
    HeadScan scan;
    size_t len = 0;
    Error err;
    ASSERT_EQ(findHeadEnd(bad, Limits(), &scan, &len, &err), ParseStatus::kError) << bad;
    EXPECT_EQ(err.status, 400) << bad;
  }
}

// --- parseRequestHead ---

TEST_F(RequestHeadTest, ParsesABrowserRequest) {
  ASSERT_EQ(parse(kBrowserGet), ParseStatus::kDone) << err_.reason;
  const RequestHead& h = *head_;
  EXPECT_EQ(h.head_len, kBrowserGet.size());
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.method_kind, Method::kGet);
  EXPECT_EQ(h.target, "/index.html?lang=en");
  EXPECT_EQ(h.target_form, TargetForm::kOrigin);
  EXPECT_EQ(h.raw_path, "/index.html");
  EXPECT_EQ(h.path, "/index.html");
  EXPECT_TRUE(h.has_query);
  EXPECT_EQ(h.query, "lang=en");
  EXPECT_EQ(h.version_minor, 1);
  ASSERT_EQ(h.header_count, 7u);
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[0].value, "www.example.com");
  EXPECT_EQ(h.headers[4].name, "Accept-Encoding");
  EXPECT_EQ(h.headers[4].value, "gzip, deflate, br");
  EXPECT_EQ(h.host, "www.example.com");
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_FALSE(h.chunked);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
  ASSERT_EQ(h.connection_token_count, 1u);
  EXPECT_EQ(h.connection_tokens[0], "keep-alive");
  EXPECT_EQ(bodyKind(h), BodyKind::kNone);
  ASSERT_NE(h.find("cookie"), nullptr);
  EXPECT_EQ(h.find("COOKIE")->value, "session=abc123");
  EXPECT_EQ(h.find("x-missing"), nullptr);
  EXPECT_EQ(h.headerList().size(), 7u);

  for (const Header& header : h.headerList()) {
    EXPECT_TRUE(inside(header.name, kBrowserGet));
    EXPECT_TRUE(inside(header.value, kBrowserGet));
  }
  EXPECT_TRUE(inside(h.method, kBrowserGet));
  EXPECT_TRUE(inside(h.target, kBrowserGet));
  EXPECT_TRUE(inside(h.query, kBrowserGet));
  EXPECT_TRUE(inside(h.host, kBrowserGet));
}

TEST_F(RequestHeadTest, EveryStrictPrefixIsIncomplete) {
  for (size_t n = 0; n < kBrowserGet.size(); ++n) {
    ASSERT_EQ(parse(kBrowserGet.substr(0, n)), ParseStatus::kIncomplete) << n;
  }
}

TEST_F(RequestHeadTest, ValuesAreTrimmedOfOws) {
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost:example.com\r\nX-A: \t a b \t\r\nX-Empty:\r\n"
                  "X-Spaces:   \r\nX-Obs: caf\xc3\xa9\r\n\r\n"),
            ParseStatus::kDone)
      << err_.reason;
  EXPECT_EQ(head_->find("host")->value, "example.com");
  EXPECT_EQ(head_->find("x-a")->value, "a b");
  EXPECT_EQ(head_->find("x-empty")->value, "");
  EXPECT_EQ(head_->find("x-spaces")->value, "");
  EXPECT_EQ(head_->find("x-obs")->value, "caf\xc3\xa9");  // obs-text is allowed
}

TEST_F(RequestHeadTest, MethodsAreClassifiedAndExtensionsAccepted) {
  const std::pair<std::string_view, Method> cases[] = {
      {"GET", Method::kGet},     {"HEAD", Method::kHead},      {"POST", Method::kPost},
      {"PUT", Method::kPut},     {"DELETE", Method::kDelete},  {"OPTIONS", Method::kOptions},
      {"TRACE", Method::kTrace}, {"PATCH", Method::kPatch},    {"PROPFIND", Method::kOther},
      {"get", Method::kOther},   {"M-SEARCH", Method::kOther},
  };
  for (const auto& [method, kind] : cases) {
    const std::string req = std::string(method) + " / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse(req), ParseStatus::kDone) << method << ": " << err_.reason;
    EXPECT_EQ(head_->method, method);
    EXPECT_EQ(head_->method_kind, kind) << method;
  }
}

TEST_F(RequestHeadTest, QueryForms) {
  ASSERT_EQ(parse("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n"), ParseStatus::kDone);
  EXPECT_TRUE(head_->has_query);
  EXPECT_EQ(head_->query, "");
  ASSERT_EQ(parse("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"), ParseStatus::kDone);
  EXPECT_FALSE(head_->has_query);
  // The query keeps what the path may not have, escapes included, verbatim.
  ASSERT_EQ(parse("GET /a?x=/../%zz&y={1}|?\\ HTTP/1.1\r\nHost: a\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->path, "/a");
  EXPECT_EQ(head_->query, "x=/../%zz&y={1}|?\\");
}

TEST_F(RequestHeadTest, PathIsNormalizedOnce) {
  ASSERT_EQ(parse("GET /a/./b/../c//d/%7euser/%3a?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_EQ(head_->raw_path, "/a/./b/../c//d/%7euser/%3a");
  EXPECT_EQ(head_->path, "/a/c/d/~user/%3A");
  EXPECT_EQ(head_->query, "q=1");
}

TEST_F(RequestHeadTest, PathTricksNormalizeBeforeRouting) {
  for (std::string_view target : {"/a/%2e%2e/admin", "/a/%2E%2E/admin", "//admin",
                                  "/public/../admin", "/./admin/.", "/x/.%2e/admin"}) {
    const std::string req =
        std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse(req), ParseStatus::kDone) << target << ": " << err_.reason;
    EXPECT_EQ(head_->path.substr(0, 6), "/admin") << target;
  }
}

TEST_F(RequestHeadTest, EscapedSlashesFollowTheListenersRule) {
  const std::string req = "GET /a%2fb/%5C HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(rejectStatus(req), 400);
  EXPECT_STREQ(err_.reason, "encoded slash or backslash in path");
  Limits keep;
  keep.escaped_slashes = EscapedSlashes::kKeepEncoded;
  ASSERT_EQ(parse(req, keep), ParseStatus::kDone) << err_.reason;
  EXPECT_EQ(head_->path, "/a%2Fb/%5C");
  // The query is not the path: an encoded slash there is the application's business.
  ASSERT_EQ(parse("GET /a?next=%2F HTTP/1.1\r\nHost: a\r\n\r\n"), ParseStatus::kDone);
}

TEST_F(RequestHeadTest, ControlCharactersInThePathAre400) {
  for (std::string_view target : {"/a%00b", "/a%0d%0ab", "/%7f"}) {
    const std::string req =
        std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: a\r\n\r\n";
    EXPECT_EQ(rejectStatus(req), 400) << target;
    EXPECT_STREQ(err_.reason, "encoded control character in path") << target;
  }
  static constexpr char kNul[] = "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(rejectStatus(std::string_view(kNul, sizeof(kNul) - 1)), 400);
  EXPECT_EQ(rejectStatus("GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET /a\\admin HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

TEST_F(RequestHeadTest, AbsoluteFormTakesHostFromAuthorityWhichMustMatchHost) {
  ASSERT_EQ(
      parse("GET HTTPS://Example.com:8443/x/../y?z HTTP/1.1\r\nHost: example.COM:8443\r\n\r\n"),
      ParseStatus::kDone)
      << err_.reason;
  EXPECT_EQ(head_->target_form, TargetForm::kAbsolute);
  EXPECT_EQ(head_->scheme, "HTTPS");
  EXPECT_EQ(head_->raw_path, "/x/../y");
  EXPECT_EQ(head_->path, "/y");
  EXPECT_EQ(head_->query, "z");
  EXPECT_EQ(head_->host, "example.COM:8443");

  ASSERT_EQ(parse("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_EQ(head_->raw_path, "");
  EXPECT_EQ(head_->path, "/");
  ASSERT_EQ(parse("GET http://example.com?a=b HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_EQ(head_->path, "/");
  EXPECT_EQ(head_->query, "a=b");

  // HTTP/1.0 may leave Host out: the authority is the host.
  ASSERT_EQ(parse("GET http://example.com/p HTTP/1.0\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->host, "example.com");

  EXPECT_EQ(rejectStatus("GET http://example.com:80/ HTTP/1.1\r\nHost: example.com\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET http:///x HTTP/1.1\r\nHost: example.com\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET http://exa mple.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"), 400);
}

TEST_F(RequestHeadTest, AsteriskFormIsForOptionsOnly) {
  ASSERT_EQ(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->target_form, TargetForm::kAsterisk);
  EXPECT_EQ(head_->path, "*");
  EXPECT_EQ(rejectStatus("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

TEST_F(RequestHeadTest, ConnectIs501AndAuthorityFormIs400) {
  EXPECT_EQ(rejectStatus("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 501);
  EXPECT_EQ(rejectStatus("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
  EXPECT_EQ(rejectStatus("GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

TEST_F(RequestHeadTest, Versions) {
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->version_minor, 0);
  EXPECT_EQ(head_->host, "");
  EXPECT_EQ(rejectStatus("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(rejectStatus("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(rejectStatus("GET / HTTP/3\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(rejectStatus("GET / HTTP/1.1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET / HTTP/1\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(rejectStatus("GET / HTTP/\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET / Http/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET / XTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

TEST_F(RequestHeadTest, HostRules) {
  for (std::string_view host : {"a", "example.com", "example.com:8080", "127.0.0.1:80", "[::1]",
                                "[2001:db8::1]:443", "xn--bcher-kva.example", "a_b.example"}) {
    const std::string req = "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n";
    ASSERT_EQ(parse(req), ParseStatus::kDone) << host << ": " << err_.reason;
    EXPECT_EQ(head_->host, host);
  }
  for (std::string_view host : {"", "a b", "a,b", "a:", "a:x", "a:123456", "[::1", "[]", "[x]",
                                "a/b", "user@a", "a%20b", ":80", "a:80:80"}) {
    const std::string req = "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n";
    EXPECT_EQ(rejectStatus(req), 400) << host;
  }
  EXPECT_EQ(rejectStatus("GET / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
}

TEST_F(RequestHeadTest, ContentLength) {
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->content_length, 42u);
  EXPECT_EQ(bodyKind(*head_), BodyKind::kContentLength);
  // Identical duplicates fold into one.
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_EQ(head_->content_length, 7u);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_EQ(head_->content_length, UINT64_MAX);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->content_length, 0u);
  EXPECT_EQ(bodyKind(*head_), BodyKind::kContentLength);
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n"
                         "\r\n"),
            400);
}

TEST_F(RequestHeadTest, TransferEncoding) {
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_TRUE(head_->chunked);
  EXPECT_FALSE(head_->content_length.has_value());
  EXPECT_EQ(bodyKind(*head_), BodyKind::kChunked);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked \r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_TRUE(head_->chunked);
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
            501);
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n"),
            501);
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, foo\r\n\r\n"),
            400);
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: deflate\r\n\r\n"), 400);
  // CL+TE is 400 in either order and whatever the coding.
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n"
                         "Content-Length: 3\r\n\r\n"),
            400);
}

TEST_F(RequestHeadTest, KeepAliveRules) {
  struct Case {
    std::string_view version;
    std::string_view connection;  // empty: no Connection header
    bool keep_alive;
  };
  const Case cases[] = {
      {"HTTP/1.1", "", true},
      {"HTTP/1.1", "close", false},
      {"HTTP/1.1", "Close", false},
      {"HTTP/1.1", "keep-alive", true},
      {"HTTP/1.1", "keep-alive, close", false},
      {"HTTP/1.1", "x-custom, CLOSE", false},
      {"HTTP/1.0", "", false},
      {"HTTP/1.0", "keep-alive", true},
      {"HTTP/1.0", "Keep-Alive", true},
      {"HTTP/1.0", "close, keep-alive", false},
      {"HTTP/1.0", "upgrade", false},
  };
  for (const Case& c : cases) {
    std::string req = "GET / " + std::string(c.version) + "\r\nHost: a\r\n";
    if (!c.connection.empty()) req += "Connection: " + std::string(c.connection) + "\r\n";
    req += "\r\n";
    ASSERT_EQ(parse(req), ParseStatus::kDone) << req;
    EXPECT_EQ(head_->keep_alive, c.keep_alive) << req;
  }
  // Connection may be split over lines.
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a\r\nConnection: close\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_FALSE(head_->keep_alive);
  EXPECT_TRUE(head_->connection_close);
  ASSERT_EQ(head_->connection_token_count, 2u);
  EXPECT_EQ(head_->connection_tokens[0], "x-a");
  EXPECT_EQ(head_->connection_tokens[1], "close");
}

TEST_F(RequestHeadTest, ConnectionOptionsAreBounded) {
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: o0";
  for (size_t i = 1; i < kConnectionTokenCapacity; ++i) req += ", o" + std::to_string(i);
  ASSERT_EQ(parse(req + "\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->connection_token_count, kConnectionTokenCapacity);
  EXPECT_EQ(rejectStatus(req + ", one-too-many\r\n\r\n"), 400);
  EXPECT_EQ(rejectStatus("GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n"), 400);
}

TEST_F(RequestHeadTest, ExpectContinue) {
  ASSERT_EQ(
      parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
      ParseStatus::kDone);
  EXPECT_TRUE(head_->expect_continue);
  // HTTP/1.0 ignores expectations (RFC 9110 10.1.1).
  ASSERT_EQ(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_FALSE(head_->expect_continue);
  ASSERT_EQ(parse("POST / HTTP/1.0\r\nExpect: something-else\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n"), 417);
  EXPECT_EQ(rejectStatus("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                         "Expect: 100-continue\r\n\r\n"),
            417);
}

TEST_F(RequestHeadTest, Upgrade) {
  ASSERT_EQ(parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_TRUE(head_->connection_upgrade);
  EXPECT_EQ(head_->upgrade, "websocket");
  // Without the Connection option, Upgrade means nothing.
  ASSERT_EQ(parse("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"), ParseStatus::kDone);
  EXPECT_FALSE(head_->connection_upgrade);
  EXPECT_EQ(head_->upgrade, "");
}

TEST_F(RequestHeadTest, HeaderCountLimits) {
  Limits limits;
  limits.max_headers = 3;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nB: b\r\nC: c\r\n\r\n", limits), ParseStatus::kDone);
  EXPECT_EQ(rejectStatus("GET / HTTP/1.1\r\nHost: a\r\nB: b\r\nC: c\r\nD: d\r\n\r\n", limits), 431);

  // A limit above the capacity acts as the capacity.
  limits.max_headers = 1000;
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (size_t i = 1; i < kHeaderCapacity; ++i) req += "X: y\r\n";
  ASSERT_EQ(parse(req + "\r\n", limits), ParseStatus::kDone);
  EXPECT_EQ(head_->header_count, kHeaderCapacity);
  EXPECT_EQ(rejectStatus(req + "X: y\r\n\r\n", limits), 431);
}

TEST_F(RequestHeadTest, LongPathsAre414) {
  Limits limits;
  limits.max_request_line = 64 * 1024;
  limits.max_head_bytes = 128 * 1024;
  const std::string fits = "/" + std::string(kPathCapacity - 1, 'a');
  ASSERT_EQ(parse("GET " + fits + " HTTP/1.1\r\nHost: a\r\n\r\n", limits), ParseStatus::kDone);
  EXPECT_EQ(head_->path.size(), kPathCapacity);
  EXPECT_EQ(rejectStatus("GET " + fits + "a HTTP/1.1\r\nHost: a\r\n\r\n", limits), 414);
  EXPECT_EQ(rejectStatus("GET " + fits + "a HTTP/1.1\r\nHost: a\r\n\r\n"), 414);
}

TEST_F(RequestHeadTest, ReuseResetsEverything) {
  ASSERT_EQ(parse("POST /a?b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n"
                  "Expect: 100-continue\r\n\r\n"),
            ParseStatus::kDone);
  ASSERT_EQ(parse("GET /c HTTP/1.1\r\nHost: c\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_->header_count, 1u);
  EXPECT_FALSE(head_->content_length.has_value());
  EXPECT_FALSE(head_->has_query);
  EXPECT_TRUE(head_->keep_alive);
  EXPECT_FALSE(head_->expect_continue);
  EXPECT_EQ(head_->connection_token_count, 0u);
  EXPECT_EQ(head_->path, "/c");
}

TEST_F(RequestHeadTest, FieldSyntaxErrorsAre400) {
  const std::string_view bad[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: \x01\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A:\x1f\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-\xc3\xa9: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n:b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\tX: folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n",
      "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET\r / HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (std::string_view req : bad) EXPECT_EQ(rejectStatus(req), 400) << req;
}

// --- parseResponseHead and body rules ---

class ResponseHeadTest : public ::testing::Test {
 protected:
  ParseStatus parse(std::string_view data) {
    err_ = Error();
    return parseResponseHead(data, Limits(), &head_, &err_);
  }
  ResponseHead head_;
  Error err_;
};

TEST_F(ResponseHeadTest, ParsesStatusLineAndFields) {
  const std::string_view data =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
  ASSERT_EQ(parse(data), ParseStatus::kDone) << err_.reason;
  EXPECT_EQ(head_.head_len, data.size() - 5);
  EXPECT_EQ(head_.version_minor, 1);
  EXPECT_EQ(head_.status, 200);
  EXPECT_EQ(head_.reason, "OK");
  EXPECT_EQ(head_.header_count, 2u);
  EXPECT_EQ(head_.content_length, 5u);
  EXPECT_TRUE(head_.keep_alive);
  EXPECT_EQ(head_.find("content-type")->value, "text/plain");
  EXPECT_EQ(bodyKind(Method::kGet, head_), BodyKind::kContentLength);

  ASSERT_EQ(parse("HTTP/1.1 404 Not  Found \r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_.reason, "Not  Found ");
  ASSERT_EQ(parse("HTTP/1.1 204\r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_.status, 204);
  EXPECT_EQ(head_.reason, "");
  ASSERT_EQ(parse("HTTP/1.0 500 \r\n\r\n"), ParseStatus::kDone);
  EXPECT_EQ(head_.status, 500);
  EXPECT_FALSE(head_.keep_alive);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nServer: x\r\n"), ParseStatus::kIncomplete);
}

TEST_F(ResponseHeadTest, ErrorsAre502) {
  const std::string_view bad[] = {
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 600 Nope\r\n\r\n",
      "HTTP/1.1 099 Nope\r\n\r\n",
      "HTTP/1.1 20x OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HTTP/1.1\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
  };
  for (std::string_view response : bad) {
    ASSERT_EQ(parse(response), ParseStatus::kError) << response;
    EXPECT_EQ(err_.status, 502) << response;
    EXPECT_STRNE(err_.reason, "") << response;
  }
}

TEST_F(ResponseHeadTest, BodyKinds) {
  struct Case {
    Method method;
    std::string_view head;
    BodyKind kind;
  };
  const Case cases[] = {
      {Method::kGet, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", BodyKind::kContentLength},
      {Method::kGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyKind::kChunked},
      {Method::kGet, "HTTP/1.1 200 OK\r\n\r\n", BodyKind::kUntilClose},
      {Method::kGet, "HTTP/1.0 200 OK\r\n\r\n", BodyKind::kUntilClose},
      {Method::kHead, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", BodyKind::kNone},
      {Method::kHead, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyKind::kNone},
      {Method::kHead, "HTTP/1.1 200 OK\r\n\r\n", BodyKind::kNone},
      {Method::kGet, "HTTP/1.1 100 Continue\r\n\r\n", BodyKind::kNone},
      {Method::kGet, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
       BodyKind::kNone},
      {Method::kPost, "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", BodyKind::kNone},
      {Method::kGet, "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", BodyKind::kNone},
      {Method::kGet, "HTTP/1.1 304 Not Modified\r\n\r\n", BodyKind::kNone},
      {Method::kPost, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
       BodyKind::kContentLength},
      {Method::kGet, "HTTP/1.1 404 Not Found\r\n\r\n", BodyKind::kUntilClose},
  };
  for (const Case& c : cases) {
    ASSERT_EQ(parse(c.head), ParseStatus::kDone) << c.head;
    EXPECT_EQ(bodyKind(c.method, head_), c.kind) << c.head;
  }
}

TEST_F(ResponseHeadTest, KeepAliveAndUpgrade) {
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_FALSE(head_.keep_alive);
  EXPECT_TRUE(head_.connection_close);
  ASSERT_EQ(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_TRUE(head_.keep_alive);
  ASSERT_EQ(parse("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                  "Upgrade: websocket\r\n\r\n"),
            ParseStatus::kDone);
  EXPECT_TRUE(head_.connection_upgrade);
  EXPECT_EQ(head_.upgrade, "websocket");
}

TEST_F(ResponseHeadTest, SameResultForEverySplit) {
  const std::string data =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
  const size_t head_len = data.size() - 5;
  for (size_t split = 0; split <= data.size(); ++split) {
    const ParseStatus status = parse(std::string_view(data).substr(0, split));
    if (split < head_len) {
      EXPECT_EQ(status, ParseStatus::kIncomplete) << split;
    } else {
      ASSERT_EQ(status, ParseStatus::kDone) << split;
      EXPECT_EQ(head_.head_len, head_len);
      EXPECT_EQ(head_.content_length, 5u);
    }
  }
}

TEST(EqualsIgnoreCaseTest, ComparesAsciiCaseInsensitively) {
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(equalsIgnoreCase("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(equalsIgnoreCase("a", "b"));
  EXPECT_TRUE(equalsIgnoreCase("", ""));
}

}  // namespace
}  // namespace sluice::http
