#pragma once

// Bearer tokens for the admin endpoint (sluice --admin-token-file), the management API
// (sluice-cp --token-file) and sluicectl (--token-file). A token comes from a file so that it is
// not visible in the process list; it is never logged.
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice::token {

// The token in file `path`: its first line without surrounding whitespace. Fails, naming `flag`
// but never the contents, when the file cannot be read, the token is empty, or it holds
// characters an HTTP header value or gRPC metadata cannot carry.
absl::StatusOr<std::string> readFile(const std::string& path, absl::string_view flag);

// Whether `authorization` is exactly "Bearer <token>". Constant time in the length of the
// expected value, so that timing does not tell how much of a guess was right.
bool bearerMatches(absl::string_view authorization, absl::string_view token);

// Whether a listening address (HOST:PORT, [IPv6]:PORT, or gRPC's unix:PATH) can only be reached
// from this machine: 127.0.0.0/8, ::1, "localhost" or a Unix socket. Anything else (0.0.0.0, ::,
// another address, a host name) may be reachable from the network.
bool isLoopback(absl::string_view address);

}  // namespace sluice::token
