// Basic credentials parsing, every supported hash (generated here with libxcrypt), the formats
// refused at build time, the credential store and the per-worker cache of verified passwords.
#include "proxy/filters/basic_auth/basic_auth.h"

#include <crypt.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice::basic_auth {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string base64(std::string_view text) {
  return crypto::base64Encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

// A fresh hash of `password` with a random salt, as htpasswd or mkpasswd would write it.
std::string cryptHash(const char* prefix, unsigned long cost, const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof(setting)) == nullptr) {
    ADD_FAILURE() << "crypt_gensalt_rn " << prefix;
    return "";
  }
  crypt_data data{};
  const char* hash = crypt_rn(password.c_str(), setting, &data, sizeof(data));
  if (hash == nullptr) {
    ADD_FAILURE() << "crypt_rn " << prefix;
    return "";
  }
  return hash;
}

std::string shaHash(std::string_view password) {
  return absl::StrCat("{SHA}", crypto::base64Encode(crypto::sha1(password)));
}

PasswordHash hashOf(const std::string& text) {
  absl::StatusOr<PasswordHash> hash = PasswordHash::parse(text);
  EXPECT_TRUE(hash.ok()) << hash.status();
  return *std::move(hash);
}

struct Parsed {
  bool ok;
  std::string user, password;
};

Parsed parse(std::string_view value) {
  Parsed parsed;
  parsed.ok = parseBasic(value, &parsed.user, &parsed.password);
  return parsed;
}

TEST(ParseBasicTest, SplitsUserAndPassword) {
  const Parsed parsed = parse(absl::StrCat("Basic ", base64("aladdin:open sesame")));
  ASSERT_TRUE(parsed.ok);
  EXPECT_EQ(parsed.user, "aladdin");
  EXPECT_EQ(parsed.password, "open sesame");
}

TEST(ParseBasicTest, SchemeIsCaseInsensitiveAndSpacesMayRepeat) {
  for (const char* scheme : {"basic ", "BASIC ", "bAsIc ", "Basic    "}) {
    const Parsed parsed = parse(absl::StrCat(scheme, base64("u:p")));
    EXPECT_TRUE(parsed.ok) << scheme;
    EXPECT_EQ(parsed.user, "u");
    EXPECT_EQ(parsed.password, "p");
  }
}

TEST(ParseBasicTest, PasswordMayBeEmptyOrHoldColons) {
  Parsed parsed = parse(absl::StrCat("Basic ", base64("user:")));
  ASSERT_TRUE(parsed.ok);
  EXPECT_EQ(parsed.user, "user");
  EXPECT_EQ(parsed.password, "");
  parsed = parse(absl::StrCat("Basic ", base64("user:a:b::")));
  ASSERT_TRUE(parsed.ok);
  EXPECT_EQ(parsed.user, "user");
  EXPECT_EQ(parsed.password, "a:b::");
}

TEST(ParseBasicTest, Utf8IsFine) {
  const Parsed parsed = parse(absl::StrCat("Basic ", base64("j\xc3\xb6rg:p\xc3\xa4ss")));
  ASSERT_TRUE(parsed.ok);
  EXPECT_EQ(parsed.user, "j\xc3\xb6rg");
  EXPECT_EQ(parsed.password, "p\xc3\xa4ss");
}

TEST(ParseBasicTest, RejectsMalformedCredentials) {
  const std::string good = base64("user:pass");
  for (const std::string& value : {
           absl::StrCat("Basic ", base64("no-colon")),
           absl::StrCat("Basic ", base64(":password-without-user")),
           absl::StrCat("Basic ", base64("us\x01r:pass")),
           absl::StrCat("Basic ", base64("user:pa\x7fss")),
           absl::StrCat("Basic ", base64(std::string("user:pass\0word", 14))),
           absl::StrCat("Basic ", good.substr(0, good.size() - 1)),  // padding cut
           absl::StrCat("Basic ", good, " "),
           absl::StrCat("Basic ", good, "\r\n"),
           std::string("Basic dXNlcjpwYXNz="),  // padding on a full group
           std::string("Basic dXNlcjpwYXN*"),
           std::string("Basic "),
           std::string("Basic"),
           absl::StrCat("Basic\t", good),
           absl::StrCat("Basic", good),
           absl::StrCat("Basicx ", good),
           absl::StrCat(" Basic ", good),
           absl::StrCat("Bearer ", good),
           absl::StrCat("Digest ", good),
           std::string(""),
       }) {
    const Parsed parsed = parse(value);
    EXPECT_FALSE(parsed.ok) << value;
  }
}

TEST(PasswordHashTest, BcryptVariants) {
  for (const char* prefix : {"$2b$", "$2y$", "$2a$"}) {
    const PasswordHash hash = hashOf(cryptHash(prefix, 4, "correct horse"));
    EXPECT_EQ(hash.scheme(), PasswordHash::Scheme::kBcrypt);
    EXPECT_TRUE(hash.slow());
    EXPECT_TRUE(hash.verify("correct horse")) << prefix;
    EXPECT_FALSE(hash.verify("correct horsE")) << prefix;
    EXPECT_FALSE(hash.verify("")) << prefix;
  }
}

TEST(PasswordHashTest, Sha512Crypt) {
  const PasswordHash hash = hashOf(cryptHash("$6$", 0, "battery staple"));
  EXPECT_EQ(hash.scheme(), PasswordHash::Scheme::kSha512Crypt);
  EXPECT_TRUE(hash.verify("battery staple"));
  EXPECT_FALSE(hash.verify("battery stapl"));
}

TEST(PasswordHashTest, Sha256CryptWithExplicitRounds) {
  const std::string text = cryptHash("$5$", 1000, "battery staple");
  ASSERT_THAT(text, HasSubstr("$rounds=1000$"));
  const PasswordHash hash = hashOf(text);
  EXPECT_EQ(hash.scheme(), PasswordHash::Scheme::kSha256Crypt);
  EXPECT_TRUE(hash.verify("battery staple"));
  EXPECT_FALSE(hash.verify("Battery staple"));
}

TEST(PasswordHashTest, ShaOne) {
  // htpasswd -s: the base64 of SHA-1("password").
  EXPECT_EQ(shaHash("password"), "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=");
  const PasswordHash hash = hashOf("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=");
  EXPECT_EQ(hash.scheme(), PasswordHash::Scheme::kSha1);
  EXPECT_FALSE(hash.slow());
  EXPECT_TRUE(hash.verify("password"));
  EXPECT_FALSE(hash.verify("password1"));
  EXPECT_FALSE(hash.verify(""));
}

TEST(PasswordHashTest, NulInAPasswordNeverMatches) {
  const PasswordHash bcrypt = hashOf(cryptHash("$2b$", 4, "pass"));
  ASSERT_TRUE(bcrypt.verify("pass"));
  EXPECT_FALSE(bcrypt.verify(std::string_view("pass\0word", 9)));
  const PasswordHash sha512 = hashOf(cryptHash("$6$", 0, "pass"));
  EXPECT_FALSE(sha512.verify(std::string_view("pass\0", 5)));
}

TEST(PasswordHashTest, BcryptReadsOnly72Bytes) {
  const std::string long_password(72, 'x');
  const PasswordHash hash = hashOf(cryptHash("$2b$", 4, long_password));
  EXPECT_TRUE(hash.verify(long_password + "anything"));
  EXPECT_FALSE(hash.verify(long_password.substr(1)));
}

TEST(PasswordHashTest, UnsupportedFormatsAreRefused) {
  struct Case {
    std::string hash, message;
  };
  for (const Case& c : std::vector<Case>{
           {"$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00",
            "Apache MD5 ($apr1$) hashes are not supported"},
           {cryptHash("$1$", 0, "pw"), "MD5-crypt ($1$) hashes are not supported"},
           {cryptHash("$y$", 0, "pw"), "unsupported password hash scheme"},
           {"{SSHA}abcdefghijklmnopqrstuvwxyz0123456789", "unsupported password hash scheme"},
           {"hunter2-plain", "plain-text passwords and DES"},
           {"abJnggxhB/yWI", "plain-text passwords and DES"},
           {"", "plain-text passwords and DES"},
       }) {
    const absl::StatusOr<PasswordHash> hash = PasswordHash::parse(c.hash);
    ASSERT_FALSE(hash.ok()) << c.hash;
    EXPECT_THAT(hash.status().message(), HasSubstr(c.message));
    EXPECT_THAT(hash.status().message(), HasSubstr("bcrypt (htpasswd -B)"));
    if (!c.hash.empty()) {
      EXPECT_THAT(hash.status().message(), Not(HasSubstr(c.hash)));
    }
  }
}

TEST(PasswordHashTest, MalformedHashesAreRefused) {
  const std::string bcrypt = cryptHash("$2y$", 4, "pw");
  const std::string sha512 = cryptHash("$6$", 0, "pw");
  struct Case {
    std::string hash, message;
  };
  for (const Case& c : std::vector<Case>{
           {bcrypt.substr(0, 59), "a bcrypt hash is"},
           {bcrypt + "x", "a bcrypt hash is"},
           {absl::StrCat("$2y$4$", bcrypt.substr(7)), "a bcrypt hash is"},
           {absl::StrCat(bcrypt.substr(0, 20), "!", bcrypt.substr(21)), "a bcrypt hash is"},
           {absl::StrCat("$2y$03", bcrypt.substr(6)), "bcrypt cost 3 is outside 4 to 12"},
           {absl::StrCat("$2y$13", bcrypt.substr(6)), "bcrypt cost 13 is outside 4 to 12"},
           {sha512.substr(0, sha512.size() - 1), "a SHA-crypt hash is '$6$'"},
           {"$6$" + std::string(17, 'a') + "$" + std::string(86, 'b'), "a SHA-crypt hash is"},
           {"$6$$" + std::string(86, 'b'), "a SHA-crypt hash is"},
           {"$5$salt$" + std::string(86, 'b'), "a SHA-crypt hash is '$5$'"},
           {"$6$rounds=05000$salt$" + std::string(86, 'b'), "a SHA-crypt hash is"},
           {"$6$rounds=$salt$" + std::string(86, 'b'), "a SHA-crypt hash is"},
           {"$6$rounds=999$salt$" + std::string(86, 'b'), "SHA-crypt rounds 999 are outside"},
           {"$6$rounds=500001$salt$" + std::string(86, 'b'), "SHA-crypt rounds 500001 are"},
           {"{SHA}" + crypto::base64Encode(crypto::sha256("pw")), "20-byte SHA-1 digest"},
           {"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g", "20-byte SHA-1 digest"},
       }) {
    const absl::StatusOr<PasswordHash> hash = PasswordHash::parse(c.hash);
    ASSERT_FALSE(hash.ok()) << c.hash;
    EXPECT_THAT(hash.status().message(), HasSubstr(c.message)) << c.hash;
  }
  // At the limits.
  EXPECT_TRUE(PasswordHash::parse("$6$rounds=500000$salt$" + std::string(86, 'b')).ok());
  EXPECT_TRUE(PasswordHash::parse(absl::StrCat("$2y$12", bcrypt.substr(6))).ok());
}

class CredentialStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_hash_ = cryptHash("$2y$", 4, "alice-pw");
    bob_hash_ = shaHash("bob-pw");
    carol_hash_ = cryptHash("$6$", 1000, "carol-pw");
    absl::StatusOr<CredentialStore> store = CredentialStore::build(
        {{"alice", 7, alice_hash_}, {"bob", 8, bob_hash_}, {"carol", 9, carol_hash_}});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::string alice_hash_, bob_hash_, carol_hash_;
  CredentialStore store_;
  const absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

TEST_F(CredentialStoreTest, ChecksEachUsersPassword) {
  EXPECT_EQ(store_.check("alice", "alice-pw"), 7u);
  EXPECT_EQ(store_.check("bob", "bob-pw"), 8u);
  EXPECT_EQ(store_.check("carol", "carol-pw"), 9u);
  EXPECT_EQ(store_.check("alice", "bob-pw"), std::nullopt);
  EXPECT_EQ(store_.check("bob", "alice-pw"), std::nullopt);
  EXPECT_EQ(store_.check("mallory", "alice-pw"), std::nullopt);
  EXPECT_EQ(store_.check("Alice", "alice-pw"), std::nullopt);
  EXPECT_EQ(store_.check("", ""), std::nullopt);
}

TEST_F(CredentialStoreTest, CachedCheckRemembersSuccessesOnly) {
  VerifiedCache cache(1024, absl::Minutes(5));
  EXPECT_EQ(store_.check("alice", "wrong", cache, now_), std::nullopt);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(store_.check("alice", "alice-pw", cache, now_), 7u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.contains(VerifiedCache::keyFor("alice", "alice-pw", alice_hash_), now_));
  EXPECT_EQ(store_.check("alice", "alice-pw", cache, now_ + absl::Seconds(1)), 7u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(store_.check("carol", "carol-pw", cache, now_), 9u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST_F(CredentialStoreTest, CacheHitSkipsTheHash) {
  // An entry the hash itself would refuse shows that a hit answers without hashing.
  VerifiedCache cache(1024, absl::Minutes(5));
  cache.insert(VerifiedCache::keyFor("alice", "not-alices-pw", alice_hash_), now_);
  EXPECT_EQ(store_.check("alice", "not-alices-pw", cache, now_), 7u);
  EXPECT_EQ(store_.check("alice", "not-alices-pw"), std::nullopt);
  // Until it expires.
  EXPECT_EQ(store_.check("alice", "not-alices-pw", cache, now_ + absl::Minutes(5)), std::nullopt);
}

TEST_F(CredentialStoreTest, CacheEntriesAreBoundToTheHash) {
  VerifiedCache cache(1024, absl::Minutes(5));
  cache.insert(VerifiedCache::keyFor("alice", "old-pw", "$2y$04$some.other.hash"), now_);
  EXPECT_EQ(store_.check("alice", "old-pw", cache, now_), std::nullopt);
  // And to the user.
  cache.insert(VerifiedCache::keyFor("carol", "alice-pw", alice_hash_), now_);
  EXPECT_EQ(store_.check("carol", "alice-pw", cache, now_), std::nullopt);
}

TEST_F(CredentialStoreTest, ShaOneBypassesTheCache) {
  VerifiedCache cache(1024, absl::Minutes(5));
  EXPECT_EQ(store_.check("bob", "bob-pw", cache, now_), 8u);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(CredentialStoreBuildTest, RefusesBadUsersAndHashes) {
  const std::string hash = shaHash("pw");
  struct Case {
    std::vector<Credential> credentials;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{{"dave", 1, hash}, {"dave", 2, hash}}, "user 'dave' appears more than once"},
           {{{"", 1, hash}}, "user name is empty"},
           {{{"da:ve", 1, hash}}, "user 'da:ve': Basic auth user names cannot contain ':'"},
           {{{"da\nve", 1, hash}}, "user 'da\\nve': Basic auth user names cannot contain"},
           {{{"erin", 1, "$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00"}},
            "user 'erin': Apache MD5 ($apr1$) hashes are not supported"},
           {{{"erin", 1, "topsecret"}}, "user 'erin': plain-text passwords"},
       }) {
    const absl::StatusOr<CredentialStore> store = CredentialStore::build(c.credentials);
    ASSERT_FALSE(store.ok()) << c.message;
    EXPECT_THAT(store.status().message(),
                AllOf(HasSubstr(c.message), Not(HasSubstr("topsecret")), Not(HasSubstr(hash))));
  }
}

TEST(VerifiedCacheTest, CapacityIsAWholeNumberOfSets) {
  EXPECT_EQ(VerifiedCache(1024, absl::Minutes(1)).capacity(), 1024u);
  EXPECT_EQ(VerifiedCache(10, absl::Minutes(1)).capacity(), 16u);
  EXPECT_EQ(VerifiedCache(0, absl::Minutes(1)).capacity(), VerifiedCache::kWays);
}

VerifiedCache::Key key(int i) { return VerifiedCache::keyFor("user", absl::StrCat(i), "hash"); }

TEST(VerifiedCacheTest, HitsMissesAndExpiry) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  VerifiedCache cache(64, absl::Seconds(30));
  EXPECT_FALSE(cache.contains(key(1), t0));
  cache.insert(key(1), t0);
  EXPECT_TRUE(cache.contains(key(1), t0));
  EXPECT_FALSE(cache.contains(key(2), t0));
  EXPECT_TRUE(cache.contains(key(1), t0 + absl::Seconds(29)));
  EXPECT_FALSE(cache.contains(key(1), t0 + absl::Seconds(30)));
  // Inserting again renews the entry in place.
  cache.insert(key(1), t0 + absl::Seconds(30));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.contains(key(1), t0 + absl::Seconds(59)));
}

TEST(VerifiedCacheTest, StaysWithinCapacity) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  VerifiedCache cache(64, absl::Minutes(5));
  for (int i = 0; i < 1000; ++i) cache.insert(key(i), t0);
  EXPECT_EQ(cache.size(), 64u);
  int held = 0;
  for (int i = 0; i < 1000; ++i) held += cache.contains(key(i), t0);
  EXPECT_EQ(held, 64);
  // The most recent insert is always held: it never evicts itself.
  EXPECT_TRUE(cache.contains(key(999), t0));
}

TEST(VerifiedCacheTest, EvictsTheLeastRecentlyUsed) {
  // One set, so that every key competes with every other.
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  VerifiedCache cache(VerifiedCache::kWays, absl::Minutes(5));
  for (int i = 0; i < 8; ++i) cache.insert(key(i), t0);
  ASSERT_TRUE(cache.contains(key(0), t0));  // 0 is now the most recently used, 1 the least
  cache.insert(key(8), t0);
  EXPECT_TRUE(cache.contains(key(0), t0));
  EXPECT_FALSE(cache.contains(key(1), t0));
  for (int i = 2; i <= 8; ++i) EXPECT_TRUE(cache.contains(key(i), t0)) << i;
}

TEST(VerifiedCacheTest, EvictsExpiredEntriesFirst) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  VerifiedCache cache(VerifiedCache::kWays, absl::Seconds(60));
  cache.insert(key(0), t0);
  for (int i = 1; i < 8; ++i) cache.insert(key(i), t0 + absl::Seconds(30));
  ASSERT_TRUE(cache.contains(key(0), t0 + absl::Seconds(40)));  // most recently used
  const absl::Time later = t0 + absl::Seconds(61);              // 0 has expired, 1..7 not
  cache.insert(key(8), later);
  for (int i = 1; i <= 8; ++i) EXPECT_TRUE(cache.contains(key(i), later)) << i;
  EXPECT_EQ(cache.size(), 8u);
}

}  // namespace
}  // namespace sluice::basic_auth
