// libFuzzer target for the config loader: one file through parsing, schema conversion and
// validation, and every diagnostic rendered.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string content(reinterpret_cast<const char*>(data), size);
  sluice::config::LoadResult result =
      sluice::config::loadFiles({{"fuzz.yaml", std::move(content)}});
  for (const sluice::config::Diagnostic& d : result.errors) {
    if (d.toString().empty()) __builtin_trap();
  }
  // Parts of a config are left out only with a diagnostic that says why.
  if (result.ok() && result.config.incomplete) __builtin_trap();
  return 0;
}
