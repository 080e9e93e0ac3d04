#include "common/config/data_source.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice::config {

bool hasDataSource(const v1::DataSource& source) {
  return source.specifier_case() != v1::DataSource::SPECIFIER_NOT_SET;
}

absl::StatusOr<std::string> readDataSource(const v1::DataSource& source, absl::string_view what) {
  switch (source.specifier_case()) {
    case v1::DataSource::kInlineString:
      return source.inline_string();
    case v1::DataSource::kFilename:
      break;
    case v1::DataSource::SPECIFIER_NOT_SET:
      return absl::InvalidArgumentError(absl::StrCat(what, ": neither filename nor inline_string"));
  }
  const std::string& path = source.filename();
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": cannot read '", path, "': ", std::strerror(errno)));
  }
  std::string data;
  char buf[16 * 1024];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    data.append(buf, n);
    if (data.size() > kMaxDataSourceBytes) {
      std::fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": '", path, "' is larger than ", kMaxDataSourceBytes, " bytes"));
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return absl::InvalidArgumentError(absl::StrCat(what, ": error reading '", path, "'"));
  return data;
}

}  // namespace sluice::config
