#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "common/config/config_set.h"
#include "common/config/diagnostic.h"
#include "common/config/yaml_tree.h"
#include "google/protobuf/message.h"

namespace sluice::config {

// Fills `message` from a YAML mapping, using the proto as the schema: field names as in the
// .proto (or their camelCase JSON names), enums by name (any case), durations as "5s", "250ms",
// "1.5s", "2m", "1h". Unknown fields, wrong types, out-of-range numbers, a field given twice and
// two members of one oneof are all reported; conversion goes on past errors so that every
// problem is found. Keys in `skip` are ignored (the resource envelope: kind, node_groups).
// Records each field's line in `origin->field_lines`. Returns false if anything was reported.
bool yamlToProto(const YamlNode& node, google::protobuf::Message* message, Origin* origin,
                 Diagnostics* errors, std::initializer_list<absl::string_view> skip = {});

// Parses a duration as accepted in config ("5s", "250ms", "1.5s", "100us", "2m", "1h").
bool parseDuration(absl::string_view text, int64_t* seconds, int32_t* nanos);
// The shortest exact rendering among "1h", "2m", "5s", "250ms", "100us", "1.5s".
std::string formatDuration(int64_t seconds, int32_t nanos);

// Renders a message as block YAML (proto field names, enums by name, durations as above),
// preceded by `kind: <kind>` and `node_groups:` when given. Fields at their default are left out.
std::string protoToYaml(const google::protobuf::Message& message, absl::string_view kind = {},
                        const std::vector<std::string>& node_groups = {});

}  // namespace sluice::config
