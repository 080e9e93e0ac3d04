#include "control-plane/config_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"

namespace sluice::cp {
namespace {

// Logged per rejected reload; the rest are in Status.
constexpr size_t kMaxLoggedErrors = 20;

bool writeAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(n);
  }
  return true;
}

// Writes `content` to dir/name through a hidden temporary file and a rename, so that a reader
// (our watcher, or another control plane) never sees a half-written file.
absl::Status writeAtomically(const std::string& dir, const std::string& name,
                             const std::string& content) {
  static std::atomic<int> counter{0};
  std::string tmp = absl::StrCat(dir, "/.", name, ".tmp.", ::getpid(), ".", counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  bool ok = writeAll(fd, content) && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), absl::StrCat(dir, "/", name).c_str()) != 0) {
    if (ok) saved = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", name, ": ", std::strerror(saved)));
  }
  return absl::OkStatus();
}

void syncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

config::Diagnostics checkNames(const std::vector<config::SourceFile>& files) {
  config::Diagnostics errors;
  for (const auto& f : files) {
    if (!config::isConfigFileName(f.name) || f.name.find('/') != std::string::npos) {
      errors.push_back({.file = f.name,
                        .message = "file names must be plain names ending in .yaml or .yml, with "
                                   "no directory and no leading dot"});
    } else if (f.content.size() > config::kMaxFileBytes) {
      errors.push_back(
          {.file = f.name,
           .message = absl::StrCat("file is ", f.content.size(),
                                   " bytes; config files are limited to ", config::kMaxFileBytes)});
    }
  }
  return errors;
}

}  // namespace

ConfigStore::ConfigStore(std::string dir, Metrics* metrics)
    : dir_(std::move(dir)), metrics_(metrics) {}

void ConfigStore::onPublish(Listener listener) {
  absl::MutexLock lock(&reload_mu_);
  listeners_.push_back(std::move(listener));
}

config::Diagnostics ConfigStore::reload() {
  absl::MutexLock lock(&reload_mu_);
  return reloadLocked();
}

config::Diagnostics ConfigStore::reloadLocked() {
  config::LoadResult result = config::loadDirectory(dir_);
  if (!result.ok()) {
    log::error("config directory %s rejected (%d problems); still serving version %s", dir_,
               result.errors.size(), current() ? current()->version() : "none");
    for (size_t i = 0; i < result.errors.size() && i < kMaxLoggedErrors; ++i) {
      log::error("  %s", result.errors[i].toString());
    }
    metrics_->snapshots_rejected.Increment();
    metrics_->config_valid.Set(0);
    metrics_->config_errors.Set(static_cast<double>(result.errors.size()));
    absl::MutexLock state_lock(&mu_);
    errors_ = result.errors;
    error_time_ = absl::Now();
    return result.errors;
  }
  metrics_->config_valid.Set(1);
  metrics_->config_errors.Set(0);
  auto snapshot = std::make_shared<const Snapshot>(std::move(result.config),
                                                   std::move(result.files), absl::Now());
  {
    absl::MutexLock state_lock(&mu_);
    bool had_errors = !errors_.empty();
    errors_.clear();
    if (current_ != nullptr && current_->version() == snapshot->version()) {
      if (had_errors)
        log::info("config directory %s is valid again; version %s unchanged", dir_,
                  current_->version());
      return {};
    }
    current_ = snapshot;
    history_.push_front(snapshot);
    if (history_.size() > kHistorySize) history_.pop_back();
  }
  const config::ConfigSet& c = snapshot->config();
  log::info(
      "published version %s: %d listeners, %d route configurations, %d clusters, %d endpoint "
      "assignments, %d consumers",
      snapshot->version(), c.listeners.size(), c.route_configs.size(), c.clusters.size(),
      c.assignments.size(), c.consumers.size());
  metrics_->snapshots_published.Increment();
  for (const Listener& listener : listeners_) listener(snapshot);
  return {};
}

std::vector<config::SourceFile> ConfigStore::merged(
    const std::vector<config::SourceFile>& overrides, config::Diagnostics* errors) const {
  std::vector<config::SourceFile> files = config::readConfigDirectory(dir_, errors);
  for (const config::SourceFile& o : overrides) {
    auto it = std::find_if(files.begin(), files.end(),
                           [&](const config::SourceFile& f) { return f.name == o.name; });
    if (it != files.end()) {
      it->content = o.content;
    } else {
      files.push_back(o);
    }
  }
  return files;
}

config::Diagnostics ConfigStore::validate(const std::vector<config::SourceFile>& files,
                                          bool standalone) {
  if (standalone) return config::loadFiles(files).errors;
  config::Diagnostics errors = checkNames(files);
  if (!errors.empty()) return errors;
  std::vector<config::SourceFile> all = merged(files, &errors);
  config::LoadResult result = config::loadFiles(std::move(all));
  errors.insert(errors.end(), result.errors.begin(), result.errors.end());
  return errors;
}

ConfigStore::ApplyResult ConfigStore::apply(const std::vector<config::SourceFile>& files,
                                            bool dry_run) {
  absl::MutexLock lock(&reload_mu_);
  ApplyResult out;
  out.errors = validate(files, /*standalone=*/false);
  if (!out.errors.empty() || dry_run) {
    if (auto c = current()) out.version = c->version();
    return out;
  }
  config::Diagnostics ignored;
  std::vector<config::SourceFile> existing = config::readConfigDirectory(dir_, &ignored);
  for (const config::SourceFile& f : files) {
    auto it = std::find_if(existing.begin(), existing.end(),
                           [&](const config::SourceFile& e) { return e.name == f.name; });
    if (it != existing.end() && it->content == f.content) continue;
    if (absl::Status s = writeAtomically(dir_, f.name, f.content); !s.ok()) {
      out.errors.push_back({.file = f.name, .message = std::string(s.message())});
      return out;
    }
    out.written.push_back(f.name);
  }
  syncDirectory(dir_);
  if (!out.written.empty()) log::info("apply wrote %d files", out.written.size());
  config::Diagnostics reload_errors = reloadLocked();
  out.errors = reload_errors;
  if (auto c = current()) out.version = c->version();
  return out;
}

std::shared_ptr<const Snapshot> ConfigStore::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

ConfigStore::State ConfigStore::state() const {
  absl::MutexLock lock(&mu_);
  return {current_, errors_, error_time_};
}

std::vector<std::shared_ptr<const Snapshot>> ConfigStore::history() const {
  absl::MutexLock lock(&mu_);
  return {history_.begin(), history_.end()};
}

}  // namespace sluice::cp
