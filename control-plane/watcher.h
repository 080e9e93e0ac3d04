#pragma once

#include <functional>
#include <string>
#include <thread>

#include "absl/time/time.h"

namespace sluice::cp {

// Watches a directory with inotify and calls `on_change` (from its own thread) once changes have
// settled for `debounce`. Editors that save through a rename and Kubernetes-style symlink swaps
// are changes too. If the directory disappears, that is a change; the watcher then looks for it
// every second and reports another change when it is back.
class DirectoryWatcher {
 public:
  DirectoryWatcher(std::string dir, absl::Duration debounce, std::function<void()> on_change);
  ~DirectoryWatcher();

  DirectoryWatcher(const DirectoryWatcher&) = delete;
  DirectoryWatcher& operator=(const DirectoryWatcher&) = delete;

 private:
  void run();
  bool addWatch();

  const std::string dir_;
  const absl::Duration debounce_;
  const std::function<void()> on_change_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: written by the destructor
  int watch_ = -1;
  std::thread thread_;
};

}  // namespace sluice::cp
