#include "common/config/loader.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config/validator.h"
#include "common/config/yaml_proto.h"
#include "common/config/yaml_tree.h"
#include "yaml-cpp/depthguard.h"
#include "yaml-cpp/exceptions.h"

namespace sluice::config {
namespace {

// The resource envelope: keys that are not fields of the resource's proto.
constexpr absl::string_view kKindKey = "kind";
constexpr absl::string_view kGroupsKey = "node_groups";

std::string errnoText() { return std::strerror(errno); }

std::string sizeText(size_t bytes) {
  // Whole MiB only: "16 MiB" for a file one byte over the limit would not say what is wrong.
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0) return absl::StrCat(bytes >> 20, " MiB");
  return absl::StrCat(bytes, " bytes");
}

// Reads a regular file, with the size and text checks of the loader.
bool readFile(const std::string& path, const std::string& name, std::string* content,
              Diagnostics* errors) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    errors->push_back({.file = name, .message = absl::StrCat("cannot read: ", errnoText())});
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    errors->push_back({.file = name, .message = "not a regular file"});
    return false;
  }
  if (static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    errors->push_back(
        {.file = name,
         .message = absl::StrCat("file is ", sizeText(st.st_size), "; config files are limited to ",
                                 sizeText(kMaxFileBytes))});
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errors->push_back({.file = name, .message = absl::StrCat("cannot open: ", errnoText())});
    return false;
  }
  content->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (content->size() > kMaxFileBytes) {  // grew since stat
    errors->push_back({.file = name, .message = "file grew past the size limit while read"});
    return false;
  }
  return true;
}

// Offset of the first byte of `s` that does not belong to a UTF-8 character (RFC 3629: no
// overlong forms, surrogates or code points past U+10FFFF), or npos.
size_t invalidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // The lead byte gives the length and the first bits of the code point.
    size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (len == 0 || s.size() - i < len) return i;
    uint32_t code = c & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) {
      const unsigned char next = s[i + k];
      if ((next & 0xc0) != 0x80) return i;
      code = code << 6 | (next & 0x3f);
    }
    if ((len == 3 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
        (len == 4 && (code < 0x10000 || code > 0x10ffff))) {
      return i;
    }
    i += len;
  }
  return absl::string_view::npos;
}

// Text checks that yaml-cpp does not make: binary input gives confusing parse errors, and
// yaml-cpp passes bytes that are not UTF-8 into strings, which protobuf then refuses to parse on
// the proxy (proto3 strings are UTF-8).
bool checkText(const SourceFile& file, Diagnostics* errors) {
  auto lineAt = [&](size_t offset) {
    return 1 +
           static_cast<int>(std::count(file.content.begin(), file.content.begin() + offset, '\n'));
  };
  size_t nul = file.content.find('\0');
  if (nul != std::string::npos) {
    errors->push_back({.file = file.name,
                       .line = lineAt(nul),
                       .message = absl::StrCat("not a text file (NUL byte at offset ", nul, ")")});
    return false;
  }
  size_t bad = invalidUtf8(file.content);
  if (bad != absl::string_view::npos) {
    errors->push_back(
        {.file = file.name,
         .line = lineAt(bad),
         .message =
             absl::StrCat("not UTF-8 text (byte 0x",
                          absl::Hex(static_cast<unsigned char>(file.content[bad]), absl::kZeroPad2),
                          " at offset ", bad, ")")});
    return false;
  }
  return true;
}

// Adds the values of `doc` (each use of an alias in full) to `values` and the bytes of its
// scalars to `text`; false once either passes its limit. Iterative: an alias can refer to the
// node that contains it, so the expanded document may be infinitely deep.
bool withinExpansionLimits(const YamlNode& doc, size_t* values, size_t* text) {
  std::vector<const YamlNode*> pending;
  auto count = [&](const YamlNode& node) {
    if (++*values > kMaxFileValues) return false;
    if (node.isScalar()) *text += node.scalar().size();
    if (!node.children().empty()) pending.push_back(&node);
    return *text <= kMaxFileText;
  };
  if (!count(doc)) return false;
  while (!pending.empty()) {
    const YamlNode* node = pending.back();
    pending.pop_back();
    for (const YamlNode* child : node->children()) {
      if (!count(*child)) return false;
    }
  }
  return true;
}

template <class T>
void addResource(const YamlNode& node, Origin origin, std::vector<Sourced<T>>* out,
                 absl::string_view kind, ConfigSet* config, Diagnostics* errors) {
  Sourced<T> item;
  item.origin = std::move(origin);
  Diagnostics local;
  yamlToProto(node, &item.resource, &item.origin, &local, {kKindKey, kGroupsKey});
  const KindInfo* info = findKind(kind);
  const auto* name_field =
      item.resource.GetDescriptor()->FindFieldByName(std::string(info->name_field));
  std::string name = item.resource.GetReflection()->GetString(item.resource, name_field);
  for (Diagnostic& d : local) {
    d.kind = std::string(kind);
    d.resource = name;
  }
  if (local.empty()) {
    out->push_back(std::move(item));
  } else {
    if (name.empty()) config->incomplete = true;
    config->unparsed.emplace(info->kind, name);
    errors->insert(errors->end(), local.begin(), local.end());
  }
}

void parseResource(const YamlNode& node, const std::string& file, ConfigSet* config,
                   Diagnostics* errors) {
  int line = node.line();
  if (!node.isMap()) {
    errors->push_back({.file = file,
                       .line = line,
                       .message = "expected a resource (a mapping with a 'kind:' field)"});
    config->incomplete = true;
    return;
  }
  const YamlNode* kind = node.find(kKindKey);
  if (kind == nullptr || !kind->isScalar()) {
    errors->push_back({.file = file,
                       .line = line,
                       .message = "resource has no 'kind:'; expected one of Listener, "
                                  "RouteConfiguration, Cluster, ClusterLoadAssignment, Consumer"});
    config->incomplete = true;
    return;
  }
  const KindInfo* info = findKind(kind->scalar());
  if (info == nullptr) {
    errors->push_back({.file = file,
                       .line = kind->line(),
                       .field = "kind",
                       .message = absl::StrCat("unknown kind '", kind->scalar(),
                                               "'; expected one of Listener, RouteConfiguration, "
                                               "Cluster, ClusterLoadAssignment, Consumer")});
    config->incomplete = true;
    return;
  }
  Origin origin{.file = file, .line = line};
  if (const YamlNode* groups = node.find(kGroupsKey); groups != nullptr && !groups->isNull()) {
    bool ok = groups->isSequence();
    if (ok) {
      for (const YamlNode* g : groups->children()) {
        if (!g->isScalar())
          ok = false;
        else
          origin.node_groups.push_back(g->scalar());
      }
    }
    if (!ok) {
      errors->push_back({.file = file,
                         .line = groups->line(),
                         .kind = std::string(info->name),
                         .field = std::string(kGroupsKey),
                         .message = "expected a list of node group names"});
      config->incomplete = true;
      return;
    }
    origin.field_lines.emplace(std::string(kGroupsKey), groups->line());
  }
  switch (info->kind) {
    case Kind::kListener:
      addResource(node, std::move(origin), &config->listeners, info->name, config, errors);
      break;
    case Kind::kRouteConfiguration:
      addResource(node, std::move(origin), &config->route_configs, info->name, config, errors);
      break;
    case Kind::kCluster:
      addResource(node, std::move(origin), &config->clusters, info->name, config, errors);
      break;
    case Kind::kClusterLoadAssignment:
      addResource(node, std::move(origin), &config->assignments, info->name, config, errors);
      break;
    case Kind::kConsumer:
      addResource(node, std::move(origin), &config->consumers, info->name, config, errors);
      break;
  }
}

}  // namespace

bool isConfigFileName(absl::string_view name) {
  return !name.empty() && name[0] != '.' &&
         (absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml"));
}

std::vector<SourceFile> readConfigDirectory(const std::string& dir, Diagnostics* errors) {
  std::vector<SourceFile> files;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    errors->push_back(
        {.file = dir,
         .message = errno == ENOENT ? "config directory does not exist"
                                    : absl::StrCat("cannot read config directory: ", errnoText())});
    return files;
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(d)) {
    if (isConfigFileName(entry->d_name)) names.emplace_back(entry->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  if (names.size() > kMaxFiles) {
    errors->push_back({.file = dir,
                       .message = absl::StrCat("directory holds ", names.size(),
                                               " config files; at most ", kMaxFiles, " are read")});
    names.resize(kMaxFiles);
  }
  for (const std::string& name : names) {
    SourceFile file{.name = name};
    if (readFile(absl::StrCat(dir, "/", name), name, &file.content, errors)) {
      files.push_back(std::move(file));
    }
  }
  return files;
}

std::vector<SourceFile> readConfigPath(const std::string& path, Diagnostics* errors) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return readConfigDirectory(path, errors);
  }
  SourceFile file{.name = path};
  if (!readFile(path, path, &file.content, errors)) return {};
  return {std::move(file)};
}

ConfigSet parseConfig(const std::vector<SourceFile>& files, Diagnostics* errors) {
  ConfigSet config;
  for (const SourceFile& file : files) {
    if (!checkText(file, errors)) {
      config.incomplete = true;
      continue;
    }
    YamlDocuments yaml;
    try {
      yaml = parseYaml(file.content);
    } catch (const YAML::Exception& e) {
      // yaml-cpp's what() repeats the position; the message alone reads better after ours. Its
      // message for too deep nesting is "bad file".
      const bool too_deep = dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr;
      errors->push_back(
          {.file = file.name,
           .line = e.mark.line >= 0 ? e.mark.line + 1 : 0,
           .message = absl::StrCat(
               "invalid YAML: ", too_deep ? "nested too deeply" : e.msg,
               e.mark.column >= 0 ? absl::StrCat(" (column ", e.mark.column + 1, ")") : "")});
      config.incomplete = true;
      continue;
    }
    size_t values = 0, text = 0;
    const std::vector<const YamlNode*>& documents = yaml.documents;
    auto too_big = std::find_if(documents.begin(), documents.end(), [&](const YamlNode* doc) {
      return !withinExpansionLimits(*doc, &values, &text);
    });
    if (too_big != documents.end()) {
      errors->push_back(
          {.file = file.name,
           .line = (*too_big)->line(),
           .message = absl::StrCat("file expands to more than ", kMaxFileValues, " values or ",
                                   sizeText(kMaxFileText), " of text (YAML aliases?); not read")});
      config.incomplete = true;
      continue;
    }
    for (const YamlNode* doc : documents) {
      if (doc->isNull()) continue;
      if (doc->isSequence()) {
        for (const YamlNode* item : doc->children()) {
          parseResource(*item, file.name, &config, errors);
        }
      } else {
        parseResource(*doc, file.name, &config, errors);
      }
    }
  }
  return config;
}

LoadResult loadFiles(std::vector<SourceFile> files) {
  LoadResult result;
  result.files = std::move(files);
  result.config = parseConfig(result.files, &result.errors);
  Diagnostics semantic = validateConfig(result.config);
  result.errors.insert(result.errors.end(), semantic.begin(), semantic.end());
  return result;
}

LoadResult loadDirectory(const std::string& dir) {
  Diagnostics read_errors;
  LoadResult result = loadFiles(readConfigDirectory(dir, &read_errors));
  result.errors.insert(result.errors.begin(), read_errors.begin(), read_errors.end());
  return result;
}

}  // namespace sluice::config
