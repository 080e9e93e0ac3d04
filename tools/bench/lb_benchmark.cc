// Microbenchmarks of the load balancer: one pick per iteration, as a worker makes per request,
// for each policy on 3 and 100 hosts (weights 1-3, one priority, all healthy), and what
// building the balancer costs the main thread when hosts or health change.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "proxy/upstream/load_balancer.h"

namespace sluice::upstream {
namespace {

struct Cluster {
  explicit Cluster(int n) {
    for (int i = 0; i < n; ++i)
      keys.push_back("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":8080");
    for (int i = 0; i < n; ++i) {
      hosts.push_back({.key = keys[i], .weight = static_cast<uint32_t>(i % 3 + 1)});
    }
  }
  std::vector<std::string> keys;
  std::vector<LbHost> hosts;
};

LbOptions withPolicy(LbPolicy policy) {
  LbOptions options;
  options.policy = policy;
  return options;
}

// Argument: the number of hosts.
void BM_Pick(benchmark::State& state, LbPolicy policy) {
  const Cluster cluster(static_cast<int>(state.range(0)));
  auto lb = LoadBalancer::build(withPolicy(policy), cluster.hosts, 1);
  // Inputs drawn ahead, so the loop times the pick rather than the generator; too many for the
  // branch predictor to learn their binary searches.
  constexpr size_t kInputs = 1 << 16;
  std::mt19937_64 rng(1);
  std::vector<uint64_t> randoms(kInputs), hashes(kInputs);
  for (size_t i = 0; i < kInputs; ++i) {
    randoms[i] = rng();
    hashes[i] = rng();
  }
  std::vector<uint32_t> active(cluster.hosts.size());
  for (uint32_t& a : active) a = static_cast<uint32_t>(rng() % 8);
  const auto inFlight = [&](int host) { return active[host]; };
  size_t i = 0;
  for (auto _ : state) {
    const LbRequest request{.random = randoms[i], .has_hash = true, .hash = hashes[i]};
    benchmark::DoNotOptimize(lb->pick(request, inFlight));
    i = (i + 1) % kInputs;
  }
}
BENCHMARK_CAPTURE(BM_Pick, round_robin, LbPolicy::kRoundRobin)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Pick, least_request, LbPolicy::kLeastRequest)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Pick, random, LbPolicy::kRandom)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Pick, ring_hash, LbPolicy::kRingHash)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Pick, maglev, LbPolicy::kMaglev)->Arg(3)->Arg(100);

// Argument: the number of hosts.
void BM_Build(benchmark::State& state, LbPolicy policy) {
  const Cluster cluster(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(LoadBalancer::build(withPolicy(policy), cluster.hosts, 2));
  }
}
BENCHMARK_CAPTURE(BM_Build, round_robin, LbPolicy::kRoundRobin)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Build, least_request, LbPolicy::kLeastRequest)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Build, random, LbPolicy::kRandom)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Build, ring_hash, LbPolicy::kRingHash)->Arg(3)->Arg(100);
BENCHMARK_CAPTURE(BM_Build, maglev, LbPolicy::kMaglev)->Arg(3)->Arg(100);

}  // namespace
}  // namespace sluice::upstream
