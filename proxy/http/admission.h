#pragma once

// Admission of new downstream connections by a listener's limits that hold across workers and
// config generations (concurrent connections per client address, new connections per second),
// consulted at accept only; and the process-wide overload verdict that refuses connections and
// sheds new requests.
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "proxy/stats/store.h"

namespace sluice::http {

// A client address as 16 bytes: IPv6 as is, IPv4 as its IPv4-mapped IPv6 address, so that a
// dual-stack listener counts one client once whichever family it arrives with.
using AddressKey = std::array<uint8_t, 16>;

// The key of an accepted peer; false for a family other than IPv4 and IPv6.
bool addressKey(const sockaddr_storage& peer, AddressKey* key);

// Open connections per client address (max_connections_per_ip), exact per address.
//
// Sharded: an accept takes the lock of one of kShards shards for a hash-map update, so two
// workers contend only when two addresses of one shard connect at the same instant. A lock-free
// table cannot stay exact for an address and give back the slots of departed clients at once
// (two workers inserting one address into two free slots would each count half), and the memory
// must follow the clients that are connected, not every client ever seen.
class AddressCounts {
 public:
  static constexpr size_t kShards = 64;

  // Counts one more connection from `key` unless it has `limit` already (then false).
  bool acquire(const AddressKey& key, uint32_t limit);
  // Ends a connection that acquire() counted.
  void release(const AddressKey& key);
  // Connections counted for `key` now (tests and diagnostics).
  uint32_t count(const AddressKey& key);
  // Addresses with at least one connection.
  size_t addresses();

 private:
  struct alignas(64) Shard {
    std::mutex mu;
    absl::flat_hash_map<AddressKey, uint32_t> counts;  // guarded by mu; no zero entries
  };
  Shard& shardOf(const AddressKey& key);

  std::array<Shard, kShards> shards_;
};

// New connections per second (max_connection_rate), as a generic cell rate algorithm over one
// atomic: a burst of up to one second's worth, then one every 1/rate seconds. Lock-free; the
// rate is passed per call so that a config change applies at once.
class ConnectionRate {
 public:
  // Whether a connection arriving at `now_ns` (a monotonic clock) fits `per_second` (> 0).
  bool admit(uint32_t per_second, int64_t now_ns);

 private:
  // The theoretical arrival time of the next connection, in ns.
  std::atomic<int64_t> tat_{0};
};

// The process-wide overload guard's verdict (proxy/server/overload_guard.h): written by the main
// thread, read by every worker without a lock.
struct Overload {
  std::atomic<bool> active{false};
  stats::CounterId rq_shed;     // new requests answered 503
  stats::CounterId cx_refused;  // connections closed at accept
};

}  // namespace sluice::http
