#include "test/integration/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace sluice::testing {
namespace {

std::string tmpRoot() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

pid_t spawn(const std::string& binary, const std::vector<std::string>& args, int out_fd,
            int err_fd) {
  std::vector<char*> argv;
  std::string bin = binary;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// waitpid with a deadline; true if the child exited.
bool waitExit(pid_t pid, int* status, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace

Process::Process(const std::string& binary, const std::vector<std::string>& args,
                 const std::string& name) {
  static std::atomic<int> counter{0};
  log_path_ = absl::StrCat(tmpRoot(), "/", name, ".", counter++, ".log");
  int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_ = spawn(binary, args, fd, fd);
  close(fd);
}

Process::~Process() {
  if (pid_ > 0 && !exited_ && stop(SIGTERM, absl::Seconds(5)) == -1) stop(SIGKILL);
}

bool Process::running() {
  if (exited_ || pid_ <= 0) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
  return !exited_;
}

int Process::stop(int signal, absl::Duration timeout) {
  if (!running()) return status_;
  kill(pid_, signal);
  if (!waitExit(pid_, &status_, timeout)) return -1;
  exited_ = true;
  return status_;
}

std::string Process::log() const { return readFile(log_path_); }

RunResult run(const std::string& binary, const std::vector<std::string>& args,
              absl::Duration timeout) {
  static std::atomic<int> counter{0};
  std::string base = absl::StrCat(tmpRoot(), "/run.", getpid(), ".", counter++);
  int out = open((base + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = open((base + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_t pid = spawn(binary, args, out, err);
  close(out);
  close(err);
  RunResult result;
  int status = 0;
  if (!waitExit(pid, &status, timeout)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  result.out = readFile(base + ".out");
  result.err = readFile(base + ".err");
  return result;
}

// Ports below Linux's ephemeral range (32768-60999 by default), so that no process's outgoing
// connection takes one between here and the bind that wants it; random, so that test binaries
// running side by side rarely try the same one; never the same one twice in a process.
int freePort() {
  static std::mutex mu;
  static std::set<int> given;
  static std::mt19937 rng(static_cast<unsigned>(getpid()) * 2654435761u ^
                          static_cast<unsigned>(absl::ToUnixNanos(absl::Now())));
  std::lock_guard<std::mutex> lock(mu);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port = 20000 + static_cast<int>(rng() % 12000);
    if (given.count(port) != 0) continue;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    if (!ok) continue;
    given.insert(port);
    return port;
  }
  std::fprintf(stderr, "freePort: no free port found\n");
  std::abort();
}

bool waitFor(absl::Duration timeout, const std::function<bool()>& check) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (check()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return check();
}

std::string httpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  std::string req =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) response.append(buf, n);
  close(fd);
  size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

std::string makeTempDir(const std::string& prefix) {
  std::string tmpl = absl::StrCat(tmpRoot(), "/", prefix, ".XXXXXX");
  return mkdtemp(tmpl.data()) ? tmpl : "";
}

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double metricSeries(int admin_port, const std::string& series) {
  const std::string text = httpGet(admin_port, "/metrics");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series + " ")) {
      double v = -1;
      return absl::SimpleAtod(line, &v) ? v : -1;
    }
  }
  return -1;
}

}  // namespace sluice::testing
