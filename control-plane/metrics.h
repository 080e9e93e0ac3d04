#pragma once

#include <array>
#include <memory>

#include "common/config/config_set.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace sluice::cp {

// Every metric sluice-cp exports, declared in one place (names after Envoy's, `sluice_` prefix).
class Metrics {
  // First: the metric references below are initialized from it.
  std::shared_ptr<prometheus::Registry> registry_;

 public:
  Metrics();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // A valid config with a new version was published.
  prometheus::Counter& snapshots_published;
  // A config directory change was rejected (invalid); the last good snapshot kept serving.
  prometheus::Counter& snapshots_rejected;
  // 1 while the directory as it is now is valid, 0 while a rejected change is pending.
  prometheus::Gauge& config_valid;
  // Number of problems in the directory as it is now.
  prometheus::Gauge& config_errors;
  // Proxies with an open ADS stream.
  prometheus::Gauge& connected_proxies;

  prometheus::Counter& acks(config::Kind kind) { return *acks_[static_cast<int>(kind)]; }
  prometheus::Counter& nacks(config::Kind kind) { return *nacks_[static_cast<int>(kind)]; }
  prometheus::Counter& responses(config::Kind kind) { return *responses_[static_cast<int>(kind)]; }
  // Management API calls by method and outcome ("ok", "rejected", "error", "unauthenticated").
  prometheus::Counter& management(const std::string& method, const std::string& result);

 private:
  prometheus::Family<prometheus::Counter>& management_;
  std::array<prometheus::Counter*, config::kKindCount> acks_;
  std::array<prometheus::Counter*, config::kKindCount> nacks_;
  std::array<prometheus::Counter*, config::kKindCount> responses_;
};

}  // namespace sluice::cp
