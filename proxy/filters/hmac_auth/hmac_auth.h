#pragma once

// HMAC request signing with replay protection.
//
// The scheme
// ----------
// A client holds a key id and a shared secret of at least 32 bytes. Every request carries
//
//   Date: Tue, 07 Nov 2023 09:30:00 GMT
//   X-Sluice-Nonce: 7b1c2f0e9a4d4e56b3f1c8d2a0e9f4b7
//   Digest: SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=
//   Authorization: Signature keyId="orders-client",algorithm="hmac-sha256",
//       headers="@request-target date x-sluice-nonce digest",signature="<base64>"
//
// (the Authorization value is one line; it is wrapped here). Date is the current time as an
// RFC 7231 IMF-fixdate. X-Sluice-Nonce is 16 to 128 characters of [A-Za-z0-9_-], new for every
// request: a random 128-bit value in hex or base64url will do. Digest is the base64 of the body's
// SHA-256 and is required when the request has a body.
//
// The signature is base64(HMAC-SHA256(secret, signing string)). As in the draft-cavage HTTP
// signatures, the signing string has one line per name listed in `headers`, in that order, joined
// with "\n" and without a final newline; a header's line is its name, ": " and its value as sent
// (several values of one header joined with ", "), and @request-target's is the method in
// lowercase, a space and the path with the query exactly as sent:
//
//   @request-target: post /v1/orders?dry_run=1
//   date: Tue, 07 Nov 2023 09:30:00 GMT
//   x-sluice-nonce: 7b1c2f0e9a4d4e56b3f1c8d2a0e9f4b7
//   digest: SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=
//
// `headers` must list @request-target, date and x-sluice-nonce, and digest when the request has
// a body; it may list further headers (host, content-type, ...), 32 names at most. Names are in
// lowercase, separated by single spaces, each at most once. The Authorization parameters are
// name="value" pairs separated by commas (spaces around them allowed), each exactly once, no
// others, and the values hold no '"' or '\'.
//
// The proxy accepts the request when it knows the key id, Date is within the configured clock
// skew (say 5 minutes) of the proxy's clock, the signature matches, this key id has not
// used the nonce while its Date was in the window, and the body matches Digest. A replay is
// refused: its nonce is remembered until its Date leaves the window, after which Date refuses it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/filters/crypto/crypto.h"
#include "proxy/filters/hmac_auth/nonce_cache.h"

namespace sluice::hmac_auth {

inline constexpr std::string_view kAlgorithm = "hmac-sha256";
inline constexpr std::string_view kNonceHeader = "x-sluice-nonce";
inline constexpr size_t kMinSecretSize = 32;
inline constexpr size_t kMaxSignedNames = 32;

// The Authorization parameters, as views into the header value.
struct SignatureParams {
  std::string_view key_id;
  std::string_view algorithm;
  std::string_view headers;
  std::string_view signature;  // base64
};

// nullopt unless the value is "Signature" (any case), spaces and exactly the four parameters.
std::optional<SignatureParams> parseAuthorization(std::string_view authorization_value);

// Whether `headers` is well formed and lists every required component.
bool coversRequiredComponents(std::string_view headers, bool has_body);

// 16 to 128 characters of [A-Za-z0-9_-].
bool validNonce(std::string_view nonce);

// A request header's value by lowercase name, several values joined with ", "; nullopt when
// absent.
using HeaderLookup = absl::FunctionRef<std::optional<std::string_view>(std::string_view name)>;

// The signing string for `headers`; nullopt when a name is malformed, a listed header is absent or
// a value holds a line break (which could forge another line).
std::optional<std::string> signingString(std::string_view headers, std::string_view method,
                                         std::string_view path_with_query, HeaderLookup header);

// HMAC-SHA256 of the signing string against a base64 signature, compared in constant time.
bool verifySignature(std::string_view secret, std::string_view signing_string,
                     std::string_view signature_base64);

// Exactly "Sun, 06 Nov 1994 08:49:37 GMT": the day name must be the date's, the date must exist.
std::optional<absl::Time> parseImfFixdate(std::string_view text);
// The Date parses and lies within `skew` of `now`, either way.
bool withinWindow(std::string_view date_header, absl::Time now, absl::Duration skew);

struct SecretEntry {
  std::string_view key_id;
  uint32_t consumer = 0;  // index into the generation's consumers
  std::string_view secret;
};

// Key ids and their secrets; built once per config generation, then read by every worker.
class SecretStore {
 public:
  struct Secret {
    uint32_t consumer;
    std::string secret;
  };

  // Key ids are unique, not empty, printable ASCII other than space, '"' and '\'; secrets have at
  // least kMinSecretSize bytes (RFC 2104: a key shorter than the hash output weakens the MAC).
  // Errors name the key id, never the secret.
  static absl::StatusOr<SecretStore> build(const std::vector<SecretEntry>& entries);

  const Secret* find(std::string_view key_id) const;

 private:
  absl::flat_hash_map<std::string, Secret> secrets_;
};

// Checks a body against "Digest: SHA-256=<base64>" as it streams past. The body must not reach
// the upstream before matches() says yes: buffer it, or the upstream acts on a tampered body.
class DigestVerifier {
 public:
  // nullopt unless the value is "SHA-256=" (algorithm in any case) and the base64 of 32 bytes.
  static std::optional<DigestVerifier> create(std::string_view digest_header);

  void update(std::string_view body_chunk) { hash_.update(body_chunk); }
  // After the last chunk; call once.
  bool matches();

 private:
  explicit DigestVerifier(const crypto::Sha256Digest& expected) : expected_(expected) {}

  crypto::Sha256 hash_;
  crypto::Sha256Digest expected_;
};

enum class Outcome {
  kOk,
  kMalformed,       // Authorization, Date, nonce or a signed header missing or malformed
  kUnknownKey,      // no such key id
  kStale,           // Date outside the window
  kBadSignature,    // the signature does not match
  kReplay,          // the nonce was used before
  kNonceCacheFull,  // freshness cannot be proven: refuse
};

struct Verdict {
  Outcome outcome = Outcome::kMalformed;
  uint32_t consumer = 0;  // with kOk
};

struct SignedRequest {
  std::string_view method;
  std::string_view path_with_query;  // the request target as sent
  HeaderLookup header;
  bool has_body = false;  // a Content-Length above 0 or a chunked body
};

// Every check but the body's digest, cheap ones first. The nonce is recorded only after the
// signature has matched, so a client without the secret cannot fill the cache. With kOk and a
// body, stream the body through a DigestVerifier made from the (signed) Digest header.
Verdict authenticate(std::string_view authorization, const SignedRequest& request,
                     const SecretStore& secrets, NonceCache& nonces, absl::Time now,
                     absl::Duration skew);

}  // namespace sluice::hmac_auth
