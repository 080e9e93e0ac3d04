// What the proxy does with a config directory, step by step and in one process, with the time of
// each step and the heap it leaves behind: read, parse (YAML -> protos), validate, compile a
// generation (as sluice's main thread does, metrics declared in a Store with --workers + 1 cell
// sets). Heap is glibc's count of bytes in use (mallinfo2: allocated chunks, their headers
// included, plus mmapped blocks), so it measures what the structures hold, not what the
// allocator keeps from freed parse garbage (which RSS includes).
//
// Prints one JSON object per directory. Used by tools/bench/scale.sh; also the target to profile:
//   perf record --call-graph dwarf bazel-bin/tools/bench/config_scale DIR
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/config/loader.h"
#include "common/config/validator.h"
#include "proxy/server/generation.h"
#include "proxy/stats/store.h"

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int64_t heapInUse() {
  struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// What the proxy's apply() compiles: every cluster (as the cluster manager does for a new
// config) and the generation around them.
absl::StatusOr<std::shared_ptr<sluice::server::Generation>> compileAll(
    const sluice::config::ConfigSet& config, int workers, sluice::stats::Store* store,
    sluice::upstream::Registry* registry) {
  std::map<std::string, const sluice::config::v1::ClusterLoadAssignment*> assignments;
  for (const auto& a : config.assignments) assignments[a.resource.cluster_name()] = &a.resource;
  std::vector<std::shared_ptr<const sluice::upstream::Cluster>> clusters;
  for (const auto& c : config.clusters) {
    auto it = assignments.find(c.resource.name());
    auto cluster = sluice::upstream::Cluster::compile(
        c.resource, it == assignments.end() ? nullptr : it->second, workers, store, registry);
    if (!cluster.ok()) return cluster.status();
    clusters.push_back(*std::move(cluster));
  }
  return sluice::server::compileGeneration(config, std::move(clusters), nullptr, store);
}

int usage() {
  std::fprintf(stderr, "usage: config_scale [--workers N] [--repeat N] [--only STEP] DIR...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice;
  int workers = 2;
  int repeat = 5;
  std::string only;  // "parse", "validate" or "compile": repeat just that step (for a profiler)
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--workers" || arg == "--repeat") && i + 1 < argc) {
      int* out = arg == "--workers" ? &workers : &repeat;
      if (!absl::SimpleAtoi(argv[++i], out) || *out < 1) return usage();
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (!arg.empty() && arg[0] == '-') {
      return usage();
    } else {
      dirs.push_back(arg);
    }
  }
  if (dirs.empty()) return usage();

  for (const std::string& dir : dirs) {
    const int64_t heap0 = heapInUse();
    config::Diagnostics errors;
    Clock::time_point t = Clock::now();
    std::vector<config::SourceFile> files = config::readConfigDirectory(dir, &errors);
    const double read_ms = msSince(t);
    const size_t file_count = files.size();
    size_t bytes = 0;
    for (const auto& f : files) bytes += f.content.size();
    const int64_t heap_files = heapInUse() - heap0;

    std::vector<double> parse_ms, validate_ms;
    config::ConfigSet parsed;
    for (int r = 0; r < (only == "parse" || only.empty() ? repeat : 1); ++r) {
      parsed = {};
      t = Clock::now();
      parsed = config::parseConfig(files, &errors);
      parse_ms.push_back(msSince(t));
    }
    const int64_t heap_parsed = heapInUse() - heap0 - heap_files;
    for (int r = 0; r < (only == "validate" || only.empty() ? repeat : 1); ++r) {
      t = Clock::now();
      config::Diagnostics semantic = config::validateConfig(parsed);
      validate_ms.push_back(msSince(t));
      if (r == 0) errors.insert(errors.end(), semantic.begin(), semantic.end());
    }
    if (!errors.empty()) {
      std::fprintf(stderr, "%s is invalid:\n%s\n", dir.c_str(),
                   config::formatDiagnostics(errors).c_str());
      return 1;
    }
    files.clear();
    files.shrink_to_fit();

    // The proxy's metric store and pool keys outlive generations; the first compile declares
    // every metric, later ones (reloads) find them declared.
    const int64_t heap_before_store = heapInUse();
    std::unique_ptr<stats::Store> store = stats::Store::create(workers + 1);
    upstream::Registry keys;
    const int64_t heap_empty_store = heapInUse() - heap_before_store;
    std::vector<double> compile_ms;
    std::shared_ptr<server::Generation> gen;
    int64_t heap_gen = 0, heap_gen_config = 0, heap_metrics = 0;
    for (int r = 0; r < (only == "compile" || only.empty() ? repeat : 1); ++r) {
      gen.reset();
      const int64_t before = heapInUse();
      t = Clock::now();
      auto compiled = compileAll(parsed, workers, store.get(), &keys);
      compile_ms.push_back(msSince(t));
      if (!compiled.ok()) {
        std::fprintf(stderr, "%s did not compile: %s\n", dir.c_str(),
                     std::string(compiled.status().message()).c_str());
        return 1;
      }
      gen = *std::move(compiled);
      if (r == 0) {
        // What the first compile added beyond the generation itself is the metrics' share.
        const int64_t total = heapInUse() - before;
        const int64_t with_gen = heapInUse();
        gen->config.reset();
        heap_gen_config = with_gen - heapInUse();
        gen.reset();
        heap_gen = with_gen - heapInUse();
        heap_metrics = total - heap_gen;
        compiled = compileAll(parsed, workers, store.get(), &keys);
        gen = *std::move(compiled);
      }
    }
    size_t routes = 0;
    for (const auto& [name, table] : gen->route_tables) routes += table->routeCount();

    std::printf(
        "{\"dir\":\"%s\",\"files\":%zu,\"bytes\":%zu,\"routes\":%zu,\"clusters\":%zu,"
        "\"read_ms\":%.2f,\"parse_ms\":%.2f,\"validate_ms\":%.2f,\"compile_first_ms\":%.2f,"
        "\"compile_ms\":%.2f,\"heap_files\":%lld,\"heap_parsed\":%lld,\"heap_generation\":%lld,"
        "\"heap_generation_config_copy\":%lld,\"heap_metrics\":%lld,\"heap_empty_store\":%lld,"
        "\"pool_keys\":%u}\n",
        dir.c_str(), file_count, bytes, routes, gen->clusters.size(), read_ms, median(parse_ms),
        median(validate_ms), compile_ms[0],
        median(std::vector<double>(compile_ms.begin() + 1, compile_ms.end())),
        static_cast<long long>(heap_files), static_cast<long long>(heap_parsed),
        static_cast<long long>(heap_gen), static_cast<long long>(heap_gen_config),
        static_cast<long long>(heap_metrics), static_cast<long long>(heap_empty_store),
        keys.size());
    std::fflush(stdout);
  }
  return 0;
}
