#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config/diagnostic.h"
#include "common/config/loader.h"
#include "control-plane/metrics.h"
#include "control-plane/snapshot.h"

namespace sluice::cp {

// The config directory and what is served from it: the current snapshot, the problems of the
// directory as it is now, and the last published versions.
class ConfigStore {
 public:
  static constexpr size_t kHistorySize = 20;

  using Listener = std::function<void(std::shared_ptr<const Snapshot>)>;

  ConfigStore(std::string dir, Metrics* metrics);

  // Called with each newly published snapshot, in order, outside the store's lock.
  void onPublish(Listener listener);

  // Loads and validates the directory. Valid and changed: publishes a new snapshot. Invalid:
  // keeps the current one and records the problems. Returns the problems (empty: valid).
  config::Diagnostics reload();

  struct ApplyResult {
    config::Diagnostics errors;  // non-empty: nothing was written
    std::vector<std::string> written;
    std::string version;  // served after the apply
  };
  // Validates `files` together with the directory's other files; unless `dry_run`, writes the
  // changed ones atomically (temporary file + rename) and reloads at once.
  ApplyResult apply(const std::vector<config::SourceFile>& files, bool dry_run);

  // Checks `files` as Apply would (merged with the directory) or on their own.
  config::Diagnostics validate(const std::vector<config::SourceFile>& files, bool standalone);

  std::shared_ptr<const Snapshot> current() const;

  struct State {
    std::shared_ptr<const Snapshot> snapshot;
    config::Diagnostics errors;
    absl::Time error_time;
  };
  State state() const;

  std::vector<std::shared_ptr<const Snapshot>> history() const;

  const std::string& dir() const { return dir_; }

 private:
  // The directory's files with `overrides` replacing or adding files of the same name.
  std::vector<config::SourceFile> merged(const std::vector<config::SourceFile>& overrides,
                                         config::Diagnostics* errors) const;
  config::Diagnostics reloadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);

  const std::string dir_;
  Metrics* const metrics_;

  // Serializes reloads and applies so that snapshots are published in order.
  absl::Mutex reload_mu_;
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(reload_mu_);

  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> current_ ABSL_GUARDED_BY(mu_);
  config::Diagnostics errors_ ABSL_GUARDED_BY(mu_);
  absl::Time error_time_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<const Snapshot>> history_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::cp
