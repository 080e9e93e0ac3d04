#include "test/integration/echo.h"

#include <signal.h>
#include <sys/wait.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sluice::testing {
namespace {

constexpr char kEcho[] = "tools/echo/sluice-echo";

// The integer after "key": in a flat JSON object, or -1.
int64_t jsonInt(const std::string& json, const std::string& key) {
  size_t at = json.find(absl::StrCat("\"", key, "\":"));
  if (at == std::string::npos) return -1;
  at += key.size() + 3;
  while (at < json.size() && json[at] == ' ') ++at;
  size_t end = json.find_first_not_of("0123456789", at);
  int64_t n = -1;
  return absl::SimpleAtoi(json.substr(at, end - at), &n) ? n : -1;
}

}  // namespace

Echo::Echo(std::string name, std::string ip) : name_(std::move(name)), ip_(std::move(ip)) {}

bool Echo::start(int port, std::vector<std::string> flags) {
  std::vector<std::string> args = {"--listen", absl::StrCat(ip_, ":", port), "--name", name_};
  args.insert(args.end(), flags.begin(), flags.end());
  process_ = std::make_unique<Process>(kEcho, args, absl::StrCat("echo-", name_));
  const std::string prefix = absl::StrCat("listening on ", ip_, ":");
  int bound = 0;
  bool ok = waitFor(absl::Seconds(10), [&] {
    std::string log = process_->log();
    size_t at = log.find(prefix);
    if (at == std::string::npos) return false;
    size_t eol = log.find('\n', at);
    if (eol == std::string::npos) return false;
    return absl::SimpleAtoi(log.substr(at + prefix.size(), eol - at - prefix.size()), &bound);
  });
  if (!ok || bound <= 0) return false;
  port_ = bound;
  return true;
}

bool Echo::stop() {
  if (process_ == nullptr) return true;
  int status = process_->stop(SIGTERM);
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool Echo::restart(std::vector<std::string> flags) {
  return stop() && start(port_, std::move(flags));
}

std::string Echo::address() const { return absl::StrCat(ip_, ":", port_); }

std::string Echo::log() const { return process_ != nullptr ? process_->log() : ""; }

EchoStats Echo::stats() const {
  std::string json = httpGet(port_, "/__stats");
  return {jsonInt(json, "requests"), jsonInt(json, "connections_accepted")};
}

}  // namespace sluice::testing
