#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "proxy/http/codec.h"

namespace sluice::http {
namespace {

// The normalized path, or "<rejected>".
std::string normalize(std::string_view path,
                      EscapedSlashes escaped_slashes = EscapedSlashes::kReject) {
  char buf[256];
  size_t len = 0;
  if (!normalizePath(path, buf, sizeof(buf), &len, escaped_slashes)) return "<rejected>";
  return std::string(buf, len);
}

struct Case {
  std::string_view in;
  std::string_view out;
};

constexpr Case kNormalized[] = {
    {"/", "/"},
    {"/a/b", "/a/b"},
    {"/a/b/", "/a/b/"},
    // Empty segments merge.
    {"//", "/"},
    {"//a///b//", "/a/b/"},
    // Dot segments (RFC 3986 5.2.4).
    {"/.", "/"},
    {"/./", "/"},
    {"/a/./b", "/a/b"},
    {"/a/.", "/a/"},
    {"/a/../b", "/b"},
    {"/a/b/..", "/a/"},
    {"/a/b/../..", "/"},
    {"/a/b/../../c/./d/..", "/c/"},
    {"/a//..//b", "/b"},  // slashes merge before dot segments go
    {"/...", "/..."},
    {"/a/..b/.c/c./b..", "/a/..b/.c/c./b.."},
    // Escapes: unreserved decoded, others upper-cased and kept.
    {"/%41%42c", "/ABc"},
    {"/%7e%7Euser", "/~~user"},
    {"/%2d%2e%5f", "/-._"},
    {"/%20%3a%3B%25%80%ff", "/%20%3A%3B%25%80%FF"},
    {"/%2e", "/"},
    {"/a/%2e%2E/b", "/b"},  // decoding comes first, so encoded dots are dot segments
    {"/a/%2e%2e/admin", "/admin"},
    {"/a/%2E%2E/admin", "/admin"},
    {"/public/../admin", "/admin"},
    {"//admin", "/admin"},
    {"/.//admin", "/admin"},
    {"/a/.%2e", "/"},
    {"/%252e%252e/x", "/%252e%252e/x"},  // no double decoding
    // Other pchar characters pass through.
    {"/a;b=c,d/e:f@g!h$i&j'k(l)m*n+o", "/a;b=c,d/e:f@g!h$i&j'k(l)m*n+o"},
};

TEST(NormalizePathTest, Normalizes) {
  for (const Case& c : kNormalized) EXPECT_EQ(normalize(c.in), c.out) << c.in;
}

TEST(NormalizePathTest, IsIdempotent) {
  for (const Case& c : kNormalized) EXPECT_EQ(normalize(c.out), c.out) << c.out;
}

// With EscapedSlashes::kKeepEncoded an encoded slash or backslash is part of its segment.
constexpr Case kKeptEncoded[] = {
    {"/a%2fb", "/a%2Fb"},
    {"/a%5cb", "/a%5Cb"},
    {"/a%2Fb/..", "/"},
    {"/a%2F..%2Fb", "/a%2F..%2Fb"},  // one segment: %2F is not a separator
    {"/%2F%2f", "/%2F%2F"},
    {"/a/%2e%2e%2fadmin", "/a/..%2Fadmin"},  // "..%2Fadmin" is one segment, not a dot segment
};

TEST(NormalizePathTest, KeepsEscapedSlashesEncoded) {
  for (const Case& c : kKeptEncoded) {
    EXPECT_EQ(normalize(c.in, EscapedSlashes::kKeepEncoded), c.out) << c.in;
    EXPECT_EQ(normalize(c.out, EscapedSlashes::kKeepEncoded), c.out) << c.out;
    EXPECT_EQ(normalize(c.in), "<rejected>") << c.in << " (the default rejects)";
  }
}

TEST(NormalizePathTest, RejectsEscapedSlashesByDefault) {
  for (std::string_view bad : {"/a%2fb", "/a%2Fb", "/a%5cb", "/a%5Cb", "/%2F", "/a/%2e%2e%2fadmin",
                               "/..%2f..%2fetc", "/a%5C..%5Cadmin"}) {
    EXPECT_EQ(normalize(bad), "<rejected>") << bad;
  }
}

TEST(NormalizePathTest, RejectsEncodedControlCharacters) {
  for (std::string_view bad :
       {"/a%00", "/a%00.html", "/%0d%0aSet-Cookie:x", "/%0A", "/%1f", "/%7F", "/%09"}) {
    EXPECT_EQ(normalize(bad), "<rejected>") << bad;
    EXPECT_EQ(normalize(bad, EscapedSlashes::kKeepEncoded), "<rejected>") << bad;
  }
}

TEST(NormalizePathTest, Rejects) {
  for (std::string_view bad : {
           "",      "a",       "*",
           "/..",   "/../",    "/a/../..",
           "/./..", "/%2e%2e", "/a/%2E%2E/..",
           "/%",    "/%4",     "/%4g",
           "/%g4",  "/a%",     "/a b",
           "/a\\b", "/a?b",    "/a#b",
           "/a\"b", "/a<b>",   "/a{b}",
           "/a|b",  "/a^b",    "/a`b",
           "/a\tb", "/a\x7f",  "/caf\xc3\xa9",
       }) {
    EXPECT_EQ(normalize(bad), "<rejected>") << bad;
  }
  char buf[4];
  size_t len = 0;
  EXPECT_FALSE(normalizePath(std::string_view("/a\0b", 4), buf, sizeof(buf), &len));
}

TEST(NormalizePathTest, RespectsCapacity) {
  char buf[8];
  size_t len = 0;
  ASSERT_TRUE(normalizePath("/abcdefg", buf, 8, &len));
  EXPECT_EQ(std::string_view(buf, len), "/abcdefg");
  EXPECT_FALSE(normalizePath("/abcdefgh", buf, 8, &len));
  ASSERT_TRUE(normalizePath("/ab%3a", buf, 6, &len));
  EXPECT_EQ(std::string_view(buf, len), "/ab%3A");
  EXPECT_FALSE(normalizePath("/ab%3a", buf, 5, &len));
  EXPECT_FALSE(normalizePath("/", buf, 0, &len));
}

}  // namespace
}  // namespace sluice::http
