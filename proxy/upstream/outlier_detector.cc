#include "proxy/upstream/outlier_detector.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "common/log/log.h"

namespace sluice::upstream {
namespace v1 = config::v1;

namespace {

absl::Duration toDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Counts one failure; true once the count has reached `threshold` (0: the check is off and
// nothing is counted).
bool countFailure(std::atomic<uint32_t>* counter, uint32_t threshold) {
  if (threshold == 0) return false;
  return counter->fetch_add(1, std::memory_order_relaxed) + 1 >= threshold;
}

// Counters first, then the flag: a failure in between cannot request again with stale counts.
void resetHost(HostState* host) {
  host->consecutive_5xx.store(0, std::memory_order_relaxed);
  host->consecutive_gateway_failure.store(0, std::memory_order_relaxed);
  host->ejection_requested.store(false, std::memory_order_release);
}

}  // namespace

const char* ejectionReasonName(EjectionReason reason) {
  switch (reason) {
    case EjectionReason::kConsecutive5xx:
      return "consecutive_5xx";
    case EjectionReason::kConsecutiveGatewayFailure:
      return "consecutive_gateway_failure";
    case EjectionReason::kNone:
      break;
  }
  return "none";
}

OutlierConfig outlierConfig(const v1::OutlierDetection& proto) {
  OutlierConfig c;
  if (proto.has_consecutive_5xx()) c.consecutive_5xx = proto.consecutive_5xx();
  if (proto.has_consecutive_gateway_failure()) {
    c.consecutive_gateway_failure = proto.consecutive_gateway_failure();
  }
  if (proto.has_base_ejection_time()) c.base_ejection_time = toDuration(proto.base_ejection_time());
  if (proto.has_max_ejection_time()) c.max_ejection_time = toDuration(proto.max_ejection_time());
  if (proto.has_max_ejection_percent()) c.max_ejection_percent = proto.max_ejection_percent();
  return c;
}

void recordOutcome(HostState* host, const OutlierConfig& config, Outcome outcome, int wake_fd) {
  if (outcome == Outcome::kSuccess) {
    // Loads first: most requests succeed, and a store would pull the cache line from whichever
    // worker wrote it last.
    if (host->consecutive_5xx.load(std::memory_order_relaxed) != 0) {
      host->consecutive_5xx.store(0, std::memory_order_relaxed);
    }
    if (host->consecutive_gateway_failure.load(std::memory_order_relaxed) != 0) {
      host->consecutive_gateway_failure.store(0, std::memory_order_relaxed);
    }
    return;
  }
  bool crossed = false;
  if (outcome == Outcome::kGatewayFailure) {
    crossed = countFailure(&host->consecutive_gateway_failure, config.consecutive_gateway_failure);
  }
  crossed = countFailure(&host->consecutive_5xx, config.consecutive_5xx) || crossed;
  if (!crossed || host->ejection_requested.load(std::memory_order_relaxed) ||
      host->ejection_requested.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd, &one, sizeof(one));
}

WakeFd::WakeFd() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

WakeFd::~WakeFd() {
  if (fd_ >= 0) close(fd_);
}

void WakeFd::drain() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(fd_, &count, sizeof(count));
}

OutlierStats declareOutlierStats(stats::Store* store, const std::string& cluster) {
  OutlierStats s;
  s.cluster = cluster;
  const char* const kEjections = "sluice_cluster_outlier_detection_ejections_total";
  const char* const kEjectionsHelp = "Endpoints ejected by outlier detection, by reason.";
  s.ejections_consecutive_5xx = store->counter(
      kEjections, kEjectionsHelp,
      {{"cluster", cluster}, {"reason", ejectionReasonName(EjectionReason::kConsecutive5xx)}});
  s.ejections_consecutive_gateway_failure =
      store->counter(kEjections, kEjectionsHelp,
                     {{"cluster", cluster},
                      {"reason", ejectionReasonName(EjectionReason::kConsecutiveGatewayFailure)}});
  s.ejections_overflow = store->counter(
      "sluice_cluster_outlier_detection_ejections_overflow_total",
      "Ejections not made because max_ejection_percent of the cluster was ejected already.",
      {{"cluster", cluster}});
  s.ejections_active =
      store->gauge("sluice_cluster_outlier_detection_ejections_active",
                   "Endpoints currently ejected by outlier detection.", {{"cluster", cluster}});
  return s;
}

OutlierDetector::OutlierDetector(event_base* base, stats::Cells* cells, OutlierConfig config,
                                 OutlierStats stats, std::function<void()> on_change)
    : base_(base),
      cells_(cells),
      config_(std::move(config)),
      stats_(std::move(stats)),
      on_change_(std::move(on_change)) {
  timer_ = evtimer_new(base_, &OutlierDetector::onTimer, this);
}

OutlierDetector::~OutlierDetector() {
  // Without a detector nothing would ever return them.
  const absl::Time now = absl::Now();
  for (Entry& e : hosts_) {
    if (!e.host->ejected) continue;
    e.host->ejected = false;
    e.host->decay_at = now + config_.base_ejection_time;
    resetHost(e.host);
  }
  cells_->gaugeAdd(stats_.ejections_active, -active_);
  event_free(timer_);
}

void OutlierDetector::setHosts(std::vector<HostState*> hosts, std::vector<std::string> names) {
  absl::flat_hash_set<const HostState*> known;
  known.reserve(hosts_.size());
  for (const Entry& e : hosts_) known.insert(e.host);
  std::vector<Entry> next;
  next.reserve(hosts.size());
  int64_t active = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    HostState* h = hosts[i];
    // A request made while the host was away is not about the cluster it is in now.
    if (!known.contains(h)) resetHost(h);
    if (h->ejected) active++;
    next.push_back({h, i < names.size() ? std::move(names[i]) : std::string()});
  }
  hosts_ = std::move(next);
  cells_->gaugeAdd(stats_.ejections_active, active - active_);
  active_ = active;
  arm();
}

void OutlierDetector::updateConfig(OutlierConfig config) { config_ = std::move(config); }

void OutlierDetector::processRequests() {
  const absl::Time now = absl::Now();
  const int64_t allowed = std::max<int64_t>(
      1, static_cast<int64_t>(config_.max_ejection_percent) * hosts_.size() / 100);
  bool changed = false;
  for (Entry& e : hosts_) {
    HostState* h = e.host;
    if (!h->ejection_requested.load(std::memory_order_acquire)) continue;
    // Gateway failures count as 5xx too: the narrower reason wins when its threshold was reached.
    const uint32_t gateway = h->consecutive_gateway_failure.load(std::memory_order_relaxed);
    const EjectionReason reason =
        config_.consecutive_gateway_failure != 0 && gateway >= config_.consecutive_gateway_failure
            ? EjectionReason::kConsecutiveGatewayFailure
            : EjectionReason::kConsecutive5xx;
    resetHost(h);
    // Requests that were under way when the host was ejected still report their failures.
    if (h->ejected) continue;
    if (active_ + 1 > allowed) {
      cells_->add(stats_.ejections_overflow);
      log::debug(
          "outlier detection: cluster '%s' endpoint %s not ejected (%s): %d of %d "
          "endpoints ejected already",
          stats_.cluster, e.name, ejectionReasonName(reason), active_, hosts_.size());
      continue;
    }
    eject(e, reason, now);
    changed = true;
  }
  if (!changed) return;
  arm();
  on_change_();
}

void OutlierDetector::eject(Entry& e, EjectionReason reason, absl::Time now) {
  HostState* h = e.host;
  // The multiplier stops growing at the longest ejection (Envoy's backoff), so that a host
  // that flapped for hours does not need hours more to decay.
  if (config_.base_ejection_time * h->times_ejected < config_.max_ejection_time) h->times_ejected++;
  const absl::Duration duration =
      std::min(config_.base_ejection_time * h->times_ejected, config_.max_ejection_time);
  h->ejected = true;
  h->ejected_until = now + duration;
  h->last_ejection_reason = reason;
  active_++;
  cells_->gaugeAdd(stats_.ejections_active, 1);
  cells_->add(reason == EjectionReason::kConsecutiveGatewayFailure
                  ? stats_.ejections_consecutive_gateway_failure
                  : stats_.ejections_consecutive_5xx);
  log::info("outlier detection: cluster '%s' endpoint %s ejected for %s (%s)", stats_.cluster,
            e.name, absl::FormatDuration(duration), ejectionReasonName(reason));
}

void OutlierDetector::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<OutlierDetector*>(arg);
  const absl::Time now = absl::Now();
  const absl::Duration base = self->config_.base_ejection_time;
  bool changed = false;
  for (Entry& e : self->hosts_) {
    HostState* h = e.host;
    if (h->ejected) {
      if (now < h->ejected_until) continue;
      h->ejected = false;
      h->decay_at = now + base;
      resetHost(h);
      self->active_--;
      self->cells_->gaugeAdd(self->stats_.ejections_active, -1);
      log::info("outlier detection: cluster '%s' endpoint %s returned after its ejection",
                self->stats_.cluster, e.name);
      changed = true;
    } else {
      while (h->times_ejected > 0 && now >= h->decay_at) {
        h->times_ejected--;
        h->decay_at += base;
      }
    }
  }
  self->arm();
  if (changed) self->on_change_();
}

void OutlierDetector::arm() {
  absl::Time next = absl::InfiniteFuture();
  for (const Entry& e : hosts_) {
    if (e.host->ejected) {
      next = std::min(next, e.host->ejected_until);
    } else if (e.host->times_ejected > 0) {
      next = std::min(next, e.host->decay_at);
    }
  }
  if (next == absl::InfiniteFuture()) {
    evtimer_del(timer_);
    return;
  }
  const timeval tv = absl::ToTimeval(std::max(next - absl::Now(), absl::ZeroDuration()));
  evtimer_add(timer_, &tv);
}

}  // namespace sluice::upstream
