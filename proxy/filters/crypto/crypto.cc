#include "proxy/filters/crypto/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace sluice::crypto {
namespace {

// Value of a base64 alphabet character, -1 for anything else ('=' included).
int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

Sha256Digest sha256(std::string_view data) {
  Sha256 hash;
  hash.update(data);
  return hash.finish();
}

Sha1Digest sha1(std::string_view data) {
  SHA_CTX ctx;
  SHA1_Init(&ctx);
  SHA1_Update(&ctx, data.data(), data.size());
  Sha1Digest digest;
  SHA1_Final(digest.data(), &ctx);
  return digest;
}

Sha256::Sha256() { SHA256_Init(&ctx_); }

void Sha256::update(std::string_view data) { SHA256_Update(&ctx_, data.data(), data.size()); }

void Sha256::update(std::span<const uint8_t> data) {
  SHA256_Update(&ctx_, data.data(), data.size());
}

Sha256Digest Sha256::finish() {
  Sha256Digest digest;
  SHA256_Final(digest.data(), &ctx_);
  return digest;
}

Sha256Digest hmacSha256(std::string_view key, std::string_view data) {
  Sha256Digest digest;
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data(), &size);
  return digest;
}

bool constantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string base64Encode(std::span<const uint8_t> data) {
  // EVP_EncodeBlock writes a terminating NUL after the 4 * ceil(n / 3) characters.
  std::string text((data.size() + 2) / 3 * 4 + 1, '\0');
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), data.data(),
                                   static_cast<int>(data.size()));
  text.resize(size);
  return text;
}

std::optional<std::string> base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  const size_t data_chars = text.size() - padding;
  for (size_t i = 0; i < data_chars; ++i) {
    if (base64Value(text[i]) < 0) return std::nullopt;
  }
  // The last data character carries 2 (one '=') or 4 (two '=') bits that encode nothing.
  if (padding > 0) {
    const int unused_mask = padding == 1 ? 0x03 : 0x0F;
    if ((base64Value(text[data_chars - 1]) & unused_mask) != 0) return std::nullopt;
  }
  std::string bytes(text.size() / 4 * 3, '\0');
  const int size = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                                   reinterpret_cast<const unsigned char*>(text.data()),
                                   static_cast<int>(text.size()));
  if (size < 0) return std::nullopt;
  // EVP_DecodeBlock counts the zero bytes the padding stands for.
  bytes.resize(static_cast<size_t>(size) - padding);
  return bytes;
}

bool randomBytes(std::span<uint8_t> out) {
  return RAND_bytes(out.data(), static_cast<int>(out.size())) == 1;
}

}  // namespace sluice::crypto
