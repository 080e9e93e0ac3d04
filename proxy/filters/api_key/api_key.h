#pragma once

// API keys: which consumer a presented key belongs to. The store keeps only SHA-256 digests of
// the keys, so neither a config dump nor a memory dump of the proxy reveals one, and an operator
// may configure the digest instead of the key. Built once per config generation on the main
// thread, then read by every worker; a lookup neither allocates nor locks.
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/filters/crypto/crypto.h"

namespace sluice::api_key {

struct KeyEntry {
  uint32_t consumer = 0;           // index into the generation's consumers
  std::string_view consumer_name;  // for error messages
  // The key itself, or "sha256:" followed by the 64 hex digits of its SHA-256 (either case). A
  // key that is itself text starting with "sha256:" therefore cannot be configured as is.
  std::string_view key;
};

class KeyStore {
 public:
  // Every key must be unique: one key belonging to two consumers would make the consumer depend
  // on configuration order. The error names the consumers, never the key.
  static absl::StatusOr<KeyStore> build(const std::vector<KeyEntry>& entries);

  // An empty store knows no key.
  KeyStore() = default;

  // The consumer whose key `presented` is. Hashes `presented` once and compares digests in
  // constant time; the slots probed follow from the presented key's own digest, so timing tells a
  // client which slots are taken and nothing about a stored key.
  std::optional<uint32_t> lookup(std::string_view presented) const;

  size_t size() const { return digests_.size(); }

 private:
  // Open addressing on the digests' first bytes: slots_ holds an index into digests_ plus one,
  // 0 for an empty slot, and has a power of two size of at least twice the keys.
  std::vector<crypto::Sha256Digest> digests_;
  std::vector<uint32_t> consumers_;
  std::vector<uint32_t> slots_;
};

}  // namespace sluice::api_key
