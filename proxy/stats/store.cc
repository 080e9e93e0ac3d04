#include "proxy/stats/store.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>

#include "prometheus/check_names.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"
#include "prometheus/text_serializer.h"

namespace sluice::stats {
namespace {

// 512 cells are 4 KiB per block and thread; 4096 blocks bound a thread to 2M cells (16 MiB), far
// above what a config names, and keep UINT32_MAX (the invalid id) outside every block.
constexpr uint32_t kBlockCells = 512;
constexpr uint32_t kMaxBlocks = 4096;
constexpr uint32_t kInvalid = UINT32_MAX;

// Cache-line aligned so two threads' blocks never share a line.
struct alignas(64) Block {
  std::atomic<uint64_t> cells[kBlockCells] = {};
};

class ThreadCells final : public Cells {
 public:
  ~ThreadCells() override {
    for (auto& block : blocks_) delete block.load(std::memory_order_relaxed);
  }

  void add(CounterId id, uint64_t n) override {
    if (std::atomic<uint64_t>* c = cell(id.cell)) c->fetch_add(n, std::memory_order_relaxed);
  }

  // Gauges are stored as two's complement so that the unsigned sum over threads wraps into the
  // right signed total.
  void gaugeAdd(GaugeId id, int64_t delta) override {
    if (std::atomic<uint64_t>* c = cell(id.cell)) {
      c->fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
    }
  }

  void gaugeSet(GaugeId id, int64_t value) override {
    if (std::atomic<uint64_t>* c = cell(id.cell)) {
      c->store(static_cast<uint64_t>(value), std::memory_order_relaxed);
    }
  }

  void observe(HistogramId id, double value) override {
    std::atomic<uint64_t>* first = cell(id.first_cell);
    if (first == nullptr || std::isnan(value) || id.buckets == 0) return;
    // First bound >= value: `le` is inclusive. Past every bound is the +Inf bucket.
    const double* end = id.bounds + (id.buckets - 1);
    const size_t bucket = std::lower_bound(id.bounds, end, value) - id.bounds;
    first[bucket].fetch_add(1, std::memory_order_relaxed);
    // The sum is a double kept as its bits. Only this thread writes it, so the exchange succeeds
    // the first time; it stays correct if a caller ever shares a Cells by mistake.
    std::atomic<uint64_t>& sum = first[id.buckets];
    uint64_t old = sum.load(std::memory_order_relaxed);
    while (!sum.compare_exchange_weak(old,
                                      std::bit_cast<uint64_t>(std::bit_cast<double>(old) + value),
                                      std::memory_order_relaxed)) {
    }
  }

  // Null for an invalid id or a block not published yet. The acquire pairs with publish()'s
  // release, so a block's zeroed cells are visible before its pointer is.
  std::atomic<uint64_t>* cell(uint32_t index) const {
    const uint32_t block = index / kBlockCells;
    if (block >= kMaxBlocks) return nullptr;
    Block* b = blocks_[block].load(std::memory_order_acquire);
    return b == nullptr ? nullptr : &b->cells[index % kBlockCells];
  }

  uint64_t load(uint32_t index) const {
    std::atomic<uint64_t>* c = cell(index);
    return c == nullptr ? 0 : c->load(std::memory_order_relaxed);
  }

  // Main thread, under the Store's lock: slot `block` is empty until now.
  void publish(uint32_t block) { blocks_[block].store(new Block, std::memory_order_release); }

 private:
  std::array<std::atomic<Block*>, kMaxBlocks> blocks_ = {};
};

enum class Kind { kCounter, kGauge, kHistogram };

// Every label set, stored once, with the series that have it. A config declares a dozen series
// per cluster and two per endpoint, all with the same labels: kept as Labels in every series and
// again as a map key, they took more memory than the rest of the cluster (about 5 KB per cluster
// of 3 endpoints). Standard containers: libstats is linked into tests that use no abseil.
class LabelSets {
 public:
  // The id of `labels` (in this order); equal sets get equal ids.
  uint32_t intern(const Labels& labels) {
    auto [it, inserted] = index_.try_emplace(encode(labels));
    if (inserted) {
      it->second.id = static_cast<uint32_t>(by_id_.size());
      by_id_.push_back(&*it);
    }
    return it->second.id;
  }

  // The first cell of family `family`'s series whose sorted labels are set `id`, or kInvalid.
  uint32_t find(uint32_t id, uint32_t family) const {
    for (const auto& [f, cell] : by_id_[id]->second.series) {
      if (f == family) return cell;
    }
    return kInvalid;
  }

  void add(uint32_t id, uint32_t family, uint32_t first_cell) {
    by_id_[id]->second.series.emplace_back(family, first_cell);
  }

  Labels get(uint32_t id) const {
    Labels out;
    std::string_view s = by_id_[id]->first;
    while (!s.empty()) {
      std::string name = take(&s);
      out.emplace_back(std::move(name), take(&s));
    }
    return out;
  }

 private:
  // Each name and value as its length (LEB128) and its bytes: values may hold any byte.
  static std::string encode(const Labels& labels) {
    std::string out;
    for (const auto& [name, value] : labels) {
      for (const std::string* s : {&name, &value}) {
        size_t n = s->size();
        do {
          out.push_back(static_cast<char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0)));
          n >>= 7;
        } while (n != 0);
        out += *s;
      }
    }
    return out;
  }

  static std::string take(std::string_view* s) {
    size_t n = 0;
    for (int shift = 0; !s->empty(); shift += 7) {
      const auto byte = static_cast<unsigned char>(s->front());
      s->remove_prefix(1);
      n |= size_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) break;
    }
    std::string out(s->substr(0, n));
    s->remove_prefix(std::min(n, s->size()));
    return out;
  }

  struct Set {
    uint32_t id = 0;
    std::vector<std::pair<uint32_t, uint32_t>> series;  // (family, first cell), a few per set
  };
  std::unordered_map<std::string, Set> index_;  // nodes never move: by_id_ points at them
  std::vector<std::pair<const std::string, Set>*> by_id_;
};

struct Series {
  uint32_t labels;  // label set as first declared: the exported order
  uint32_t first_cell;
};

struct Family {
  uint32_t id = 0;  // for LabelSets
  Kind kind = Kind::kCounter;
  std::string help;
  std::vector<double> bounds;  // histograms; HistogramId::bounds points into it
  std::vector<Series> series;  // declaration order
};

constexpr std::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

bool validLabels(const Labels& labels, Kind kind) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& name = labels[i].first;
    if (!prometheus::CheckLabelName(name)) return false;
    if (kind == Kind::kHistogram && name == "le") return false;
    for (size_t j = 0; j < i; ++j) {
      if (labels[j].first == name) return false;
    }
  }
  return true;
}

bool validBounds(const std::vector<double>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) return false;
    if (i > 0 && !(bounds[i - 1] < bounds[i])) return false;
  }
  return true;
}

// The text format has no escaping of its own for HELP; prometheus-cpp writes it verbatim.
std::string escapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class StoreImpl final : public Store {
 public:
  explicit StoreImpl(int threads) {
    for (int i = 0; i < threads; ++i) threads_.push_back(std::make_unique<ThreadCells>());
  }

  CounterId counter(std::string_view name, std::string_view help, const Labels& labels) override {
    std::lock_guard<std::mutex> lock(mu_);
    return CounterId{declare(name, help, labels, Kind::kCounter, {})};
  }

  GaugeId gauge(std::string_view name, std::string_view help, const Labels& labels) override {
    std::lock_guard<std::mutex> lock(mu_);
    return GaugeId{declare(name, help, labels, Kind::kGauge, {})};
  }

  HistogramId histogram(std::string_view name, std::string_view help, const Labels& labels,
                        const std::vector<double>& bounds) override {
    std::lock_guard<std::mutex> lock(mu_);
    const uint32_t first = declare(name, help, labels, Kind::kHistogram, bounds);
    if (first == kInvalid) return HistogramId{};
    // The family's own copy: a map node never moves and its bounds never change.
    const double* owned = families_.find(name)->second.bounds.data();
    return HistogramId{first, static_cast<uint32_t>(bounds.size() + 1), owned};
  }

  Cells* cells(int index) override {
    if (index < 0 || index >= static_cast<int>(threads_.size())) return nullptr;
    return threads_[index].get();
  }

  int64_t value(CounterId id) const override { return static_cast<int64_t>(sum(id.cell)); }
  int64_t value(GaugeId id) const override { return static_cast<int64_t>(sum(id.cell)); }

  std::string prometheusText() const override {
    std::ostringstream text;
    const prometheus::TextSerializer serializer;
    // Under the lock every declared cell's block is published, and no series is half-added.
    std::lock_guard<std::mutex> lock(mu_);
    // One family at a time: prometheus-cpp's objects for every series at once raised the peak a
    // scrape leaves in RSS (by 1.7 MB at 1,000 clusters of 3 endpoints).
    for (const auto& [name, family] : families_) serializer.Serialize(text, {render(name, family)});
    return text.str();
  }

 private:
  // Returns the first cell of (name, labels), allocating cells for a new series, or kInvalid.
  uint32_t declare(std::string_view name, std::string_view help, const Labels& labels, Kind kind,
                   const std::vector<double>& bounds) {
    if (!validLabels(labels, kind)) return kInvalid;
    // Series are found by their sorted labels and exported in their first declaration's order.
    const bool sorted = std::is_sorted(labels.begin(), labels.end());
    uint32_t key;
    if (sorted) {
      key = label_sets_.intern(labels);
    } else {
      Labels copy = labels;
      std::sort(copy.begin(), copy.end());
      key = label_sets_.intern(copy);
    }
    const uint32_t order = sorted ? key : label_sets_.intern(labels);

    auto it = families_.find(name);
    if (it != families_.end()) {
      Family& family = it->second;
      if (family.kind != kind || family.bounds != bounds) return kInvalid;
      if (uint32_t known = label_sets_.find(key, family.id); known != kInvalid) return known;
      const uint32_t first = allocate(cellsPerSeries(kind, bounds));
      if (first == kInvalid) return kInvalid;
      label_sets_.add(key, family.id, first);
      family.series.push_back(Series{order, first});
      return first;
    }

    std::string owned(name);
    if (!prometheus::CheckMetricName(owned) || collidesWithHistogram(owned, kind)) return kInvalid;
    if (kind == Kind::kHistogram && !validBounds(bounds)) return kInvalid;
    const uint32_t first = allocate(cellsPerSeries(kind, bounds));
    if (first == kInvalid) return kInvalid;
    const auto family_id = static_cast<uint32_t>(families_.size());
    Family& family = families_[std::move(owned)];
    family.id = family_id;
    family.kind = kind;
    family.help = std::string(help);
    family.bounds = bounds;
    label_sets_.add(key, family.id, first);
    family.series.push_back(Series{order, first});
    return first;
  }

  static uint32_t cellsPerSeries(Kind kind, const std::vector<double>& bounds) {
    // A histogram: its buckets (+Inf included), then the sum.
    return kind == Kind::kHistogram ? static_cast<uint32_t>(bounds.size()) + 2 : 1;
  }

  // A histogram `h` exports h_bucket, h_sum and h_count; no other family may take those names.
  bool collidesWithHistogram(const std::string& name, Kind kind) const {
    for (std::string_view suffix : kHistogramSuffixes) {
      if (kind == Kind::kHistogram && families_.count(name + std::string(suffix)) > 0) return true;
      if (name.size() > suffix.size() && name.ends_with(suffix)) {
        auto base = families_.find(std::string_view(name).substr(0, name.size() - suffix.size()));
        if (base != families_.end() && base->second.kind == Kind::kHistogram) return true;
      }
    }
    return false;
  }

  // `n` consecutive cells inside one block (so a histogram is one pointer away), publishing new
  // blocks for every thread before any id that uses them is returned.
  uint32_t allocate(uint32_t n) {
    if (n > kBlockCells) return kInvalid;
    uint32_t first = next_cell_;
    if (first % kBlockCells + n > kBlockCells) first += kBlockCells - first % kBlockCells;
    const uint64_t end = uint64_t{first} + n;
    if (end > uint64_t{kMaxBlocks} * kBlockCells) return kInvalid;
    for (; uint64_t{published_blocks_} * kBlockCells < end; ++published_blocks_) {
      for (auto& thread : threads_) thread->publish(published_blocks_);
    }
    next_cell_ = static_cast<uint32_t>(end);
    return first;
  }

  uint64_t sum(uint32_t cell) const {
    uint64_t total = 0;
    for (const auto& thread : threads_) total += thread->load(cell);
    return total;
  }

  prometheus::MetricFamily render(const std::string& name, const Family& family) const {
    prometheus::MetricFamily out;
    out.name = name;
    out.help = escapeHelp(family.help);
    out.metric.reserve(family.series.size());
    for (const Series& series : family.series) {
      prometheus::ClientMetric metric;
      for (auto& [label, value] : label_sets_.get(series.labels)) {
        metric.label.push_back({std::move(label), std::move(value)});
      }
      switch (family.kind) {
        case Kind::kCounter:
          out.type = prometheus::MetricType::Counter;
          metric.counter.value = static_cast<double>(sum(series.first_cell));
          break;
        case Kind::kGauge:
          out.type = prometheus::MetricType::Gauge;
          metric.gauge.value = static_cast<double>(static_cast<int64_t>(sum(series.first_cell)));
          break;
        case Kind::kHistogram:
          out.type = prometheus::MetricType::Histogram;
          metric.histogram = renderHistogram(series.first_cell, family.bounds);
          break;
      }
      out.metric.push_back(std::move(metric));
    }
    return out;
  }

  prometheus::ClientMetric::Histogram renderHistogram(uint32_t first,
                                                      const std::vector<double>& bounds) const {
    prometheus::ClientMetric::Histogram out;
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += sum(first + static_cast<uint32_t>(i));
      const double bound = i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
      out.bucket.push_back({cumulative, bound});
    }
    out.sample_count = cumulative;
    const uint32_t sum_cell = first + static_cast<uint32_t>(bounds.size()) + 1;
    for (const auto& thread : threads_) {
      out.sample_sum += std::bit_cast<double>(thread->load(sum_cell));
    }
    return out;
  }

  std::vector<std::unique_ptr<ThreadCells>> threads_;  // fixed at construction

  mutable std::mutex mu_;  // declarations and scrapes; workers never take it
  std::map<std::string, Family, std::less<>> families_;  // sorted: the exposition order
  LabelSets label_sets_;
  uint32_t next_cell_ = 0;
  uint32_t published_blocks_ = 0;
};

}  // namespace

std::unique_ptr<Store> Store::create(int threads) {
  return std::make_unique<StoreImpl>(std::max(threads, 1));
}

const std::vector<double>& durationBuckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return kBuckets;
}

}  // namespace sluice::stats
