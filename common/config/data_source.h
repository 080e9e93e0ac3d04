#pragma once

// DataSource: bytes from a file or inline. One reader for certificates, keys, JWKS documents
// and shared secrets, so every one reports a missing or oversized file the same way.
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sluice/config/v1/tls.pb.h"

namespace sluice::config {

// Largest file a DataSource may name: certificates, keys and key sets are small.
inline constexpr size_t kMaxDataSourceBytes = 1 << 20;

// The bytes of `source`; `what` names it in errors ("listener 'https' certificate_chain").
// An unset DataSource is an error.
absl::StatusOr<std::string> readDataSource(const v1::DataSource& source, absl::string_view what);

// Whether `source` is set (a file name or inline bytes).
bool hasDataSource(const v1::DataSource& source);

}  // namespace sluice::config
