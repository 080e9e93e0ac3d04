// The lock-free nonce cache: fresh and replayed keys, expiry and reuse, a full probe window, an
// entry behind an expired slot, the keyed hash, and concurrent inserts of overlapping keys
// (exactly one kFresh per key).
#include "proxy/filters/hmac_auth/nonce_cache.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::hmac_auth {
namespace {

std::unique_ptr<NonceCache> makeCache(size_t capacity, size_t probe_limit) {
  absl::StatusOr<std::unique_ptr<NonceCache>> cache = NonceCache::create(capacity, probe_limit);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? *std::move(cache) : nullptr;
}

// A key whose home in a table of `capacity` slots is `slot`: the home is the key's high 32 bits
// scaled to the capacity. `low` tells keys with the same home apart.
uint64_t keyAt(size_t capacity, size_t slot, uint32_t low) {
  const uint64_t high = ((uint64_t{slot} << 32) + capacity - 1) / capacity;
  return high << 32 | low;
}

TEST(NonceCacheTest, FreshThenReplayUntilExpiry) {
  auto cache = makeCache(64, 8);
  const uint64_t key = 0x123456789abcdefULL;
  EXPECT_EQ(cache->insert(key, 100, 110), NonceCache::kFresh);
  EXPECT_EQ(cache->insert(key, 105, 115), NonceCache::kReplay);
  EXPECT_EQ(cache->insert(key, 109, 119), NonceCache::kReplay);
  EXPECT_EQ(cache->insert(key, 110, 120), NonceCache::kFresh);  // expired: a new entry
  EXPECT_EQ(cache->insert(key, 119, 129), NonceCache::kReplay);
  EXPECT_EQ(cache->insert(key + 1, 119, 129), NonceCache::kFresh);
}

TEST(NonceCacheTest, ExpiryNotAfterNowLastsOneSecond) {
  auto cache = makeCache(64, 8);
  EXPECT_EQ(cache->insert(42, 100, 50), NonceCache::kFresh);
  EXPECT_EQ(cache->insert(42, 100, 50), NonceCache::kReplay);
  EXPECT_EQ(cache->insert(42, 101, 50), NonceCache::kFresh);
}

TEST(NonceCacheTest, FullWindowUntilSomethingExpires) {
  auto cache = makeCache(4, 4);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cache->insert(keyAt(4, i, i), 0, 10), NonceCache::kFresh);
  }
  EXPECT_EQ(cache->insert(keyAt(4, 2, 99), 5, 15), NonceCache::kFull);
  EXPECT_EQ(cache->insert(keyAt(4, 2, 99), 10, 20), NonceCache::kFresh);
  EXPECT_EQ(cache->insert(keyAt(4, 2, 99), 11, 21), NonceCache::kReplay);
}

TEST(NonceCacheTest, ProbeWindowIsBounded) {
  auto cache = makeCache(64, 4);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cache->insert(keyAt(64, 10, i), 0, 10), NonceCache::kFresh);
  }
  EXPECT_EQ(cache->insert(keyAt(64, 10, 4), 0, 10), NonceCache::kFull);
  // Slots 10..13 are taken; a key at home 14 has its own window.
  EXPECT_EQ(cache->insert(keyAt(64, 14, 4), 0, 10), NonceCache::kFresh);
  // Home 11's window (11..14) is now full too.
  EXPECT_EQ(cache->insert(keyAt(64, 11, 5), 0, 10), NonceCache::kFull);
}

TEST(NonceCacheTest, ProbeWrapsAroundTheEnd) {
  auto cache = makeCache(4, 4);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cache->insert(keyAt(4, 3, i), 0, 10), NonceCache::kFresh);
  }
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cache->insert(keyAt(4, 3, i), 1, 10), NonceCache::kReplay);
  }
  EXPECT_EQ(cache->insert(keyAt(4, 0, 9), 1, 10), NonceCache::kFull);
}

TEST(NonceCacheTest, EntryBehindAnExpiredSlotIsStillFound) {
  auto cache = makeCache(8, 8);
  const uint64_t short_lived = keyAt(8, 0, 1), long_lived = keyAt(8, 0, 2);
  ASSERT_EQ(cache->insert(short_lived, 0, 10), NonceCache::kFresh);  // slot 0
  ASSERT_EQ(cache->insert(long_lived, 0, 100), NonceCache::kFresh);  // slot 1
  // Slot 0 has expired and could be reused, but the replay is in slot 1.
  EXPECT_EQ(cache->insert(long_lived, 20, 120), NonceCache::kReplay);
  EXPECT_EQ(cache->insert(keyAt(8, 0, 3), 20, 120), NonceCache::kFresh);
  EXPECT_EQ(cache->insert(long_lived, 30, 130), NonceCache::kReplay);
}

TEST(NonceCacheTest, KeysAreSeededPerCache) {
  auto a = makeCache(64, 8), b = makeCache(64, 8);
  EXPECT_EQ(a->keyFor("client", "nonce-0123456789"), a->keyFor("client", "nonce-0123456789"));
  EXPECT_NE(a->keyFor("client", "nonce-0123456789"), a->keyFor("client", "nonce-0123456780"));
  EXPECT_NE(a->keyFor("client", "nonce-0123456789"), a->keyFor("client2", "nonce-0123456789"));
  EXPECT_NE(a->keyFor("ab", "c"), a->keyFor("a", "bc"));
  EXPECT_NE(a->keyFor("client", "nonce-0123456789"), b->keyFor("client", "nonce-0123456789"));
}

TEST(NonceCacheTest, CreateChecksItsArguments) {
  EXPECT_FALSE(NonceCache::create(0, 8).ok());
  EXPECT_FALSE(NonceCache::create(64, 0).ok());
  EXPECT_FALSE(NonceCache::create((size_t{1} << 31) + 1, 8).ok());
  auto cache = makeCache(4, 100);  // the limit is clamped to the capacity
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cache->insert(keyAt(4, 0, i), 0, 10), NonceCache::kFresh);
  }
  EXPECT_EQ(cache->insert(keyAt(4, 0, 4), 0, 10), NonceCache::kFull);
}

// Every thread inserts every key, in its own order, all starting together.
void insertConcurrently(NonceCache& cache, const std::vector<uint64_t>& keys, int threads) {
  std::vector<std::atomic<int>> fresh(keys.size());
  std::atomic<int> replays{0}, full{0}, ready{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<size_t> order(keys.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937(t));
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      for (size_t i : order) {
        switch (cache.insert(keys[i], 1000, 2000)) {
          case NonceCache::kFresh:
            fresh[i].fetch_add(1);
            break;
          case NonceCache::kReplay:
            replays.fetch_add(1);
            break;
          case NonceCache::kFull:
            full.fetch_add(1);
            break;
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(fresh[i].load(), 1) << "key " << i;
  EXPECT_EQ(full.load(), 0);
  EXPECT_EQ(replays.load(), static_cast<int>(keys.size()) * (threads - 1));
}

TEST(NonceCacheConcurrencyTest, ExactlyOneFreshPerKey) {
  std::mt19937_64 random(7);
  std::vector<uint64_t> keys(20000);
  for (uint64_t& key : keys) key = random();
  auto cache = makeCache(65536, 65536);
  insertConcurrently(*cache, keys, 8);
}

TEST(NonceCacheConcurrencyTest, ExactlyOneFreshPerKeyInOneCluster) {
  // Every key has the same home: all threads race over the same run of slots.
  std::vector<uint64_t> keys;
  for (uint32_t i = 0; i < 500; ++i) keys.push_back(keyAt(1024, 100, i));
  auto cache = makeCache(1024, 1024);
  insertConcurrently(*cache, keys, 8);
}

}  // namespace
}  // namespace sluice::hmac_auth
