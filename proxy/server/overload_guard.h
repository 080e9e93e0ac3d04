#pragma once

// The overload guard: past a heap threshold the process stops taking new work so that what it
// already took can finish. The main thread samples the heap in use every kInterval; above
// max_bytes it sets the workers' http::Overload flag (new requests are answered 503 with
// Connection: close, connections are no longer accepted) and calls `on_change(true)`; once the
// heap is below 90% of max_bytes it clears the flag and calls `on_change(false)`. Requests in
// flight are left alone. Workers only read the atomic flag.
#include <event2/event.h>

#include <cstdint>
#include <functional>

#include "proxy/http/admission.h"
#include "proxy/stats/store.h"

namespace sluice::server {

class OverloadGuard {
 public:
  static constexpr int kIntervalMs = 200;

  // `measure` returns the bytes in use (heapInUse() in the proxy); `cells` are the main
  // thread's. The guard declares its metrics in `store`.
  OverloadGuard(event_base* base, uint64_t max_bytes, stats::Store* store, stats::Cells* cells,
                std::function<uint64_t()> measure, std::function<void(bool)> on_change);
  ~OverloadGuard();
  OverloadGuard(const OverloadGuard&) = delete;
  OverloadGuard& operator=(const OverloadGuard&) = delete;

  // Samples now, then every kIntervalMs.
  void start();
  // One sample: measures and switches the flag if a threshold was crossed.
  void sample();
  const http::Overload* state() const { return &state_; }
  bool active() const { return state_.active.load(std::memory_order_relaxed); }

  // Bytes the C heap has handed out and not taken back, over every arena (glibc mallinfo2:
  // in-use chunks plus mmapped blocks). Takes each arena's lock for a moment.
  static uint64_t heapInUse();

 private:
  static void onTimer(evutil_socket_t fd, short what, void* arg);

  const uint64_t max_bytes_;
  const uint64_t resume_bytes_;
  stats::Cells* cells_;
  std::function<uint64_t()> measure_;
  std::function<void(bool)> on_change_;
  http::Overload state_;
  stats::GaugeId active_gauge_;
  stats::GaugeId heap_gauge_;
  stats::CounterId activations_;
  event* timer_ = nullptr;
};

}  // namespace sluice::server
