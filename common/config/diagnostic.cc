#include "common/config/diagnostic.h"

#include "absl/strings/str_cat.h"

namespace sluice::config {

std::string Diagnostic::toString() const {
  std::string out = file.empty() ? "<config>" : file;
  if (line > 0) absl::StrAppend(&out, ":", line);
  absl::StrAppend(&out, ": ");
  if (!kind.empty()) {
    absl::StrAppend(&out, kind);
    if (!resource.empty()) absl::StrAppend(&out, " '", resource, "'");
    absl::StrAppend(&out, ": ");
  }
  if (!field.empty()) absl::StrAppend(&out, "field '", field, "': ");
  absl::StrAppend(&out, message);
  return out;
}

std::string formatDiagnostics(const Diagnostics& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) absl::StrAppend(&out, d.toString(), "\n");
  return out;
}

}  // namespace sluice::config
