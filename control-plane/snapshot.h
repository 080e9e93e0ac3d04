#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config/config_set.h"
#include "common/config/loader.h"
#include "grpcpp/support/slice.h"

namespace sluice::cp {

// Every resource of one kind served to one node group, ready to send: the DiscoveryResponse
// without its nonce, serialized once and shared by every stream of the group (a stream appends
// its own nonce field; protobuf merges concatenated messages).
struct TypeResources {
  std::string version;  // content hash of these resources
  int count = 0;
  grpc::Slice response;
};

// An immutable, validated config: what the control plane serves until the next valid change.
class Snapshot {
 public:
  Snapshot(config::ConfigSet config, std::vector<config::SourceFile> files, absl::Time published);

  // Content hash of every resource and its node groups (not of file names or formatting).
  const std::string& version() const { return version_; }
  absl::Time published() const { return published_; }
  const config::ConfigSet& config() const { return config_; }
  const std::vector<config::SourceFile>& files() const { return files_; }

  // The resources of `kind` served to `group`, built on first use.
  std::shared_ptr<const TypeResources> resources(const std::string& group, config::Kind kind) const;

 private:
  using GroupResources = std::array<std::shared_ptr<const TypeResources>, config::kKindCount>;

  const config::ConfigSet config_;
  const std::vector<config::SourceFile> files_;
  const absl::Time published_;
  const std::string version_;

  mutable absl::Mutex mu_;
  mutable std::map<std::string, GroupResources> groups_ ABSL_GUARDED_BY(mu_);
};

// Whether a resource with these node groups is served to `group` (empty: every group).
bool servedTo(const std::vector<std::string>& node_groups, const std::string& group);

// Hex SHA-256 prefix (16 digits) of `data`: config versions.
std::string contentHash(absl::string_view data);

}  // namespace sluice::cp
