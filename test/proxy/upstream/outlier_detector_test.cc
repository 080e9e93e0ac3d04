// Outlier detection: the workers' lock-free counting and ejection requests (thresholds, resets,
// the one wake), and the main thread's ejections (budget, times, returns, decay, metrics).
#include "proxy/upstream/outlier_detector.h"

#include <event2/event.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace sluice::upstream {
namespace {

namespace v1 = config::v1;
using ::testing::HasSubstr;

// Every wait is bounded by this; it only matters when a test fails.
constexpr absl::Duration kWait = absl::Seconds(5);

OutlierConfig config(uint32_t consecutive_5xx, uint32_t consecutive_gateway_failure) {
  OutlierConfig c;
  c.consecutive_5xx = consecutive_5xx;
  c.consecutive_gateway_failure = consecutive_gateway_failure;
  c.base_ejection_time = absl::Seconds(30);
  c.max_ejection_time = absl::Seconds(300);
  c.max_ejection_percent = 100;
  return c;
}

// Reads the eventfd's count (0 when nothing was written), which also resets it.
uint64_t wakes(int fd) {
  uint64_t count = 0;
  if (read(fd, &count, sizeof(count)) != sizeof(count)) return 0;
  return count;
}

void repeat(int times, HostState* host, const OutlierConfig& c, Outcome outcome, int fd) {
  for (int i = 0; i < times; ++i) recordOutcome(host, c, outcome, fd);
}

TEST(OutlierConfigTest, DefaultsFromTheProto) {
  OutlierConfig c = outlierConfig(v1::OutlierDetection());
  EXPECT_EQ(c.consecutive_5xx, 5u);
  EXPECT_EQ(c.consecutive_gateway_failure, 5u);
  EXPECT_EQ(c.base_ejection_time, absl::Seconds(30));
  EXPECT_EQ(c.max_ejection_time, absl::Seconds(300));
  EXPECT_EQ(c.max_ejection_percent, 10u);
}

TEST(OutlierConfigTest, ExplicitValuesAndZerosFromTheProto) {
  v1::OutlierDetection proto;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(consecutive_5xx: 0
           consecutive_gateway_failure: 7
           base_ejection_time { nanos: 5000000 }
           max_ejection_time { seconds: 60 }
           max_ejection_percent: 0)pb",
      &proto));
  OutlierConfig c = outlierConfig(proto);
  EXPECT_EQ(c.consecutive_5xx, 0u);  // set to 0: off, not the default
  EXPECT_EQ(c.consecutive_gateway_failure, 7u);
  EXPECT_EQ(c.base_ejection_time, absl::Milliseconds(5));
  EXPECT_EQ(c.max_ejection_time, absl::Seconds(60));
  EXPECT_EQ(c.max_ejection_percent, 0u);
}

TEST(RecordOutcomeTest, Consecutive5xxRequestsOneEjectionAtTheThreshold) {
  WakeFd wake;
  ASSERT_GE(wake.fd(), 0);
  HostState host;
  const OutlierConfig c = config(3, 0);
  repeat(2, &host, c, Outcome::k5xx, wake.fd());
  EXPECT_EQ(host.consecutive_5xx.load(), 2u);
  EXPECT_FALSE(host.ejection_requested.load());
  EXPECT_EQ(wakes(wake.fd()), 0u);

  recordOutcome(&host, c, Outcome::k5xx, wake.fd());
  EXPECT_TRUE(host.ejection_requested.load());
  EXPECT_EQ(wakes(wake.fd()), 1u);

  // Until the main thread acts, further failures do not wake it again.
  repeat(5, &host, c, Outcome::k5xx, wake.fd());
  EXPECT_EQ(wakes(wake.fd()), 0u);
  EXPECT_EQ(host.consecutive_gateway_failure.load(), 0u);
}

TEST(RecordOutcomeTest, GatewayFailuresCountTowardBothThresholds) {
  WakeFd wake;
  {
    HostState host;
    const OutlierConfig c = config(3, 5);
    repeat(3, &host, c, Outcome::kGatewayFailure, wake.fd());
    EXPECT_EQ(host.consecutive_gateway_failure.load(), 3u);
    EXPECT_EQ(host.consecutive_5xx.load(), 3u);
    EXPECT_TRUE(host.ejection_requested.load());  // by the 5xx threshold
    EXPECT_EQ(wakes(wake.fd()), 1u);
  }
  {
    HostState host;
    const OutlierConfig c = config(10, 2);
    repeat(2, &host, c, Outcome::kGatewayFailure, wake.fd());
    EXPECT_TRUE(host.ejection_requested.load());  // by the gateway failure threshold
    EXPECT_EQ(wakes(wake.fd()), 1u);
  }
  {
    // A plain 5xx is no gateway failure.
    HostState host;
    const OutlierConfig c = config(10, 2);
    repeat(5, &host, c, Outcome::k5xx, wake.fd());
    EXPECT_EQ(host.consecutive_gateway_failure.load(), 0u);
    EXPECT_FALSE(host.ejection_requested.load());
  }
}

TEST(RecordOutcomeTest, SuccessStartsTheCountsAgain) {
  WakeFd wake;
  HostState host;
  const OutlierConfig c = config(3, 3);
  recordOutcome(&host, c, Outcome::k5xx, wake.fd());
  recordOutcome(&host, c, Outcome::kGatewayFailure, wake.fd());
  EXPECT_EQ(host.consecutive_5xx.load(), 2u);
  EXPECT_EQ(host.consecutive_gateway_failure.load(), 1u);
  recordOutcome(&host, c, Outcome::kSuccess, wake.fd());
  EXPECT_EQ(host.consecutive_5xx.load(), 0u);
  EXPECT_EQ(host.consecutive_gateway_failure.load(), 0u);
  repeat(2, &host, c, Outcome::kGatewayFailure, wake.fd());
  EXPECT_FALSE(host.ejection_requested.load());
  EXPECT_EQ(wakes(wake.fd()), 0u);
}

TEST(RecordOutcomeTest, SuccessWithZeroCountersDoesNotWrite) {
  WakeFd wake;
  // The host on a read-only page: any store, even of the same value, faults.
  const long page = sysconf(_SC_PAGESIZE);
  void* mem = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* host = new (mem) HostState();
  ASSERT_EQ(mprotect(mem, page, PROT_READ), 0);
  repeat(3, host, config(3, 3), Outcome::kSuccess, wake.fd());
  EXPECT_EQ(host->consecutive_5xx.load(), 0u);
  EXPECT_EQ(host->consecutive_gateway_failure.load(), 0u);
  EXPECT_FALSE(host->ejection_requested.load());
  ASSERT_EQ(mprotect(mem, page, PROT_READ | PROT_WRITE), 0);
  host->~HostState();
  munmap(mem, page);
  EXPECT_EQ(wakes(wake.fd()), 0u);
}

TEST(RecordOutcomeTest, ZeroThresholdsTurnTheChecksOff) {
  WakeFd wake;
  HostState host;
  const OutlierConfig c = config(0, 0);
  repeat(100, &host, c, Outcome::k5xx, wake.fd());
  repeat(100, &host, c, Outcome::kGatewayFailure, wake.fd());
  EXPECT_FALSE(host.ejection_requested.load());
  EXPECT_EQ(wakes(wake.fd()), 0u);

  // Only the 5xx check on: gateway failures still count as 5xx.
  const OutlierConfig only_5xx = config(4, 0);
  repeat(4, &host, only_5xx, Outcome::kGatewayFailure, wake.fd());
  EXPECT_EQ(host.consecutive_gateway_failure.load(), 0u);
  EXPECT_TRUE(host.ejection_requested.load());
}

TEST(RecordOutcomeTest, ConcurrentWorkersWakeTheMainThreadOnce) {
  WakeFd wake;
  HostState host;
  const OutlierConfig c = config(5, 5);
  std::atomic<bool> go{false};
  auto worker = [&](Outcome outcome) {
    while (!go.load()) {
    }
    for (int i = 0; i < 100000; ++i) {
      recordOutcome(&host, c, outcome, wake.fd());
      // Successes in between: the counts keep starting again and crossing.
      if (i % 7 == 6) recordOutcome(&host, c, Outcome::kSuccess, wake.fd());
    }
  };
  std::thread a(worker, Outcome::k5xx), b(worker, Outcome::kGatewayFailure);
  go.store(true);
  a.join();
  b.join();
  EXPECT_TRUE(host.ejection_requested.load());
  EXPECT_EQ(wakes(wake.fd()), 1u);
}

TEST(WakeFdTest, DrainResetsSoTheNextWriteWakesAgain) {
  WakeFd wake;
  ASSERT_GE(wake.fd(), 0);
  pollfd p = {wake.fd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);
  HostState host;
  repeat(1, &host, config(1, 0), Outcome::k5xx, wake.fd());
  EXPECT_EQ(poll(&p, 1, 0), 1);
  wake.drain();
  EXPECT_EQ(poll(&p, 1, 0), 0);
  wake.drain();  // nothing to read: no harm
}

class OutlierDetectorTest : public ::testing::Test {
 protected:
  OutlierDetectorTest()
      : base_(event_base_new()),
        store_(stats::Store::create(1)),
        stats_(declareOutlierStats(store_.get(), "web")) {}

  ~OutlierDetectorTest() override {
    detector_.reset();
    event_base_free(base_);
  }

  // `n` hosts named "10.0.0.<i>:80" under a detector with `c`; on_change counts calls and notes
  // the time and the first host's times_ejected at each.
  OutlierDetector& start(const OutlierConfig& c, int n) {
    config_ = c;
    detector_ = std::make_unique<OutlierDetector>(base_, store_->cells(0), c, stats_, [this] {
      changes_++;
      change_times_.push_back(absl::Now());
      times_ejected_at_change_.push_back(hosts_[0].times_ejected);
    });
    std::vector<HostState*> hosts;
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) {
      hosts.push_back(&hosts_.emplace_back());
      names.push_back(absl::StrCat("10.0.0.", i, ":80"));
    }
    detector_->setHosts(hosts, names);
    return *detector_;
  }

  // Makes host `i` cross the 5xx threshold, as a worker would.
  void fail(int i) {
    repeat(config_.consecutive_5xx, &hosts_[i], config_, Outcome::k5xx, wake_.fd());
    ASSERT_TRUE(hosts_[i].ejection_requested.load());
  }

  // Runs the loop until `done` or kWait passes; wakes at least every 10 ms to check.
  bool runUntil(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    while (!done()) {
      if (absl::Now() > deadline) return false;
      timeval tick = absl::ToTimeval(absl::Milliseconds(10));
      event_base_once(
          base_, -1, EV_TIMEOUT, [](evutil_socket_t, short, void*) {}, nullptr, &tick);
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }

  static void onWake(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<OutlierDetectorTest*>(arg);
    self->wake_.drain();
    self->detector_->processRequests();
  }

  int64_t value(stats::CounterId id) { return store_->value(id); }
  int64_t value(stats::GaugeId id) { return store_->value(id); }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  OutlierStats stats_;
  WakeFd wake_;
  OutlierConfig config_;
  std::deque<HostState> hosts_;  // stable addresses, as the lead keeps them
  std::unique_ptr<OutlierDetector> detector_;
  int changes_ = 0;
  std::vector<absl::Time> change_times_;
  std::vector<uint32_t> times_ejected_at_change_;
};

TEST_F(OutlierDetectorTest, StatsAreDeclaredWithClusterAndReasonLabels) {
  EXPECT_EQ(stats_.cluster, "web");
  EXPECT_TRUE(stats_.ejections_consecutive_5xx.valid());
  EXPECT_TRUE(stats_.ejections_consecutive_gateway_failure.valid());
  EXPECT_TRUE(stats_.ejections_overflow.valid());
  EXPECT_TRUE(stats_.ejections_active.valid());
  const std::string text = store_->prometheusText();
  EXPECT_THAT(text, HasSubstr("sluice_cluster_outlier_detection_ejections_total{cluster=\"web\","
                              "reason=\"consecutive_5xx\"} 0"));
  EXPECT_THAT(text, HasSubstr("sluice_cluster_outlier_detection_ejections_total{cluster=\"web\","
                              "reason=\"consecutive_gateway_failure\"} 0"));
  EXPECT_THAT(text, HasSubstr("sluice_cluster_outlier_detection_ejections_overflow_total{"
                              "cluster=\"web\"} 0"));
  EXPECT_THAT(text,
              HasSubstr("sluice_cluster_outlier_detection_ejections_active{cluster=\"web\"} 0"));
}

TEST_F(OutlierDetectorTest, EjectsOnRequestWithTheReasonAndCounts) {
  OutlierDetector& detector = start(config(5, 3), 2);
  repeat(3, &hosts_[0], config_, Outcome::kGatewayFailure, wake_.fd());
  fail(1);
  EXPECT_EQ(wakes(wake_.fd()), 2u);  // one write per host that asked
  EXPECT_FALSE(detector.ejected(&hosts_[0]));

  const absl::Time before = absl::Now();
  detector.processRequests();
  const absl::Time after = absl::Now();
  EXPECT_EQ(changes_, 1);
  for (HostState& h : hosts_) {
    EXPECT_TRUE(detector.ejected(&h));
    EXPECT_EQ(h.times_ejected, 1u);
    EXPECT_GE(h.ejected_until, before + absl::Seconds(30));
    EXPECT_LE(h.ejected_until, after + absl::Seconds(30));
    // The counters start again and the request is cleared.
    EXPECT_EQ(h.consecutive_5xx.load(), 0u);
    EXPECT_EQ(h.consecutive_gateway_failure.load(), 0u);
    EXPECT_FALSE(h.ejection_requested.load());
  }
  EXPECT_EQ(hosts_[0].last_ejection_reason, EjectionReason::kConsecutiveGatewayFailure);
  EXPECT_EQ(hosts_[1].last_ejection_reason, EjectionReason::kConsecutive5xx);
  EXPECT_EQ(value(stats_.ejections_consecutive_gateway_failure), 1);
  EXPECT_EQ(value(stats_.ejections_consecutive_5xx), 1);
  EXPECT_EQ(value(stats_.ejections_overflow), 0);
  EXPECT_EQ(value(stats_.ejections_active), 2);

  // Nothing requested: nothing happens.
  detector.processRequests();
  EXPECT_EQ(changes_, 1);
}

TEST_F(OutlierDetectorTest, RequestForAnEjectedHostIsDropped) {
  OutlierDetector& detector = start(config(3, 0), 1);
  fail(0);
  detector.processRequests();
  ASSERT_TRUE(detector.ejected(&hosts_[0]));
  const absl::Time until = hosts_[0].ejected_until;

  // Requests that were under way when it was ejected fail too.
  fail(0);
  detector.processRequests();
  EXPECT_EQ(changes_, 1);
  EXPECT_EQ(hosts_[0].times_ejected, 1u);
  EXPECT_EQ(hosts_[0].ejected_until, until);
  EXPECT_FALSE(hosts_[0].ejection_requested.load());
  EXPECT_EQ(hosts_[0].consecutive_5xx.load(), 0u);
  EXPECT_EQ(value(stats_.ejections_consecutive_5xx), 1);
  EXPECT_EQ(value(stats_.ejections_overflow), 0);
}

TEST_F(OutlierDetectorTest, MaxEjectionPercentAlwaysAllowsOne) {
  OutlierConfig c = config(2, 0);
  c.max_ejection_percent = 10;  // of 4 hosts: 0.4, but one may always be ejected
  OutlierDetector& detector = start(c, 4);
  fail(0);
  fail(1);
  detector.processRequests();
  EXPECT_TRUE(detector.ejected(&hosts_[0]));
  EXPECT_FALSE(detector.ejected(&hosts_[1]));
  EXPECT_EQ(value(stats_.ejections_overflow), 1);
  EXPECT_EQ(value(stats_.ejections_active), 1);
  EXPECT_EQ(value(stats_.ejections_consecutive_5xx), 1);
  // The dropped request starts its counts again, so the next run of failures asks again.
  EXPECT_FALSE(hosts_[1].ejection_requested.load());
  EXPECT_EQ(hosts_[1].consecutive_5xx.load(), 0u);
  fail(1);
  detector.processRequests();
  EXPECT_FALSE(detector.ejected(&hosts_[1]));
  EXPECT_EQ(value(stats_.ejections_overflow), 2);
}

TEST_F(OutlierDetectorTest, MaxEjectionPercentOfTheCluster) {
  OutlierConfig c = config(2, 0);
  c.max_ejection_percent = 10;  // of 20 hosts: 2
  OutlierDetector& detector = start(c, 20);
  fail(3);
  fail(7);
  fail(11);
  detector.processRequests();
  EXPECT_TRUE(detector.ejected(&hosts_[3]));
  EXPECT_TRUE(detector.ejected(&hosts_[7]));
  EXPECT_FALSE(detector.ejected(&hosts_[11]));
  EXPECT_EQ(value(stats_.ejections_active), 2);
  EXPECT_EQ(value(stats_.ejections_overflow), 1);
}

TEST_F(OutlierDetectorTest, ZeroPercentStillEjectsOne) {
  OutlierConfig c = config(2, 0);
  c.max_ejection_percent = 0;
  OutlierDetector& detector = start(c, 5);
  fail(0);
  fail(1);
  detector.processRequests();
  EXPECT_TRUE(detector.ejected(&hosts_[0]));
  EXPECT_FALSE(detector.ejected(&hosts_[1]));
}

TEST_F(OutlierDetectorTest, EjectionTimeGrowsWithTimesEjectedUpToTheMaximum) {
  OutlierConfig c = config(2, 0);
  c.base_ejection_time = absl::Seconds(10);
  c.max_ejection_time = absl::Seconds(25);
  OutlierDetector& detector = start(c, 4);
  // As if ejected 0, 1, 2 and 3 times before (and not decayed yet).
  for (int i = 0; i < 4; ++i) {
    hosts_[i].times_ejected = i;
    hosts_[i].decay_at = absl::InfiniteFuture();
    fail(i);
  }
  const absl::Time before = absl::Now();
  detector.processRequests();
  const absl::Time after = absl::Now();
  const absl::Duration expected[] = {absl::Seconds(10), absl::Seconds(20), absl::Seconds(25),
                                     absl::Seconds(25)};
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(detector.ejected(&hosts_[i])) << i;
    EXPECT_GE(hosts_[i].ejected_until, before + expected[i]) << i;
    EXPECT_LE(hosts_[i].ejected_until, after + expected[i]) << i;
  }
  // The multiplier stops growing once the maximum is reached (10 s x 3 >= 25 s).
  EXPECT_EQ(hosts_[0].times_ejected, 1u);
  EXPECT_EQ(hosts_[1].times_ejected, 2u);
  EXPECT_EQ(hosts_[2].times_ejected, 3u);
  EXPECT_EQ(hosts_[3].times_ejected, 3u);
}

TEST_F(OutlierDetectorTest, EjectedHostReturnsWhenItsTimeIsUp) {
  OutlierConfig c = config(3, 0);
  c.base_ejection_time = absl::Milliseconds(20);
  c.max_ejection_time = absl::Seconds(1);
  OutlierDetector& detector = start(c, 1);
  // Wired as the lead wires it: the wake fd on the loop drives processRequests.
  event* wake_ev =
      event_new(base_, wake_.fd(), EV_READ | EV_PERSIST, &OutlierDetectorTest::onWake, this);
  event_add(wake_ev, nullptr);

  fail(0);
  ASSERT_TRUE(runUntil([&] { return changes_ == 1; }));
  EXPECT_TRUE(detector.ejected(&hosts_[0]));
  EXPECT_EQ(value(stats_.ejections_active), 1);
  const absl::Time until = hosts_[0].ejected_until;

  // Failures reported meanwhile (requests under way) do not survive the return.
  repeat(2, &hosts_[0], config_, Outcome::k5xx, wake_.fd());
  ASSERT_TRUE(runUntil([&] { return !detector.ejected(&hosts_[0]); }));
  EXPECT_EQ(changes_, 2);
  EXPECT_GE(change_times_[1], until);  // not before its time
  EXPECT_EQ(value(stats_.ejections_active), 0);
  EXPECT_EQ(hosts_[0].consecutive_5xx.load(), 0u);
  EXPECT_FALSE(hosts_[0].ejection_requested.load());
  event_free(wake_ev);
}

TEST_F(OutlierDetectorTest, TimesEjectedGrowsAndDecaysOnlyWhileTheHostIsIn) {
  OutlierConfig c = config(3, 0);
  c.base_ejection_time = absl::Milliseconds(20);
  c.max_ejection_time = absl::Seconds(1);
  OutlierDetector& detector = start(c, 1);
  fail(0);
  detector.processRequests();
  ASSERT_TRUE(runUntil([&] { return !detector.ejected(&hosts_[0]); }));
  EXPECT_EQ(hosts_[0].times_ejected, 1u);

  // Ejected again before any decay (only the loop decays): twice as long.
  fail(0);
  const absl::Time before = absl::Now();
  detector.processRequests();
  EXPECT_EQ(hosts_[0].times_ejected, 2u);
  EXPECT_GE(hosts_[0].ejected_until, before + absl::Milliseconds(40));
  ASSERT_TRUE(runUntil([&] { return !detector.ejected(&hosts_[0]); }));
  // Two base times went by while it was out: no decay then.
  ASSERT_EQ(times_ejected_at_change_.size(), 4u);
  EXPECT_EQ(times_ejected_at_change_[3], 2u);

  // Back in, one step per base ejection time, down to zero.
  ASSERT_TRUE(runUntil([&] { return hosts_[0].times_ejected == 0; }));
  EXPECT_EQ(changes_, 4);  // decay changes nothing anyone routes by
}

TEST_F(OutlierDetectorTest, SetHostsTracksTheClustersEndpoints) {
  OutlierConfig c = config(2, 0);
  c.base_ejection_time = absl::Seconds(30);
  OutlierDetector& detector = start(c, 3);
  fail(0);
  detector.processRequests();
  ASSERT_TRUE(detector.ejected(&hosts_[0]));
  EXPECT_EQ(value(stats_.ejections_active), 1);

  // Host 0 leaves (and stays ejected), host 2 leaves with a request pending.
  fail(2);
  detector.setHosts({&hosts_[1]}, {"10.0.0.1:80"});
  EXPECT_EQ(value(stats_.ejections_active), 0);
  detector.processRequests();
  EXPECT_FALSE(detector.ejected(&hosts_[2]));
  EXPECT_TRUE(hosts_[0].ejected);

  // Both come back: host 0 still ejected, host 2's stale request dropped.
  detector.setHosts({&hosts_[0], &hosts_[1], &hosts_[2]},
                    {"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80"});
  EXPECT_EQ(value(stats_.ejections_active), 1);
  EXPECT_FALSE(hosts_[2].ejection_requested.load());
  detector.processRequests();
  EXPECT_FALSE(detector.ejected(&hosts_[2]));
  EXPECT_EQ(value(stats_.ejections_consecutive_5xx), 1);
}

TEST_F(OutlierDetectorTest, DestroyingTheDetectorReturnsItsEjectedHosts) {
  OutlierDetector& detector = start(config(2, 0), 2);
  fail(1);
  detector.processRequests();
  ASSERT_TRUE(detector.ejected(&hosts_[1]));
  EXPECT_EQ(value(stats_.ejections_active), 1);
  const int changes = changes_;
  detector_.reset();
  EXPECT_FALSE(hosts_[1].ejected);
  EXPECT_EQ(value(stats_.ejections_active), 0);
  EXPECT_EQ(changes_, changes);
}

}  // namespace
}  // namespace sluice::upstream
