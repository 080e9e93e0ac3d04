#pragma once

// Secrets in config resources (private keys, shared secrets, API keys, password hashes,
// inline key sets) are replaced before a resource is shown: /config_dump, `sluicectl get`.
// File names stay: they are not secret and tell an operator where the bytes come from.
#include <google/protobuf/message.h>

namespace sluice::config {

inline constexpr char kRedacted[] = "[redacted]";

// Replaces every secret value in `message` (any resource or part of one) with kRedacted.
void redactSecrets(google::protobuf::Message* message);

}  // namespace sluice::config
