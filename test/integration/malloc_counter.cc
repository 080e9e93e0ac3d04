// LD_PRELOAD library for tests that assert a code path never calls the C heap: counts every call
// of malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign (operator new ends in
// malloc) in the process it is loaded into, and on SIGUSR2 writes the count so far, in decimal
// followed by a newline, to the file named by $MALLOC_COUNTER_FILE.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
}

namespace {

std::atomic<uint64_t> calls{0};
const char* out_path = nullptr;

void count() { calls.fetch_add(1, std::memory_order_relaxed); }

// Async-signal-safe: no allocation, no stdio.
void onSignal(int) {
  if (out_path == nullptr) return;
  char buf[24];
  char* end = buf + sizeof(buf);
  char* p = end;
  *--p = '\n';
  uint64_t n = calls.load(std::memory_order_relaxed);
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  // Written whole under a temporary name, then renamed: a reader never sees half a number.
  char tmp[4096];
  size_t len = 0;
  for (const char* s = out_path; *s != '\0' && len + 5 < sizeof(tmp); ++s) tmp[len++] = *s;
  tmp[len++] = '.';
  tmp[len++] = 't';
  tmp[len++] = 'm';
  tmp[len++] = 'p';
  tmp[len] = '\0';
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t ignored = write(fd, p, static_cast<size_t>(end - p));
  (void)ignored;
  close(fd);
  rename(tmp, out_path);
}

__attribute__((constructor)) void install() {
  out_path = getenv("MALLOC_COUNTER_FILE");
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, nullptr);
}

}  // namespace

extern "C" {

void* malloc(size_t size) {
  count();
  return __libc_malloc(size);
}

void* calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}

void* realloc(void* p, size_t size) {
  count();
  return __libc_realloc(p, size);
}

void* memalign(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  count();
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

}  // extern "C"
