#pragma once

// The libcrypto primitives the access filters share, kept to the API BoringSSL also has.
// SHA-256 and SHA-1 use the low-level digest functions: in OpenSSL 3 the one-shot SHA256() and the
// EVP interface fetch the algorithm under a lock and allocate on every call, and these run on the
// request path (API key lookups, cache keys, body digests).
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sluice::crypto {

using Sha256Digest = std::array<uint8_t, 32>;
using Sha1Digest = std::array<uint8_t, 20>;

Sha256Digest sha256(std::string_view data);
Sha1Digest sha1(std::string_view data);

// SHA-256 over data that arrives in pieces; neither allocates nor locks.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  void update(std::span<const uint8_t> data);
  // Ends the digest; call once.
  Sha256Digest finish();

 private:
  SHA256_CTX ctx_;
};

// HMAC-SHA256 (RFC 2104).
Sha256Digest hmacSha256(std::string_view key, std::string_view data);

// Equal sizes and equal bytes, in time that depends only on the size: sizes are not secret,
// contents are.
bool constantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);
bool constantTimeEquals(std::string_view a, std::string_view b);

// Base64 with the standard alphabet and padding (RFC 4648 section 4).
std::string base64Encode(std::span<const uint8_t> data);
// Only the canonical encoding decodes: length a multiple of 4, no whitespace, '=' only as the last
// one or two characters, and the bits the padding leaves over zero. Each value then has exactly
// one accepted text, so two texts never stand for the same credential.
std::optional<std::string> base64Decode(std::string_view text);

// Bytes from the system's CSPRNG; false when it fails.
bool randomBytes(std::span<uint8_t> out);

}  // namespace sluice::crypto
