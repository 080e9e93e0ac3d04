// SHA256_Init/Update/Final: BoringSSL has them too, and unlike OpenSSL 3's one-shot SHA256()
// (EVP_Q_digest) they neither allocate nor take a lock. OpenSSL 3 deprecates them.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "proxy/filters/jwt_authn/token_cache.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace sluice::jwt_authn {

TokenCache::TokenCache(size_t capacity, absl::Duration max_ttl)
    : entries_(std::max<size_t>(capacity, 1)), max_ttl_(max_ttl) {
  index_.reserve(entries_.size());
}

TokenCache::Digest TokenCache::digestOf(std::string_view token) {
  Digest digest;
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, token.data(), token.size());
  SHA256_Final(digest.data(), &ctx);
  return digest;
}

uint64_t TokenCache::indexKey(const Digest& digest) {
  uint64_t key;
  std::memcpy(&key, digest.data(), sizeof(key));
  return key;
}

void TokenCache::release(uint32_t slot) {
  Entry& entry = entries_[slot];
  index_.erase(indexKey(entry.digest));
  entry.claims.reset();
  entry.referenced = false;
  --size_;
}

std::shared_ptr<const Claims> TokenCache::lookup(std::string_view token, uint64_t generation,
                                                 absl::Time now) {
  const Digest digest = digestOf(token);
  const auto it = index_.find(indexKey(digest));
  if (it == index_.end()) return nullptr;
  const uint32_t slot = it->second;
  Entry& entry = entries_[slot];
  // Another token with the same first 8 digest bytes: a miss, its entry stays.
  if (CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) != 0) return nullptr;
  if (entry.generation != generation || now >= entry.expiry) {
    release(slot);
    return nullptr;
  }
  entry.referenced = true;
  return entry.claims;
}

uint32_t TokenCache::victim(uint64_t generation, absl::Time now) {
  // Ends within two sweeps: the first clears every reference bit it passes.
  while (true) {
    const uint32_t slot = hand_;
    hand_ = static_cast<uint32_t>((hand_ + 1) % entries_.size());
    Entry& entry = entries_[slot];
    if (entry.claims == nullptr) return slot;
    if (!entry.referenced || entry.generation != generation || now >= entry.expiry) {
      release(slot);
      return slot;
    }
    entry.referenced = false;
  }
}

void TokenCache::insert(std::string_view token, uint64_t generation,
                        std::shared_ptr<const Claims> claims, absl::Time now) {
  if (claims == nullptr) return;
  absl::Time expiry = now + max_ttl_;
  if (claims->exp) expiry = std::min(expiry, absl::FromUnixSeconds(*claims->exp));
  if (expiry <= now) return;

  const Digest digest = digestOf(token);
  uint32_t slot;
  const auto it = index_.find(indexKey(digest));
  if (it != index_.end()) {
    // The same token again, or another with the same index key: this one takes the entry.
    slot = it->second;
    release(slot);
  } else {
    slot = victim(generation, now);
  }
  Entry& entry = entries_[slot];
  entry.digest = digest;
  entry.generation = generation;
  entry.expiry = expiry;
  entry.claims = std::move(claims);
  entry.referenced = false;
  index_.emplace(indexKey(digest), slot);
  ++size_;
}

}  // namespace sluice::jwt_authn
