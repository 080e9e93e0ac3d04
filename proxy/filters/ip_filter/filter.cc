#include "proxy/filters/ip_filter/filter.h"

#include "absl/strings/str_cat.h"

namespace sluice::ip_filter {

absl::StatusOr<IpFilter> compileIpFilter(const config::v1::IpFilter& config,
                                         absl::string_view what) {
  auto allow = CidrSet::parse({config.allow().begin(), config.allow().end()});
  if (!allow.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ".allow: ", allow.status().message()));
  }
  auto deny = CidrSet::parse({config.deny().begin(), config.deny().end()});
  if (!deny.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ".deny: ", deny.status().message()));
  }
  return IpFilter(*std::move(allow), *std::move(deny));
}

http::FilterStatus RouteFilter::onRequest(http::AccessContext& ctx, http::LocalReply* reply) const {
  if (filter_.admits(ctx.client)) return http::FilterStatus::kContinue;
  ctx.cells->add(denied_);
  reply->status = 403;
  reply->body = "forbidden\n";
  return http::FilterStatus::kReply;
}

}  // namespace sluice::ip_filter
