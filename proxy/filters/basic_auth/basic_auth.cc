#include "proxy/filters/basic_auth/basic_auth.h"

#include <crypt.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace sluice::basic_auth {
namespace {

constexpr std::string_view kCryptAlphabet =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr char kUseBcrypt[] = "hash the password with bcrypt (htpasswd -B) instead";

bool allCrypt64(std::string_view text) {
  return text.find_first_not_of(kCryptAlphabet) == text.npos;
}

bool isControl(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

bool startsWithIgnoreCase(std::string_view text, std::string_view lower_prefix) {
  if (text.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower_prefix[i]) return false;
  }
  return true;
}

// Decimal digits only, no leading zero (crypt would print the number back without it, and the
// hash would never match), at most 9 of them.
std::optional<int> parseNumber(std::string_view text) {
  if (text.empty() || text.size() > 9 || (text[0] == '0' && text.size() > 1)) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// "$2y$" cost(2 digits) "$" salt(22) hash(31).
absl::Status checkBcrypt(std::string_view hash) {
  const absl::Status malformed = absl::InvalidArgumentError(
      "a bcrypt hash is '$2y$' (or '$2b$', '$2a$'), a two-digit cost, '$' and 53 characters of "
      "[./0-9A-Za-z]");
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (hash.size() != 60 || !digit(hash[4]) || !digit(hash[5]) || hash[6] != '$' ||
      !allCrypt64(hash.substr(7))) {
    return malformed;
  }
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > kMaxBcryptCost) {
    return absl::InvalidArgumentError(
        absl::StrCat("bcrypt cost ", cost, " is outside 4 to ", kMaxBcryptCost,
                     " (higher costs hold a worker for a second or more per check)"));
  }
  return absl::OkStatus();
}

// "$5$" or "$6$", optionally "rounds=N$", salt (1 to 16 characters) "$" hash (43 or 86).
absl::Status checkShaCrypt(std::string_view hash, size_t hash_chars) {
  const absl::Status malformed = absl::InvalidArgumentError(absl::StrCat(
      "a SHA-crypt hash is '", std::string(hash.substr(0, 3)), "', optionally 'rounds=<1000 to ",
      kMaxShaCryptRounds, ">$', a salt of 1 to 16 characters, '$' and ", hash_chars,
      " characters, all of [./0-9A-Za-z]"));
  std::string_view rest = hash.substr(3);
  constexpr std::string_view kRounds = "rounds=";
  if (rest.starts_with(kRounds)) {
    const size_t end = rest.find('$');
    if (end == rest.npos) return malformed;
    const std::optional<int> rounds =
        parseNumber(rest.substr(kRounds.size(), end - kRounds.size()));
    if (!rounds) return malformed;
    if (*rounds < 1000 || *rounds > kMaxShaCryptRounds) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SHA-crypt rounds ", *rounds, " are outside 1000 to ", kMaxShaCryptRounds,
          " (crypt raises fewer to 1000, and more hold a worker for a second or more per "
          "check)"));
    }
    rest.remove_prefix(end + 1);
  }
  const size_t dollar = rest.find('$');
  if (dollar == rest.npos || dollar == 0 || dollar > 16) return malformed;
  const std::string_view salt = rest.substr(0, dollar), digest = rest.substr(dollar + 1);
  if (!allCrypt64(salt) || digest.size() != hash_chars || !allCrypt64(digest)) return malformed;
  return absl::OkStatus();
}

}  // namespace

bool parseBasic(std::string_view authorization_value, std::string* user, std::string* password) {
  constexpr std::string_view kScheme = "basic";
  if (!startsWithIgnoreCase(authorization_value, kScheme)) return false;
  std::string_view encoded = authorization_value.substr(kScheme.size());
  if (encoded.empty() || encoded.front() != ' ') return false;
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  const std::optional<std::string> decoded = crypto::base64Decode(encoded);
  if (!decoded) return false;
  const size_t colon = decoded->find(':');
  if (colon == 0 || colon == decoded->npos) return false;
  for (char c : *decoded) {
    if (isControl(c)) return false;
  }
  user->assign(*decoded, 0, colon);
  password->assign(*decoded, colon + 1);
  return true;
}

absl::StatusOr<PasswordHash> PasswordHash::parse(std::string_view hash) {
  if (hash.starts_with("{SHA}")) {
    const std::optional<std::string> digest = crypto::base64Decode(hash.substr(5));
    if (!digest || digest->size() != crypto::Sha1Digest().size()) {
      return absl::InvalidArgumentError(
          "a {SHA} hash is '{SHA}' and the base64 of a 20-byte SHA-1 digest (htpasswd -s)");
    }
    PasswordHash parsed(Scheme::kSha1, std::string(hash));
    std::memcpy(parsed.sha1_.data(), digest->data(), parsed.sha1_.size());
    return parsed;
  }
  if (hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
    if (absl::Status status = checkBcrypt(hash); !status.ok()) return status;
    return PasswordHash(Scheme::kBcrypt, std::string(hash));
  }
  if (hash.starts_with("$5$")) {
    if (absl::Status status = checkShaCrypt(hash, 43); !status.ok()) return status;
    return PasswordHash(Scheme::kSha256Crypt, std::string(hash));
  }
  if (hash.starts_with("$6$")) {
    if (absl::Status status = checkShaCrypt(hash, 86); !status.ok()) return status;
    return PasswordHash(Scheme::kSha512Crypt, std::string(hash));
  }
  if (hash.starts_with("$apr1$")) {
    return absl::InvalidArgumentError(
        absl::StrCat("Apache MD5 ($apr1$) hashes are not supported: ", kUseBcrypt));
  }
  if (hash.starts_with("$1$")) {
    return absl::InvalidArgumentError(
        absl::StrCat("MD5-crypt ($1$) hashes are not supported: ", kUseBcrypt));
  }
  if (hash.starts_with("$") || hash.starts_with("{")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported password hash scheme (supported: bcrypt, SHA-crypt $5$ and $6$, {SHA}): ",
        kUseBcrypt));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("plain-text passwords and DES crypt hashes are not supported: ", kUseBcrypt));
}

bool PasswordHash::verify(std::string_view password) const {
  if (scheme_ == Scheme::kSha1) return crypto::constantTimeEquals(crypto::sha1(password), sha1_);
  // crypt_rn reads a C string: a NUL would cut the password short.
  if (password.find('\0') != password.npos) return false;
  // 32 KiB, too big for a small thread stack; crypt_rn wants it zeroed before its first use.
  auto data = std::make_unique<crypt_data>();
  if (password.size() >= sizeof(data->input)) return false;
  std::memcpy(data->input, password.data(), password.size());
  data->input[password.size()] = '\0';
  const char* computed = crypt_rn(data->input, text_.c_str(), data.get(), sizeof(crypt_data));
  return computed != nullptr && crypto::constantTimeEquals(std::string_view(computed), text_);
}

VerifiedCache::VerifiedCache(size_t capacity, absl::Duration ttl)
    : entries_(std::max<size_t>(1, (capacity + kWays - 1) / kWays) * kWays), ttl_(ttl) {}

VerifiedCache::Key VerifiedCache::keyFor(std::string_view user, std::string_view password,
                                         std::string_view hash) {
  crypto::Sha256 digest;
  digest.update(user);
  digest.update(std::string_view(":"));
  digest.update(password);
  digest.update(std::string_view(":"));
  digest.update(hash);
  return digest.finish();
}

VerifiedCache::Entry* VerifiedCache::set(const Key& key) {
  // SHA-256 output is uniform, so its first bytes pick the set.
  uint64_t bits;
  std::memcpy(&bits, key.data(), sizeof(bits));
  return &entries_[bits % (entries_.size() / kWays) * kWays];
}

bool VerifiedCache::contains(const Key& key, absl::Time now) {
  Entry* ways = set(key);
  for (size_t i = 0; i < kWays; ++i) {
    Entry& entry = ways[i];
    if (entry.used && now < entry.expires && crypto::constantTimeEquals(entry.key, key)) {
      entry.last_use = ++uses_;
      return true;
    }
  }
  return false;
}

void VerifiedCache::insert(const Key& key, absl::Time now) {
  Entry* ways = set(key);
  const auto reusable = [now](const Entry& entry) { return !entry.used || entry.expires <= now; };
  Entry* victim = nullptr;
  for (size_t i = 0; i < kWays; ++i) {
    Entry& entry = ways[i];
    if (entry.used && crypto::constantTimeEquals(entry.key, key)) {
      victim = &entry;
      break;
    }
    if (victim != nullptr && reusable(*victim)) continue;
    if (victim == nullptr || reusable(entry) || entry.last_use < victim->last_use) victim = &entry;
  }
  if (!victim->used) ++size_;
  *victim = Entry{key, now + ttl_, ++uses_, true};
}

absl::StatusOr<CredentialStore> CredentialStore::build(const std::vector<Credential>& credentials) {
  CredentialStore store;
  for (const Credential& credential : credentials) {
    const std::string user(credential.user);
    if (user.empty()) return absl::InvalidArgumentError("a Basic auth user name is empty");
    for (char c : user) {
      if (c == ':' || isControl(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat("user '", absl::CHexEscape(user),
                         "': Basic auth user names cannot contain ':' or control characters"));
      }
    }
    absl::StatusOr<PasswordHash> hash = PasswordHash::parse(credential.hash);
    if (!hash.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("user '", user, "': ", hash.status().message()));
    }
    if (!store.users_.try_emplace(user, User{credential.consumer, *std::move(hash)}).second) {
      return absl::InvalidArgumentError(absl::StrCat("user '", user, "' appears more than once"));
    }
  }
  return store;
}

const CredentialStore::User* CredentialStore::find(std::string_view user) const {
  auto it = users_.find(absl::string_view(user.data(), user.size()));
  return it == users_.end() ? nullptr : &it->second;
}

std::optional<uint32_t> CredentialStore::check(std::string_view user,
                                               std::string_view password) const {
  const User* found = find(user);
  if (found == nullptr || !found->hash.verify(password)) return std::nullopt;
  return found->consumer;
}

std::optional<uint32_t> CredentialStore::check(std::string_view user, std::string_view password,
                                               VerifiedCache& cache, absl::Time now) const {
  const User* found = find(user);
  if (found == nullptr) return std::nullopt;
  if (!found->hash.slow()) return check(user, password);
  const VerifiedCache::Key key = VerifiedCache::keyFor(user, password, found->hash.text());
  if (cache.contains(key, now)) return found->consumer;
  if (!found->hash.verify(password)) return std::nullopt;
  cache.insert(key, now);
  return found->consumer;
}

}  // namespace sluice::basic_auth
