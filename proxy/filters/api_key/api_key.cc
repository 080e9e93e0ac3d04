#include "proxy/filters/api_key/api_key.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice::api_key {
namespace {

constexpr std::string_view kDigestPrefix = "sha256:";

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<crypto::Sha256Digest> parseHexDigest(std::string_view hex) {
  crypto::Sha256Digest digest;
  if (hex.size() != 2 * digest.size()) return std::nullopt;
  for (size_t i = 0; i < digest.size(); ++i) {
    const int high = hexValue(hex[2 * i]), low = hexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<uint8_t>(high << 4 | low);
  }
  return digest;
}

// SHA-256 output is uniform, so its first bytes serve as the table hash.
size_t slotOf(const crypto::Sha256Digest& digest, size_t mask) {
  uint64_t bits;
  std::memcpy(&bits, digest.data(), sizeof(bits));
  return bits & mask;
}

}  // namespace

absl::StatusOr<KeyStore> KeyStore::build(const std::vector<KeyEntry>& entries) {
  KeyStore store;
  size_t slot_count = 1;
  while (slot_count < 2 * entries.size()) slot_count *= 2;
  store.slots_.assign(entries.size() == 0 ? 0 : slot_count, 0);
  const size_t mask = slot_count - 1;
  std::vector<std::string_view> names;  // of digests_[i]'s consumer, for messages
  for (const KeyEntry& entry : entries) {
    const std::string consumer(entry.consumer_name);
    if (entry.key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("consumer '", consumer, "' has an empty API key"));
    }
    crypto::Sha256Digest digest;
    if (entry.key.starts_with(kDigestPrefix)) {
      const std::optional<crypto::Sha256Digest> parsed =
          parseHexDigest(entry.key.substr(kDigestPrefix.size()));
      if (!parsed) {
        return absl::InvalidArgumentError(absl::StrCat(
            "consumer '", consumer,
            "' has an API key starting with 'sha256:' that does not continue with the 64 hex "
            "digits of the key's SHA-256"));
      }
      if (*parsed == crypto::sha256("")) {
        return absl::InvalidArgumentError(
            absl::StrCat("consumer '", consumer, "' has the SHA-256 of an empty API key"));
      }
      digest = *parsed;
    } else {
      digest = crypto::sha256(entry.key);
    }
    size_t slot = slotOf(digest, mask);
    for (; store.slots_[slot] != 0; slot = (slot + 1) & mask) {
      const uint32_t other = store.slots_[slot] - 1;
      if (store.digests_[other] != digest) continue;
      if (store.consumers_[other] == entry.consumer) {
        return absl::InvalidArgumentError(
            absl::StrCat("consumer '", consumer, "' has the same API key twice"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("consumers '", std::string(names[other]), "' and '", consumer,
                       "' have the same API key; keys must be unique"));
    }
    store.slots_[slot] = static_cast<uint32_t>(store.digests_.size()) + 1;
    store.digests_.push_back(digest);
    store.consumers_.push_back(entry.consumer);
    names.push_back(entry.consumer_name);
  }
  return store;
}

std::optional<uint32_t> KeyStore::lookup(std::string_view presented) const {
  if (slots_.empty() || presented.empty()) return std::nullopt;
  const crypto::Sha256Digest digest = crypto::sha256(presented);
  const size_t mask = slots_.size() - 1;
  for (size_t slot = slotOf(digest, mask); slots_[slot] != 0; slot = (slot + 1) & mask) {
    const uint32_t index = slots_[slot] - 1;
    if (crypto::constantTimeEquals(digest, digests_[index])) return consumers_[index];
  }
  return std::nullopt;
}

}  // namespace sluice::api_key
