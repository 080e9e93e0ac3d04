#include "proxy/upstream/dns_resolver.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/log/log.h"

namespace sluice::upstream {

namespace {

constexpr char kSystemHosts[] = "/etc/hosts";

// An IP literal in inet_ntop's form, or nullopt for a host name.
std::optional<std::string> canonicalLiteral(const std::string& host) {
  char text[INET6_ADDRSTRLEN];
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return inet_ntop(AF_INET, &v4, text, sizeof(text));
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return inet_ntop(AF_INET6, &v6, text, sizeof(text));
  }
  return std::nullopt;
}

std::string lookupError(int result, const std::string& cancel_reason) {
  switch (result) {
    case EVUTIL_EAI_NONAME:
      return "no such name (NXDOMAIN)";
    case EVUTIL_EAI_NODATA:
      return "no address records";
    case EVUTIL_EAI_FAIL:
      // evdns folds timeouts, SERVFAIL and REFUSED into this one code.
      return "timed out or the nameserver failed";
    case EVUTIL_EAI_CANCEL:
      if (!cancel_reason.empty()) return cancel_reason;
      break;
    default:
      break;
  }
  return evutil_gai_strerror(result);
}

const char* noAddressError(DnsFamily family) {
  switch (family) {
    case DnsFamily::kV4Only:
      return "no IPv4 address";
    case DnsFamily::kV6Only:
      return "no IPv6 address";
    default:
      return "no address";
  }
}

}  // namespace

bool DnsResolver::FileStamp::operator==(const FileStamp& other) const {
  return exists == other.exists && dev == other.dev && ino == other.ino && size == other.size &&
         mtime.tv_sec == other.mtime.tv_sec && mtime.tv_nsec == other.mtime.tv_nsec &&
         ctime.tv_sec == other.ctime.tv_sec && ctime.tv_nsec == other.ctime.tv_nsec;
}

DnsResolver::DnsResolver(event_base* base, evdns_base* dns, const ResolverOptions& options)
    : event_base_(base), base_(dns), options_(options), cancelled_(new Cancelled{dns}) {}

absl::StatusOr<std::unique_ptr<DnsResolver>> DnsResolver::create(event_base* base,
                                                                 const ResolverOptions& options) {
  // Nameservers are not initialized here: evdns would read /etc/resolv.conf itself and, finding
  // no nameserver, send queries to 127.0.0.1. An idle nameserver socket must not keep the loop
  // running either.
  evdns_base* dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (dns == nullptr) return absl::InternalError("cannot create the DNS resolver (evdns_base_new)");
  auto resolver = std::unique_ptr<DnsResolver>(new DnsResolver(base, dns, options));

  const char* resolv_conf = options.resolv_conf.c_str();
  switch (evdns_base_resolv_conf_parse(dns,
                                       DNS_OPTION_NAMESERVERS | DNS_OPTION_SEARCH |
                                           DNS_OPTION_MISC | DNS_OPTION_NAMESERVERS_NO_DEFAULT,
                                       resolv_conf)) {
    case 0:
      break;
    case 1:  // cannot be opened
      log::warn("cannot open '%s': no nameserver, host names resolve through hosts files only",
                resolv_conf);
      break;
    case 6:
      log::warn("'%s' lists no nameserver: host names resolve through hosts files only",
                resolv_conf);
      break;
    default:  // exists, but could not be read whole
      return absl::FailedPreconditionError(absl::StrFormat("cannot read '%s'", resolv_conf));
  }
  if (int error = resolver->loadHosts(); error != 0) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot read hosts file '%s': %s",
                                                      options.hosts_file, std::strerror(error)));
  }
  return resolver;
}

DnsResolver::~DnsResolver() {
  if (cancelled_->pending == 0) {
    evdns_base_free(base_, /*fail_requests=*/0);
    delete cancelled_;
  } else {
    cancelled_->resolver_gone = true;
  }
}

void DnsResolver::cancelledDone(Cancelled* cancelled) {
  // evdns touches its base no more once the user callback of a cancelled lookup has run.
  if (--cancelled->pending == 0 && cancelled->resolver_gone) {
    evdns_base_free(cancelled->base, /*fail_requests=*/0);
    delete cancelled;
  }
}

int DnsResolver::cancelledPending() const { return cancelled_->pending; }

DnsResolver::FileStamp DnsResolver::stamp(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return {};
  return {true, st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

int DnsResolver::loadHosts() {
  // Stamped before reading: a change while evdns reads shows as a new stamp next time.
  system_hosts_ = stamp(kSystemHosts);
  extra_hosts_ = options_.hosts_file.empty() ? FileStamp{} : stamp(options_.hosts_file);
  evdns_base_clear_host_addresses(base_);
  // Without /etc/hosts evdns knows localhost only; not an error.
  evdns_base_load_hosts(base_, kSystemHosts);
  if (options_.hosts_file.empty() ||
      evdns_base_load_hosts(base_, options_.hosts_file.c_str()) == 0) {
    return 0;
  }
  return errno;
}

bool DnsResolver::reloadHostsIfChanged() {
  if (stamp(kSystemHosts) == system_hosts_ &&
      (options_.hosts_file.empty() || stamp(options_.hosts_file) == extra_hosts_)) {
    return false;
  }
  if (int error = loadHosts(); error != 0) {
    // Its names now go to DNS; where that fails, refreshers keep their last answers.
    log::warn("cannot read hosts file '%s': %s", options_.hosts_file, std::strerror(error));
  }
  return true;
}

DnsStats DnsStats::declare(stats::Store* store, const std::string& cluster) {
  const stats::Labels labels = {{"cluster", cluster}};
  DnsStats s;
  s.resolve_total = store->counter("sluice_cluster_dns_resolve_total",
                                   "DNS lookups of a STRICT_DNS cluster's host names.", labels);
  s.resolve_failure_total = store->counter(
      "sluice_cluster_dns_resolve_failure_total",
      "DNS lookups that failed (NXDOMAIN, no address, timeout, no nameserver); the host name "
      "keeps its last answer.",
      labels);
  s.endpoints = store->gauge("sluice_cluster_dns_endpoints",
                             "Endpoints a STRICT_DNS cluster's names resolved to.", labels);
  return s;
}

DnsRefresher::DnsRefresher(DnsResolver* resolver, std::string cluster,
                           std::vector<DnsTarget> targets, DnsFamily family, absl::Duration refresh,
                           const DnsStats& stats, stats::Cells* cells, OnChange on_change)
    : resolver_(resolver),
      cluster_(std::move(cluster)),
      family_(family),
      refresh_(refresh),
      stats_(stats),
      cells_(cells),
      on_change_(std::move(on_change)),
      timer_(evtimer_new(resolver->eventBase(), &DnsRefresher::onTimer, this)) {
  targets_.reserve(targets.size());
  for (DnsTarget& config : targets) {
    Target target;
    target.config = std::move(config);
    // Whatever the family: the operator named this very address.
    if (std::optional<std::string> literal = canonicalLiteral(target.config.host)) {
      target.literal = true;
      target.addresses.push_back(*std::move(literal));
    }
    targets_.push_back(std::move(target));
  }
}

DnsRefresher::~DnsRefresher() {
  event_free(timer_);
  for (Target& target : targets_) {
    Lookup* lookup = target.lookup;
    if (lookup == nullptr) continue;
    // evdns reports the cancel through onAnswer on the next loop pass; until then the lookup
    // belongs to the resolver.
    lookup->owner = nullptr;
    lookup->orphaned_in = resolver_->cancelled_;
    ++resolver_->cancelled_->pending;
    if (!lookup->cancelled) evdns_getaddrinfo_cancel(lookup->request);
  }
}

void DnsRefresher::start() {
  const timeval now{0, 0};
  evtimer_add(timer_, &now);
}

void DnsRefresher::onTimer(evutil_socket_t, short, void* arg) {
  static_cast<DnsRefresher*>(arg)->startRound();
}

void DnsRefresher::startRound() {
  resolver_->reloadHostsIfChanged();
  // One count more until every lookup is issued: hosts-file answers arrive from inside
  // evdns_getaddrinfo and must not complete the round early.
  pending_ = 1;
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (targets_[i].literal) continue;
    ++pending_;
    lookUp(i);
  }
  if (--pending_ == 0) completeRound();
}

void DnsRefresher::lookUp(size_t index) {
  evutil_addrinfo hints{};
  hints.ai_family = family_ == DnsFamily::kV4Only   ? AF_INET
                    : family_ == DnsFamily::kV6Only ? AF_INET6
                                                    : AF_UNSPEC;
  // With 0, evdns would return every address twice (stream and datagram).
  hints.ai_socktype = SOCK_STREAM;
  auto* lookup = new Lookup{this, index};
  targets_[index].lookup = lookup;
  cells_->add(stats_.resolve_total);
  evdns_getaddrinfo_request* request =
      evdns_getaddrinfo(resolver_->base(), targets_[index].config.host.c_str(), nullptr, &hints,
                        &DnsRefresher::onAnswer, lookup);
  if (request == nullptr) return;  // answered already (hosts file), and `lookup` is gone
  lookup->request = request;
  if (evdns_base_count_nameservers(resolver_->base()) == 0) {
    // evdns would hold the query until a nameserver is added, which never happens.
    lookup->cancelled = true;
    lookup->cancel_reason = "not in a hosts file, and no nameserver is configured";
    evdns_getaddrinfo_cancel(request);
  }
}

void DnsRefresher::onAnswer(int result, evutil_addrinfo* answer, void* arg) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(arg));
  std::unique_ptr<evutil_addrinfo, void (*)(evutil_addrinfo*)> owned(answer, &evutil_freeaddrinfo);
  DnsRefresher* self = lookup->owner;
  if (self == nullptr) {
    DnsResolver::cancelledDone(lookup->orphaned_in);
    return;
  }
  Target& target = self->targets_[lookup->target];
  target.lookup = nullptr;
  self->finishLookup(target, result, answer, lookup->cancel_reason);
  if (--self->pending_ == 0) self->completeRound();
}

void DnsRefresher::finishLookup(Target& target, int result, const evutil_addrinfo* answer,
                                const std::string& cancel_reason) {
  std::vector<std::string> v4;
  std::vector<std::string> v6;
  for (const evutil_addrinfo* ai = answer; ai != nullptr; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN];
    if (ai->ai_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      v4.emplace_back(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)));
    } else if (ai->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      v6.emplace_back(inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)));
    }
  }
  std::vector<std::string> addresses;
  switch (family_) {
    case DnsFamily::kAuto:
      addresses = v4.empty() ? std::move(v6) : std::move(v4);
      break;
    case DnsFamily::kV4Only:
      addresses = std::move(v4);
      break;
    case DnsFamily::kV6Only:
      addresses = std::move(v6);
      break;
    case DnsFamily::kAll:
      addresses = std::move(v4);
      addresses.insert(addresses.end(), v6.begin(), v6.end());
      break;
  }

  // A name without an address of the family (a hosts file listing only the other one) fails
  // like NXDOMAIN: either way the target keeps what it had.
  if (result != 0 || addresses.empty()) {
    cells_->add(stats_.resolve_failure_total);
    if (!target.failing) {
      target.failing = true;
      const std::string error =
          result != 0 ? lookupError(result, cancel_reason) : noAddressError(family_);
      if (target.addresses.empty()) {
        log::warn("cluster '%s': DNS lookup of '%s' failed (%s); it has no address yet", cluster_,
                  target.config.host, error);
      } else {
        log::warn("cluster '%s': DNS lookup of '%s' failed (%s); keeping its last %d address(es)",
                  cluster_, target.config.host, error, target.addresses.size());
      }
    }
    return;
  }
  if (target.failing) {
    target.failing = false;
    log::info("cluster '%s': '%s' resolves again", cluster_, target.config.host);
  }
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  target.addresses = std::move(addresses);
}

void DnsRefresher::completeRound() {
  std::vector<ResolvedEndpoint> endpoints;
  for (const Target& target : targets_) {
    const DnsTarget& c = target.config;
    for (const std::string& address : target.addresses) {
      endpoints.push_back({address, c.port, c.weight, c.priority, c.host});
    }
  }
  std::sort(endpoints.begin(), endpoints.end());
  endpoints.erase(std::unique(endpoints.begin(), endpoints.end()), endpoints.end());
  cells_->gaugeSet(stats_.endpoints, static_cast<int64_t>(endpoints.size()));

  const timeval next = absl::ToTimeval(refresh_);
  evtimer_add(timer_, &next);
  const bool first = !resolved_once_;
  resolved_once_ = true;
  if (!first && endpoints == endpoints_) return;
  endpoints_ = std::move(endpoints);
  log::info("cluster '%s': DNS gives %d endpoint(s)", cluster_, endpoints_.size());
  // Copies, because on_change may destroy the refresher and with it both members.
  OnChange on_change = on_change_;
  const std::vector<ResolvedEndpoint> snapshot = endpoints_;
  on_change(snapshot);
}

}  // namespace sluice::upstream
