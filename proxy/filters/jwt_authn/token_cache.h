#pragma once

// A worker's cache of tokens that verify() accepted, so that a client sending the same token
// on every request pays for one signature check, not one per request. Single-threaded: each
// worker has its own, and nothing here locks. One cache serves one provider (issuer,
// audiences, keys): the generation passed in must change whenever any of them changes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "proxy/filters/jwt_authn/jwt.h"

namespace sluice::jwt_authn {

class TokenCache {
 public:
  // `capacity` entries (at least 1), allocated up front; an entry lives at most `max_ttl`.
  TokenCache(size_t capacity, absl::Duration max_ttl);

  // The claims of `token` if it was inserted with this generation and has not expired, else
  // nullptr (and a stale entry is dropped). Does not allocate.
  std::shared_ptr<const Claims> lookup(std::string_view token, uint64_t generation, absl::Time now);

  // Remembers an accepted token until min(its exp, now + max_ttl). A token whose exp has
  // already passed (accepted within the clock skew) is not cached. When full, evicts an
  // expired or stale entry, else the first one not looked up since the clock hand last passed
  // (CLOCK, an approximation of least recently used).
  void insert(std::string_view token, uint64_t generation, std::shared_ptr<const Claims> claims,
              absl::Time now);

  size_t size() const { return size_; }
  size_t capacity() const { return entries_.size(); }

 private:
  using Digest = std::array<uint8_t, 32>;

  // Tokens are told apart by their SHA-256, never by a shorter hash that two tokens could share;
  // its first 8 bytes index the entry.
  struct Entry {
    Digest digest{};
    uint64_t generation = 0;
    absl::Time expiry;
    std::shared_ptr<const Claims> claims;  // nullptr: a free slot
    bool referenced = false;
  };

  static Digest digestOf(std::string_view token);
  static uint64_t indexKey(const Digest& digest);
  void release(uint32_t slot);
  uint32_t victim(uint64_t generation, absl::Time now);

  std::vector<Entry> entries_;
  absl::flat_hash_map<uint64_t, uint32_t> index_;  // indexKey -> slot in entries_
  absl::Duration max_ttl_;
  size_t size_ = 0;
  uint32_t hand_ = 0;
};

}  // namespace sluice::jwt_authn
