#pragma once

// The IP list of a route or virtual host (AccessPolicy.ip_filter): the first access filter. A
// client outside it is answered 403 before anything else about it is looked at.
#include <memory>

#include "absl/status/statusor.h"
#include "proxy/filters/ip_filter/cidr.h"
#include "proxy/http/filter.h"
#include "proxy/stats/store.h"
#include "sluice/config/v1/security.pb.h"

namespace sluice::ip_filter {

// Compiles an IpFilter message; errors name `what` and the bad entry.
absl::StatusOr<IpFilter> compileIpFilter(const config::v1::IpFilter& config,
                                         absl::string_view what);

class RouteFilter : public http::AccessFilter {
 public:
  RouteFilter(IpFilter filter, stats::CounterId denied)
      : filter_(std::move(filter)), denied_(denied) {}

  http::FilterStatus onRequest(http::AccessContext& ctx, http::LocalReply* reply) const override;

 private:
  IpFilter filter_;
  stats::CounterId denied_;
};

}  // namespace sluice::ip_filter
