#pragma once

// The consumers of a config generation and their credentials, compiled once on the main thread
// and read by every worker: API keys (as digests), Basic users (password hashes), HMAC signing
// secrets and JWT subjects, each mapped to the consumer it identifies.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/config/config_set.h"
#include "proxy/filters/api_key/api_key.h"
#include "proxy/filters/basic_auth/basic_auth.h"
#include "proxy/filters/hmac_auth/hmac_auth.h"

namespace sluice::authn {

struct Consumer {
  std::string name;
  std::vector<std::string> groups;
};

class Consumers {
 public:
  // Reads the secrets' files; errors name the consumer and field, never a secret.
  static absl::StatusOr<std::shared_ptr<const Consumers>> compile(
      const std::vector<config::Sourced<config::v1::Consumer>>& consumers);

  size_t size() const { return consumers_.size(); }
  const Consumer& at(uint32_t index) const { return consumers_[index]; }
  const api_key::KeyStore& apiKeys() const { return api_keys_; }
  const basic_auth::CredentialStore& users() const { return users_; }
  const hmac_auth::SecretStore& hmacKeys() const { return hmac_keys_; }
  // The consumer whose jwt_subjects holds `subject`, or nullptr.
  const Consumer* bySubject(std::string_view subject) const;

 private:
  std::vector<Consumer> consumers_;
  api_key::KeyStore api_keys_;
  basic_auth::CredentialStore users_;
  hmac_auth::SecretStore hmac_keys_;
  absl::flat_hash_map<std::string, uint32_t> subjects_;
};

}  // namespace sluice::authn
