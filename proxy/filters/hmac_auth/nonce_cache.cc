#include "proxy/filters/hmac_auth/nonce_cache.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "proxy/filters/crypto/crypto.h"

namespace sluice::hmac_auth {
namespace {

constexpr uint64_t kPending = uint64_t{1} << 63;
constexpr int kTagShift = 48;
constexpr uint64_t kTagMax = 0x7fff;
constexpr uint64_t kKeyMask = (uint64_t{1} << kTagShift) - 1;
constexpr size_t kMaxCapacity = size_t{1} << 31;

uint64_t makeWord(uint64_t bits, uint64_t tag, bool pending) {
  return (pending ? kPending : 0) | tag << kTagShift | bits;
}

// 1 to kTagMax, never 0: a claimed slot's word is never the never-used 0.
uint64_t nextTag(uint64_t word) { return ((word >> kTagShift) & kTagMax) % kTagMax + 1; }

bool pending(uint64_t word) { return (word & kPending) != 0; }

}  // namespace

absl::StatusOr<std::unique_ptr<NonceCache>> NonceCache::create(size_t capacity,
                                                               size_t probe_limit) {
  if (capacity == 0 || capacity > kMaxCapacity || probe_limit == 0) {
    return absl::InvalidArgumentError(
        "the nonce cache needs 1 to 2^31 slots and a probe limit of at least 1");
  }
  std::unique_ptr<NonceCache> cache(new NonceCache(capacity, std::min(probe_limit, capacity)));
  if (!crypto::randomBytes(cache->seed_)) {
    return absl::UnavailableError("no random bytes for the nonce cache's hash seed");
  }
  return cache;
}

NonceCache::NonceCache(size_t capacity, size_t probe_limit)
    : capacity_(capacity),
      probe_limit_(probe_limit),
      words_(new std::atomic<uint64_t>[capacity]()),
      expires_(new std::atomic<uint32_t>[capacity]()) {}

uint64_t NonceCache::keyFor(std::string_view key_id, std::string_view nonce) const {
  crypto::Sha256 hash;
  hash.update(seed_);
  // The key id's length first, so that ("ab", "c") and ("a", "bc") differ.
  const uint64_t key_id_size = key_id.size();
  hash.update(std::string_view(reinterpret_cast<const char*>(&key_id_size), sizeof(key_id_size)));
  hash.update(key_id);
  hash.update(nonce);
  const crypto::Sha256Digest digest = hash.finish();
  uint64_t key;
  std::memcpy(&key, digest.data(), sizeof(key));
  return key;
}

size_t NonceCache::home(uint64_t key) const { return ((key >> 32) * capacity_) >> 32; }

NonceCache::Snapshot NonceCache::read(size_t slot) const {
  // A claim changes the word before it writes the expiry, so an expiry read between two equal
  // loads of the word belongs to that word.
  for (;;) {
    const uint64_t word = words_[slot].load();
    const uint32_t expires = expires_[slot].load();
    if (words_[slot].load() == word) return {word, expires};
  }
}

bool NonceCache::claimedElsewhere(uint64_t bits, size_t start, size_t mine, uint32_t now_s) const {
  size_t slot = start;
  for (size_t i = 0; i < probe_limit_; ++i, slot = slot + 1 == capacity_ ? 0 : slot + 1) {
    if (slot == mine) continue;
    const Snapshot s = read(slot);
    if (s.word == 0) return false;
    if ((pending(s.word) || s.expires > now_s) && (s.word & kKeyMask) == bits) return true;
  }
  return false;
}

NonceCache::Result NonceCache::insert(uint64_t key, uint32_t now_s, uint32_t expires_s) {
  const uint64_t bits = key & kKeyMask;
  // An entry that expired as it was written would be reusable at once.
  expires_s = std::max(expires_s, now_s + 1);
  const size_t start = home(key);
  for (;;) {
    size_t reusable = capacity_;  // none yet
    uint64_t reusable_word = 0;
    size_t slot = start;
    for (size_t i = 0; i < probe_limit_; ++i, slot = slot + 1 == capacity_ ? 0 : slot + 1) {
      const Snapshot s = read(slot);
      const bool live = s.word != 0 && (pending(s.word) || s.expires > now_s);
      if (live && (s.word & kKeyMask) == bits) return kReplay;
      if (!live && reusable == capacity_) {
        reusable = slot;
        reusable_word = s.word;
      }
      if (s.word == 0) break;
    }
    if (reusable == capacity_) return kFull;

    const uint64_t tag = nextTag(reusable_word);
    // Fails when anyone claimed the slot since it was read: look again.
    if (!words_[reusable].compare_exchange_strong(reusable_word, makeWord(bits, tag, true))) {
      continue;
    }
    if (claimedElsewhere(bits, start, reusable, now_s)) {
      expires_[reusable].store(0);
      words_[reusable].store(makeWord(bits, tag, false));
      return kReplay;
    }
    expires_[reusable].store(expires_s);
    words_[reusable].store(makeWord(bits, tag, false));
    return kFresh;
  }
}

}  // namespace sluice::hmac_auth
