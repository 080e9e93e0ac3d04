#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "sluice/config/v1/cluster.pb.h"
#include "sluice/config/v1/consumer.pb.h"
#include "sluice/config/v1/listener.pb.h"
#include "sluice/config/v1/route.pb.h"

namespace sluice::config {

// The resource kinds, in the order the control plane sends changes: what is referred to comes
// before what refers to it (clusters, their endpoints, the consumers that access policies name,
// the routes naming clusters, the listeners naming routes), so a proxy never sees a new
// reference before its target.
enum class Kind {
  kCluster = 0,
  kClusterLoadAssignment = 1,
  kConsumer = 2,
  kRouteConfiguration = 3,
  kListener = 4,
};
inline constexpr int kKindCount = 5;

struct KindInfo {
  Kind kind;
  absl::string_view name;      // the YAML `kind:` value and the proto message name
  absl::string_view type_url;  // the xDS type URL
  absl::string_view name_field;
};

const KindInfo& kindInfo(Kind kind);
// The kind whose YAML name or type URL is `name`; nullptr if none.
const KindInfo* findKind(absl::string_view name);
const KindInfo* findKindByTypeUrl(absl::string_view type_url);

// Where a resource came from and which node groups it is served to.
struct Origin {
  std::string file;
  int line = 0;
  // Empty: every node group.
  std::vector<std::string> node_groups;
  // Line of each field path written in the YAML ("virtual_hosts[0].routes[1].match").
  std::map<std::string, int, std::less<>> field_lines;

  // The line of `path`, or of its closest written ancestor, or of the resource.
  int lineOf(absl::string_view path) const;
  // Whether this resource is served to every group that `other` is served to.
  bool servedWherever(const Origin& other) const;
};

template <class T>
struct Sourced {
  T resource;
  Origin origin;
};

// Every resource of a config directory, in file order.
struct ConfigSet {
  std::vector<Sourced<v1::Listener>> listeners;
  std::vector<Sourced<v1::RouteConfiguration>> route_configs;
  std::vector<Sourced<v1::Cluster>> clusters;
  std::vector<Sourced<v1::ClusterLoadAssignment>> assignments;
  std::vector<Sourced<v1::Consumer>> consumers;

  // Names of resources left out because they had schema errors, and whether a whole file could
  // not be parsed: the validator does not report references to what it cannot see.
  std::set<std::pair<Kind, std::string>, std::less<>> unparsed;
  bool incomplete = false;

  size_t size() const {
    return listeners.size() + route_configs.size() + clusters.size() + assignments.size() +
           consumers.size();
  }
};

}  // namespace sluice::config
