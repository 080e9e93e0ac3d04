#include "proxy/server/buffer_memory.h"

#include <event2/buffer.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::server::buffer_memory {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

TEST(BufferMemory, FreedBlockIsReusedForTheSameClass) {
  void* a = allocate(1000);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(aligned16(a));
  std::memset(a, 'x', 1000);
  release(a);
  ThreadStats before = threadStats();
  void* b = allocate(1024);  // same 1 KiB class
  EXPECT_EQ(b, a);
  ThreadStats after = threadStats();
  EXPECT_EQ(after.reused, before.reused + 1);
  EXPECT_EQ(after.heap_allocs, before.heap_allocs);
  release(b);
}

TEST(BufferMemory, DifferentClassesDoNotShareBlocks) {
  void* small = allocate(100);  // 128 B class
  release(small);
  void* big = allocate(5000);  // 8 KiB class
  EXPECT_NE(big, small);
  std::memset(big, 'y', 5000);  // the whole size is usable
  release(big);
}

TEST(BufferMemory, SmallestClassAndZero) {
  void* z = allocate(0);
  void* one = allocate(1);
  ASSERT_NE(z, nullptr);
  ASSERT_NE(one, nullptr);
  EXPECT_NE(z, one);
  release(z);
  release(one);
  release(nullptr);  // like free(nullptr)
}

TEST(BufferMemory, LargeAllocationsBypassTheLists) {
  ThreadStats before = threadStats();
  size_t n = (64 << 10) + 1;
  auto* p = static_cast<char*>(allocate(n));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(aligned16(p));
  std::memset(p, 'z', n);
  release(p);
  EXPECT_EQ(threadStats().cached_bytes, before.cached_bytes);
}

TEST(BufferMemory, ReallocateKeepsContents) {
  auto* p = static_cast<char*>(allocate(50));
  std::memcpy(p, "0123456789", 10);
  p = static_cast<char*>(reallocate(p, 60));  // fits the 64 B class: same block
  EXPECT_EQ(std::string(p, 10), "0123456789");
  auto* q = static_cast<char*>(reallocate(p, 3000));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(std::string(q, 10), "0123456789");
  auto* r = static_cast<char*>(reallocate(q, 200000));  // to the C heap
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(std::string(r, 10), "0123456789");
  auto* s = static_cast<char*>(reallocate(r, 10));  // and back to a class
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(std::string(s, 10), "0123456789");
  release(s);
  auto* t = static_cast<char*>(reallocate(nullptr, 10));  // realloc(nullptr) is malloc
  ASSERT_NE(t, nullptr);
  release(t);
}

TEST(BufferMemory, CacheIsBounded) {
  std::vector<void*> blocks;
  for (size_t i = 0; i < 2 * kMaxCachedBytes / (64 << 10); ++i)
    blocks.push_back(allocate(64 << 10));
  for (void* b : blocks) release(b);
  EXPECT_LE(threadStats().cached_bytes, kMaxCachedBytes);
  EXPECT_GT(threadStats().cached_bytes, kMaxCachedBytes / 2);
}

TEST(BufferMemory, BlocksFreedOnAnotherThreadJoinThatThreadsLists) {
  void* p = allocate(2000);
  uint64_t other_cached = 0;
  std::thread t([&] {
    release(p);
    other_cached = threadStats().cached_bytes;
    void* again = allocate(2000);
    EXPECT_EQ(again, p);  // reused on the freeing thread
    release(again);
  });
  t.join();
  EXPECT_EQ(other_cached, 2048u);
}

// Through libevent: after install(), steady-state evbuffer use (fill, drain, refill) is served
// from the free lists without calling malloc.
TEST(BufferMemory, EvbufferSteadyStateDoesNotReachTheHeap) {
  install();
  evbuffer* in = evbuffer_new();
  evbuffer* out = evbuffer_new();
  std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string body(16 << 10, 'b');
  auto cycle = [&] {
    evbuffer_add(in, request.data(), request.size());
    evbuffer_add(out, "HTTP/1.1 200 OK\r\n", 17);
    evbuffer_add(out, body.data(), body.size());
    evbuffer_remove_buffer(in, out, request.size());
    evbuffer_drain(out, evbuffer_get_length(out));
  };
  for (int i = 0; i < 10; ++i) cycle();
  ThreadStats before = threadStats();
  for (int i = 0; i < 1000; ++i) cycle();
  ThreadStats after = threadStats();
  EXPECT_EQ(after.heap_allocs, before.heap_allocs);
  EXPECT_GE(after.reused, before.reused + 2000);
  evbuffer_free(in);
  evbuffer_free(out);
}

}  // namespace
}  // namespace sluice::server::buffer_memory
