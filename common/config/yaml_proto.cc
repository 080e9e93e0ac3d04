#include "common/config/yaml_proto.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "yaml-cpp/yaml.h"

namespace sluice::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Bounds the work YAML aliases can cause ("billion laughs"): a config never needs this many.
constexpr int kMaxNodes = 1'000'000;

int lineOf(const YamlNode& node) { return node.line(); }

std::string nodeTypeName(const YamlNode& node) {
  switch (node.type()) {
    case YamlNode::Type::kMap:
      return "a mapping";
    case YamlNode::Type::kSequence:
      return "a list";
    case YamlNode::Type::kScalar:
      return absl::StrCat("'", node.scalar(), "'");
    default:
      return "nothing";
  }
}

class Converter {
 public:
  Converter(Origin* origin, Diagnostics* errors) : origin_(origin), errors_(errors) {}

  void message(const YamlNode& node, Message* msg, const std::string& path,
               std::initializer_list<absl::string_view> skip) {
    if (!count()) return;
    const Descriptor* desc = msg->GetDescriptor();
    if (!node.isMap()) {
      error(node, path,
            absl::StrCat("expected a mapping of ", desc->name(), " fields, got ",
                         nodeTypeName(node)));
      return;
    }
    if (desc->full_name() == "google.protobuf.Duration") {
      error(node, path, "expected a duration like '5s' or '250ms'");
      return;
    }
    std::vector<const FieldDescriptor*> seen;
    const std::vector<const YamlNode*>& entries = node.children();
    for (size_t i = 0; i + 1 < entries.size(); i += 2) {
      const YamlNode& key = *entries[i];
      if (!key.isScalar()) {
        error(key, path, "a mapping key must be a plain name");
        continue;
      }
      const std::string& name = key.scalar();
      if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
      const FieldDescriptor* field = desc->FindFieldByName(name);
      if (field == nullptr) field = desc->FindFieldByCamelcaseName(name);
      std::string field_path = path.empty() ? name : absl::StrCat(path, ".", name);
      if (field == nullptr) {
        error(
            key, field_path,
            absl::StrCat("unknown field in ", desc->name(), "; known fields: ", knownFields(desc)));
        continue;
      }
      if (field->name() != name) {
        field_path = path.empty() ? field->name() : absl::StrCat(path, ".", field->name());
      }
      origin_->field_lines.emplace(field_path, lineOf(key));
      if (std::find(seen.begin(), seen.end(), field) != seen.end()) {
        error(key, field_path, "given more than once");
        continue;
      }
      if (const auto* oneof = field->real_containing_oneof()) {
        auto other = std::find_if(seen.begin(), seen.end(), [&](const FieldDescriptor* f) {
          return f->real_containing_oneof() == oneof;
        });
        if (other != seen.end()) {
          error(key, field_path,
                absl::StrCat("'", (*other)->name(), "' and '", field->name(),
                             "' are alternatives; give only one of ", oneofMembers(oneof)));
          continue;
        }
      }
      seen.push_back(field);
      const YamlNode& value = *entries[i + 1];
      if (value.isNull()) continue;  // `field:` with nothing after it leaves the default
      if (field->is_repeated()) {
        if (!value.isSequence()) {
          error(value, field_path, absl::StrCat("expected a list, got ", nodeTypeName(value)));
          continue;
        }
        int index = 0;
        for (const YamlNode* item : value.children()) {
          single(*item, msg, field, absl::StrCat(field_path, "[", index++, "]"));
        }
      } else {
        single(value, msg, field, field_path);
      }
    }
  }

 private:
  bool count() {
    if (++nodes_ <= kMaxNodes) return true;
    if (nodes_ == kMaxNodes + 1) {
      errors_->push_back({.file = origin_->file,
                          .line = origin_->line,
                          .message = absl::StrCat("resource expands to more than ", kMaxNodes,
                                                  " values (YAML aliases?); refusing it")});
    }
    return false;
  }

  // One value of `field` (an element, for a repeated field), added to or set on `msg`.
  void single(const YamlNode& node, Message* msg, const FieldDescriptor* field,
              const std::string& path) {
    if (!count()) return;
    const Reflection* refl = msg->GetReflection();
    const bool rep = field->is_repeated();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Message* sub = rep ? refl->AddMessage(msg, field) : refl->MutableMessage(msg, field);
      if (field->message_type()->full_name() == "google.protobuf.Duration") {
        duration(node, sub, path);
      } else {
        if (node.isMap()) origin_->field_lines.emplace(path, lineOf(node));
        message(node, sub, path, {});
      }
      return;
    }
    if (!node.isScalar()) {
      error(node, path, absl::StrCat("expected ", scalarKind(field), ", got ", nodeTypeName(node)));
      return;
    }
    if (rep) origin_->field_lines.emplace(path, lineOf(node));
    const std::string& text = node.scalar();
    auto bad = [&](absl::string_view why) {
      error(node, path, absl::StrCat("expected ", scalarKind(field), ", got '", text, "'", why));
    };
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        rep ? refl->AddString(msg, field, text) : refl->SetString(msg, field, text);
        break;
      case FieldDescriptor::CPPTYPE_BOOL: {
        std::string lower = absl::AsciiStrToLower(text);
        if (lower != "true" && lower != "false") return bad("");
        rep ? refl->AddBool(msg, field, lower == "true")
            : refl->SetBool(msg, field, lower == "true");
        break;
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (!absl::SimpleAtoi(text, &v)) return bad("");
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
          if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
            return bad(" (out of range)");
          }
          rep ? refl->AddInt32(msg, field, v) : refl->SetInt32(msg, field, v);
        } else {
          rep ? refl->AddInt64(msg, field, v) : refl->SetInt64(msg, field, v);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        if (!text.empty() && text[0] == '-') return bad(" (must not be negative)");
        if (!absl::SimpleAtoi(text, &v)) return bad("");
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32) {
          if (v > std::numeric_limits<uint32_t>::max()) return bad(" (out of range)");
          rep ? refl->AddUInt32(msg, field, v) : refl->SetUInt32(msg, field, v);
        } else {
          rep ? refl->AddUInt64(msg, field, v) : refl->SetUInt64(msg, field, v);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v;
        if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) return bad("");
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
          rep ? refl->AddDouble(msg, field, v) : refl->SetDouble(msg, field, v);
        } else {
          rep ? refl->AddFloat(msg, field, v) : refl->SetFloat(msg, field, v);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* en = field->enum_type();
        const google::protobuf::EnumValueDescriptor* value = nullptr;
        for (int i = 0; i < en->value_count(); ++i) {
          if (absl::EqualsIgnoreCase(en->value(i)->name(), text)) value = en->value(i);
        }
        if (value == nullptr) return bad("");
        rep ? refl->AddEnum(msg, field, value) : refl->SetEnum(msg, field, value);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }

  void duration(const YamlNode& node, Message* msg, const std::string& path) {
    int64_t seconds;
    int32_t nanos;
    if (!node.isScalar() || !parseDuration(node.scalar(), &seconds, &nanos)) {
      error(
          node, path,
          absl::StrCat("expected a duration like '5s', '250ms' or '1m', got ", nodeTypeName(node)));
      return;
    }
    const Reflection* refl = msg->GetReflection();
    const Descriptor* desc = msg->GetDescriptor();
    refl->SetInt64(msg, desc->FindFieldByName("seconds"), seconds);
    refl->SetInt32(msg, desc->FindFieldByName("nanos"), nanos);
  }

  static std::string scalarKind(const FieldDescriptor* field) {
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return "a string";
      case FieldDescriptor::CPPTYPE_BOOL:
        return "true or false";
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
        return "an integer";
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        return "a non-negative integer";
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT:
        return "a number";
      case FieldDescriptor::CPPTYPE_ENUM: {
        std::vector<std::string> names;
        for (int i = 0; i < field->enum_type()->value_count(); ++i) {
          names.push_back(field->enum_type()->value(i)->name());
        }
        return absl::StrCat("one of ", absl::StrJoin(names, ", "));
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return absl::StrCat("a mapping of ", field->message_type()->name(), " fields");
    }
    return "a value";
  }

  static std::string knownFields(const Descriptor* desc) {
    std::vector<std::string> names;
    for (int i = 0; i < desc->field_count(); ++i) names.push_back(desc->field(i)->name());
    return absl::StrJoin(names, ", ");
  }

  static std::string oneofMembers(const google::protobuf::OneofDescriptor* oneof) {
    std::vector<std::string> names;
    for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
    return absl::StrJoin(names, ", ");
  }

  void error(const YamlNode& node, const std::string& path, std::string message) {
    errors_->push_back({.file = origin_->file,
                        .line = lineOf(node),
                        .field = path,
                        .message = std::move(message)});
  }

  Origin* origin_;
  Diagnostics* errors_;
  int nodes_ = 0;
};

void emitMessage(YAML::Emitter& out, const Message& msg);

void emitScalar(YAML::Emitter& out, const Message& msg, const FieldDescriptor* field, int index) {
  const Reflection* refl = msg.GetReflection();
  const bool rep = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s =
          rep ? refl->GetRepeatedString(msg, field, index) : refl->GetString(msg, field);
      out << s;
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      out << (rep ? refl->GetRepeatedBool(msg, field, index) : refl->GetBool(msg, field));
      break;
    case FieldDescriptor::CPPTYPE_INT32:
      out << (rep ? refl->GetRepeatedInt32(msg, field, index) : refl->GetInt32(msg, field));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      out << (rep ? refl->GetRepeatedInt64(msg, field, index) : refl->GetInt64(msg, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      out << (rep ? refl->GetRepeatedUInt32(msg, field, index) : refl->GetUInt32(msg, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      out << (rep ? refl->GetRepeatedUInt64(msg, field, index) : refl->GetUInt64(msg, field));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      out << (rep ? refl->GetRepeatedDouble(msg, field, index) : refl->GetDouble(msg, field));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      out << (rep ? refl->GetRepeatedFloat(msg, field, index) : refl->GetFloat(msg, field));
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      out << (rep ? refl->GetRepeatedEnum(msg, field, index) : refl->GetEnum(msg, field))->name();
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Message& sub =
          rep ? refl->GetRepeatedMessage(msg, field, index) : refl->GetMessage(msg, field);
      if (sub.GetDescriptor()->full_name() == "google.protobuf.Duration") {
        const Descriptor* d = sub.GetDescriptor();
        const Reflection* r = sub.GetReflection();
        out << formatDuration(r->GetInt64(sub, d->FindFieldByName("seconds")),
                              r->GetInt32(sub, d->FindFieldByName("nanos")));
      } else {
        emitMessage(out, sub);
      }
      break;
    }
  }
}

// Emits the set fields of `msg` as key/value pairs of the mapping being written.
void emitFields(YAML::Emitter& out, const Message& msg) {
  std::vector<const FieldDescriptor*> fields;
  msg.GetReflection()->ListFields(msg, &fields);
  for (const FieldDescriptor* field : fields) {
    out << YAML::Key << field->name() << YAML::Value;
    if (field->is_repeated()) {
      out << YAML::BeginSeq;
      int n = msg.GetReflection()->FieldSize(msg, field);
      for (int i = 0; i < n; ++i) emitScalar(out, msg, field, i);
      out << YAML::EndSeq;
    } else {
      emitScalar(out, msg, field, -1);
    }
  }
}

void emitMessage(YAML::Emitter& out, const Message& msg) {
  out << YAML::BeginMap;
  emitFields(out, msg);
  out << YAML::EndMap;
}

}  // namespace

bool yamlToProto(const YamlNode& node, Message* message, Origin* origin, Diagnostics* errors,
                 std::initializer_list<absl::string_view> skip) {
  size_t before = errors->size();
  Converter(origin, errors).message(node, message, "", skip);
  return errors->size() == before;
}

bool parseDuration(absl::string_view text, int64_t* seconds, int32_t* nanos) {
  struct Unit {
    absl::string_view suffix;
    double seconds;
  };
  // Longest suffixes first so that "ms" is not read as "s".
  static constexpr Unit kUnits[] = {{"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9},
                                    {"s", 1},     {"m", 60},    {"h", 3600}};
  for (const Unit& unit : kUnits) {
    if (text.size() <= unit.suffix.size() || !absl::EndsWith(text, unit.suffix)) continue;
    absl::string_view number = text.substr(0, text.size() - unit.suffix.size());
    if (number.empty() || number[0] == '-' || number[0] == '+') return false;
    double value;
    if (!absl::SimpleAtod(number, &value) || !std::isfinite(value)) return false;
    double total = value * unit.seconds;
    if (total > 315'576'000'000.0) return false;  // protobuf Duration's range
    *seconds = static_cast<int64_t>(total);
    *nanos = static_cast<int32_t>(std::llround((total - static_cast<double>(*seconds)) * 1e9));
    if (*nanos >= 1'000'000'000) {
      *seconds += 1;
      *nanos -= 1'000'000'000;
    }
    return true;
  }
  return false;
}

std::string formatDuration(int64_t seconds, int32_t nanos) {
  if (nanos == 0) {
    if (seconds != 0 && seconds % 3600 == 0) return absl::StrCat(seconds / 3600, "h");
    if (seconds != 0 && seconds % 60 == 0) return absl::StrCat(seconds / 60, "m");
    return absl::StrCat(seconds, "s");
  }
  if (seconds == 0) {
    if (nanos % 1'000'000 == 0) return absl::StrCat(nanos / 1'000'000, "ms");
    if (nanos % 1'000 == 0) return absl::StrCat(nanos / 1'000, "us");
    return absl::StrCat(nanos, "ns");
  }
  std::string frac = absl::StrCat(1'000'000'000 + nanos).substr(1);
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return absl::StrCat(seconds, ".", frac, "s");
}

std::string protoToYaml(const Message& message, absl::string_view kind,
                        const std::vector<std::string>& node_groups) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (!kind.empty()) out << YAML::Key << "kind" << YAML::Value << std::string(kind);
  if (!node_groups.empty()) {
    out << YAML::Key << "node_groups" << YAML::Value << YAML::Flow << node_groups;
  }
  emitFields(out, message);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace sluice::config
