#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace sluice::testing {

// A child process started from a runfiles-relative or absolute path. Its stdout and stderr go to
// a log file under $TEST_TMPDIR; the destructor stops it (SIGTERM, then SIGKILL).
class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args, const std::string& name);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal` and waits up to `timeout` for the exit; returns the exit status as
  // waitpid reports it, or -1 if the process did not exit in time.
  int stop(int signal, absl::Duration timeout = absl::Seconds(10));
  // Everything the process wrote so far.
  std::string log() const;
  const std::string& logPath() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
  std::string log_path_;
};

struct RunResult {
  int exit_code = -1;  // -1: killed after the timeout, or did not exit normally
  std::string out;
  std::string err;
};

// Runs a command to completion (bounded by `timeout`) and captures its output.
RunResult run(const std::string& binary, const std::vector<std::string>& args,
              absl::Duration timeout = absl::Seconds(30));

// A TCP port on 127.0.0.1 that was free a moment ago.
int freePort();

// Polls `check` every 50ms until it returns true or `timeout` passes.
bool waitFor(absl::Duration timeout, const std::function<bool()>& check);

// A minimal HTTP/1.1 GET on 127.0.0.1; returns the body, or "" on any failure.
std::string httpGet(int port, const std::string& path);

// The value of the sample `series` (name and labels exactly as exposed, e.g.
// `sluice_rbac_allowed_total` or `x_total{cluster="a"}`) on the admin endpoint's /metrics, or -1
// when it is absent.
double metricSeries(int admin_port, const std::string& series);

// A fresh directory under $TEST_TMPDIR.
std::string makeTempDir(const std::string& prefix);
void writeFile(const std::string& path, const std::string& content);
std::string readFile(const std::string& path);

}  // namespace sluice::testing
