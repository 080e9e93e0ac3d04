#include "common/config/redact.h"

#include <string>

#include "sluice/config/v1/consumer.pb.h"
#include "sluice/config/v1/security.pb.h"
#include "sluice/config/v1/tls.pb.h"

namespace sluice::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void redactInline(v1::DataSource* source) {
  if (source->has_inline_string()) source->set_inline_string(kRedacted);
}

// Whether field `field` of a message of type `parent` holds a secret DataSource: a private
// key, a shared secret, an API key, or a key set (it may hold symmetric HS256 keys).
bool secretSource(const std::string& parent, const FieldDescriptor& field) {
  const std::string& name = field.name();
  if (parent == v1::TlsCertificate::descriptor()->full_name()) return name == "private_key";
  if (parent == v1::HmacCredential::descriptor()->full_name()) return name == "secret";
  if (parent == v1::ApiKeyCredential::descriptor()->full_name()) return name == "value";
  if (parent == v1::JwtProvider::descriptor()->full_name()) return name == "local_jwks";
  return false;
}

// Whether a string field holds a secret derived value (hashes of keys and passwords).
bool secretString(const std::string& parent, const FieldDescriptor& field) {
  if (parent == v1::ApiKeyCredential::descriptor()->full_name()) return field.name() == "sha256";
  if (parent == v1::BasicAuthCredential::descriptor()->full_name()) {
    return field.name() == "password_hash";
  }
  return false;
}

void redact(Message* message) {
  const Reflection* reflection = message->GetReflection();
  const std::string& type = message->GetDescriptor()->full_name();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->type() == FieldDescriptor::TYPE_STRING && !field->is_repeated()) {
      if (secretString(type, *field)) reflection->SetString(message, field, kRedacted);
      continue;
    }
    if (field->type() != FieldDescriptor::TYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
        redact(reflection->MutableRepeatedMessage(message, field, i));
      }
      continue;
    }
    Message* child = reflection->MutableMessage(message, field);
    if (secretSource(type, *field)) {
      redactInline(static_cast<v1::DataSource*>(child));
    } else {
      redact(child);
    }
  }
}

}  // namespace

void redactSecrets(Message* message) { redact(message); }

}  // namespace sluice::config
