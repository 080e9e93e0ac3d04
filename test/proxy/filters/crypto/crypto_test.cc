// The shared primitives against published test vectors, and base64's strictness.
#include "proxy/filters/crypto/crypto.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "gtest/gtest.h"

namespace sluice::crypto {
namespace {

std::string hex(std::span<const uint8_t> bytes) {
  std::string text;
  for (uint8_t b : bytes) {
    char pair[3];
    std::snprintf(pair, sizeof(pair), "%02x", b);
    text += pair;
  }
  return text;
}

std::span<const uint8_t> asBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

TEST(DigestTest, Sha256MatchesFips180Vectors) {
  EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(DigestTest, IncrementalSha256EqualsOneShot) {
  Sha256 hash;
  hash.update(std::string_view("ab"));
  hash.update(asBytes("c"));
  EXPECT_EQ(hash.finish(), sha256("abc"));
}

TEST(DigestTest, Sha1MatchesFips180Vector) {
  EXPECT_EQ(hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(HmacTest, MatchesRfc4231TestCase2) {
  EXPECT_EQ(hex(hmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CompareTest, EqualOnlyForSameSizeAndBytes) {
  EXPECT_TRUE(constantTimeEquals("secret", "secret"));
  EXPECT_FALSE(constantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(constantTimeEquals("secret", "secret2"));
  EXPECT_TRUE(constantTimeEquals("", ""));
  EXPECT_TRUE(constantTimeEquals(asBytes("ab"), asBytes("ab")));
  EXPECT_FALSE(constantTimeEquals(asBytes("ab"), asBytes("ac")));
}

TEST(Base64Test, EncodesWithPadding) {
  EXPECT_EQ(base64Encode(asBytes("")), "");
  EXPECT_EQ(base64Encode(asBytes("f")), "Zg==");
  EXPECT_EQ(base64Encode(asBytes("fo")), "Zm8=");
  EXPECT_EQ(base64Encode(asBytes("foo")), "Zm9v");
  EXPECT_EQ(base64Encode(asBytes("\xfb\xff")), "+/8=");
}

TEST(Base64Test, DecodesCanonicalText) {
  EXPECT_EQ(base64Decode(""), "");
  EXPECT_EQ(base64Decode("Zg=="), "f");
  EXPECT_EQ(base64Decode("Zm8="), "fo");
  EXPECT_EQ(base64Decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64Decode("+/8="), "\xfb\xff");
  EXPECT_EQ(base64Decode("AA=="), std::string(1, '\0'));
}

TEST(Base64Test, RejectsEverythingElse) {
  for (const char* text : {
           "Zg",        // padding missing
           "Zg=",       // padding short
           "Zm9v\n",    // trailing newline
           " Zm9v",     // leading space
           "Zm 9v",     // space inside
           "Zg==Zm9v",  // padding inside
           "Z===",      // three padding characters
           "====",      // padding only
           "Zh==",      // bits the padding leaves over are not zero
           "Zm9=",      // same with one '='
           "-_8=",      // URL-safe alphabet
       }) {
    EXPECT_EQ(base64Decode(text), std::nullopt) << text;
  }
  EXPECT_EQ(base64Decode(std::string_view("Zm9\0", 4)), std::nullopt);
}

TEST(RandomTest, FillsTheBuffer) {
  std::array<uint8_t, 32> a{}, b{};
  ASSERT_TRUE(randomBytes(a));
  ASSERT_TRUE(randomBytes(b));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace sluice::crypto
