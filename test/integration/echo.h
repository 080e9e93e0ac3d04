#pragma once

// A sluice-echo upstream for integration tests: one process on loopback that can be stopped and
// started again on the same port, to play an upstream that dies and comes back.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "test/integration/process.h"

namespace sluice::testing {

struct EchoStats {
  int64_t requests = -1;  // requests its echo handler answered
  int64_t connections_accepted = -1;
};

class Echo {
 public:
  // `name`: its x-echo-name header; `ip`: where it listens (127.0.0.1, 127.0.0.2, ...).
  explicit Echo(std::string name, std::string ip = "127.0.0.1");

  // Starts on `port` (0: a free one) with further sluice-echo `flags` (--status, --delay ...)
  // and waits until it listens; false if it did not.
  bool start(int port = 0, std::vector<std::string> flags = {});
  // SIGTERM; true once it exited 0 (or was not running).
  bool stop();
  // Stops it and starts it again on the same port with `flags`.
  bool restart(std::vector<std::string> flags = {});

  const std::string& name() const { return name_; }
  int port() const { return port_; }
  // "ip:port", as the proxy names the endpoint.
  std::string address() const;
  std::string log() const;
  // Its counts (GET /__stats); -1 when it does not answer.
  EchoStats stats() const;
  int64_t requests() const { return stats().requests; }

 private:
  std::string name_;
  std::string ip_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace sluice::testing
