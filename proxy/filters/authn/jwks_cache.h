#pragma once

// Key sets of JWT providers with a remote JWKS, as fetched by the main thread. Immutable: a
// fetch that brings new keys makes a new cache (sharing the other sets) inside a new
// generation, so workers read it without locks.
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "proxy/filters/jwt_authn/jwks.h"

namespace sluice::authn {

class JwksCache {
 public:
  // The key set fetched for `source` (remoteJwksKey()), or nullptr before its first fetch.
  const jwt_authn::KeySet* find(std::string_view source) const {
    auto it = sets_.find(absl::string_view(source.data(), source.size()));
    return it == sets_.end() ? nullptr : it->second.get();
  }
  // A copy with `source`'s key set replaced.
  std::shared_ptr<const JwksCache> with(const std::string& source,
                                        std::shared_ptr<const jwt_authn::KeySet> keys) const {
    auto copy = std::make_shared<JwksCache>(*this);
    copy->sets_[source] = std::move(keys);
    return copy;
  }

 private:
  absl::flat_hash_map<std::string, std::shared_ptr<const jwt_authn::KeySet>> sets_;
};

// Providers that fetch the same document through the same cluster share one fetch and key set.
inline std::string remoteJwksKey(std::string_view uri, std::string_view cluster) {
  std::string key(cluster);
  key.append(" ").append(uri);
  return key;
}

}  // namespace sluice::authn
