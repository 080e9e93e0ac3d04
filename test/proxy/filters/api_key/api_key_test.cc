// API key lookups: hits, misses, keys configured as digests, the build errors, and lookups that
// allocate neither in C++ nor inside OpenSSL.
#include "proxy/filters/api_key/api_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Every heap allocation in this test binary, so that a test can show lookup() makes none.
std::atomic<int64_t> g_allocations{0};

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// OpenSSL allocates with malloc, out of sight of operator new; it takes its allocator only before
// its first allocation, hence a static initializer.
std::atomic<int64_t> g_openssl_allocations{0};
void* countingMalloc(size_t size, const char*, int) {
  g_openssl_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size);
}
void* countingRealloc(void* p, size_t size, const char*, int) {
  g_openssl_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::realloc(p, size);
}
void countingFree(void* p, const char*, int) { std::free(p); }
const bool g_openssl_counted =
    CRYPTO_set_mem_functions(countingMalloc, countingRealloc, countingFree) == 1;

}  // namespace

namespace sluice::api_key {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string hexSha256(std::string_view key) {
  std::string text;
  for (uint8_t b : crypto::sha256(key)) {
    char pair[3];
    std::snprintf(pair, sizeof(pair), "%02x", b);
    text += pair;
  }
  return text;
}

KeyStore store(const std::vector<KeyEntry>& entries) {
  absl::StatusOr<KeyStore> built = KeyStore::build(entries);
  EXPECT_TRUE(built.ok()) << built.status();
  return built.ok() ? *std::move(built) : KeyStore();
}

TEST(KeyStoreTest, PlaintextKeysFindTheirConsumer) {
  const KeyStore keys =
      store({{0, "alice", "k-alice-1"}, {0, "alice", "k-alice-2"}, {1, "bob", "k-bob"}});
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys.lookup("k-alice-1"), 0u);
  EXPECT_EQ(keys.lookup("k-alice-2"), 0u);
  EXPECT_EQ(keys.lookup("k-bob"), 1u);
}

TEST(KeyStoreTest, NearMissesAreMisses) {
  const KeyStore keys = store({{1, "bob", "k-bob"}});
  for (const char* presented : {"k-carol", "k-bob ", " k-bob", "K-BOB", "k-bo", "k-bobb", ""}) {
    EXPECT_EQ(keys.lookup(presented), std::nullopt) << presented;
  }
  EXPECT_EQ(keys.lookup(std::string_view("k-bob\0", 6)), std::nullopt);
}

TEST(KeyStoreTest, EmptyStoreKnowsNoKey) {
  EXPECT_EQ(KeyStore().lookup("anything"), std::nullopt);
  EXPECT_EQ(store({}).lookup("anything"), std::nullopt);
}

TEST(KeyStoreTest, KeysConfiguredAsDigests) {
  const std::string lower = absl::StrCat("sha256:", hexSha256("only-the-client-knows"));
  const std::string upper =
      absl::StrCat("sha256:", absl::AsciiStrToUpper(hexSha256("another-secret")));
  const KeyStore keys = store({{4, "carol", lower}, {5, "dave", upper}});
  EXPECT_EQ(keys.lookup("only-the-client-knows"), 4u);
  EXPECT_EQ(keys.lookup("another-secret"), 5u);
  // The configured text is not itself a key.
  EXPECT_EQ(keys.lookup(lower), std::nullopt);
}

TEST(KeyStoreTest, ManyKeysAllFoundAndOthersNot) {
  std::vector<std::string> texts;
  for (int i = 0; i < 1000; ++i) texts.push_back(absl::StrCat("key-", i));
  std::vector<KeyEntry> entries;
  for (int i = 0; i < 1000; ++i) entries.push_back({static_cast<uint32_t>(i), "c", texts[i]});
  const KeyStore keys = store(entries);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(keys.lookup(texts[i]), static_cast<uint32_t>(i));
  for (int i = 1000; i < 2000; ++i) EXPECT_EQ(keys.lookup(absl::StrCat("key-", i)), std::nullopt);
}

TEST(KeyStoreTest, MalformedDigestsAreRejected) {
  const std::string hex = hexSha256("x");
  for (const std::string& key :
       {std::string("sha256:"), std::string("sha256:abc"), absl::StrCat("sha256:", hex.substr(1)),
        absl::StrCat("sha256:", hex, "0"), absl::StrCat("sha256:", std::string(64, 'g')),
        absl::StrCat("sha256: ", hex.substr(1))}) {
    const absl::StatusOr<KeyStore> built = KeyStore::build({{0, "erin", key}});
    ASSERT_FALSE(built.ok()) << key;
    EXPECT_THAT(built.status().message(), AllOf(HasSubstr("'erin'"), HasSubstr("64 hex digits")));
  }
}

TEST(KeyStoreTest, EmptyKeysAreRejected) {
  absl::StatusOr<KeyStore> built = KeyStore::build({{0, "erin", ""}});
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(built.status().message(), HasSubstr("consumer 'erin' has an empty API key"));
  built = KeyStore::build({{0, "erin", absl::StrCat("sha256:", hexSha256(""))}});
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(built.status().message(), HasSubstr("SHA-256 of an empty API key"));
}

TEST(KeyStoreTest, DuplicateKeysNameBothConsumersButNotTheKey) {
  absl::StatusOr<KeyStore> built = KeyStore::build(
      {{0, "alice", "shared-secret-1"}, {1, "bob", "k-bob"}, {2, "mallory", "shared-secret-1"}});
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(built.status().message(),
              AllOf(HasSubstr("consumers 'alice' and 'mallory' have the same API key"),
                    Not(HasSubstr("shared-secret-1"))));

  // The same key once as text and once as its digest.
  const std::string digest = absl::StrCat("sha256:", hexSha256("shared-secret-2"));
  built = KeyStore::build({{0, "alice", digest}, {1, "bob", "shared-secret-2"}});
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(built.status().message(),
              AllOf(HasSubstr("consumers 'alice' and 'bob'"), Not(HasSubstr("shared-secret-2")),
                    Not(HasSubstr(digest.substr(7)))));

  built = KeyStore::build({{0, "alice", "k-1"}, {0, "alice", "k-1"}});
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(built.status().message(), HasSubstr("consumer 'alice' has the same API key twice"));
}

TEST(KeyStoreTest, LookupsDoNotAllocate) {
  ASSERT_TRUE(g_openssl_counted);
  const int64_t openssl_at_start = g_openssl_allocations.load();
  EVP_MD_CTX_free(EVP_MD_CTX_new());
  ASSERT_GT(g_openssl_allocations.load(), openssl_at_start);  // the hook sees OpenSSL's
  const int64_t at_start = g_allocations.load();
  const KeyStore keys = store({{0, "alice", "k-alice"}, {1, "bob", "k-bob"}});
  ASSERT_GT(g_allocations.load(), at_start);  // the counter sees build()'s allocations
  const int64_t before = g_allocations.load(), openssl_before = g_openssl_allocations.load();
  int found = 0;
  for (const char* presented : {"k-alice", "k-bob", "k-carol"}) {
    found += keys.lookup(presented).has_value();
  }
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_EQ(g_openssl_allocations.load(), openssl_before);
  EXPECT_EQ(found, 2);
}

}  // namespace
}  // namespace sluice::api_key
