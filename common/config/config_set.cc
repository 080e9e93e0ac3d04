#include "common/config/config_set.h"

#include <algorithm>
#include <array>

#include "absl/strings/match.h"

namespace sluice::config {
namespace {

constexpr std::array<KindInfo, kKindCount> kKinds = {{
    {Kind::kCluster, "Cluster", "type.googleapis.com/sluice.config.v1.Cluster", "name"},
    {Kind::kClusterLoadAssignment, "ClusterLoadAssignment",
     "type.googleapis.com/sluice.config.v1.ClusterLoadAssignment", "cluster_name"},
    {Kind::kConsumer, "Consumer", "type.googleapis.com/sluice.config.v1.Consumer", "name"},
    {Kind::kRouteConfiguration, "RouteConfiguration",
     "type.googleapis.com/sluice.config.v1.RouteConfiguration", "name"},
    {Kind::kListener, "Listener", "type.googleapis.com/sluice.config.v1.Listener", "name"},
}};

}  // namespace

const KindInfo& kindInfo(Kind kind) { return kKinds[static_cast<int>(kind)]; }

const KindInfo* findKind(absl::string_view name) {
  for (const KindInfo& info : kKinds) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

const KindInfo* findKindByTypeUrl(absl::string_view type_url) {
  for (const KindInfo& info : kKinds) {
    if (info.type_url == type_url) return &info;
  }
  return nullptr;
}

int Origin::lineOf(absl::string_view path) const {
  while (!path.empty()) {
    auto it = field_lines.find(path);
    if (it != field_lines.end()) return it->second;
    size_t cut = path.find_last_of(".[");
    if (cut == absl::string_view::npos) break;
    path = path.substr(0, cut);
  }
  return line;
}

bool Origin::servedWherever(const Origin& other) const {
  if (node_groups.empty()) return true;
  if (other.node_groups.empty()) return false;
  return std::all_of(other.node_groups.begin(), other.node_groups.end(), [&](const std::string& g) {
    return std::find(node_groups.begin(), node_groups.end(), g) != node_groups.end();
  });
}

}  // namespace sluice::config
