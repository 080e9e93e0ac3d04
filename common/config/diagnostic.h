#pragma once

#include <string>
#include <vector>

namespace sluice::config {

// One problem in a config set, located as precisely as the input allows.
struct Diagnostic {
  std::string file;
  int line = 0;          // 1-based; 0 when unknown
  std::string kind;      // "Cluster", ... ; empty for file-level problems
  std::string resource;  // the resource's name
  std::string field;     // e.g. "virtual_hosts[0].routes[1].route.cluster"
  std::string message;
  // A reference to a resource of another kind that does not exist. A proxy that receives the
  // kinds one at a time over ADS may see this until the other kind arrives.
  bool dangling_reference = false;

  // "routes.yaml:12: RouteConfiguration 'main': field 'virtual_hosts[0].domains': ..."
  std::string toString() const;
};

using Diagnostics = std::vector<Diagnostic>;

// All diagnostics, one per line.
std::string formatDiagnostics(const Diagnostics& diagnostics);

}  // namespace sluice::config
