#pragma once

// A worker thread: its own event_base, its own SO_REUSEPORT socket per listener, its own
// upstream pools and metric cells. The main thread talks to it only by posting tasks (a queue
// behind a mutex and an eventfd), which happens on config changes and shutdown, never per
// request.
#include <event2/event.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proxy/http/connection_manager.h"
#include "proxy/server/generation.h"

namespace sluice::server {

// Sockets a worker starts accepting on (it takes ownership of `fd`).
struct ListenerSocket {
  std::string name;
  int fd = -1;
  std::shared_ptr<http::ListenerCounter> counter;
};

class Worker {
 public:
  // `overload`: the overload guard's flag (null: none), read by the worker's connections.
  Worker(int index, stats::Cells* cells, const http::Overload* overload = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // Main thread: publishes a generation. Listeners in `remove` stop accepting (their sockets
  // close; their connections finish on the generation they hold), then `add` start. `switched`
  // runs on the worker once new connections get the new generation (the server times the rollout
  // with it).
  void update(std::shared_ptr<const Generation> generation, std::vector<ListenerSocket> add,
              std::vector<std::string> remove, std::function<void()> switched);
  // Main thread: stop accepting and drain: idle connections close, busy ones after their
  // response.
  void drain();
  // Main thread: pause (false) or resume (true) accepting on every listener, for the overload
  // guard. Connections already accepted are served; new ones wait in the kernel's backlog.
  void setAccepting(bool on);
  // Open downstream connections (published by the worker after each drain step).
  size_t openConnections() const { return open_.load(std::memory_order_acquire); }
  // Main thread: closes what is left and joins the thread.
  void stop();

 private:
  struct Listener {
    std::string name;
    int fd = -1;
    event* ev = nullptr;
    event* resume = nullptr;  // re-enables accepting after running out of file descriptors
    std::shared_ptr<http::ListenerCounter> counter;
    Worker* worker = nullptr;
  };

  void post(std::function<void()> task);
  static void onWake(evutil_socket_t fd, short what, void* arg);
  static void onAccept(evutil_socket_t fd, short what, void* arg);
  static void onResumeAccept(evutil_socket_t fd, short what, void* arg);
  static void onReap(evutil_socket_t fd, short what, void* arg);
  static void onDrainTick(evutil_socket_t fd, short what, void* arg);
  void closeListener(const std::string& name);
  void closeAllListeners();

  int index_;
  event_base* base_;
  std::unique_ptr<http::WorkerContext> ctx_;
  int wake_fd_ = -1;
  event* wake_ev_ = nullptr;
  event* drain_tick_ = nullptr;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;  // guarded by mu_
  absl::flat_hash_map<std::string, std::unique_ptr<Listener>> listeners_;
  std::atomic<size_t> open_{0};
  bool stopping_ = false;  // worker thread only: set by the task stop() posts
  bool paused_ = false;    // worker thread only: setAccepting(false)
  std::thread thread_;
};

}  // namespace sluice::server
