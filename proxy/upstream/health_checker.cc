#include "proxy/upstream/health_checker.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "proxy/tls/connection.h"

namespace sluice::upstream {
namespace v1 = config::v1;

namespace {

// The status line is all a check reads; a server that sends this much without one is broken.
constexpr size_t kMaxStatusLine = 4096;

absl::Duration toDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// The status of an "HTTP/1.x NNN reason" line (CR and LF stripped), or -1.
int parseStatusLine(std::string_view line) {
  constexpr std::string_view kVersion = "HTTP/1.";
  if (line.size() < 12 || line.substr(0, kVersion.size()) != kVersion) return -1;
  if (line[7] < '0' || line[7] > '9' || line[8] != ' ') return -1;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return -1;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return -1;
  return status;
}

}  // namespace

// One target: its verdict, and the check under way if any.
struct HealthChecker::Host {
  HealthChecker* checker = nullptr;
  std::string key;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string name;  // Target::host
  Verdict verdict = Verdict::kPending;
  uint32_t successes = 0;                 // consecutive
  uint32_t failures = 0;                  // consecutive
  event* timer = nullptr;                 // the next check while idle, the timeout while checking
  event* io = nullptr;                    // the check's socket; null while idle
  int fd = -1;                            // >= 0 while a check is under way
  std::shared_ptr<const Compiled> check;  // the config the check under way started with
  bool connected = false;
  std::unique_ptr<tls::Connection> tls;  // the check's TLS, once connected (TLS clusters)
  bool handshaking = false;
  size_t sent = 0;
  std::string received;
};

const char* healthCheckFailureName(HealthCheckFailure reason) {
  switch (reason) {
    case HealthCheckFailure::kTimeout:
      return "timeout";
    case HealthCheckFailure::kConnect:
      return "connect";
    case HealthCheckFailure::kStatus:
      return "status";
    case HealthCheckFailure::kProtocol:
      return "protocol";
  }
  return "unknown";
}

HealthCheckConfig healthCheckConfig(const v1::HealthCheck& proto, std::string_view cluster_name) {
  HealthCheckConfig c;
  if (proto.has_interval()) c.interval = toDuration(proto.interval());
  if (proto.has_timeout()) c.timeout = toDuration(proto.timeout());
  if (proto.has_interval_jitter()) c.interval_jitter = toDuration(proto.interval_jitter());
  if (proto.healthy_threshold() != 0) c.healthy_threshold = proto.healthy_threshold();
  if (proto.unhealthy_threshold() != 0) c.unhealthy_threshold = proto.unhealthy_threshold();
  if (proto.has_http()) {
    const v1::HttpHealthCheck& http = proto.http();
    c.kind = HealthCheckConfig::Kind::kHttp;
    if (!http.path().empty()) c.path = http.path();
    c.host = http.host().empty() ? std::string(cluster_name) : http.host();
    if (!http.expected_statuses().empty()) {
      c.expected_statuses.clear();
      for (const v1::StatusRange& r : http.expected_statuses()) {
        c.expected_statuses.push_back({r.min(), r.max()});
      }
    }
  } else {
    c.kind = HealthCheckConfig::Kind::kTcp;
  }
  return c;
}

HealthCheckStats declareHealthCheckStats(stats::Store* store, const std::string& cluster) {
  HealthCheckStats s;
  s.cluster = cluster;
  const stats::Labels labels = {{"cluster", cluster}};
  s.attempt = store->counter("sluice_cluster_health_check_attempt_total",
                             "Active health checks started.", labels);
  s.success = store->counter("sluice_cluster_health_check_success_total",
                             "Active health checks that passed.", labels);
  for (int i = 0; i < kHealthCheckFailureCount; ++i) {
    s.failure[i] = store->counter(
        "sluice_cluster_health_check_failure_total", "Active health checks that failed, by reason.",
        {{"cluster", cluster}, {"reason", healthCheckFailureName(HealthCheckFailure(i))}});
  }
  s.healthy = store->gauge("sluice_cluster_health_check_healthy",
                           "Endpoints whose last active health check verdict is healthy.", labels);
  return s;
}

HealthChecker::HealthChecker(event_base* base, stats::Cells* cells, HealthCheckConfig config,
                             HealthCheckStats stats, std::function<void()> on_change)
    : base_(base), cells_(cells), stats_(std::move(stats)), on_change_(std::move(on_change)) {
  notify_ = event_new(base_, -1, 0, &HealthChecker::onNotify, this);
  updateConfig(std::move(config));
}

HealthChecker::~HealthChecker() {
  for (auto& [key, host] : hosts_) closeHost(host.get());
  cells_->gaugeAdd(stats_.healthy, -healthy_count_);
  event_free(notify_);
}

void HealthChecker::updateConfig(HealthCheckConfig config) {
  const bool reschedule =
      current_ != nullptr && (config.interval != current_->config.interval ||
                              config.interval_jitter != current_->config.interval_jitter);
  auto compiled = std::make_shared<Compiled>();
  compiled->request =
      absl::StrCat("GET ", config.path, " HTTP/1.1\r\nHost: ", config.host,
                   "\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n");
  compiled->config = std::move(config);
  current_ = std::move(compiled);
  if (!reschedule) return;
  // An idle target could otherwise wait out an old, much longer interval. Targets not yet
  // checked keep their immediate first check.
  for (auto& [key, host] : hosts_) {
    if (host->fd < 0 && host->verdict != Verdict::kPending) scheduleNext(host.get());
  }
}

void HealthChecker::setTargets(std::vector<Target> targets) {
  absl::flat_hash_map<std::string, std::unique_ptr<Host>> next;
  next.reserve(targets.size());
  for (Target& t : targets) {
    if (next.contains(t.key)) continue;
    auto old = hosts_.find(t.key);
    if (old != hosts_.end()) {
      old->second->addr = t.addr;
      old->second->addr_len = t.addr_len;
      old->second->name = t.host;
      next.emplace(t.key, std::move(old->second));
      hosts_.erase(old);
      continue;
    }
    auto host = std::make_unique<Host>();
    host->checker = this;
    host->key = t.key;
    host->addr = t.addr;
    host->addr_len = t.addr_len;
    host->name = t.host;
    host->timer = evtimer_new(base_, &HealthChecker::onTimer, host.get());
    const timeval now = {0, 0};
    evtimer_add(host->timer, &now);
    next.emplace(std::move(t.key), std::move(host));
  }
  // What is left is no longer a target.
  for (auto& [key, host] : hosts_) {
    if (host->verdict == Verdict::kHealthy) {
      healthy_count_--;
      cells_->gaugeAdd(stats_.healthy, -1);
    }
    closeHost(host.get());
  }
  hosts_ = std::move(next);
}

bool HealthChecker::healthy(std::string_view key) const {
  auto it = hosts_.find(absl::string_view(key.data(), key.size()));
  return it != hosts_.end() && it->second->verdict == Verdict::kHealthy;
}

void HealthChecker::closeHost(Host* host) {
  endCheck(host);
  event_free(host->timer);
  host->timer = nullptr;
}

void HealthChecker::onTimer(evutil_socket_t, short, void* arg) {
  auto* host = static_cast<Host*>(arg);
  HealthChecker* self = host->checker;
  if (host->fd < 0) {
    self->startCheck(host);
  } else {
    self->fail(
        host, HealthCheckFailure::kTimeout,
        absl::StrCat("no verdict within ", absl::FormatDuration(host->check->config.timeout)));
  }
}

void HealthChecker::startCheck(Host* host) {
  cells_->add(stats_.attempt);
  host->fd = socket(host->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (host->fd < 0) {
    fail(host, HealthCheckFailure::kConnect, absl::StrCat("socket: ", std::strerror(errno)));
    return;
  }
  host->check = current_;
  host->connected = false;
  host->sent = 0;
  host->received.clear();
  const timeval timeout = absl::ToTimeval(host->check->config.timeout);
  evtimer_add(host->timer, &timeout);
  if (connect(host->fd, reinterpret_cast<const sockaddr*>(&host->addr), host->addr_len) < 0 &&
      errno != EINPROGRESS) {
    fail(host, HealthCheckFailure::kConnect, absl::StrCat("connect: ", std::strerror(errno)));
    return;
  }
  // Writable once the connect has an outcome (success or SO_ERROR).
  watch(host, EV_WRITE);
}

void HealthChecker::watch(Host* host, short what) {
  if (host->io != nullptr) event_free(host->io);
  host->io = event_new(base_, host->fd, what | EV_PERSIST, &HealthChecker::onIo, host);
  event_add(host->io, nullptr);
}

void HealthChecker::onIo(evutil_socket_t, short, void* arg) {
  auto* host = static_cast<Host*>(arg);
  HealthChecker* self = host->checker;
  if (!host->connected) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(host->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) {
      self->fail(host, HealthCheckFailure::kConnect, absl::StrCat("connect: ", std::strerror(err)));
      return;
    }
    host->connected = true;
    if (host->check->config.tls != nullptr) {
      host->tls = host->check->config.tls->connect(host->fd, host->name, nullptr);
      if (host->tls == nullptr) {
        self->fail(host, HealthCheckFailure::kConnect, "cannot start TLS");
        return;
      }
      host->handshaking = true;
    } else if (host->check->config.kind == HealthCheckConfig::Kind::kTcp) {
      self->succeed(host);
      return;
    }
  }
  if (host->handshaking) {
    self->handshake(host);
  } else if (host->sent < host->check->request.size()) {
    self->sendRequest(host);
  } else {
    self->readResponse(host);
  }
}

void HealthChecker::handshake(Host* host) {
  switch (host->tls->handshake()) {
    case tls::Connection::Step::kWantRead:
      watch(host, EV_READ);
      return;
    case tls::Connection::Step::kWantWrite:
      watch(host, EV_WRITE);
      return;
    case tls::Connection::Step::kFailed:
      fail(host, HealthCheckFailure::kConnect,
           absl::StrCat("TLS handshake: ", tls::handshakeFailureName(host->tls->failure())));
      return;
    case tls::Connection::Step::kDone:
      host->handshaking = false;
      if (host->check->config.kind == HealthCheckConfig::Kind::kTcp) {
        succeed(host);
      } else {
        watch(host, EV_WRITE);
      }
      return;
  }
}

void HealthChecker::sendRequest(Host* host) {
  const std::string& request = host->check->request;
  const char* data = request.data() + host->sent;
  const size_t size = request.size() - host->sent;
  ssize_t n = host->tls != nullptr ? host->tls->write(data, size)
                                   : send(host->fd, data, size, MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      // A TLS write may first need to read (and the socket stays writable meanwhile).
      if (host->tls != nullptr) watch(host, host->tls->writeWantsRead() ? EV_READ : EV_WRITE);
      return;
    }
    fail(host, HealthCheckFailure::kConnect, absl::StrCat("send: ", std::strerror(errno)));
    return;
  }
  host->sent += n;
  if (host->sent == request.size()) watch(host, EV_READ);
}

void HealthChecker::readResponse(Host* host) {
  char buf[kMaxStatusLine];
  const size_t room = kMaxStatusLine - host->received.size();
  ssize_t n = host->tls != nullptr ? host->tls->read(buf, room) : recv(host->fd, buf, room, 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      if (host->tls != nullptr) watch(host, host->tls->readWantsWrite() ? EV_WRITE : EV_READ);
      return;
    }
    fail(host, HealthCheckFailure::kConnect, absl::StrCat("recv: ", std::strerror(errno)));
    return;
  }
  host->received.append(buf, n);
  size_t eol = host->received.find('\n');
  if (eol == std::string::npos) {
    if (n == 0) {
      fail(host, HealthCheckFailure::kProtocol, "closed before a status line");
    } else if (host->received.size() >= kMaxStatusLine) {
      fail(host, HealthCheckFailure::kProtocol, "no status line in the first 4 KiB");
    }
    return;
  }
  std::string_view line(host->received.data(), eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const int status = parseStatusLine(line);
  if (status < 0) {
    fail(host, HealthCheckFailure::kProtocol, "not an HTTP/1.x status line");
    return;
  }
  for (const HealthCheckConfig::StatusRange& r : host->check->config.expected_statuses) {
    if (static_cast<uint32_t>(status) >= r.min && static_cast<uint32_t>(status) <= r.max) {
      succeed(host);
      return;
    }
  }
  fail(host, HealthCheckFailure::kStatus, absl::StrCat("status ", status));
}

void HealthChecker::endCheck(Host* host) {
  if (host->io != nullptr) {
    event_free(host->io);
    host->io = nullptr;
  }
  host->tls.reset();
  host->handshaking = false;
  if (host->fd >= 0) {
    // The rest of the response is not read: closing with it unread resets the connection,
    // which also spares this side a TIME_WAIT per check (as HAProxy's checks do).
    close(host->fd);
    host->fd = -1;
  }
  host->received.clear();
  host->check.reset();
  if (host->timer != nullptr) evtimer_del(host->timer);
}

void HealthChecker::succeed(Host* host) {
  endCheck(host);
  cells_->add(stats_.success);
  host->failures = 0;
  host->successes++;
  if (host->verdict == Verdict::kPending ||
      (host->verdict == Verdict::kUnhealthy &&
       host->successes >= current_->config.healthy_threshold)) {
    setVerdict(host, Verdict::kHealthy,
               absl::StrCat(host->successes, " consecutive check(s) passed"));
  }
  scheduleNext(host);
}

void HealthChecker::fail(Host* host, HealthCheckFailure reason, const std::string& detail) {
  endCheck(host);
  cells_->add(stats_.failure[static_cast<int>(reason)]);
  host->successes = 0;
  host->failures++;
  if (host->verdict == Verdict::kPending ||
      (host->verdict == Verdict::kHealthy &&
       host->failures >= current_->config.unhealthy_threshold)) {
    setVerdict(host, Verdict::kUnhealthy,
               absl::StrCat(host->failures, " consecutive check(s) failed, last: ",
                            healthCheckFailureName(reason), ": ", detail));
  }
  scheduleNext(host);
}

void HealthChecker::setVerdict(Host* host, Verdict verdict, const std::string& why) {
  const bool first = host->verdict == Verdict::kPending;
  host->verdict = verdict;
  const bool now_healthy = verdict == Verdict::kHealthy;
  if (first && now_healthy) {
    // The common case at start-up for every endpoint: not worth a line each.
    log::debug("health check: cluster '%s' endpoint %s healthy at its first check", stats_.cluster,
               host->key);
  } else {
    log::info("health check: cluster '%s' endpoint %s %s (%s)", stats_.cluster, host->key,
              now_healthy ? "healthy" : "unhealthy", why);
  }
  if (first && !now_healthy) return;  // healthy() was false and stays false
  healthy_count_ += now_healthy ? 1 : -1;
  cells_->gaugeAdd(stats_.healthy, now_healthy ? 1 : -1);
  // From its own callback, so that on_change never runs inside a check's (or the caller's)
  // stack; several flips in one loop pass make one call.
  event_active(notify_, EV_TIMEOUT, 0);
}

void HealthChecker::onNotify(evutil_socket_t, short, void* arg) {
  static_cast<HealthChecker*>(arg)->on_change_();
}

void HealthChecker::scheduleNext(Host* host) {
  const HealthCheckConfig& config = current_->config;
  absl::Duration delay = config.interval;
  if (config.interval_jitter > absl::ZeroDuration()) {
    delay += absl::Nanoseconds(
        absl::Uniform<int64_t>(random_, 0, absl::ToInt64Nanoseconds(config.interval_jitter) + 1));
  }
  const timeval tv = absl::ToTimeval(delay);
  evtimer_add(host->timer, &tv);
}

}  // namespace sluice::upstream
