#pragma once

#include "common/config/config_set.h"
#include "common/config/diagnostic.h"

namespace sluice::config {

// Checks a parsed config set as a whole: names present and unique, every reference resolves
// (in every node group the referring resource is served to), regexes compile with RE2, numbers,
// durations, addresses and header names in range. Returns every problem found, in file order;
// empty means valid. The one validator: sluice-cp, sluicectl and the proxy all call it.
Diagnostics validateConfig(const ConfigSet& config);

}  // namespace sluice::config
