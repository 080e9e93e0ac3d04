// The per-worker cache of verified tokens: hits and misses by token content, expiry at the
// token's exp or the cache's TTL, CLOCK eviction, invalidation by key-set generation, and
// lookups that never allocate.
#include "proxy/filters/jwt_authn/token_cache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "gtest/gtest.h"

// Every heap allocation in this test binary, by operator new and by OpenSSL, so that a test can
// show that lookup() makes none.
std::atomic<int64_t> g_allocations{0};

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

void* countingMalloc(size_t size, const char*, int) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size);
}
void* countingRealloc(void* p, size_t size, const char*, int) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::realloc(p, size);
}
void countingFree(void* p, const char*, int) { std::free(p); }

// OpenSSL takes new allocation functions only before its first allocation, so before main.
const bool g_openssl_counted =
    CRYPTO_set_mem_functions(countingMalloc, countingRealloc, countingFree) == 1;

}  // namespace

namespace sluice::jwt_authn {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);
constexpr uint64_t kGeneration = 7;

std::shared_ptr<const Claims> claimsExpiringAt(absl::Time exp) {
  auto claims = std::make_shared<Claims>();
  claims->exp = absl::ToUnixSeconds(exp);
  claims->sub = "user-1";
  return claims;
}

TEST(TokenCache, MissThenHit) {
  TokenCache cache(8, absl::Minutes(5));
  EXPECT_EQ(cache.lookup("token-a", kGeneration, kStart), nullptr);
  const auto claims = claimsExpiringAt(kStart + absl::Hours(1));
  cache.insert("token-a", kGeneration, claims, kStart);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.lookup("token-a", kGeneration, kStart + absl::Seconds(1)), claims);
  EXPECT_EQ(cache.lookup("token-a", kGeneration, kStart + absl::Seconds(2)), claims);
}

TEST(TokenCache, TokensAreToldApartByTheirBytes) {
  TokenCache cache(8, absl::Minutes(5));
  cache.insert("header.payload.signature", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)),
               kStart);
  EXPECT_EQ(cache.lookup("header.payload.signaturf", kGeneration, kStart), nullptr);
  EXPECT_EQ(cache.lookup("header.payload.signature ", kGeneration, kStart), nullptr);
  EXPECT_EQ(cache.lookup("header.payload.signatur", kGeneration, kStart), nullptr);
  EXPECT_EQ(cache.lookup("", kGeneration, kStart), nullptr);
  EXPECT_NE(cache.lookup("header.payload.signature", kGeneration, kStart), nullptr);
}

TEST(TokenCache, EntryExpiresWithTheToken) {
  TokenCache cache(8, absl::Hours(1));
  cache.insert("t", kGeneration, claimsExpiringAt(kStart + absl::Seconds(100)), kStart);
  EXPECT_NE(cache.lookup("t", kGeneration, kStart + absl::Seconds(99)), nullptr);
  EXPECT_EQ(cache.lookup("t", kGeneration, kStart + absl::Seconds(100)), nullptr);
  EXPECT_EQ(cache.size(), 0u);  // dropped, not just hidden
  EXPECT_EQ(cache.lookup("t", kGeneration, kStart + absl::Seconds(1)), nullptr);
}

TEST(TokenCache, EntryExpiresAfterTheMaxTtl) {
  TokenCache cache(8, absl::Seconds(30));
  cache.insert("t", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), kStart);
  EXPECT_NE(cache.lookup("t", kGeneration, kStart + absl::Seconds(29)), nullptr);
  EXPECT_EQ(cache.lookup("t", kGeneration, kStart + absl::Seconds(30)), nullptr);
}

TEST(TokenCache, TokenWithoutExpLivesTheMaxTtl) {
  TokenCache cache(8, absl::Seconds(30));
  cache.insert("t", kGeneration, std::make_shared<Claims>(), kStart);
  EXPECT_NE(cache.lookup("t", kGeneration, kStart + absl::Seconds(29)), nullptr);
  EXPECT_EQ(cache.lookup("t", kGeneration, kStart + absl::Seconds(30)), nullptr);
}

TEST(TokenCache, TokenPastItsExpIsNotCached) {
  // Accepted within the clock skew, so verified again on every request until the skew runs out.
  TokenCache cache(8, absl::Minutes(5));
  cache.insert("t", kGeneration, claimsExpiringAt(kStart), kStart);
  cache.insert("u", kGeneration, claimsExpiringAt(kStart - absl::Seconds(10)), kStart);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.lookup("t", kGeneration, kStart), nullptr);
}

TEST(TokenCache, NewKeySetGenerationInvalidates) {
  TokenCache cache(8, absl::Minutes(5));
  cache.insert("t", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), kStart);
  EXPECT_EQ(cache.lookup("t", kGeneration + 1, kStart), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  // Dropped for good: the old generation does not bring it back.
  EXPECT_EQ(cache.lookup("t", kGeneration, kStart), nullptr);
}

TEST(TokenCache, ClockEvictsWhatWasNotLookedUp) {
  TokenCache cache(2, absl::Minutes(5));
  const auto claims = claimsExpiringAt(kStart + absl::Hours(1));
  cache.insert("a", kGeneration, claims, kStart);
  cache.insert("b", kGeneration, claims, kStart);
  ASSERT_NE(cache.lookup("a", kGeneration, kStart), nullptr);
  cache.insert("c", kGeneration, claims, kStart);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.lookup("b", kGeneration, kStart), nullptr);
  EXPECT_NE(cache.lookup("a", kGeneration, kStart), nullptr);
  EXPECT_NE(cache.lookup("c", kGeneration, kStart), nullptr);
  // Both looked up since: the hand clears a's and c's bits and then takes the first, a.
  cache.insert("d", kGeneration, claims, kStart);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.lookup("a", kGeneration, kStart), nullptr);
  EXPECT_NE(cache.lookup("c", kGeneration, kStart), nullptr);
  EXPECT_NE(cache.lookup("d", kGeneration, kStart), nullptr);
}

TEST(TokenCache, ExpiredAndStaleEntriesGoFirst) {
  TokenCache cache(3, absl::Minutes(5));
  cache.insert("long", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), kStart);
  cache.insert("short", kGeneration, claimsExpiringAt(kStart + absl::Seconds(10)), kStart);
  cache.insert("old", kGeneration - 1, claimsExpiringAt(kStart + absl::Hours(1)), kStart);
  ASSERT_NE(cache.lookup("long", kGeneration, kStart), nullptr);
  ASSERT_NE(cache.lookup("short", kGeneration, kStart), nullptr);
  ASSERT_NE(cache.lookup("old", kGeneration - 1, kStart), nullptr);
  // All three looked up; "short" has expired and "old" belongs to another generation: they go
  // before "long", whose bit only saves it once.
  const absl::Time later = kStart + absl::Seconds(20);
  cache.insert("x", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), later);
  cache.insert("y", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), later);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_NE(cache.lookup("long", kGeneration, later), nullptr);
  EXPECT_NE(cache.lookup("x", kGeneration, later), nullptr);
  EXPECT_NE(cache.lookup("y", kGeneration, later), nullptr);
}

TEST(TokenCache, InsertingAgainReplaces) {
  TokenCache cache(4, absl::Minutes(5));
  cache.insert("t", kGeneration, claimsExpiringAt(kStart + absl::Seconds(10)), kStart);
  const auto newer = claimsExpiringAt(kStart + absl::Hours(1));
  cache.insert("t", kGeneration + 1, newer, kStart);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.lookup("t", kGeneration + 1, kStart + absl::Seconds(20)), newer);
}

TEST(TokenCache, CapacityIsAtLeastOne) {
  TokenCache cache(0, absl::Minutes(5));
  EXPECT_EQ(cache.capacity(), 1u);
  cache.insert("a", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), kStart);
  cache.insert("b", kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), kStart);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.lookup("b", kGeneration, kStart), nullptr);
}

TEST(TokenCache, LookupDoesNotAllocate) {
  ASSERT_TRUE(g_openssl_counted);
  // The counter sees OpenSSL's allocations and the cache's.
  int64_t before = g_allocations.load();
  EVP_MD_CTX_free(EVP_MD_CTX_new());
  EXPECT_GT(g_allocations.load(), before);
  TokenCache cache(16, absl::Minutes(5));
  before = g_allocations.load();
  const std::string token(1000, 't');
  cache.insert(token, kGeneration, claimsExpiringAt(kStart + absl::Hours(1)), kStart);
  EXPECT_GT(g_allocations.load(), before);

  before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    EXPECT_NE(cache.lookup(token, kGeneration, kStart), nullptr);    // hit
    EXPECT_EQ(cache.lookup("other", kGeneration, kStart), nullptr);  // miss
  }
  EXPECT_EQ(cache.lookup(token, kGeneration + 1, kStart), nullptr);  // stale: dropped
  EXPECT_EQ(g_allocations.load(), before);
}

}  // namespace
}  // namespace sluice::jwt_authn
