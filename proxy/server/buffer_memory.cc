#include "proxy/server/buffer_memory.h"

#include <event2/event.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace sluice::server::buffer_memory {
namespace {

constexpr int kMinShift = 6;   // 64 B
constexpr int kMaxShift = 16;  // 64 KiB
constexpr int kClasses = kMaxShift - kMinShift + 1;
constexpr uint32_t kLarge = 0xffffffff;
constexpr uint32_t kMagic = 0x5157c3e1;

// In front of every block; 16 bytes, so the payload keeps malloc's 16-byte alignment.
struct alignas(16) Header {
  uint32_t cls;    // size class, or kLarge
  uint32_t magic;  // catches a pointer that did not come from allocate()
  uint64_t size;   // kLarge: the payload size
};
static_assert(sizeof(Header) == 16);

struct FreeBlock {
  FreeBlock* next;
};

struct Lists {
  FreeBlock* head[kClasses] = {};
  ThreadStats stats;
  ~Lists();
};

thread_local Lists lists;
// Set once the thread's lists are gone (thread exit): later frees go to the C heap.
thread_local bool lists_gone = false;

Lists::~Lists() {
  lists_gone = true;
  for (FreeBlock*& h : head) {
    while (h != nullptr) {
      FreeBlock* next = h->next;
      std::free(reinterpret_cast<Header*>(h) - 1);
      h = next;
    }
  }
  stats.cached_bytes = 0;
}

size_t classPayload(uint32_t cls) { return size_t{1} << (cls + kMinShift); }

// The smallest class whose payload holds `size`, or kLarge.
uint32_t classOf(size_t size) {
  if (size <= (size_t{1} << kMinShift)) return 0;
  if (size > (size_t{1} << kMaxShift)) return kLarge;
  int shift = 64 - __builtin_clzll(static_cast<unsigned long long>(size - 1));
  return static_cast<uint32_t>(shift - kMinShift);
}

Header* headerOf(void* p) {
  Header* h = static_cast<Header*>(p) - 1;
  if (h->magic != kMagic) {
    std::fprintf(stderr, "sluice: buffer_memory: freeing memory it did not allocate\n");
    std::abort();
  }
  return h;
}

void* heap(uint32_t cls, size_t payload) {
  auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + payload));
  if (h == nullptr) return nullptr;
  h->cls = cls;
  h->magic = kMagic;
  h->size = payload;
  return h + 1;
}

}  // namespace

void* allocate(size_t size) {
  uint32_t cls = classOf(size);
  if (cls == kLarge) return heap(kLarge, size);
  if (!lists_gone) {
    FreeBlock* b = lists.head[cls];
    if (b != nullptr) {
      lists.head[cls] = b->next;
      lists.stats.cached_bytes -= classPayload(cls);
      ++lists.stats.reused;
      return b;
    }
    ++lists.stats.heap_allocs;
  }
  return heap(cls, classPayload(cls));
}

void release(void* p) {
  if (p == nullptr) return;
  Header* h = headerOf(p);
  if (h->cls == kLarge || lists_gone ||
      lists.stats.cached_bytes + classPayload(h->cls) > kMaxCachedBytes) {
    std::free(h);
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = lists.head[h->cls];
  lists.head[h->cls] = b;
  lists.stats.cached_bytes += classPayload(h->cls);
}

void* reallocate(void* p, size_t size) {
  if (p == nullptr) return allocate(size);
  Header* h = headerOf(p);
  size_t capacity = h->cls == kLarge ? h->size : classPayload(h->cls);
  if (size <= capacity && (h->cls != kLarge || size > (size_t{1} << kMaxShift))) return p;
  void* q = allocate(size);
  if (q == nullptr) return nullptr;  // p stays valid, as with realloc
  std::memcpy(q, p, std::min(capacity, size));
  release(p);
  return q;
}

ThreadStats threadStats() {
  if (lists_gone) return {};
  return lists.stats;
}

void install() {
  static const bool installed = [] {
    event_set_mem_functions(allocate, reallocate, release);
    return true;
  }();
  (void)installed;
}

}  // namespace sluice::server::buffer_memory
