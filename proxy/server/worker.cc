#include "proxy/server/worker.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log/log.h"

namespace sluice::server {

namespace {
// Connections accepted per readiness event before the loop serves others.
constexpr int kAcceptBatch = 64;
// How long a listener stops accepting after running out of file descriptors (the socket stays
// readable, so accepting again at once would spin).
constexpr timeval kAcceptPause = {0, 100 * 1000};
}  // namespace

Worker::Worker(int index, stats::Cells* cells, const http::Overload* overload) : index_(index) {
  event_config* cfg = event_config_new();
  // One thread per base: libevent need not lock it.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  ctx_ = std::make_unique<http::WorkerContext>(index, base_, cells);
  ctx_->overload = overload;
  ctx_->reaper = event_new(base_, -1, 0, &Worker::onReap, this);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  wake_ev_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &Worker::onWake, this);
  event_add(wake_ev_, nullptr);
  drain_tick_ = event_new(base_, -1, EV_PERSIST, &Worker::onDrainTick, this);
}

Worker::~Worker() {
  stop();
  closeAllListeners();
  http::closeAllConnections(ctx_.get());
  event_free(drain_tick_);
  event_free(wake_ev_);
  close(wake_fd_);
  ctx_.reset();
  event_base_free(base_);
}

void Worker::start() {
  thread_ = std::thread([this] {
    // One pass at a time, then what the connections held back: a pass's writes leave together.
    while (!stopping_) {
      if (event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY) < 0) break;
      http::flushDeferred(ctx_.get());
    }
  });
}

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void Worker::onWake(evutil_socket_t fd, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  uint64_t n;
  (void)!read(fd, &n, sizeof(n));
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(w->mu_);
    tasks.swap(w->tasks_);
  }
  for (auto& task : tasks) task();
}

void Worker::update(std::shared_ptr<const Generation> generation, std::vector<ListenerSocket> add,
                    std::vector<std::string> remove, std::function<void()> switched) {
  post([this, generation = std::move(generation), add = std::move(add), remove = std::move(remove),
        switched = std::move(switched)]() mutable {
    for (const std::string& name : remove) closeListener(name);
    // Pools to endpoints the new generation no longer has are closed.
    std::vector<bool> live;
    for (const auto& cluster : generation->clusters) {
      for (const upstream::Endpoint& e : cluster->endpoints()) {
        if (e.pool_key >= live.size()) live.resize(e.pool_key + 1);
        live[e.pool_key] = true;
      }
    }
    ctx_->pool.retain(live);
    ctx_->generation = std::move(generation);
    for (ListenerSocket& s : add) {
      closeListener(s.name);
      auto l = std::make_unique<Listener>();
      l->name = s.name;
      l->fd = s.fd;
      l->counter = std::move(s.counter);
      l->worker = this;
      l->ev = event_new(base_, l->fd, EV_READ | EV_PERSIST, &Worker::onAccept, l.get());
      l->resume = evtimer_new(base_, &Worker::onResumeAccept, l.get());
      if (!ctx_->draining && !paused_) event_add(l->ev, nullptr);
      listeners_[l->name] = std::move(l);
    }
    if (switched) switched();
  });
}

void Worker::closeListener(const std::string& name) {
  auto it = listeners_.find(name);
  if (it == listeners_.end()) return;
  event_free(it->second->ev);
  event_free(it->second->resume);
  close(it->second->fd);
  listeners_.erase(it);
}

void Worker::closeAllListeners() {
  while (!listeners_.empty()) closeListener(listeners_.begin()->first);
}

void Worker::onAccept(evutil_socket_t fd, short, void* arg) {
  auto* l = static_cast<Listener*>(arg);
  Worker* w = l->worker;
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int c = accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        log::warn("worker %d: cannot accept on %s: %s; pausing accepts for 100ms", w->index_,
                  l->name, strerror(errno));
        event_del(l->ev);
        evtimer_add(l->resume, &kAcceptPause);
      }
      return;
    }
    http::acceptConnection(w->ctx_.get(), c, peer, l->name, l->counter);
  }
}

void Worker::onResumeAccept(evutil_socket_t, short, void* arg) {
  auto* l = static_cast<Listener*>(arg);
  if (!l->worker->ctx_->draining && !l->worker->paused_) event_add(l->ev, nullptr);
}

void Worker::setAccepting(bool on) {
  post([this, on] {
    paused_ = !on;
    if (ctx_->draining) return;
    for (auto& [name, l] : listeners_) {
      if (on) {
        // Unless the file-descriptor pause runs: its timer resumes the listener.
        if (!evtimer_pending(l->resume, nullptr)) event_add(l->ev, nullptr);
      } else {
        event_del(l->ev);
      }
    }
  });
}

void Worker::onReap(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  http::reapConnections(w->ctx_.get());
  if (w->ctx_->draining) w->open_.store(w->ctx_->connections.size(), std::memory_order_release);
}

void Worker::onDrainTick(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  w->open_.store(w->ctx_->connections.size(), std::memory_order_release);
}

void Worker::drain() {
  open_.store(1, std::memory_order_release);  // until the worker has looked
  post([this] {
    closeAllListeners();
    http::drainConnections(ctx_.get());
    open_.store(ctx_->connections.size(), std::memory_order_release);
    timeval tv{0, 100 * 1000};
    event_add(drain_tick_, &tv);
  });
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  post([this] {
    stopping_ = true;
    event_base_loopbreak(base_);
  });
  thread_.join();
}

}  // namespace sluice::server
