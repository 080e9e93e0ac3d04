#include "proxy/server/overload_guard.h"

#include <malloc.h>

#include <utility>

#include "common/log/log.h"

namespace sluice::server {

OverloadGuard::OverloadGuard(event_base* base, uint64_t max_bytes, stats::Store* store,
                             stats::Cells* cells, std::function<uint64_t()> measure,
                             std::function<void(bool)> on_change)
    : max_bytes_(max_bytes),
      resume_bytes_(max_bytes / 10 * 9),
      cells_(cells),
      measure_(std::move(measure)),
      on_change_(std::move(on_change)) {
  active_gauge_ = store->gauge("sluice_overload_active",
                               "1 while the heap is over --overload-max-heap-mb: new requests "
                               "are shed with 503 and connections are not accepted.",
                               {});
  heap_gauge_ = store->gauge("sluice_overload_heap_bytes",
                             "Heap in use at the overload guard's last sample.", {});
  activations_ = store->counter("sluice_overload_activations_total",
                                "Times the overload guard turned on.", {});
  state_.rq_shed = store->counter("sluice_overload_rq_shed_total",
                                  "New requests answered 503 while overloaded.", {});
  state_.cx_refused =
      store->counter("sluice_overload_cx_refused_total",
                     "Connections closed at accept while overloaded (the moment before the "
                     "workers stop accepting).",
                     {});
  timer_ = event_new(base, -1, EV_PERSIST, &OverloadGuard::onTimer, this);
}

OverloadGuard::~OverloadGuard() {
  if (timer_ != nullptr) event_free(timer_);
}

void OverloadGuard::start() {
  sample();
  timeval tv{0, kIntervalMs * 1000};
  event_add(timer_, &tv);
}

void OverloadGuard::onTimer(evutil_socket_t, short, void* arg) {
  static_cast<OverloadGuard*>(arg)->sample();
}

void OverloadGuard::sample() {
  const uint64_t used = measure_();
  cells_->gaugeSet(heap_gauge_, static_cast<int64_t>(used));
  const bool was = active();
  bool now = was;
  if (!was && used > max_bytes_) now = true;
  if (was && used < resume_bytes_) now = false;
  if (now == was) return;
  state_.active.store(now, std::memory_order_relaxed);
  cells_->gaugeSet(active_gauge_, now ? 1 : 0);
  if (now) {
    cells_->add(activations_);
    log::warn("overloaded: heap %d MiB over %d MiB; shedding new requests, not accepting",
              used >> 20, max_bytes_ >> 20);
  } else {
    log::info("overload over: heap %d MiB below %d MiB; accepting again", used >> 20,
              resume_bytes_ >> 20);
  }
  on_change_(now);
}

uint64_t OverloadGuard::heapInUse() {
  // glibc's mallinfo2 sums every arena (the workers' too), not only the main one.
  const struct mallinfo2 m = mallinfo2();
  return static_cast<uint64_t>(m.uordblks) + static_cast<uint64_t>(m.hblkhd);
}

}  // namespace sluice::server
