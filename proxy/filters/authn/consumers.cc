#include "proxy/filters/authn/consumers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/config/data_source.h"

namespace sluice::authn {

absl::StatusOr<std::shared_ptr<const Consumers>> Consumers::compile(
    const std::vector<config::Sourced<config::v1::Consumer>>& consumers) {
  auto out = std::make_shared<Consumers>();
  // Keys and secrets read from files live here while the stores are built (the stores keep
  // digests or copies of their own).
  std::vector<std::string> secrets;
  std::vector<api_key::KeyEntry> keys;
  std::vector<basic_auth::Credential> users;
  std::vector<hmac_auth::SecretEntry> hmac;
  for (uint32_t i = 0; i < consumers.size(); ++i) {
    const config::v1::Consumer& c = consumers[i].resource;
    out->consumers_.push_back({c.name(), {c.groups().begin(), c.groups().end()}});
  }
  // Second pass: the names above no longer move, so entries may point at them.
  size_t secret_count = 0;
  for (const auto& item : consumers) {
    secret_count += item.resource.api_keys_size() + item.resource.hmac_keys_size();
  }
  secrets.reserve(secret_count);
  for (uint32_t i = 0; i < consumers.size(); ++i) {
    const config::v1::Consumer& c = consumers[i].resource;
    const std::string& name = out->consumers_[i].name;
    for (int k = 0; k < c.api_keys_size(); ++k) {
      const config::v1::ApiKeyCredential& key = c.api_keys(k);
      if (key.key_case() == config::v1::ApiKeyCredential::kSha256) {
        secrets.push_back(absl::StrCat("sha256:", key.sha256()));
      } else {
        auto value = config::readDataSource(
            key.value(), absl::StrCat("consumer '", name, "' api_keys[", k, "].value"));
        if (!value.ok()) return value.status();
        secrets.push_back(*std::move(value));
      }
      keys.push_back({.consumer = i, .consumer_name = name, .key = secrets.back()});
    }
    for (const config::v1::BasicAuthCredential& b : c.basic_auth()) {
      users.push_back({.user = b.username(), .consumer = i, .hash = b.password_hash()});
    }
    for (int k = 0; k < c.hmac_keys_size(); ++k) {
      const config::v1::HmacCredential& h = c.hmac_keys(k);
      auto secret = config::readDataSource(
          h.secret(), absl::StrCat("consumer '", name, "' hmac_keys[", k, "].secret"));
      if (!secret.ok()) return secret.status();
      secrets.push_back(*std::move(secret));
      hmac.push_back({.key_id = h.key_id(), .consumer = i, .secret = secrets.back()});
    }
    for (const std::string& subject : c.jwt_subjects()) out->subjects_.emplace(subject, i);
  }
  auto key_store = api_key::KeyStore::build(keys);
  if (!key_store.ok()) return key_store.status();
  out->api_keys_ = *std::move(key_store);
  auto user_store = basic_auth::CredentialStore::build(users);
  if (!user_store.ok()) return user_store.status();
  out->users_ = *std::move(user_store);
  auto hmac_store = hmac_auth::SecretStore::build(hmac);
  if (!hmac_store.ok()) return hmac_store.status();
  out->hmac_keys_ = *std::move(hmac_store);
  // Secrets read from files are not left behind in freed memory.
  for (std::string& s : secrets) std::fill(s.begin(), s.end(), '\0');
  return out;
}

const Consumer* Consumers::bySubject(std::string_view subject) const {
  auto it = subjects_.find(absl::string_view(subject.data(), subject.size()));
  return it == subjects_.end() ? nullptr : &consumers_[it->second];
}

}  // namespace sluice::authn
