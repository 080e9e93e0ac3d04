#include "proxy/upstream/load_balancer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "absl/numeric/int128.h"
#include "absl/strings/str_cat.h"

namespace sluice::upstream {

// What one priority level balances over, prebuilt for the cluster's policy.
struct LoadBalancer::Level {
  std::vector<uint32_t> hosts;       // the healthy hosts, or all of them in panic
  std::vector<uint64_t> cumulative;  // random, least request: running weight totals over `hosts`
  std::vector<uint32_t> schedule;    // round robin: host indexes over one smooth cycle
  std::vector<uint64_t> ring;        // ring hash: point hashes, ascending ...
  std::vector<uint32_t> ring_hosts;  // ... and the host of each point
  std::vector<uint32_t> table;       // maglev: the host of each slot
};

namespace {

// Envoy's default overprovisioning factor, 1.4: a level counts as fully healthy while 1/1.4 of
// its hosts are, so it does not shed load to the next level at the first failure.
constexpr uint64_t kOverprovisioning = 140;

// A smooth weighted round-robin cycle is as long as the sum of the weights; beyond this the
// weights are scaled down (keeping every host at least once).
constexpr uint64_t kMaxSchedule = 1 << 16;

// Ring points of a host of average weight unless ring_min_size asks for more. Large enough that
// 2 hosts already fill the default minimum ring (1024): below that, removing a host would change
// the others' point counts and move keys between hosts that stay.
constexpr uint64_t kPointsPerHost = 512;

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15;

// splitmix64's finalizer: turns correlated inputs (a counter, swapped halves) into unrelated
// outputs.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// A uniform number below `n` from uniform 64 bits, without a division.
uint64_t below(uint64_t random, uint64_t n) {
  return absl::Uint128High64(absl::uint128(random) * n);
}

uint64_t rotl(uint64_t x, int r) { return x << r | x >> (64 - r); }

// Little-endian loads byte by byte: the same hash on any machine (compilers emit one load).
uint64_t load64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

uint32_t load32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// xxHash64 (XXH64 of the reference implementation); Envoy hashes with it too.
uint64_t xxHash64(std::string_view data, uint64_t seed) {
  constexpr uint64_t kP1 = 0x9e3779b185ebca87, kP2 = 0xc2b2ae3d27d4eb4f, kP3 = 0x165667b19e3779f9,
                     kP4 = 0x85ebca77c2b2ae63, kP5 = 0x27d4eb2f165667c5;
  auto round = [](uint64_t acc, uint64_t input) { return rotl(acc + input * kP2, 31) * kP1; };
  auto merge = [&](uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * kP1 + kP4; };

  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const unsigned char* const end = p + data.size();
  uint64_t h;
  if (data.size() >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    for (; end - p >= 32; p += 32) {
      v1 = round(v1, load64(p));
      v2 = round(v2, load64(p + 8));
      v3 = round(v3, load64(p + 16));
      v4 = round(v4, load64(p + 24));
    }
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = seed + kP5;
  }
  h += data.size();
  for (; end - p >= 8; p += 8) h = rotl(h ^ round(0, load64(p)), 27) * kP1 + kP4;
  if (end - p >= 4) {
    h = rotl(h ^ load32(p) * kP1, 23) * kP2 + kP3;
    p += 4;
  }
  for (; p < end; ++p) h = rotl(h ^ *p * kP5, 11) * kP1;
  h = (h ^ h >> 33) * kP2;
  h = (h ^ h >> 29) * kP3;
  return h ^ h >> 32;
}

uint64_t nextPrime(uint64_t n) {
  for (;; ++n) {
    bool prime = n >= 2;
    for (uint64_t d = 2; prime && d * d <= n; ++d) prime = n % d != 0;
    if (prime) return n;
  }
}

// std::partition_point's index in a non-empty vector, with a conditional move per step where the
// library branches: on random keys each of those branches was mispredicted every other time.
template <class Pred>
size_t partitionPoint(const std::vector<uint64_t>& v, Pred pred) {
  const uint64_t* base = v.data();
  for (size_t n = v.size(); n > 1; n -= n / 2) base = pred(base[n / 2]) ? base + n / 2 : base;
  return base - v.data() + pred(*base);
}

// The weighted random host at `random`'s point on the running weight totals.
uint32_t weightedPick(const std::vector<uint64_t>& cumulative, const std::vector<uint32_t>& hosts,
                      uint64_t random) {
  const uint64_t point = below(random, cumulative.back());
  return hosts[partitionPoint(cumulative, [point](uint64_t total) { return total <= point; })];
}

// Smooth weighted round robin (as in nginx): each step adds every weight to its host's credit and
// picks the largest credit, which then pays the total. Spreads a heavy host's turns evenly
// instead of in a burst.
std::vector<uint32_t> smoothSchedule(const std::vector<uint32_t>& weights,
                                     const std::vector<uint32_t>& members) {
  std::vector<uint64_t> w;
  uint64_t divisor = 0;
  for (uint32_t i : members) {
    w.push_back(weights[i]);
    divisor = std::gcd(divisor, w.back());
  }
  uint64_t total = 0;
  for (uint64_t& x : w) total += x /= divisor;  // 2:4:6 cycles as 1:2:3
  if (total > kMaxSchedule) {
    const uint64_t unscaled = total;
    total = 0;
    for (uint64_t& x : w) total += x = std::max<uint64_t>(1, x * kMaxSchedule / unscaled);
  }
  std::vector<int64_t> credit(w.size(), 0);
  std::vector<uint32_t> schedule;
  schedule.reserve(total);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      credit[i] += static_cast<int64_t>(w[i]);
      if (credit[i] > credit[best]) best = i;
    }
    credit[best] -= static_cast<int64_t>(total);
    schedule.push_back(members[best]);
  }
  return schedule;
}

// Ketama: a host's points on the ring are hashed from its key and the point's number, so they do
// not depend on the other hosts; how many it gets is proportional to its weight.
void buildRing(const LbOptions& options, std::span<const LbHost> hosts,
               const std::vector<uint32_t>& weights, const std::vector<uint32_t>& members,
               std::vector<uint64_t>* ring, std::vector<uint32_t>* owners) {
  uint64_t total = 0, lightest = UINT64_MAX;
  for (uint32_t i : members) {
    total += weights[i];
    lightest = std::min<uint64_t>(lightest, weights[i]);
  }
  const uint64_t target =
      std::max<uint64_t>(options.ring_min_size, members.size() * kPointsPerHost);
  // Points per unit of weight: a whole number for the lightest host (as in Envoy), fewer when
  // the ring would outgrow ring_max_size, but every host keeps at least one.
  const double scale =
      std::min(std::ceil(static_cast<double>(target) * lightest / total) / lightest,
               static_cast<double>(options.ring_max_size) / total);
  std::vector<std::pair<uint64_t, uint32_t>> points;
  points.reserve(static_cast<size_t>(scale * total) + members.size());
  std::string name;
  for (uint32_t i : members) {
    const uint64_t n = std::max<uint64_t>(1, std::llround(scale * weights[i]));
    name.assign(hosts[i].key);
    name += '_';
    const size_t base = name.size();
    for (uint64_t k = 0; k < n; ++k) {
      name.resize(base);
      absl::StrAppend(&name, k);
      points.emplace_back(hashKey(name), i);
    }
  }
  std::sort(points.begin(), points.end());
  ring->reserve(points.size());
  owners->reserve(points.size());
  for (const auto& [hash, host] : points) {
    ring->push_back(hash);
    owners->push_back(host);
  }
}

// Maglev's lookup table: each host walks its own permutation of the slots (offset and skip from
// two hashes of its key) and claims the next free slot in turn.
std::vector<uint32_t> maglevTable(const LbOptions& options, std::span<const LbHost> hosts,
                                  const std::vector<uint32_t>& weights,
                                  const std::vector<uint32_t>& members) {
  // The permutations visit every slot only when the size is prime; another size would loop.
  const uint64_t size = nextPrime(std::max<uint64_t>(options.maglev_table_size, 2));
  struct Entry {
    uint32_t host;
    uint64_t weight, offset, skip, next = 0, claimed = 0;
  };
  std::vector<Entry> entries;
  uint64_t heaviest = 0;
  for (uint32_t i : members) {
    entries.push_back({i, weights[i], xxHash64(hosts[i].key, 0) % size,
                       xxHash64(hosts[i].key, 1) % (size - 1) + 1});
    heaviest = std::max<uint64_t>(heaviest, weights[i]);
  }
  constexpr uint32_t kFree = UINT32_MAX;
  std::vector<uint32_t> table(size, kFree);
  uint64_t filled = 0;
  // Weighted as in Envoy: a host of the heaviest weight claims a slot every pass, one of a third
  // of that weight every third pass.
  for (uint64_t pass = 1; filled < size; ++pass) {
    for (Entry& e : entries) {
      if (filled == size || pass * e.weight < e.claimed) continue;
      e.claimed += heaviest;
      uint64_t slot;
      do {
        slot = (e.offset + e.skip * e.next++) % size;
      } while (table[slot] != kFree);
      table[slot] = e.host;
      ++filled;
    }
  }
  return table;
}

// Shares out 100 percent by `shares` (summing to `total`), rounding down; what rounding leaves
// goes to the first level with a share (Envoy's distributeLoad).
void distribute(const std::vector<uint64_t>& shares, uint64_t total, std::vector<uint32_t>* load) {
  uint32_t left = 100;
  int first = -1;
  for (size_t p = 0; p < shares.size(); ++p) {
    if (first < 0 && shares[p] > 0) first = static_cast<int>(p);
    (*load)[p] = std::min<uint32_t>(left, shares[p] * 100 / total);
    left -= (*load)[p];
  }
  (*load)[first] += left;
}

uint64_t requestHash(const LbRequest& request) {
  const uint64_t hash = request.has_hash ? request.hash : mix(request.random);
  // A retry lands elsewhere unless the mixed hash falls on the same host again by chance.
  return request.attempt == 0 ? hash : mix(hash + request.attempt * kGolden);
}

}  // namespace

uint64_t hashKey(std::string_view data) { return xxHash64(data, 0); }

LoadBalancer::~LoadBalancer() = default;

std::unique_ptr<LoadBalancer> LoadBalancer::build(const LbOptions& options,
                                                  std::span<const LbHost> hosts, int workers) {
  auto lb = std::unique_ptr<LoadBalancer>(new LoadBalancer());
  lb->policy_ = options.policy;
  workers = std::max(workers, 1);
  lb->cursors_ = std::make_unique<Cursors[]>(workers);
  if (hosts.empty()) return lb;

  std::vector<std::vector<uint32_t>> all, healthy;  // host indexes by priority
  for (uint32_t i = 0; i < hosts.size(); ++i) {
    const uint32_t p = std::min(hosts[i].priority, kMaxPriorities - 1);
    if (p >= all.size()) {
      all.resize(p + 1);
      healthy.resize(p + 1);
    }
    all[p].push_back(i);
    if (hosts[i].healthy) healthy[p].push_back(i);
    lb->weights_.push_back(std::max(hosts[i].weight, 1u));
  }
  const size_t levels = all.size();

  // Envoy's arithmetic. A level's health is its healthy share of hosts times the
  // overprovisioning factor, at most 100; the levels take load in order of priority up to their
  // health, scaled up to 100 in all when their health adds up to less.
  std::vector<uint64_t> health(levels), counts(levels);
  uint64_t total_health = 0;
  for (size_t p = 0; p < levels; ++p) {
    counts[p] = all[p].size();
    if (counts[p] > 0) {
      health[p] = std::min<uint64_t>(100, kOverprovisioning * healthy[p].size() / counts[p]);
    }
    total_health += health[p];
  }
  const uint64_t normalized = std::min<uint64_t>(100, total_health);
  // A level panics (balances over all its hosts) when fewer than the threshold's share of them
  // are healthy, unless the levels together are healthy enough to take all the load.
  const uint64_t threshold = options.healthy_panic_threshold;
  std::vector<bool> panic(levels);
  for (size_t p = 0; p < levels; ++p) {
    panic[p] = threshold > 0 && normalized < 100 &&
               (counts[p] == 0 || 100 * healthy[p].size() < threshold * counts[p]);
  }
  lb->loads_.assign(levels, 0);
  if (std::find(panic.begin(), panic.end(), false) == panic.end()) {
    distribute(counts, hosts.size(), &lb->loads_);  // all in panic: by host count
  } else if (normalized == 0) {
    lb->loads_[0] = 100;  // panic is off and no host is healthy: pick() finds none
  } else {
    distribute(health, normalized, &lb->loads_);
  }

  lb->levels_.resize(levels);
  for (size_t p = 0; p < levels; ++p) {
    Level& level = lb->levels_[p];
    level.hosts = panic[p] ? all[p] : healthy[p];
    lb->panic_ |= panic[p] && lb->loads_[p] > 0;
    if (level.hosts.empty()) continue;
    switch (options.policy) {
      case LbPolicy::kRoundRobin:
        level.schedule = smoothSchedule(lb->weights_, level.hosts);
        // Workers start at different points so they do not all hit the first host together.
        for (int w = 0; w < workers; ++w) {
          lb->cursors_[w].next[p] = static_cast<uint32_t>(w * level.schedule.size() / workers);
        }
        break;
      case LbPolicy::kLeastRequest:
      case LbPolicy::kRandom: {
        uint64_t running = 0;
        for (uint32_t i : level.hosts) level.cumulative.push_back(running += lb->weights_[i]);
        break;
      }
      case LbPolicy::kRingHash:
        buildRing(options, hosts, lb->weights_, level.hosts, &level.ring, &level.ring_hosts);
        break;
      case LbPolicy::kMaglev:
        level.table = maglevTable(options, hosts, lb->weights_, level.hosts);
        break;
    }
  }
  return lb;
}

uint32_t LoadBalancer::chooseLevel(uint64_t random) const {
  if (levels_.size() == 1) return 0;
  // Mixed differently from the level's own pick, so the two choices are unrelated.
  uint64_t point = below(mix(random ^ kGolden), 100);
  uint32_t p = 0;
  while (point >= loads_[p]) point -= loads_[p++];
  return p;
}

int LoadBalancer::pickIgnoringLoad(const LbRequest& request) const {
  if (levels_.empty()) return -1;
  const uint32_t p = chooseLevel(request.random);
  const Level& level = levels_[p];
  if (level.hosts.empty()) return -1;
  switch (policy_) {
    case LbPolicy::kRoundRobin: {
      uint32_t& next = cursors_[request.worker].next[p];
      const uint32_t host = level.schedule[next];
      next = next + 1 == level.schedule.size() ? 0 : next + 1;
      return host;
    }
    case LbPolicy::kLeastRequest:
    case LbPolicy::kRandom:
      return weightedPick(level.cumulative, level.hosts, mix(request.random));
    case LbPolicy::kRingHash: {
      // The first point at or after the hash, wrapping around.
      const uint64_t hash = requestHash(request);
      const size_t i = partitionPoint(level.ring, [hash](uint64_t point) { return point < hash; });
      return level.ring_hosts[i == level.ring.size() ? 0 : i];
    }
    case LbPolicy::kMaglev:
      return level.table[requestHash(request) % level.table.size()];
  }
  return -1;
}

std::pair<int, int> LoadBalancer::twoChoices(uint64_t random) const {
  if (levels_.empty()) return {-1, -1};
  const Level& level = levels_[chooseLevel(random)];
  if (level.hosts.empty()) return {-1, -1};
  // Mixed, the swapped halves are a second draw unrelated to the first.
  return {weightedPick(level.cumulative, level.hosts, mix(random)),
          weightedPick(level.cumulative, level.hosts, mix(rotl(random, 32)))};
}

}  // namespace sluice::upstream
