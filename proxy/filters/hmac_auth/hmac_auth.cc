#include "proxy/filters/hmac_auth/hmac_auth.h"

#include <array>
#include <cstring>
#include <iterator>
#include <span>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"

namespace sluice::hmac_auth {
namespace {

constexpr std::string_view kRequestTarget = "@request-target";

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trimSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// A header name as RFC 7230 tokens go, in lowercase.
bool validHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// Calls `fn` with each name of a `headers` parameter; false when the list is empty, a separator is
// anything but one space, a name is malformed or `fn` says so.
template <class Fn>
bool forEachName(std::string_view headers, Fn fn) {
  if (headers.empty()) return false;
  for (;;) {
    const size_t space = headers.find(' ');
    const std::string_view name = headers.substr(0, space);
    if (name != kRequestTarget && !validHeaderName(name)) return false;
    if (!fn(name)) return false;
    if (space == headers.npos) return true;
    headers.remove_prefix(space + 1);
  }
}

bool twoDigits(std::string_view text, size_t at, int* value) {
  if (text[at] < '0' || text[at] > '9' || text[at + 1] < '0' || text[at + 1] > '9') return false;
  *value = (text[at] - '0') * 10 + (text[at + 1] - '0');
  return true;
}

int indexOf(std::string_view name, std::span<const std::string_view> names) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

std::optional<SignatureParams> parseAuthorization(std::string_view authorization_value) {
  constexpr std::string_view kScheme = "Signature";
  if (authorization_value.size() <= kScheme.size() ||
      !equalsIgnoreCase(authorization_value.substr(0, kScheme.size()), kScheme) ||
      authorization_value[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  std::string_view rest = trimSpaces(authorization_value.substr(kScheme.size()));
  static constexpr struct {
    std::string_view name;
    std::string_view SignatureParams::*field;
  } kParams[] = {{"keyId", &SignatureParams::key_id},
                 {"algorithm", &SignatureParams::algorithm},
                 {"headers", &SignatureParams::headers},
                 {"signature", &SignatureParams::signature}};
  SignatureParams params;
  bool seen[std::size(kParams)] = {};
  for (;;) {
    const size_t equals = rest.find('=');
    if (equals == rest.npos) return std::nullopt;
    const std::string_view name = rest.substr(0, equals);
    rest.remove_prefix(equals + 1);
    if (rest.empty() || rest.front() != '"') return std::nullopt;
    const size_t close = rest.find('"', 1);
    if (close == rest.npos) return std::nullopt;
    const std::string_view value = rest.substr(1, close - 1);
    for (char c : value) {
      if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    }
    size_t index = 0;
    while (index < std::size(kParams) && kParams[index].name != name) ++index;
    if (index == std::size(kParams) || seen[index]) return std::nullopt;
    seen[index] = true;
    params.*kParams[index].field = value;
    rest = trimSpaces(rest.substr(close + 1));
    if (rest.empty()) break;
    if (rest.front() != ',') return std::nullopt;
    rest = trimSpaces(rest.substr(1));
  }
  for (bool present : seen) {
    if (!present) return std::nullopt;
  }
  return params;
}

bool coversRequiredComponents(std::string_view headers, bool has_body) {
  bool target = false, date = false, nonce = false, digest = false;
  std::array<std::string_view, kMaxSignedNames> names;
  size_t count = 0;
  const bool well_formed = forEachName(headers, [&](std::string_view name) {
    if (count == names.size() || indexOf(name, std::span(names.data(), count)) >= 0) return false;
    names[count++] = name;
    target = target || name == kRequestTarget;
    date = date || name == "date";
    nonce = nonce || name == kNonceHeader;
    digest = digest || name == "digest";
    return true;
  });
  return well_formed && target && date && nonce && (digest || !has_body);
}

bool validNonce(std::string_view nonce) {
  if (nonce.size() < 16 || nonce.size() > 128) return false;
  for (char c : nonce) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> signingString(std::string_view headers, std::string_view method,
                                         std::string_view path_with_query, HeaderLookup header) {
  std::string out;
  const bool complete = forEachName(headers, [&](std::string_view name) {
    if (!out.empty()) out += '\n';
    out.append(name);
    out += ": ";
    if (name == kRequestTarget) {
      for (char c : method) out += lower(c);
      out += ' ';
      out.append(path_with_query);
      return true;
    }
    const std::optional<std::string_view> value = header(name);
    if (!value || value->find_first_of("\r\n") != std::string_view::npos) return false;
    out.append(*value);
    return true;
  });
  if (!complete) return std::nullopt;
  return out;
}

bool verifySignature(std::string_view secret, std::string_view signing_string,
                     std::string_view signature_base64) {
  // Only canonical base64 decodes (crypto::base64Decode), so comparing the encoded texts is
  // comparing the signatures, without decoding what the client sent.
  const std::string expected = crypto::base64Encode(crypto::hmacSha256(secret, signing_string));
  return crypto::constantTimeEquals(expected, signature_base64);
}

std::optional<absl::Time> parseImfFixdate(std::string_view text) {
  static constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  if (text.size() != 29 || text.substr(3, 2) != ", " || text[7] != ' ' || text[11] != ' ' ||
      text[16] != ' ' || text[19] != ':' || text[22] != ':' || text.substr(25) != " GMT") {
    return std::nullopt;
  }
  const int weekday = indexOf(text.substr(0, 3), kDays);
  const int month = indexOf(text.substr(8, 3), kMonths) + 1;
  int day, century, year_in_century, hour, minute, second;
  if (weekday < 0 || month < 1 || !twoDigits(text, 5, &day) || !twoDigits(text, 12, &century) ||
      !twoDigits(text, 14, &year_in_century) || !twoDigits(text, 17, &hour) ||
      !twoDigits(text, 20, &minute) || !twoDigits(text, 23, &second)) {
    return std::nullopt;
  }
  // RFC 7231 allows second 60 for a leap second; it counts as the next minute's 00.
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const absl::CivilDay date(century * 100 + year_in_century, month, day);
  if (date.day() != day || date.month() != month) return std::nullopt;  // e.g. 31 Apr
  if (static_cast<int>(absl::GetWeekday(date)) != weekday) return std::nullopt;
  return absl::FromCivil(absl::CivilSecond(date.year(), month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

bool withinWindow(std::string_view date_header, absl::Time now, absl::Duration skew) {
  const std::optional<absl::Time> date = parseImfFixdate(date_header);
  return date && absl::AbsDuration(now - *date) <= skew;
}

absl::StatusOr<SecretStore> SecretStore::build(const std::vector<SecretEntry>& entries) {
  SecretStore store;
  for (const SecretEntry& entry : entries) {
    const std::string key_id(entry.key_id);
    if (key_id.empty()) return absl::InvalidArgumentError("an HMAC key id is empty");
    for (char c : key_id) {
      if (c <= ' ' || c > '~' || c == '"' || c == '\\') {
        return absl::InvalidArgumentError(
            absl::StrCat("HMAC key id '", absl::CHexEscape(key_id),
                         "' may hold only printable ASCII other than space, '\"' and '\\'"));
      }
    }
    if (entry.secret.size() < kMinSecretSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("the secret of HMAC key id '", key_id, "' has ", entry.secret.size(),
                       " bytes; HMAC-SHA256 secrets need at least ", kMinSecretSize));
    }
    if (!store.secrets_.try_emplace(key_id, Secret{entry.consumer, std::string(entry.secret)})
             .second) {
      return absl::InvalidArgumentError(
          absl::StrCat("HMAC key id '", key_id, "' appears more than once"));
    }
  }
  return store;
}

const SecretStore::Secret* SecretStore::find(std::string_view key_id) const {
  auto it = secrets_.find(absl::string_view(key_id.data(), key_id.size()));
  return it == secrets_.end() ? nullptr : &it->second;
}

std::optional<DigestVerifier> DigestVerifier::create(std::string_view digest_header) {
  constexpr std::string_view kPrefix = "SHA-256=";
  if (digest_header.size() < kPrefix.size() ||
      !equalsIgnoreCase(digest_header.substr(0, kPrefix.size()), kPrefix)) {
    return std::nullopt;
  }
  const std::optional<std::string> bytes =
      crypto::base64Decode(digest_header.substr(kPrefix.size()));
  crypto::Sha256Digest expected;
  if (!bytes || bytes->size() != expected.size()) return std::nullopt;
  std::memcpy(expected.data(), bytes->data(), expected.size());
  return DigestVerifier(expected);
}

bool DigestVerifier::matches() { return crypto::constantTimeEquals(hash_.finish(), expected_); }

Verdict authenticate(std::string_view authorization, const SignedRequest& request,
                     const SecretStore& secrets, NonceCache& nonces, absl::Time now,
                     absl::Duration skew) {
  const std::optional<SignatureParams> params = parseAuthorization(authorization);
  if (!params || params->algorithm != kAlgorithm ||
      !coversRequiredComponents(params->headers, request.has_body)) {
    return {Outcome::kMalformed};
  }
  const std::optional<std::string_view> nonce = request.header(kNonceHeader);
  const std::optional<std::string_view> date_header = request.header("date");
  if (!nonce || !validNonce(*nonce) || !date_header) return {Outcome::kMalformed};
  const std::optional<absl::Time> date = parseImfFixdate(*date_header);
  if (!date) return {Outcome::kMalformed};
  if (absl::AbsDuration(now - *date) > skew) return {Outcome::kStale};
  const SecretStore::Secret* secret = secrets.find(params->key_id);
  if (secret == nullptr) return {Outcome::kUnknownKey};
  const std::optional<std::string> signing_string =
      signingString(params->headers, request.method, request.path_with_query, request.header);
  if (!signing_string) return {Outcome::kMalformed};
  if (!verifySignature(secret->secret, *signing_string, params->signature)) {
    return {Outcome::kBadSignature};
  }
  // Remembered until the Date leaves the window; from then on the Date check refuses a replay.
  const auto now_s = static_cast<uint32_t>(absl::ToUnixSeconds(now));
  const auto expires_s = static_cast<uint32_t>(absl::ToUnixSeconds(*date + skew) + 1);
  switch (nonces.insert(nonces.keyFor(params->key_id, *nonce), now_s, expires_s)) {
    case NonceCache::kFresh:
      return {Outcome::kOk, secret->consumer};
    case NonceCache::kReplay:
      return {Outcome::kReplay};
    case NonceCache::kFull:
      return {Outcome::kNonceCacheFull};
  }
  return {Outcome::kNonceCacheFull};
}

}  // namespace sluice::hmac_auth
