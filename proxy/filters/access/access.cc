#include "proxy/filters/access/access.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "proxy/filters/authn/authn_filter.h"
#include "proxy/filters/ip_filter/filter.h"
#include "proxy/filters/rbac/filter.h"

namespace sluice::access {
namespace {

using Providers = std::vector<std::shared_ptr<const authn::JwtProvider>>;

absl::StatusOr<std::shared_ptr<const http::FilterChain>> compileChain(
    const config::v1::AccessPolicy& policy, const Providers& providers, const std::string& where,
    stats::Store* store) {
  auto chain = std::make_shared<http::FilterChain>();
  if (policy.has_ip_filter()) {
    auto filter = ip_filter::compileIpFilter(policy.ip_filter(), where + ".ip_filter");
    if (!filter.ok()) return filter.status();
    stats::CounterId denied =
        store->counter("sluice_ip_filter_denied_total",
                       "Requests answered 403 by an ip_filter, by scope.", {{"scope", "route"}});
    chain->filters.push_back(std::make_unique<ip_filter::RouteFilter>(*std::move(filter), denied));
  }
  if (policy.has_authentication()) {
    auto filter = authn::AuthnFilter::compile(policy.authentication(), providers, store);
    if (!filter.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".authentication: ", filter.status().message()));
    }
    chain->strip = (*filter)->strip();
    chain->filters.push_back(*std::move(filter));
  }
  if (policy.has_rbac()) {
    auto filter = rbac::RouteFilter::compile(policy.rbac(), store);
    if (!filter.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".rbac: ", filter.status().message()));
    }
    chain->filters.push_back(*std::move(filter));
  }
  if (chain->filters.empty()) return nullptr;
  return std::shared_ptr<const http::FilterChain>(std::move(chain));
}

}  // namespace

absl::Status attachAccessChains(const config::v1::RouteConfiguration& config,
                                router::RouteTable* table, stats::Store* store) {
  Providers providers;
  for (const config::v1::JwtProvider& p : config.jwt_providers()) {
    auto provider = authn::JwtProvider::compile(p, config.name());
    if (!provider.ok()) return provider.status();
    providers.push_back(*std::move(provider));
  }
  // forEachRoute visits routes in config order: the policies in the same order.
  std::vector<std::shared_ptr<const http::FilterChain>> chains;
  std::map<const config::v1::AccessPolicy*, std::shared_ptr<const http::FilterChain>> compiled;
  for (int v = 0; v < config.virtual_hosts_size(); ++v) {
    const config::v1::VirtualHost& vh = config.virtual_hosts(v);
    for (int r = 0; r < vh.routes_size(); ++r) {
      const config::v1::Route& route = vh.routes(r);
      const config::v1::AccessPolicy* policy = nullptr;
      std::string where;
      if (route.has_access()) {
        policy = &route.access();
        where = absl::StrCat("route configuration '", config.name(), "' virtual_hosts[", v,
                             "].routes[", r, "].access");
      } else if (vh.has_access()) {
        policy = &vh.access();
        where =
            absl::StrCat("route configuration '", config.name(), "' virtual_hosts[", v, "].access");
      }
      if (policy == nullptr) {
        chains.push_back(nullptr);
        continue;
      }
      auto it = compiled.find(policy);
      if (it == compiled.end()) {
        auto chain = compileChain(*policy, providers, where, store);
        if (!chain.ok()) return chain.status();
        it = compiled.emplace(policy, *std::move(chain)).first;
      }
      chains.push_back(it->second);
    }
  }
  size_t i = 0;
  table->forEachRoute([&](const std::string&, router::Route& route) {
    if (i < chains.size()) route.access = chains[i];
    ++i;
  });
  return absl::OkStatus();
}

}  // namespace sluice::access
