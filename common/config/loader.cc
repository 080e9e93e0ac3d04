#include "common/config/loader.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config/validator.h"
#include "common/config/yaml_proto.h"

namespace sluice::config {
namespace {

// The resource envelope: keys that are not fields of the resource's proto.
constexpr absl::string_view kKindKey = "kind";
constexpr absl::string_view kGroupsKey = "node_groups";

std::string errnoText() { return std::strerror(errno); }

std::string sizeText(size_t bytes) {
  if (bytes >= (1 << 20)) return absl::StrCat(bytes >> 20, " MiB");
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

// Text checks that yaml-cpp does not make: binary input gives confusing parse errors.
bool checkText(const SourceFile& file, Diagnostics* errors) {
  size_t nul = file.content.find('\0');
  if (nul != std::string::npos) {
    int line = 1 + std::count(file.content.begin(), file.content.begin() + nul, '\n');
    errors->push_back({.file = file.name,
                       .line = line,
                       .message = absl::StrCat("not a text file (NUL byte at offset ", nul, ")")});
    return false;
  }
  return true;
}

template <class T>
void addResource(const YAML::Node& node, Origin origin, std::vector<Sourced<T>>* out,
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

void parseResource(const YAML::Node& node, const std::string& file, ConfigSet* config,
                   Diagnostics* errors) {
  int line = node.Mark().line + 1;
  if (!node.IsMap()) {
    errors->push_back({.file = file,
                       .line = line,
                       .message = "expected a resource (a mapping with a 'kind:' field)"});
    config->incomplete = true;
    return;
  }
  const YAML::Node kind = node[std::string(kKindKey)];
  if (!kind || !kind.IsScalar()) {
    errors->push_back({.file = file,
                       .line = line,
                       .message = "resource has no 'kind:'; expected one of Listener, "
                                  "RouteConfiguration, Cluster, ClusterLoadAssignment"});
    config->incomplete = true;
    return;
  }
  const KindInfo* info = findKind(kind.Scalar());
  if (info == nullptr) {
    errors->push_back({.file = file,
                       .line = kind.Mark().line + 1,
                       .field = "kind",
                       .message = absl::StrCat("unknown kind '", kind.Scalar(),
                                               "'; expected one of Listener, RouteConfiguration, "
                                               "Cluster, ClusterLoadAssignment")});
    config->incomplete = true;
    return;
  }
  Origin origin{.file = file, .line = line};
  if (const YAML::Node groups = node[std::string(kGroupsKey)]; groups && !groups.IsNull()) {
    bool ok = groups.IsSequence();
    if (ok) {
      for (const auto& g : groups) {
        if (!g.IsScalar())
          ok = false;
        else
          origin.node_groups.push_back(g.Scalar());
      }
    }
    if (!ok) {
      errors->push_back({.file = file,
                         .line = groups.Mark().line + 1,
                         .kind = std::string(info->name),
                         .field = std::string(kGroupsKey),
                         .message = "expected a list of node group names"});
      config->incomplete = true;
      return;
    }
    origin.field_lines.emplace(std::string(kGroupsKey), groups.Mark().line + 1);
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
    std::vector<YAML::Node> documents;
    try {
      documents = YAML::LoadAll(file.content);
    } catch (const YAML::Exception& e) {
      // yaml-cpp's what() repeats the position; the message alone reads better after ours.
      errors->push_back(
          {.file = file.name,
           .line = e.mark.line >= 0 ? e.mark.line + 1 : 0,
           .message = absl::StrCat(
               "invalid YAML: ", e.msg,
               e.mark.column >= 0 ? absl::StrCat(" (column ", e.mark.column + 1, ")") : "")});
      config.incomplete = true;
      continue;
    }
    for (const YAML::Node& doc : documents) {
      if (doc.IsNull()) continue;
      if (doc.IsSequence()) {
        for (const YAML::Node& item : doc) parseResource(item, file.name, &config, errors);
      } else {
        parseResource(doc, file.name, &config, errors);
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
