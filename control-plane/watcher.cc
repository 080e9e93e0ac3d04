#include "control-plane/watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/time/clock.h"
#include "common/log/log.h"

namespace sluice::cp {
namespace {

constexpr uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                             IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
constexpr int kRetryMs = 1000;

}  // namespace

DirectoryWatcher::DirectoryWatcher(std::string dir, absl::Duration debounce,
                                   std::function<void()> on_change)
    : dir_(std::move(dir)), debounce_(debounce), on_change_(std::move(on_change)) {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_fd_ < 0 || stop_fd_ < 0) {
    log::error("cannot watch %s: %s; changes will not be picked up", dir_, std::strerror(errno));
  }
  addWatch();
  thread_ = std::thread([this] { run(); });
}

DirectoryWatcher::~DirectoryWatcher() {
  uint64_t one = 1;
  if (stop_fd_ >= 0 && ::write(stop_fd_, &one, sizeof one) < 0) {
    log::error("cannot stop the directory watcher: %s", std::strerror(errno));
  }
  if (thread_.joinable()) thread_.join();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

bool DirectoryWatcher::addWatch() {
  if (inotify_fd_ < 0) return false;
  watch_ = inotify_add_watch(inotify_fd_, dir_.c_str(), kEvents | IN_ONLYDIR);
  return watch_ >= 0;
}

void DirectoryWatcher::run() {
  if (inotify_fd_ < 0 || stop_fd_ < 0) return;
  bool pending = false;
  absl::Time due;
  alignas(inotify_event) char buf[16 * 1024];
  for (;;) {
    int timeout = -1;
    if (pending) {
      timeout =
          static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(due - absl::Now())));
    } else if (watch_ < 0) {
      timeout = kRetryMs;
    }
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      log::error("watching %s failed: %s", dir_, std::strerror(errno));
      return;
    }
    if (fds[1].revents & POLLIN) return;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      ssize_t len;
      while ((len = ::read(inotify_fd_, buf, sizeof buf)) > 0) {
        for (char* p = buf; p < buf + len;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
            if (watch_ >= 0 && !(ev->mask & IN_IGNORED)) inotify_rm_watch(inotify_fd_, watch_);
            if (watch_ >= 0) log::warn("config directory %s was removed or moved", dir_);
            watch_ = -1;
          }
          p += sizeof(inotify_event) + ev->len;
        }
      }
      pending = true;
      due = absl::Now() + debounce_;  // trailing debounce: wait for the burst to end
      continue;
    }
    if (watch_ < 0 && !pending) {
      if (addWatch()) {
        log::info("config directory %s is back", dir_);
        pending = true;
        due = absl::Now() + debounce_;
      }
      continue;
    }
    if (pending && absl::Now() >= due) {
      pending = false;
      if (watch_ < 0) addWatch();
      on_change_();
    }
  }
}

}  // namespace sluice::cp
