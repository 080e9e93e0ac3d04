#pragma once

// JSON objects into google.protobuf.Struct. protobuf's parser is lenient (single quotes,
// unquoted keys, trailing commas, unknown escapes such as "\x"), so the text is first checked
// against RFC 8259's grammar and a nesting bound; protobuf then rejects invalid UTF-8, duplicate
// keys and numbers out of range. Nothing here throws or logs: protobuf's messages quote the
// input, so they are dropped.
#include <string_view>

#include "google/protobuf/struct.pb.h"

namespace sluice::jwt_authn {

// Parses `json`, which must be exactly one JSON object nested at most `max_depth` deep.
bool parseJsonObject(std::string_view json, int max_depth, google::protobuf::Struct* out);

}  // namespace sluice::jwt_authn
