#pragma once

#include <string>
#include <vector>

namespace sluice::flags {

// absl::ParseCommandLine, accepting the dashed spelling users type ("--config-dir") for the
// underscored flag names absl requires ("--config_dir"). Returns the positional arguments.
std::vector<std::string> parse(int argc, char** argv, const char* usage);

}  // namespace sluice::flags
