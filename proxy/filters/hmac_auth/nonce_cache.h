#pragma once

// The nonces of recently accepted signed requests, shared by every worker thread. Inserts take no
// lock and never allocate: a fixed-capacity open-addressing table whose slots are claimed with
// compare-and-swap, linear probing over at most `probe_limit` slots from a key's home slot.
//
// A slot is a 64-bit word and a 32-bit expiry (seconds, the caller's clock):
//   bit 63       pending: a thread has claimed the slot and is writing it
//   bits 48..62  tag, advanced by every claim
//   bits 0..47   the key's low 48 bits (its high 32 pick the home slot)
// A word of 0 is a slot never used. Expiry and key cannot be updated together, so a claim marks
// the word pending first and publishes the expiry before clearing the mark; the tag makes a claim
// based on a stale view of a slot fail, so that an entry renewed meanwhile is never overwritten.
//
// An insert first searches the key's probe window (up to the first never-used slot, which no
// entry lies beyond). After claiming a slot it searches again: two threads inserting the same
// key at the same moment can each see a different slot as the first reusable one only when an
// entry expires or is released in between, and then whichever finds the other's claim backs off
// (releases its slot) with kReplay.
// Of concurrent inserts of one key at most one is kFresh, and exactly one when no entry in the
// window expires meanwhile; a rare false kReplay makes a client retry, never lets a replay in.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice::hmac_auth {

class NonceCache {
 public:
  enum Result {
    kFresh,   // not seen: remembered until its expiry
    kReplay,  // seen and not expired (or being inserted by another thread right now)
    kFull,    // no reusable slot in the probe window: freshness cannot be proven, refuse
  };

  // Each accepted request holds a slot for about the skew window after its Date, so give at least
  // twice the slots of the requests accepted in two skew windows (1000 requests/s with 5 minutes
  // of skew: 1.2 million slots, 14 MB). At most 2^31 slots; `probe_limit` is clamped to them.
  static absl::StatusOr<std::unique_ptr<NonceCache>> create(size_t capacity, size_t probe_limit);

  // The key for a nonce of one key id: a SHA-256 keyed with a per-process random seed, so that a
  // client cannot choose nonces that pile up on one probe window.
  uint64_t keyFor(std::string_view key_id, std::string_view nonce) const;

  // Entries are live while now_s < expires_s; an expiry not after now_s counts as now_s + 1.
  Result insert(uint64_t key, uint32_t now_s, uint32_t expires_s);

  size_t capacity() const { return capacity_; }

 private:
  NonceCache(size_t capacity, size_t probe_limit);

  struct Snapshot {
    uint64_t word;
    uint32_t expires;
  };
  Snapshot read(size_t slot) const;
  size_t home(uint64_t key) const;
  // Whether a slot of the window other than `mine` holds a live or pending claim of `bits`.
  bool claimedElsewhere(uint64_t bits, size_t start, size_t mine, uint32_t now_s) const;

  const size_t capacity_, probe_limit_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  std::unique_ptr<std::atomic<uint32_t>[]> expires_;
  uint8_t seed_[32];
};

}  // namespace sluice::hmac_auth
