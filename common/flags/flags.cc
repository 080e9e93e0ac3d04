#include "common/flags/flags.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"

namespace sluice::flags {

std::vector<std::string> parse(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-') continue;
    size_t start = a[1] == '-' ? 2 : 1;
    size_t end = a.find('=');
    for (size_t j = start; j < a.size() && j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  std::vector<char*> rest = absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
  return {rest.begin() + 1, rest.end()};
}

}  // namespace sluice::flags
