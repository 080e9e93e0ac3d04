#pragma once

// Memory for libevent (evbuffer chains, events) from per-thread free lists, so that the request
// path does not call the C heap in steady state: every evbuffer chain a request fills (the read
// request, the serialized upstream head, the response, the response head) is a block that the
// previous request on the same thread gave back. Like HAProxy's pools and nginx's, minus the
// configuration: blocks come in power-of-two payload sizes from 64 B to 64 KiB, each thread
// keeps at most kMaxCachedBytes of free blocks, and a block freed on another thread simply joins
// that thread's list. Larger requests go straight to malloc.
#include <cstddef>
#include <cstdint>

namespace sluice::server::buffer_memory {

// Per thread: free blocks beyond this many bytes go back to the C heap.
constexpr size_t kMaxCachedBytes = 4 << 20;

// Makes libevent allocate through these functions. Call before any other libevent call (libevent
// must not free memory it got from malloc through them). Idempotent.
void install();

// The functions install() hands to libevent, for tests.
void* allocate(size_t size);
void* reallocate(void* p, size_t size);
void release(void* p);

// What the calling thread's lists did so far (tests, and the docs' allocation counts).
struct ThreadStats {
  uint64_t reused = 0;        // allocations served from a free list
  uint64_t heap_allocs = 0;   // allocations that called malloc
  uint64_t cached_bytes = 0;  // payload bytes on the free lists now
};
ThreadStats threadStats();

}  // namespace sluice::server::buffer_memory
