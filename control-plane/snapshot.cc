#include "control-plane/snapshot.h"

#include <openssl/evp.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "sluice/discovery/v1/ads.pb.h"

namespace sluice::cp {
namespace {

std::string serializeDeterministic(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

template <class T>
void hashItems(const std::vector<config::Sourced<T>>& items, config::Kind kind, std::string* out) {
  std::vector<std::string> parts;
  for (const auto& item : items) {
    parts.push_back(absl::StrCat(config::kindInfo(kind).name, "\n",
                                 absl::StrJoin(item.origin.node_groups, ","), "\n",
                                 serializeDeterministic(item.resource)));
  }
  std::sort(parts.begin(), parts.end());  // file order is not content
  for (const std::string& p : parts) absl::StrAppend(out, p.size(), ":", p);
}

std::string configVersion(const config::ConfigSet& c) {
  std::string data;
  hashItems(c.clusters, config::Kind::kCluster, &data);
  hashItems(c.assignments, config::Kind::kClusterLoadAssignment, &data);
  hashItems(c.consumers, config::Kind::kConsumer, &data);
  hashItems(c.listeners, config::Kind::kListener, &data);
  hashItems(c.route_configs, config::Kind::kRouteConfiguration, &data);
  return contentHash(data);
}

template <class T>
std::shared_ptr<const TypeResources> build(const std::vector<config::Sourced<T>>& items,
                                           config::Kind kind, const std::string& group) {
  std::vector<const T*> served;
  for (const auto& item : items) {
    if (servedTo(item.origin.node_groups, group)) served.push_back(&item.resource);
  }
  // Sorted by name so the version and the bytes depend on content only.
  const auto* name_field =
      T::descriptor()->FindFieldByName(std::string(config::kindInfo(kind).name_field));
  auto nameOf = [&](const T* r) { return r->GetReflection()->GetString(*r, name_field); };
  std::sort(served.begin(), served.end(),
            [&](const T* a, const T* b) { return nameOf(a) < nameOf(b); });

  discovery::v1::DiscoveryResponse response;
  response.set_type_url(std::string(config::kindInfo(kind).type_url));
  std::string data;
  for (const T* r : served) {
    response.add_resources()->PackFrom(*r);
    std::string bytes = serializeDeterministic(*r);
    absl::StrAppend(&data, bytes.size(), ":", bytes);
  }
  auto out = std::make_shared<TypeResources>();
  out->version = contentHash(data);
  out->count = static_cast<int>(served.size());
  response.set_version_info(out->version);
  std::string bytes = serializeDeterministic(response);
  out->response = grpc::Slice(bytes);
  return out;
}

}  // namespace

bool servedTo(const std::vector<std::string>& node_groups, const std::string& group) {
  return node_groups.empty() ||
         std::find(node_groups.begin(), node_groups.end(), group) != node_groups.end();
}

std::string contentHash(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), 8));
}

Snapshot::Snapshot(config::ConfigSet config, std::vector<config::SourceFile> files,
                   absl::Time published)
    : config_(std::move(config)),
      files_(std::move(files)),
      published_(published),
      version_(configVersion(config_)) {}

std::shared_ptr<const TypeResources> Snapshot::resources(const std::string& group,
                                                         config::Kind kind) const {
  absl::MutexLock lock(&mu_);
  GroupResources& g = groups_[group];
  auto& slot = g[static_cast<int>(kind)];
  if (slot == nullptr) {
    switch (kind) {
      case config::Kind::kCluster:
        slot = build(config_.clusters, kind, group);
        break;
      case config::Kind::kClusterLoadAssignment:
        slot = build(config_.assignments, kind, group);
        break;
      case config::Kind::kConsumer:
        slot = build(config_.consumers, kind, group);
        break;
      case config::Kind::kListener:
        slot = build(config_.listeners, kind, group);
        break;
      case config::Kind::kRouteConfiguration:
        slot = build(config_.route_configs, kind, group);
        break;
    }
  }
  return slot;
}

}  // namespace sluice::cp
