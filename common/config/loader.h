#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/config/config_set.h"
#include "common/config/diagnostic.h"

namespace sluice::config {

// Largest config file accepted; a bigger one is reported, not read.
inline constexpr size_t kMaxFileBytes = 16 << 20;
// Most config files in one directory.
inline constexpr size_t kMaxFiles = 1000;
// Most values (mappings, lists, keys, scalars) and most scalar text one file may hold, counting
// each use of a YAML alias in full: a few kilobytes of nested aliases expand to billions of
// values ("billion laughs"). A plain file within kMaxFileBytes rarely comes near either.
inline constexpr size_t kMaxFileValues = 4'000'000;
inline constexpr size_t kMaxFileText = 4 * kMaxFileBytes;

// A config file's name (as shown in diagnostics) and its text.
struct SourceFile {
  std::string name;
  std::string content;
};

// Whether `name` is one the loader reads: "*.yaml" or "*.yml", not hidden (editors' and our own
// temporary files start with a dot).
bool isConfigFileName(absl::string_view name);

// Reads the config files of a directory (not its subdirectories), sorted by name. Problems with
// the directory or a file (missing, unreadable, too large, not text) are added to `errors`; the
// other files are still read.
std::vector<SourceFile> readConfigDirectory(const std::string& dir, Diagnostics* errors);

// Reads one file or, for a directory, its config files. File names are kept as given.
std::vector<SourceFile> readConfigPath(const std::string& path, Diagnostics* errors);

// Parses files into resources: each file holds any number of YAML documents, each a resource
// (or a list of resources) with a `kind:` and optional `node_groups:`. Syntax, schema and type
// errors are added to `errors`; resources with errors are left out of the result.
ConfigSet parseConfig(const std::vector<SourceFile>& files, Diagnostics* errors);

struct LoadResult {
  std::vector<SourceFile> files;
  ConfigSet config;
  Diagnostics errors;  // empty: `config` is valid

  bool ok() const { return errors.empty(); }
};

// parseConfig + validateConfig over `files`.
LoadResult loadFiles(std::vector<SourceFile> files);
// readConfigDirectory + loadFiles.
LoadResult loadDirectory(const std::string& dir);

}  // namespace sluice::config
