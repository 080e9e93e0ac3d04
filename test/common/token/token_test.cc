#include "common/token/token.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace sluice::token {
namespace {

std::string writeTemp(const std::string& name, const std::string& content) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << content;
  return path;
}

TEST(TokenTest, ReadsTheFirstLineTrimmed) {
  auto t = readFile(writeTemp("t1", "  s3cret-Token_1 \nignored\n"), "--token-file");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "s3cret-Token_1");
}

TEST(TokenTest, RefusesMissingEmptyAndUnprintableTokensWithoutEchoingThem) {
  auto missing = readFile("/nonexistent/token", "--admin-token-file");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--admin-token-file"), std::string::npos);
  EXPECT_FALSE(readFile(writeTemp("t2", "\n  \n"), "--token-file").ok());
  auto spaced = readFile(writeTemp("t3", "two words\n"), "--token-file");
  ASSERT_FALSE(spaced.ok());
  EXPECT_EQ(spaced.status().message().find("two words"), std::string::npos);
  EXPECT_FALSE(readFile(writeTemp("t4", "a\x01b\n"), "--token-file").ok());
}

TEST(TokenTest, BearerMatchesExactly) {
  EXPECT_TRUE(bearerMatches("Bearer abc", "abc"));
  EXPECT_FALSE(bearerMatches("Bearer abd", "abc"));
  EXPECT_FALSE(bearerMatches("Bearer ab", "abc"));
  EXPECT_FALSE(bearerMatches("Bearer abcd", "abc"));
  EXPECT_FALSE(bearerMatches("bearer abc", "abc"));
  EXPECT_FALSE(bearerMatches("abc", "abc"));
  EXPECT_FALSE(bearerMatches("", "abc"));
}

TEST(TokenTest, Loopback) {
  for (const char* a : {"127.0.0.1:9901", "127.1.2.3:1", "localhost:9901", "LOCALHOST:1",
                        "[::1]:9901", "[::ffff:127.0.0.1]:9901", "unix:/run/sluice.sock"}) {
    EXPECT_TRUE(isLoopback(a)) << a;
  }
  for (const char* a : {"0.0.0.0:9901", "[::]:9901", "10.0.0.1:9901", "192.168.1.5:80",
                        "example.com:9901", "[2001:db8::1]:9901", "128.0.0.1:1", ":9901", ""}) {
    EXPECT_FALSE(isLoopback(a)) << a;
  }
}

}  // namespace
}  // namespace sluice::token
