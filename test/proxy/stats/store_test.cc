#include "proxy/stats/store.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::stats {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The value of the sample line that starts with `series` (name and labels as exported), or NaN
// when there is none.
double sample(const std::string& text, const std::string& series) {
  for (const std::string& line : lines(text)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nan("");
}

TEST(StoreTest, SameNameAndLabelsGiveTheSameId) {
  auto store = Store::create(1);
  const CounterId a = store->counter("sluice_rq_total", "Requests.", {{"listener", "web"}});
  const CounterId b = store->counter("sluice_rq_total", "Other help.", {{"listener", "web"}});
  const CounterId c = store->counter("sluice_rq_total", "Requests.", {{"listener", "api"}});
  ASSERT_TRUE(a.valid());
  EXPECT_EQ(a.cell, b.cell);
  EXPECT_NE(a.cell, c.cell);

  const GaugeId g1 = store->gauge("sluice_cx_active", "", {{"a", "1"}, {"b", "2"}});
  const GaugeId g2 = store->gauge("sluice_cx_active", "", {{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(g1.cell, g2.cell);

  const HistogramId h1 = store->histogram("sluice_t_seconds", "", {}, durationBuckets());
  const HistogramId h2 = store->histogram("sluice_t_seconds", "", {}, durationBuckets());
  EXPECT_EQ(h1.first_cell, h2.first_cell);
  EXPECT_EQ(h1.bounds, h2.bounds);
  EXPECT_EQ(h1.buckets, durationBuckets().size() + 1);

  // The id keeps its counts across a re-declaration (a generation that keeps a cluster).
  store->cells(0)->add(a, 3);
  EXPECT_EQ(store->value(store->counter("sluice_rq_total", "", {{"listener", "web"}})), 3);
  EXPECT_EQ(sample(store->prometheusText(), "sluice_rq_total{listener=\"web\"}"), 3);
}

TEST(StoreTest, CountersAreSummedOverThreads) {
  auto store = Store::create(3);
  const CounterId id = store->counter("sluice_c_total", "", {});
  store->cells(0)->add(id);
  store->cells(1)->add(id, 10);
  store->cells(2)->add(id, 100);
  EXPECT_EQ(store->value(id), 111);
  EXPECT_EQ(sample(store->prometheusText(), "sluice_c_total"), 111);
  EXPECT_EQ(store->cells(3), nullptr);
  EXPECT_EQ(store->cells(-1), nullptr);
}

TEST(StoreTest, GaugesGoUpAndDown) {
  auto store = Store::create(2);
  const GaugeId id = store->gauge("sluice_cx_active", "Open connections.", {{"cluster", "users"}});
  store->cells(0)->gaugeAdd(id, 5);
  store->cells(1)->gaugeAdd(id, 2);
  store->cells(0)->gaugeAdd(id, -1);
  EXPECT_EQ(store->value(id), 6);
  // A connection opened on one worker may be counted down on another: the sum stays right.
  store->cells(1)->gaugeAdd(id, -9);
  EXPECT_EQ(store->value(id), -3);
  EXPECT_EQ(sample(store->prometheusText(), "sluice_cx_active{cluster=\"users\"}"), -3);
  store->cells(1)->gaugeSet(id, 10);
  EXPECT_EQ(store->value(id), 14);
}

TEST(StoreTest, HistogramBucketsIncludeTheirBound) {
  auto store = Store::create(2);
  const HistogramId id = store->histogram("sluice_h", "", {}, {0.1, 1, 10});
  ASSERT_TRUE(id.valid());
  Cells* cells = store->cells(0);
  cells->observe(id, 0.1);  // le="0.1" is inclusive
  cells->observe(id, -5);
  cells->observe(id, std::nextafter(0.1, 1.0));
  store->cells(1)->observe(id, 1);
  cells->observe(id, 10);
  cells->observe(id, 10.5);
  cells->observe(id, std::nan(""));  // dropped
  const std::vector<std::string> expected = {
      "# TYPE sluice_h histogram",
      "sluice_h_count 6",
      "sluice_h_sum 16.7",
      "sluice_h_bucket{le=\"0.1\"} 2",
      "sluice_h_bucket{le=\"1\"} 4",
      "sluice_h_bucket{le=\"10\"} 5",
      "sluice_h_bucket{le=\"+Inf\"} 6",
  };
  EXPECT_EQ(lines(store->prometheusText()), expected);
}

TEST(StoreTest, ExactTextFormat) {
  auto store = Store::create(2);
  // Declared out of order: families come out sorted by name, series in declaration order, labels
  // in the order first declared.
  const GaugeId gauge = store->gauge("sluice_b_active", "Active things.", {});
  const CounterId web = store->counter("sluice_a_total", "Requests by listener.",
                                       {{"listener", "web"}, {"code_class", "2xx"}});
  const CounterId api =
      store->counter("sluice_a_total", "", {{"listener", "api"}, {"code_class", "5xx"}});
  const HistogramId time =
      store->histogram("sluice_c_seconds", "Upstream time.", {{"cluster", "users"}}, {0.5, 2.5});
  store->cells(0)->add(web, 7);
  store->cells(1)->add(web, 1);
  store->cells(1)->add(api);
  store->cells(1)->gaugeAdd(gauge, 4);
  store->cells(0)->observe(time, 0.25);
  store->cells(1)->observe(time, 2.5);
  store->cells(1)->observe(time, 3);

  const std::vector<std::string> expected = {
      "# HELP sluice_a_total Requests by listener.",
      "# TYPE sluice_a_total counter",
      "sluice_a_total{listener=\"web\",code_class=\"2xx\"} 8",
      "sluice_a_total{listener=\"api\",code_class=\"5xx\"} 1",
      "# HELP sluice_b_active Active things.",
      "# TYPE sluice_b_active gauge",
      "sluice_b_active 4",
      "# HELP sluice_c_seconds Upstream time.",
      "# TYPE sluice_c_seconds histogram",
      "sluice_c_seconds_count{cluster=\"users\"} 3",
      "sluice_c_seconds_sum{cluster=\"users\"} 5.75",
      "sluice_c_seconds_bucket{cluster=\"users\",le=\"0.5\"} 1",
      "sluice_c_seconds_bucket{cluster=\"users\",le=\"2.5\"} 2",
      "sluice_c_seconds_bucket{cluster=\"users\",le=\"+Inf\"} 3",
  };
  EXPECT_EQ(lines(store->prometheusText()), expected);
}

TEST(StoreTest, EscapesLabelValuesAndHelp) {
  auto store = Store::create(1);
  const CounterId id =
      store->counter("sluice_e_total", "Path \\ and\nnewline.", {{"path", "a\"b\\c\nd"}});
  store->cells(0)->add(id, 2);
  const std::vector<std::string> expected = {
      "# HELP sluice_e_total Path \\\\ and\\nnewline.",
      "# TYPE sluice_e_total counter",
      "sluice_e_total{path=\"a\\\"b\\\\c\\nd\"} 2",
  };
  EXPECT_EQ(lines(store->prometheusText()), expected);
}

TEST(StoreTest, ConflictingDeclarationsGiveInvalidIds) {
  auto store = Store::create(1);
  const CounterId counter = store->counter("sluice_x", "", {});
  const HistogramId histogram = store->histogram("sluice_h", "", {}, {1, 2});
  ASSERT_TRUE(counter.valid());
  ASSERT_TRUE(histogram.valid());

  // Another type, or other bounds, for a known name.
  EXPECT_FALSE(store->gauge("sluice_x", "", {}).valid());
  EXPECT_FALSE(store->gauge("sluice_x", "", {{"other", "labels"}}).valid());
  EXPECT_FALSE(store->histogram("sluice_x", "", {}, {1}).valid());
  EXPECT_FALSE(store->counter("sluice_h", "", {}).valid());
  EXPECT_FALSE(store->histogram("sluice_h", "", {}, {1, 3}).valid());
  EXPECT_FALSE(store->histogram("sluice_h", "", {{"a", "b"}}, {1}).valid());
  // Names a histogram's series use.
  EXPECT_FALSE(store->counter("sluice_h_count", "", {}).valid());
  EXPECT_FALSE(store->gauge("sluice_h_bucket", "", {}).valid());
  EXPECT_FALSE(store->histogram("sluice_x", "", {}, {}).valid());
  const CounterId bucket_first = store->counter("sluice_z_bucket", "", {});
  ASSERT_TRUE(bucket_first.valid());
  EXPECT_FALSE(store->histogram("sluice_z", "", {}, {1}).valid());
  // Names and labels Prometheus would reject, and bad bounds.
  EXPECT_FALSE(store->counter("sluice-dash", "", {}).valid());
  EXPECT_FALSE(store->counter("", "", {}).valid());
  EXPECT_FALSE(store->counter("sluice_l", "", {{"a-b", "1"}}).valid());
  EXPECT_FALSE(store->counter("sluice_l", "", {{"__reserved", "1"}}).valid());
  EXPECT_FALSE(store->counter("sluice_l", "", {{"a", "1"}, {"a", "2"}}).valid());
  EXPECT_FALSE(store->histogram("sluice_le", "", {{"le", "1"}}, {1}).valid());
  EXPECT_FALSE(store->histogram("sluice_down", "", {}, {2, 1}).valid());
  EXPECT_FALSE(store->histogram("sluice_same", "", {}, {1, 1}).valid());
  EXPECT_FALSE(store->histogram("sluice_inf", "", {}, {1, INFINITY}).valid());
  EXPECT_FALSE(store->histogram("sluice_big", "", {}, std::vector<double>(600, 0)).valid());

  // Writing with an invalid id is a no-op; the first declarations still work.
  Cells* cells = store->cells(0);
  cells->add(CounterId{}, 5);
  cells->gaugeAdd(GaugeId{}, 5);
  cells->gaugeSet(GaugeId{}, 5);
  cells->observe(HistogramId{}, 5);
  cells->add(counter, 2);
  EXPECT_EQ(store->value(CounterId{}), 0);
  EXPECT_EQ(store->value(GaugeId{}), 0);
  EXPECT_EQ(store->value(counter), 2);

  const std::string text = store->prometheusText();
  EXPECT_NE(text.find("# TYPE sluice_x counter\nsluice_x 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE sluice_h histogram\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("sluice_x gauge"), std::string::npos) << text;
  EXPECT_EQ(text.find("sluice_h_count "), text.find("sluice_h_count 0\n")) << text;
  EXPECT_EQ(text.find("sluice-dash"), std::string::npos) << text;
  EXPECT_EQ(text.find("sluice_l"), std::string::npos) << text;
}

TEST(StoreTest, DurationBuckets) {
  const std::vector<double> expected = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  EXPECT_EQ(durationBuckets(), expected);
}

// Workers write while the main thread declares new metrics (crossing block boundaries) and
// another thread scrapes. Run under ThreadSanitizer too.
TEST(StoreTest, ConcurrentWritesDeclarationsAndScrapes) {
  constexpr int kWorkers = 4;
  constexpr int kIterations = 20000;
  constexpr int kNewMetrics = 1500;  // about 3 blocks of counters, plus histograms
  auto store = Store::create(kWorkers + 1);
  const CounterId total = store->counter("sluice_total", "", {});
  const HistogramId latency = store->histogram("sluice_latency_seconds", "", {}, durationBuckets());

  // Stands in for posting a generation: a worker uses only ids the main thread handed over.
  std::mutex mu;
  std::vector<CounterId> published;
  std::atomic<bool> declaring_done{false};
  std::atomic<bool> workers_done{false};

  std::vector<std::vector<uint64_t>> adds(kWorkers, std::vector<uint64_t>(kNewMetrics, 0));
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      Cells* cells = store->cells(w);
      std::vector<CounterId> mine;
      for (int i = 0; i < kIterations || !declaring_done.load(); ++i) {
        if (i < kIterations) {
          cells->add(total);
          cells->observe(latency, 0.001 * (i % 100));
        }
        if (i % 64 == 0) {
          std::lock_guard<std::mutex> lock(mu);
          mine = published;
        }
        if (!mine.empty()) {
          const size_t k = static_cast<size_t>(i) % mine.size();
          cells->add(mine[k]);
          ++adds[w][k];
        }
      }
    });
  }

  std::thread scraper([&] {
    double last = 0;
    int scrapes = 0;
    while (!workers_done.load() || scrapes < 2) {
      const std::string text = store->prometheusText();
      const double now = sample(text, "sluice_total");
      EXPECT_GE(now, last);
      last = now;
      EXPECT_EQ(sample(text, "sluice_latency_seconds_count"),
                sample(text, "sluice_latency_seconds_bucket{le=\"+Inf\"}"));
      EXPECT_GE(store->value(total), 0);
      ++scrapes;
    }
  });

  std::vector<CounterId> declared;
  for (int i = 0; i < kNewMetrics; ++i) {
    const CounterId id = store->counter("sluice_new_total", "", {{"n", std::to_string(i)}});
    EXPECT_TRUE(id.valid());
    declared.push_back(id);
    if (i % 100 == 0) {
      EXPECT_TRUE(
          store->histogram("sluice_new_seconds", "", {{"n", std::to_string(i)}}, durationBuckets())
              .valid());
    }
    std::lock_guard<std::mutex> lock(mu);
    published.push_back(id);
  }
  declaring_done.store(true);
  for (std::thread& t : workers) t.join();
  workers_done.store(true);
  scraper.join();

  EXPECT_EQ(store->value(total), kWorkers * kIterations);
  const std::string text = store->prometheusText();
  EXPECT_EQ(sample(text, "sluice_latency_seconds_count"), kWorkers * kIterations);
  for (int i = 0; i < kNewMetrics; ++i) {
    uint64_t expected = 0;
    for (int w = 0; w < kWorkers; ++w) expected += adds[w][i];
    ASSERT_EQ(store->value(declared[i]), static_cast<int64_t>(expected)) << i;
    ASSERT_EQ(sample(text, "sluice_new_total{n=\"" + std::to_string(i) + "\"}"),
              static_cast<double>(expected))
        << i;
  }
}

}  // namespace
}  // namespace sluice::stats
