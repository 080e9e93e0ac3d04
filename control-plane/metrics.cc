#include "control-plane/metrics.h"

#include "prometheus/family.h"

namespace sluice::cp {
namespace {

prometheus::Counter& counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      snapshots_published(counter(*registry_, "sluice_cp_snapshots_published_total",
                                  "Valid config versions published to proxies.")),
      snapshots_rejected(counter(*registry_, "sluice_cp_snapshots_rejected_total",
                                 "Config directory changes rejected as invalid.")),
      config_valid(gauge(*registry_, "sluice_cp_config_valid",
                         "1 if the config directory is valid now, 0 if a change was rejected.")),
      config_errors(gauge(*registry_, "sluice_cp_config_errors",
                          "Problems found in the config directory as it is now.")),
      connected_proxies(
          gauge(*registry_, "sluice_cp_connected_proxies", "Proxies with an open ADS stream.")),
      management_(prometheus::BuildCounter()
                      .Name("sluice_cp_management_requests_total")
                      .Help("Management API calls by method and result.")
                      .Register(*registry_)) {
  auto& acks = prometheus::BuildCounter()
                   .Name("sluice_cp_xds_ack_total")
                   .Help("ACKs received from proxies, by resource type.")
                   .Register(*registry_);
  auto& nacks = prometheus::BuildCounter()
                    .Name("sluice_cp_xds_nack_total")
                    .Help("NACKs received from proxies, by resource type.")
                    .Register(*registry_);
  auto& responses = prometheus::BuildCounter()
                        .Name("sluice_cp_xds_responses_total")
                        .Help("DiscoveryResponses sent to proxies, by resource type.")
                        .Register(*registry_);
  for (int i = 0; i < config::kKindCount; ++i) {
    std::string type(config::kindInfo(static_cast<config::Kind>(i)).name);
    acks_[i] = &acks.Add({{"type", type}});
    nacks_[i] = &nacks.Add({{"type", type}});
    responses_[i] = &responses.Add({{"type", type}});
  }
}

prometheus::Counter& Metrics::management(const std::string& method, const std::string& result) {
  return management_.Add({{"method", method}, {"result", result}});
}

}  // namespace sluice::cp
