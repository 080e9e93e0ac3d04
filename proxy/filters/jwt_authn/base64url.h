#pragma once

// Unpadded base64url (RFC 7515 section 2, RFC 4648 section 5), strictly: tokens and JWKs have
// exactly one encoding of each byte string, so nothing else is accepted.
#include <string>
#include <string_view>

namespace sluice::jwt_authn {

// Decodes `in` into `out`. False on any byte outside the URL-safe alphabet (padding '=', '+',
// '/', whitespace included), on a length that no encoding has (4n + 1) and on non-zero unused
// bits in the last character.
bool decodeBase64Url(std::string_view in, std::string* out);

}  // namespace sluice::jwt_authn
