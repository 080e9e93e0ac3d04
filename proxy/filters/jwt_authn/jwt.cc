#include "proxy/filters/jwt_authn/jwt.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proxy/filters/jwt_authn/base64url.h"
#include "proxy/filters/jwt_authn/json.h"

namespace sluice::jwt_authn {

using google::protobuf::Struct;
using google::protobuf::Value;

const char* failureName(Failure failure) {
  switch (failure) {
    case Failure::kNone:
      return "none";
    case Failure::kMalformed:
      return "malformed";
    case Failure::kUnsupportedAlg:
      return "unsupported_alg";
    case Failure::kNoMatchingKey:
      return "no_matching_key";
    case Failure::kBadSignature:
      return "bad_signature";
    case Failure::kExpired:
      return "expired";
    case Failure::kNotYetValid:
      return "not_yet_valid";
    case Failure::kWrongIssuer:
      return "wrong_issuer";
    case Failure::kWrongAudience:
      return "wrong_audience";
    case Failure::kMissingExp:
      return "missing_exp";
  }
  return "unknown";
}

std::optional<Algorithm> algorithmByName(std::string_view name) {
  // Case-sensitive (RFC 7515 section 4.1.1): "hs256" is not HS256.
  if (name == "RS256") return Algorithm::kRS256;
  if (name == "ES256") return Algorithm::kES256;
  if (name == "HS256") return Algorithm::kHS256;
  return std::nullopt;
}

const std::vector<std::string>* Claims::values(std::string_view name) const {
  const auto it =
      std::lower_bound(claims_.begin(), claims_.end(), name,
                       [](const Claim& claim, std::string_view n) { return claim.name < n; });
  if (it == claims_.end() || it->name != name) return nullptr;
  return &it->values;
}

bool Claims::contains(std::string_view name, std::string_view value) const {
  const auto it =
      std::lower_bound(claims_.begin(), claims_.end(), name,
                       [](const Claim& claim, std::string_view n) { return claim.name < n; });
  if (it == claims_.end() || it->name != name) return false;
  for (std::string_view v : it->values) {
    if (v == value) return true;
    // A word is never empty and never holds a space: "a  b" has the words "a" and "b".
    if (!it->is_string || value.empty() || value.find(' ') != std::string_view::npos) continue;
    while (!v.empty()) {
      const size_t space = v.find(' ');
      if (v.substr(0, space) == value) return true;
      if (space == std::string_view::npos) break;
      v.remove_prefix(space + 1);
    }
  }
  return false;
}

namespace {

// Integers exactly representable in a double; NumericDates and integral numbers beyond this
// have already lost precision in the JSON parser.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

std::string numberText(double v) {
  if (std::trunc(v) == v && std::fabs(v) <= kMaxExactInteger) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buffer[32];
  const std::to_chars_result r = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return std::string(buffer, r.ptr);
}

bool isScalar(const Value& v) {
  return v.kind_case() == Value::kStringValue || v.kind_case() == Value::kNumberValue ||
         v.kind_case() == Value::kBoolValue;
}

std::string scalarText(const Value& v) {
  switch (v.kind_case()) {
    case Value::kStringValue:
      return v.string_value();
    case Value::kNumberValue:
      return numberText(v.number_value());
    case Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    default:
      return {};
  }
}

bool numericDate(const Value& v, std::optional<int64_t>* out) {
  if (v.kind_case() != Value::kNumberValue) return false;
  const double seconds = std::floor(v.number_value());
  if (std::fabs(seconds) > kMaxExactInteger) return false;
  *out = static_cast<int64_t>(seconds);
  return true;
}

bool optionalString(const Struct& object, const std::string& name, std::string* out) {
  const auto it = object.fields().find(name);
  if (it == object.fields().end()) return true;
  if (it->second.kind_case() != Value::kStringValue) return false;
  *out = it->second.string_value();
  return true;
}

}  // namespace

// Fills Claims from the payload; a friend of Claims.
class ClaimsParser {
 public:
  // False when a registered claim has the wrong type.
  static bool parse(const Struct& payload, Claims* claims) {
    for (const auto& [name, value] : payload.fields()) {
      if (!registered(name, value, claims)) return false;
      if (value.kind_case() == Value::kNullValue) continue;
      Claims::Claim& claim = claims->claims_.emplace_back();
      claim.name = name;
      claim.is_string = value.kind_case() == Value::kStringValue;
      if (isScalar(value)) {
        claim.values.push_back(scalarText(value));
      } else if (value.kind_case() == Value::kListValue) {
        bool nested = false;
        for (const Value& element : value.list_value().values()) {
          if (isScalar(element)) {
            claim.values.push_back(scalarText(element));
          } else {
            nested = nested || element.kind_case() != Value::kNullValue;
          }
        }
        if (nested) keepJson(value, &claim);
      } else {
        keepJson(value, &claim);
      }
    }
    std::sort(claims->claims_.begin(), claims->claims_.end(),
              [](const Claims::Claim& a, const Claims::Claim& b) { return a.name < b.name; });
    return true;
  }

 private:
  static bool registered(const std::string& name, const Value& value, Claims* claims) {
    if (name == "iss" || name == "sub") {
      if (value.kind_case() != Value::kStringValue) return false;
      (name == "iss" ? claims->iss : claims->sub) = value.string_value();
    } else if (name == "aud") {
      if (value.kind_case() == Value::kStringValue) {
        claims->aud.push_back(value.string_value());
      } else if (value.kind_case() == Value::kListValue) {
        for (const Value& element : value.list_value().values()) {
          if (element.kind_case() != Value::kStringValue) return false;
          claims->aud.push_back(element.string_value());
        }
      } else {
        return false;
      }
    } else if (name == "exp") {
      return numericDate(value, &claims->exp);
    } else if (name == "nbf") {
      return numericDate(value, &claims->nbf);
    } else if (name == "iat") {
      return numericDate(value, &claims->iat);
    }
    return true;
  }

  static void keepJson(const Value& value, Claims::Claim* claim) {
    // Cannot fail on a Value that came from JSON; on failure the claim just has no JSON.
    if (!google::protobuf::util::MessageToJsonString(value, &claim->json).ok()) claim->json.clear();
  }
};

absl::StatusOr<Jwt> parseJwt(std::string_view token, Failure* failure) {
  const auto fail = [failure](Failure why, const char* message) {
    if (failure != nullptr) *failure = why;
    return absl::InvalidArgumentError(message);
  };
  constexpr const char* kMalformed = "malformed token";
  if (token.size() > kMaxTokenBytes) return fail(Failure::kMalformed, "token too large");

  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(Failure::kMalformed, kMalformed);
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);

  Jwt jwt;
  std::string json;
  Struct header;
  if (!decodeBase64Url(header_b64, &json) || !parseJsonObject(json, kMaxJsonDepth, &header)) {
    return fail(Failure::kMalformed, kMalformed);
  }
  const auto alg = header.fields().find("alg");
  if (alg == header.fields().end() || alg->second.kind_case() != Value::kStringValue ||
      !optionalString(header, "kid", &jwt.kid) || !optionalString(header, "typ", &jwt.typ)) {
    return fail(Failure::kMalformed, kMalformed);
  }
  jwt.alg = alg->second.string_value();
  // RFC 7515 section 4.1.11: extensions listed in "crit" must be understood, and none are.
  if (header.fields().find("crit") != header.fields().end()) {
    return fail(Failure::kMalformed, kMalformed);
  }
  // Refused before the payload is even decoded. Header keys ("jwk", "jku", "x5u", "x5c") are
  // never used: a token cannot choose the key that verifies it.
  if (!algorithmByName(jwt.alg)) return fail(Failure::kUnsupportedAlg, "unsupported algorithm");

  Struct payload;
  if (!decodeBase64Url(payload_b64, &json) || !parseJsonObject(json, kMaxJsonDepth, &payload) ||
      !ClaimsParser::parse(payload, &jwt.claims)) {
    return fail(Failure::kMalformed, kMalformed);
  }
  if (signature_b64.empty() || !decodeBase64Url(signature_b64, &jwt.signature)) {
    return fail(Failure::kMalformed, kMalformed);
  }
  jwt.signing_input = std::string(token.substr(0, dot2));
  if (failure != nullptr) *failure = Failure::kNone;
  return jwt;
}

}  // namespace sluice::jwt_authn
