#pragma once

// The access phase of every route of a route configuration: each route's AccessPolicy (or its
// virtual host's) compiled into a filter chain in phase order: IP list, authentication,
// authorization. Routes that share a policy share its chain.
#include "absl/status/status.h"
#include "proxy/router/route_table.h"
#include "proxy/stats/store.h"
#include "sluice/config/v1/route.pb.h"

namespace sluice::access {

// Compiles the access policies of `config` into `table` (compiled from `config`), before the
// table is shared. Reads the files of local key sets; errors name the route configuration.
absl::Status attachAccessChains(const config::v1::RouteConfiguration& config,
                                router::RouteTable* table, stats::Store* store);

}  // namespace sluice::access
