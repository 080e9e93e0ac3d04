#pragma once

// Per-worker metric cells and their Prometheus exposition.
//
// Metrics are declared on the main thread (at start-up, or when a config generation names a new
// listener or cluster) and get a small integer id. Each worker (and the main thread, as the last
// "worker") writes only its own cells: a relaxed atomic add, no lock, no allocation. A scrape
// sums every thread's cells and renders Prometheus text with prometheus-cpp's serializer.
//
// Declaring the same (name, labels) again returns the same id, so a generation that keeps a
// cluster keeps its counts. Ids are never freed (names are bounded by the config).
//
// Cells live in fixed-size blocks that are allocated for every thread when a declaration needs
// them and never move; a block is published through an atomic pointer, so declaring on the main
// thread while workers write and a scrape reads is race-free.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::stats {

using Labels = std::vector<std::pair<std::string, std::string>>;

// An id is invalid when its declaration was rejected (see Store); writing with an invalid id is a
// no-op, so a rejected metric loses its counts but never crashes a worker.
struct CounterId {
  uint32_t cell = UINT32_MAX;
  bool valid() const { return cell != UINT32_MAX; }
};
struct GaugeId {
  uint32_t cell = UINT32_MAX;
  bool valid() const { return cell != UINT32_MAX; }
};
struct HistogramId {
  // `buckets` cells in one block, then the sum (a double's bits). The count is the sum of the
  // buckets, so a scrape always sees _count equal to the +Inf bucket.
  uint32_t first_cell = UINT32_MAX;
  uint32_t buckets = 0;            // bounds.size() + 1 (the last is +Inf)
  const double* bounds = nullptr;  // owned by the Store, ascending
  bool valid() const { return first_cell != UINT32_MAX; }
};

// One thread's cells. Only its owning thread writes; scrapes read concurrently. Every write is a
// relaxed atomic on the thread's own cache lines: no lock, no allocation.
class Cells {
 public:
  virtual ~Cells() = default;
  virtual void add(CounterId id, uint64_t n = 1) = 0;
  // Gauges are summed over threads: a worker adds and subtracts its own share.
  virtual void gaugeAdd(GaugeId id, int64_t delta) = 0;
  // Sets this thread's share only; for gauges that a single thread owns (e.g. the main thread).
  virtual void gaugeSet(GaugeId id, int64_t value) = 0;
  // Counts `value` in the first bucket whose bound is >= value (Prometheus `le` is inclusive)
  // and adds it to the sum. NaN is dropped: it would turn the sum into NaN for good.
  virtual void observe(HistogramId id, double value) = 0;
};

class Store {
 public:
  // `threads` cell sets (at least 1): workers 0..threads-2 and the main thread last, say.
  static std::unique_ptr<Store> create(int threads);
  virtual ~Store() = default;

  // Main thread only (declarations take a lock shared with scrapes, never with workers).
  //
  // A declaration returns an invalid id, and the metric is not exported, when: the name or a
  // label name is not a valid Prometheus name, a label name repeats (or is `le` on a histogram),
  // the name was declared before with another type (or a histogram with other bounds), the name
  // collides with a histogram's _bucket/_sum/_count series, a histogram has more than 510 bounds,
  // or the cell space (2M cells per thread) is full. Callers declare their names in one place,
  // so a test of that place catches all of these. Labels are exported in the order of the first
  // declaration; the same labels in another order are the same series. The help text of the
  // first declaration wins.
  virtual CounterId counter(std::string_view name, std::string_view help, const Labels& labels) = 0;
  virtual GaugeId gauge(std::string_view name, std::string_view help, const Labels& labels) = 0;
  // Same bounds for every label set of one name: finite, strictly ascending (+Inf is implicit).
  virtual HistogramId histogram(std::string_view name, std::string_view help, const Labels& labels,
                                const std::vector<double>& bounds) = 0;
  // Thread `index`'s cells, 0 <= index < threads; the pointer is stable for the Store's life.
  virtual Cells* cells(int index) = 0;

  // Sum of a counter or gauge over every thread (for tests and /clusters); 0 for an invalid id.
  // Any thread may call these.
  virtual int64_t value(CounterId id) const = 0;
  virtual int64_t value(GaugeId id) const = 0;
  // Prometheus text exposition format 0.0.4 of every declared metric, summed over threads,
  // families sorted by name, series in declaration order.
  virtual std::string prometheusText() const = 0;
};

// Latency buckets in seconds, 0.5 ms to 60 s.
const std::vector<double>& durationBuckets();

}  // namespace sluice::stats
