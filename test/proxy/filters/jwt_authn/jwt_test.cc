// parseJwt: the structure of a compact JWS (segments, base64url, JSON), the header fields, the
// registered claims, and the flattening of claims for authorization.
#include "proxy/filters/jwt_authn/jwt.h"

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/proxy/filters/jwt_authn/test_tokens.h"

namespace sluice::jwt_authn {
namespace {

using testing::base64Url;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::hs256Token;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pointee;

// Any 32-byte secret: these tests parse, they do not verify.
const std::string kSecret(32, 's');

// A token with the given header and payload JSON and a syntactically fine signature.
std::string unsigned32(std::string_view header_json, std::string_view payload_json) {
  return base64Url(header_json) + "." + base64Url(payload_json) + "." +
         base64Url(std::string(32, 'x'));
}

Failure parseFailure(std::string_view token) {
  Failure failure = Failure::kNone;
  const absl::StatusOr<Jwt> jwt = parseJwt(token, &failure);
  EXPECT_EQ(jwt.ok(), failure == Failure::kNone);
  return failure;
}

TEST(ParseJwt, HeaderFieldsAndRegisteredClaims) {
  const std::string token =
      hs256Token(kSecret,
                 R"({"iss":"https://issuer.example","sub":"user-1","aud":"api","exp":1700000000,)"
                 R"("nbf":1699990000,"iat":1699990000.75})",
                 "key-1");
  Failure failure = Failure::kMalformed;
  const absl::StatusOr<Jwt> jwt = parseJwt(token, &failure);
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  EXPECT_EQ(failure, Failure::kNone);
  EXPECT_EQ(jwt->alg, "HS256");
  EXPECT_EQ(jwt->kid, "key-1");
  EXPECT_EQ(jwt->typ, "JWT");
  EXPECT_EQ(jwt->signing_input, token.substr(0, token.rfind('.')));
  EXPECT_EQ(jwt->signature, testing::signHs256(kSecret, jwt->signing_input));
  const Claims& c = jwt->claims;
  EXPECT_EQ(c.iss, "https://issuer.example");
  EXPECT_EQ(c.sub, "user-1");
  EXPECT_THAT(c.aud, ElementsAre("api"));
  EXPECT_EQ(c.exp, 1700000000);
  EXPECT_EQ(c.nbf, 1699990000);
  EXPECT_EQ(c.iat, 1699990000);  // fractions dropped
}

TEST(ParseJwt, AbsentOptionalFields) {
  const absl::StatusOr<Jwt> jwt = parseJwt(unsigned32(R"({"alg":"RS256"})", "{}"));
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  EXPECT_EQ(jwt->kid, "");
  EXPECT_EQ(jwt->typ, "");
  EXPECT_FALSE(jwt->claims.iss || jwt->claims.sub || jwt->claims.exp || jwt->claims.nbf ||
               jwt->claims.iat);
  EXPECT_THAT(jwt->claims.aud, IsEmpty());
  EXPECT_THAT(jwt->claims.all(), IsEmpty());
}

TEST(ParseJwt, AudienceArray) {
  const absl::StatusOr<Jwt> jwt =
      parseJwt(unsigned32(R"({"alg":"ES256"})", R"({"aud":["web","api"]})"));
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  EXPECT_THAT(jwt->claims.aud, ElementsAre("web", "api"));
  EXPECT_THAT(jwt->claims.values("aud"), Pointee(ElementsAre("web", "api")));
}

TEST(ParseJwt, RegisteredClaimsOfTheWrongTypeAreMalformed) {
  for (const char* payload :
       {R"({"iss":1})", R"({"sub":["a"]})", R"({"aud":1})", R"({"aud":["a",1]})",
        R"({"aud":{"a":1}})", R"({"exp":"1700000000"})", R"({"nbf":true})", R"({"iat":null})",
        R"({"exp":1e300})", R"({"exp":-1e300})"}) {
    EXPECT_EQ(parseFailure(unsigned32(R"({"alg":"HS256"})", payload)), Failure::kMalformed)
        << payload;
  }
}

TEST(Claims, FlattenedValues) {
  const absl::StatusOr<Jwt> jwt = parseJwt(unsigned32(
      R"({"alg":"HS256"})",
      R"({"scope":"read write","groups":["eng","ops",3,true,null,{"x":1}],"n":42,"f":1.5,)"
      R"("big":1e21,"neg":-7,"zero":-0,"t":true,"obj":{"a":[1,2]},"nested":[[1]],)"
      R"("nul":null,"empty":""})"));
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  const Claims& c = jwt->claims;
  EXPECT_THAT(c.values("scope"), Pointee(ElementsAre("read write")));
  EXPECT_THAT(c.values("groups"), Pointee(ElementsAre("eng", "ops", "3", "true")));
  EXPECT_THAT(c.values("n"), Pointee(ElementsAre("42")));
  EXPECT_THAT(c.values("f"), Pointee(ElementsAre("1.5")));
  EXPECT_THAT(c.values("big"), Pointee(ElementsAre("1e+21")));
  EXPECT_THAT(c.values("neg"), Pointee(ElementsAre("-7")));
  EXPECT_THAT(c.values("zero"), Pointee(ElementsAre("0")));
  EXPECT_THAT(c.values("t"), Pointee(ElementsAre("true")));
  EXPECT_THAT(c.values("obj"), Pointee(IsEmpty()));
  EXPECT_THAT(c.values("nested"), Pointee(IsEmpty()));
  EXPECT_THAT(c.values("empty"), Pointee(ElementsAre("")));
  EXPECT_EQ(c.values("nul"), nullptr);
  EXPECT_EQ(c.values("missing"), nullptr);

  std::vector<std::string> names;
  for (const Claims::Claim& claim : c.all()) {
    names.push_back(claim.name);
    if (claim.name == "obj") EXPECT_EQ(claim.json, R"({"a":[1,2]})");
    if (claim.name == "nested") EXPECT_EQ(claim.json, "[[1]]");
    if (claim.name == "groups") EXPECT_EQ(claim.json, R"(["eng","ops",3,true,null,{"x":1}])");
    if (claim.name == "scope" || claim.name == "n") EXPECT_EQ(claim.json, "");
  }
  EXPECT_THAT(names, ElementsAre("big", "empty", "f", "groups", "n", "neg", "nested", "obj",
                                 "scope", "t", "zero"));
}

TEST(Claims, ContainsMatchesValuesAndTheWordsOfStrings) {
  const absl::StatusOr<Jwt> jwt = parseJwt(
      unsigned32(R"({"alg":"HS256"})",
                 R"({"scope":"read  write admin ","roles":["a b","c"],"n":42,"sub":"user 1"})"));
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  const Claims& c = jwt->claims;
  EXPECT_TRUE(c.contains("scope", "read"));
  EXPECT_TRUE(c.contains("scope", "write"));
  EXPECT_TRUE(c.contains("scope", "admin"));
  EXPECT_TRUE(c.contains("scope", "read  write admin "));  // the whole value too
  EXPECT_FALSE(c.contains("scope", "rea"));
  EXPECT_FALSE(c.contains("scope", "write admin"));
  EXPECT_FALSE(c.contains("scope", "Read"));
  EXPECT_FALSE(c.contains("scope", ""));
  EXPECT_TRUE(c.contains("sub", "user"));
  // Array elements are values, not word lists.
  EXPECT_TRUE(c.contains("roles", "a b"));
  EXPECT_TRUE(c.contains("roles", "c"));
  EXPECT_FALSE(c.contains("roles", "a"));
  EXPECT_TRUE(c.contains("n", "42"));
  EXPECT_FALSE(c.contains("missing", "read"));
}

TEST(ParseJwt, UnsupportedAlgorithms) {
  for (const char* alg : {"none", "None", "NONE", "hs256", "Hs256", "rs256", "HS384", "HS512",
                          "RS384", "RS512", "PS256", "ES384", "ES512", "EdDSA", "RS256 ", ""}) {
    const std::string header = std::string(R"({"alg":")") + alg + R"("})";
    Failure failure = Failure::kNone;
    const absl::StatusOr<Jwt> jwt = parseJwt(unsigned32(header, "{}"), &failure);
    ASSERT_FALSE(jwt.ok()) << alg;
    EXPECT_EQ(failure, Failure::kUnsupportedAlg) << alg;
    EXPECT_EQ(jwt.status().message(), "unsupported algorithm");
  }
  // alg none comes with an empty signature; still the algorithm is what is refused.
  EXPECT_EQ(parseFailure(base64Url(R"({"alg":"none"})") + "." + base64Url("{}") + "."),
            Failure::kUnsupportedAlg);
}

TEST(ParseJwt, HeaderMustBeAnObjectWithStringAlg) {
  for (const char* header :
       {R"([])", R"("HS256")", "1", "null", "", R"({})", R"({"alg":1})", R"({"alg":null})",
        R"({"alg":["HS256"]})", R"({"alg":"HS256","kid":1})", R"({"alg":"HS256","typ":{}})",
        R"({"alg":"HS256","crit":["exp"]})", R"({"alg":"HS256","b64":false,"crit":["b64"]})"}) {
    EXPECT_EQ(parseFailure(unsigned32(header, "{}")), Failure::kMalformed) << header;
  }
}

TEST(ParseJwt, PayloadMustBeAnObject) {
  for (const char* payload : {"[]", R"("x")", "1", "true", "null", "", "{", "{}}", "{} {}"}) {
    EXPECT_EQ(parseFailure(unsigned32(R"({"alg":"HS256"})", payload)), Failure::kMalformed)
        << payload;
  }
}

// What protobuf's JSON parser would take but RFC 8259 does not, and what it refuses itself.
TEST(ParseJwt, StrictJson) {
  for (const char* payload :
       {R"({'sub':'a'})",    R"({sub:"a"})",        R"({"sub":"a",})",
        R"({"a":[1,]})",     R"({"a":"\x41"})",     R"({"a":"\'"})",
        R"({"a":01})",       R"({"a":.5})",         R"({"a":+1})",
        R"({"a":1.})",       R"({"a":NaN})",        R"({"a":Infinity})",
        R"({"a":tru})",      "{\"a\":\"tab\tin\"}", R"({"a":"\u12"})",
        R"({"a":"\ud800"})", R"({"a":1e400})",      "{\"a\":\"\xff\"}",
        "\xef\xbb\xbf{}",    R"({"a":1,"a":2})",    R"({"sub":"a","sub":"b"})"}) {
    EXPECT_EQ(parseFailure(unsigned32(R"({"alg":"HS256"})", payload)), Failure::kMalformed)
        << payload;
  }
  // A NUL byte after the object (a C string would hide it).
  EXPECT_EQ(parseFailure(unsigned32(R"({"alg":"HS256"})", std::string("{}\0", 3))),
            Failure::kMalformed);
  // And what RFC 8259 allows.
  EXPECT_EQ(parseFailure(unsigned32(" {\"alg\" :\t\"HS256\"}\r\n",
                                    R"({"a":[-0.5e+3,1E2,0,"\"\\\/\b\f\n\r\t\u00e9"],"b":{}})")),
            Failure::kNone);
}

TEST(ParseJwt, NestingIsBounded) {
  const auto nested = [](int depth) {
    // The payload object itself is one level.
    return "{\"a\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  };
  EXPECT_EQ(parseFailure(unsigned32(R"({"alg":"HS256"})", nested(kMaxJsonDepth))), Failure::kNone);
  EXPECT_EQ(parseFailure(unsigned32(R"({"alg":"HS256"})", nested(kMaxJsonDepth + 1))),
            Failure::kMalformed);
  EXPECT_EQ(parseFailure(unsigned32(R"({"alg":"HS256"})", nested(1000))), Failure::kMalformed);
}

TEST(ParseJwt, Segments) {
  const std::string token = hs256Token(kSecret, R"({"sub":"a"})");
  ASSERT_EQ(parseFailure(token), Failure::kNone);
  const size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  const std::string h = token.substr(0, dot1);
  const std::string p = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string s = token.substr(dot2 + 1);
  for (const std::string& bad : std::vector<std::string>{
           h + "." + p, h + "." + p + "." + s + "." + s, h + "." + p + "." + s + ".",
           "." + p + "." + s, h + ".." + s, h + "." + p + ".", "..", ".", "", h,
           "." + h + "." + p + "." + s, h + "." + p + ".." + s}) {
    EXPECT_EQ(parseFailure(bad), Failure::kMalformed) << bad;
  }
}

TEST(ParseJwt, StrictBase64Url) {
  const std::string token = hs256Token(kSecret, R"({"sub":"a"})");
  const size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  const std::string h = token.substr(0, dot1);
  const std::string p = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string s = token.substr(dot2 + 1);
  ASSERT_EQ(s.size(), 43u);  // 32 bytes: two spare bits in the last character

  // Each segment spoiled in the ways a lax decoder would forgive.
  std::vector<std::string> bad;
  for (int segment = 0; segment < 3; ++segment) {
    for (const auto& spoil :
         {+[](std::string x) { return x + "="; }, +[](std::string x) { return x + "=="; },
          +[](std::string x) { return x.replace(1, 1, "+"); },
          +[](std::string x) { return x.replace(1, 1, "/"); },
          +[](std::string x) { return x.insert(2, " "); },
          +[](std::string x) { return x.insert(2, "\n"); }, +[](std::string x) { return x + " "; },
          +[](std::string x) { return x.insert(1, "."); },
          +[](std::string x) { return x.replace(0, 1, "\x80"); },
          +[](std::string x) { return x.insert(1, std::string(1, '\0')); }}) {
      std::string parts[3] = {h, p, s};
      parts[segment] = spoil(parts[segment]);
      bad.push_back(parts[0] + "." + parts[1] + "." + parts[2]);
    }
  }
  // Standard base64 with padding, as a careless issuer might send it.
  bad.push_back(h + "." + p + "." + s + "=");
  // A length no encoding has (4n + 1).
  std::string h1 = h;
  while (h1.size() % 4 != 1) h1 += 'A';
  bad.push_back(h1 + "." + p + "." + s);
  // Non-zero spare bits in the last character: another spelling of the same bytes.
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string s1 = s;
  s1.back() = kAlphabet[kAlphabet.find(s1.back()) | 1];
  bad.push_back(h + "." + p + "." + s1);
  for (const std::string& t : bad) EXPECT_EQ(parseFailure(t), Failure::kMalformed) << t;
}

TEST(ParseJwt, SizeLimit) {
  // A long claim brings the token to within a few bytes of the limit, then over it.
  const auto withFiller = [](size_t n) {
    return hs256Token(kSecret, R"({"sub":"a","pad":")" + std::string(n, 'x') + R"("})");
  };
  size_t filler = 0;
  while (withFiller(filler + 1).size() <= kMaxTokenBytes) ++filler;
  const std::string largest = withFiller(filler);
  ASSERT_LE(largest.size(), kMaxTokenBytes);
  ASSERT_GT(largest.size(), kMaxTokenBytes - 4);
  EXPECT_EQ(parseFailure(largest), Failure::kNone);
  const std::string too_large = withFiller(filler + 1);
  ASSERT_GT(too_large.size(), kMaxTokenBytes);
  const absl::StatusOr<Jwt> jwt = parseJwt(too_large);
  ASSERT_FALSE(jwt.ok());
  EXPECT_EQ(jwt.status().message(), "token too large");
  EXPECT_EQ(parseFailure(std::string(1 << 20, 'A')), Failure::kMalformed);
}

TEST(ParseJwt, ErrorsNeverQuoteTheToken) {
  // protobuf's own messages quote the JSON around the error; they must not come through.
  for (const std::string& token :
       {unsigned32(R"({"alg":"HS256"})", R"({"secret":"hunter2",})"),
        unsigned32(R"({"alg":"HS256"})", R"({"secret":"hunter2","secret":"hunter2"})"),
        unsigned32(R"({"alg":"hunter2"})", "{}"), unsigned32(R"({"alg":"HS256","hunter2"})", "{}"),
        std::string("hunter2.hunter2")}) {
    const absl::StatusOr<Jwt> jwt = parseJwt(token);
    ASSERT_FALSE(jwt.ok());
    EXPECT_THAT(std::string(jwt.status().message()), Not(HasSubstr("hunter2")));
    EXPECT_THAT(std::string(jwt.status().message()), Not(HasSubstr(base64Url("secret"))));
  }
}

TEST(Failure, NamesAreDistinct) {
  std::set<std::string> names;
  for (Failure f :
       {Failure::kNone, Failure::kMalformed, Failure::kUnsupportedAlg, Failure::kNoMatchingKey,
        Failure::kBadSignature, Failure::kExpired, Failure::kNotYetValid, Failure::kWrongIssuer,
        Failure::kWrongAudience, Failure::kMissingExp}) {
    names.insert(failureName(f));
  }
  EXPECT_EQ(names.size(), 10u);
  EXPECT_STREQ(failureName(Failure::kBadSignature), "bad_signature");
  EXPECT_STREQ(failureName(Failure::kUnsupportedAlg), "unsupported_alg");
}

TEST(AlgorithmByName, ExactNamesOnly) {
  EXPECT_EQ(algorithmByName("RS256"), Algorithm::kRS256);
  EXPECT_EQ(algorithmByName("ES256"), Algorithm::kES256);
  EXPECT_EQ(algorithmByName("HS256"), Algorithm::kHS256);
  EXPECT_EQ(algorithmByName("none"), std::nullopt);
  EXPECT_EQ(algorithmByName("hs256"), std::nullopt);
  EXPECT_EQ(algorithmByName(std::string_view("HS256\0", 6)), std::nullopt);
}

}  // namespace
}  // namespace sluice::jwt_authn
