#pragma once

// HTTP Basic authentication (RFC 7617) against htpasswd-style password hashes.
//
// Supported hashes: bcrypt ($2y$, $2b$, $2a$; htpasswd -B), SHA-crypt ($5$, $6$; mkpasswd) and,
// for compatibility with Envoy's basic_auth filter and htpasswd -s, {SHA} (unsalted SHA-1, weak:
// prefer bcrypt). Apache MD5 ($apr1$), MD5-crypt ($1$), DES crypt, yescrypt and plain text are
// refused when the config is built.
//
// bcrypt and SHA-crypt are slow on purpose, and a check runs on the worker's event loop: bcrypt
// at cost 10 takes about 100 ms, during which the worker serves nobody else. Hence the cost
// limits below, and VerifiedCache for clients that send the same credentials on every request.
// Failed checks are never cached, so every wrong password for a known user costs a full hash:
// put a rate limit in front of Basic authentication. An unknown user fails without hashing, as in
// nginx and Apache, so response times tell whether a user exists.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/filters/crypto/crypto.h"

namespace sluice::basic_auth {

// Each check blocks a worker for roughly half a second at these limits.
inline constexpr int kMaxBcryptCost = 12;
inline constexpr int kMaxShaCryptRounds = 500000;

// Splits an Authorization value "Basic <base64 of user:password>". The scheme is
// case-insensitive and followed by one or more spaces; the base64 is canonical with padding
// (crypto::base64Decode). The user is everything before the first ':' and is not empty; the
// password is the rest and may be empty or contain ':'. Control characters, which RFC 7617
// forbids, are refused in both: a NUL would end the password early for crypt().
bool parseBasic(std::string_view authorization_value, std::string* user, std::string* password);

// One user's password hash, checked for format and cost when the config is built.
class PasswordHash {
 public:
  enum class Scheme { kBcrypt, kSha256Crypt, kSha512Crypt, kSha1 };

  // The error says what is wrong and never repeats the hash.
  static absl::StatusOr<PasswordHash> parse(std::string_view hash);

  // bcrypt and SHA-crypt through libxcrypt's crypt_rn (reentrant, its state in a per-call
  // struct crypt_data), compared in constant time. bcrypt reads only the first 72 bytes of a
  // password: longer passwords that share them all verify.
  bool verify(std::string_view password) const;

  Scheme scheme() const { return scheme_; }
  // Whether a check costs more than a VerifiedCache lookup (everything but {SHA}).
  bool slow() const { return scheme_ != Scheme::kSha1; }
  const std::string& text() const { return text_; }

 private:
  PasswordHash(Scheme scheme, std::string text) : scheme_(scheme), text_(std::move(text)) {}

  Scheme scheme_;
  std::string text_;           // the hash as configured, NUL-terminated for crypt_rn
  crypto::Sha1Digest sha1_{};  // kSha1 only
};

// Successful checks a worker made recently, so that a client sending the same credentials on
// every request pays for bcrypt once per TTL instead of on every request. One per worker:
// single-threaded, no locks, and no allocation after construction. A hit costs one SHA-256 of
// user ":" password ":" hash and at most kWays constant-time comparisons.
//
// 8-way set associative, least recently used first out within a set. The hash is part of the key,
// so a changed password hash leaves old entries unreachable. The trade-off: an entry lets someone
// who can read the worker's memory test password guesses at SHA-256 speed instead of bcrypt
// speed; the TTL bounds how long an entry lives.
class VerifiedCache {
 public:
  using Key = crypto::Sha256Digest;
  static constexpr size_t kWays = 8;

  // `capacity` is rounded up to a multiple of kWays.
  VerifiedCache(size_t capacity, absl::Duration ttl);

  // The user has no ':' and the hash none either, so the key is unambiguous.
  static Key keyFor(std::string_view user, std::string_view password, std::string_view hash);

  // Unexpired at `now`; a hit counts as a use.
  bool contains(const Key& key, absl::Time now);
  // Remembers `key` until now + TTL, evicting an expired entry or else the set's least recently
  // used one.
  void insert(const Key& key, absl::Time now);

  size_t size() const { return size_; }  // entries held, expired ones included
  size_t capacity() const { return entries_.size(); }

 private:
  struct Entry {
    Key key{};
    absl::Time expires = absl::InfinitePast();
    uint64_t last_use = 0;
    bool used = false;
  };

  Entry* set(const Key& key);

  std::vector<Entry> entries_;
  absl::Duration ttl_;
  uint64_t uses_ = 0;
  size_t size_ = 0;
};

struct Credential {
  std::string_view user;
  uint32_t consumer = 0;  // index into the generation's consumers
  std::string_view hash;  // htpasswd-style, see PasswordHash
};

// Users and their password hashes; built once per config generation, then read by every worker.
class CredentialStore {
 public:
  // User names are unique, not empty, and contain neither ':' nor control characters (Basic
  // could not carry them). Errors name the user, never the hash.
  static absl::StatusOr<CredentialStore> build(const std::vector<Credential>& credentials);

  // The user's consumer when `password` matches.
  std::optional<uint32_t> check(std::string_view user, std::string_view password) const;
  // The same, consulting and filling the calling worker's cache for slow hashes.
  std::optional<uint32_t> check(std::string_view user, std::string_view password,
                                VerifiedCache& cache, absl::Time now) const;

 private:
  struct User {
    uint32_t consumer;
    PasswordHash hash;
  };
  const User* find(std::string_view user) const;

  absl::flat_hash_map<std::string, User> users_;
};

}  // namespace sluice::basic_auth
