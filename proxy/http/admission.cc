#include "proxy/http/admission.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "absl/hash/hash.h"

namespace sluice::http {

bool addressKey(const sockaddr_storage& peer, AddressKey* key) {
  if (peer.ss_family == AF_INET6) {
    std::memcpy(key->data(), &reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr, 16);
    return true;
  }
  if (peer.ss_family == AF_INET) {
    key->fill(0);
    (*key)[10] = 0xff;
    (*key)[11] = 0xff;
    std::memcpy(key->data() + 12, &reinterpret_cast<const sockaddr_in*>(&peer)->sin_addr, 4);
    return true;
  }
  return false;
}

AddressCounts::Shard& AddressCounts::shardOf(const AddressKey& key) {
  // The high bits: the map inside the shard indexes by the low ones.
  return shards_[(absl::Hash<AddressKey>()(key) >> 40) % kShards];
}

bool AddressCounts::acquire(const AddressKey& key, uint32_t limit) {
  Shard& s = shardOf(key);
  std::lock_guard<std::mutex> lock(s.mu);
  uint32_t& n = s.counts[key];
  if (n >= limit) {
    if (n == 0) s.counts.erase(key);
    return false;
  }
  ++n;
  return true;
}

void AddressCounts::release(const AddressKey& key) {
  Shard& s = shardOf(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.counts.find(key);
  if (it == s.counts.end()) return;
  if (--it->second == 0) s.counts.erase(it);
}

uint32_t AddressCounts::count(const AddressKey& key) {
  Shard& s = shardOf(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.counts.find(key);
  return it == s.counts.end() ? 0 : it->second;
}

size_t AddressCounts::addresses() {
  size_t n = 0;
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.counts.size();
  }
  return n;
}

bool ConnectionRate::admit(uint32_t per_second, int64_t now_ns) {
  constexpr int64_t kSecond = 1'000'000'000;
  const int64_t interval = std::max<int64_t>(1, kSecond / per_second);
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = std::max(tat, now_ns) + interval;
    // More than one second's worth ahead of now: the burst is used up.
    if (next - now_ns > kSecond) return false;
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
  }
}

}  // namespace sluice::http
