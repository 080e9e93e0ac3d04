#include "proxy/server/overload_guard.h"

#include <event2/event.h>

#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/stats/store.h"

namespace sluice::server {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class OverloadGuardTest : public ::testing::Test {
 protected:
  OverloadGuardTest()
      : base_(event_base_new()),
        store_(stats::Store::create(1)),
        guard_(
            base_, 100 * kMiB, store_.get(), store_->cells(0), [this] { return heap_; },
            [this](bool active) { changes_.push_back(active); }) {}
  ~OverloadGuardTest() override { event_base_free(base_); }

  // The guard's gauge or counter `name` as the /metrics page would show it.
  int64_t gauge(const char* name) { return store_->value(store_->gauge(name, "", {})); }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  uint64_t heap_ = 10 * kMiB;
  std::vector<bool> changes_;
  OverloadGuard guard_;
};

TEST_F(OverloadGuardTest, TurnsOnAboveTheThresholdAndOffBelowNinetyPercent) {
  guard_.sample();
  EXPECT_FALSE(guard_.active());
  EXPECT_EQ(gauge("sluice_overload_heap_bytes"), static_cast<int64_t>(10 * kMiB));
  heap_ = 100 * kMiB;  // at the threshold: not over it
  guard_.sample();
  EXPECT_FALSE(guard_.active());
  heap_ = 100 * kMiB + 1;
  guard_.sample();
  EXPECT_TRUE(guard_.active());
  EXPECT_TRUE(guard_.state()->active.load());
  EXPECT_EQ(gauge("sluice_overload_active"), 1);
  // Between 90% and 100%: stays on, no flapping.
  heap_ = 95 * kMiB;
  guard_.sample();
  EXPECT_TRUE(guard_.active());
  heap_ = 89 * kMiB;
  guard_.sample();
  EXPECT_FALSE(guard_.active());
  EXPECT_EQ(gauge("sluice_overload_active"), 0);
  heap_ = 95 * kMiB;
  guard_.sample();
  EXPECT_FALSE(guard_.active());
  EXPECT_EQ(changes_, (std::vector<bool>{true, false}));
  EXPECT_EQ(store_->value(store_->counter("sluice_overload_activations_total", "", {})), 1);
}

TEST_F(OverloadGuardTest, StartSamplesAtOnce) {
  heap_ = 200 * kMiB;
  guard_.start();
  EXPECT_TRUE(guard_.active());
  EXPECT_EQ(changes_, (std::vector<bool>{true}));
}

TEST(OverloadGuardHeapTest, HeapInUseSeesAllocationsOfOtherThreads) {
  const uint64_t before = OverloadGuard::heapInUse();
  // Blocks below the mmap threshold, from another thread: served by that thread's arena, which
  // mallinfo() alone would not count.
  std::vector<std::unique_ptr<char[]>> blocks;
  std::thread([&] {
    for (int i = 0; i < 1024; ++i) {
      blocks.emplace_back(new char[32 * 1024]);
      blocks.back()[0] = 1;
    }
  }).join();
  EXPECT_GE(OverloadGuard::heapInUse(), before + 30 * kMiB);
  blocks.clear();
  EXPECT_LT(OverloadGuard::heapInUse(), before + 8 * kMiB);
}

}  // namespace
}  // namespace sluice::server
