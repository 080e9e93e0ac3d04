#pragma once

// Authorization (AccessPolicy.rbac), after authentication: the route's policy (rbac.h) compiled
// from its config and applied to each request. A denied request is answered 403; in shadow mode
// it is only counted.
#include <memory>

#include "absl/status/statusor.h"
#include "proxy/filters/rbac/rbac.h"
#include "proxy/http/filter.h"
#include "proxy/stats/store.h"
#include "sluice/config/v1/security.pb.h"

namespace sluice::rbac {

absl::StatusOr<Policy> compilePolicy(const config::v1::Rbac& config);

class RouteFilter : public http::AccessFilter {
 public:
  static absl::StatusOr<std::unique_ptr<RouteFilter>> compile(const config::v1::Rbac& config,
                                                              stats::Store* store);
  http::FilterStatus onRequest(http::AccessContext& ctx, http::LocalReply* reply) const override;

 private:
  Policy policy_;
  stats::CounterId allowed_, denied_, shadow_denied_;
};

}  // namespace sluice::rbac
