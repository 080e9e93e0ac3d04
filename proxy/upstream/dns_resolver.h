#pragma once

// Asynchronous DNS for STRICT_DNS clusters, on the main thread's event loop with libevent's evdns:
// no threads and no blocking getaddrinfo. One DnsResolver per process holds the evdns state
// (nameservers, search domains and hosts-file entries); one DnsRefresher per cluster resolves
// the cluster's host names every refresh interval and reports when the endpoint set changes.
#include <event2/event.h>
#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/stats/store.h"

struct evdns_base;
struct evdns_getaddrinfo_request;
struct evutil_addrinfo;

namespace sluice::upstream {

struct ResolverOptions {
  // An extra hosts file (the /etc/hosts format), consulted with /etc/hosts before DNS; a name in
  // both gets the addresses of both. Empty: none beyond the system's.
  std::string hosts_file;
  // Nameservers, search domains and options (timeout, attempts, ndots). evdns also takes
  // "nameserver IP:port". A missing file leaves no nameserver: names resolve through the hosts
  // files only, and any other name fails at once.
  std::string resolv_conf = "/etc/resolv.conf";
};

class DnsResolver {
 public:
  // Loads `options.resolv_conf`, then /etc/hosts and `options.hosts_file`. Fails when the
  // hosts file cannot be read or resolv.conf exists but cannot be read whole.
  static absl::StatusOr<std::unique_ptr<DnsResolver>> create(event_base* base,
                                                             const ResolverOptions& options);
  // Destroy every refresher first. Lookups their destruction cancelled still call back on the
  // next loop pass and need the evdns state: the last of them frees it when the resolver is gone.
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  evdns_base* base() { return base_; }
  event_base* eventBase() { return event_base_; }

  // evdns reads hosts files only when told to, so this reloads /etc/hosts and the extra hosts file
  // when either changed (inode, size or times) since the last load. Refreshers call it at the
  // start of every round: an edited hosts file is seen within one refresh interval. Returns true
  // when it reloaded.
  bool reloadHostsIfChanged();

  // Cancelled lookups whose callbacks have not arrived yet.
  int cancelledPending() const;

 private:
  friend class DnsRefresher;
  // What a cancelled lookup's callback needs, which may outlive the resolver (see ~DnsResolver).
  struct Cancelled {
    evdns_base* base = nullptr;
    int pending = 0;
    bool resolver_gone = false;
  };
  // The identity and change times of a file, or !exists.
  struct FileStamp {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    timespec ctime{};
    bool operator==(const FileStamp& other) const;
  };

  DnsResolver(event_base* base, evdns_base* dns, const ResolverOptions& options);
  static FileStamp stamp(const std::string& path);
  // Replaces the hosts entries. 0, or the errno of reading the extra hosts file.
  int loadHosts();
  // A cancelled lookup's callback arrived.
  static void cancelledDone(Cancelled* cancelled);

  event_base* event_base_;
  evdns_base* base_;
  ResolverOptions options_;
  FileStamp system_hosts_;
  FileStamp extra_hosts_;
  Cancelled* cancelled_;
};

// One entry of a STRICT_DNS cluster's endpoint list.
struct DnsTarget {
  std::string host;  // a host name, or an IPv4/IPv6 literal
  uint32_t port = 0;
  uint32_t weight = 1;
  uint32_t priority = 0;
};

// One address a target resolved to, with the target's port, weight and priority.
struct ResolvedEndpoint {
  std::string address;  // IP literal in inet_ntop's form ("127.0.0.1", "::1")
  uint32_t port = 0;
  uint32_t weight = 1;
  uint32_t priority = 0;
  std::string host;  // the target's host name it came from
  auto operator<=>(const ResolvedEndpoint&) const = default;
};

// Cluster.DnsLookupFamily.
enum class DnsFamily {
  kAuto,  // IPv4 addresses when a name has any, else IPv6
  kV4Only,
  kV6Only,
  kAll,  // both families
};

struct DnsStats {
  // The one place the DNS metric names live.
  static DnsStats declare(stats::Store* store, const std::string& cluster);

  stats::CounterId resolve_total;          // host-name lookups (IP literals need none)
  stats::CounterId resolve_failure_total;  // ... of which failed and kept the last answer
  stats::GaugeId endpoints;                // endpoints after the last round
};

// Resolves one STRICT_DNS cluster's targets, every address becoming an endpoint (as Envoy does).
// A round looks up every host name at once and completes when all have answered; the next round
// starts one refresh interval later. A lookup that fails (NXDOMAIN, no address of the family,
// timeout, no nameserver) keeps that target's last answer, counts a failure and logs a warning
// once per failure streak. Main thread only.
class DnsRefresher {
 public:
  using OnChange = std::function<void(const std::vector<ResolvedEndpoint>&)>;

  // `cells` is the main thread's. `on_change` runs from the event loop after the first round
  // (even when it found nothing) and after every round whose endpoint set differs from the last
  // one; it may destroy the refresher.
  DnsRefresher(DnsResolver* resolver, std::string cluster, std::vector<DnsTarget> targets,
               DnsFamily family, absl::Duration refresh, const DnsStats& stats, stats::Cells* cells,
               OnChange on_change);
  // Cancels the lookups in flight; safe at any time, also from inside on_change.
  ~DnsRefresher();
  DnsRefresher(const DnsRefresher&) = delete;
  DnsRefresher& operator=(const DnsRefresher&) = delete;

  // Call once. The first round starts on the next pass of the event loop, so on_change never
  // runs inside start().
  void start();

  // The endpoints after the last round: sorted, without duplicates.
  const std::vector<ResolvedEndpoint>& endpoints() const { return endpoints_; }
  bool resolvedOnce() const { return resolved_once_; }

 private:
  // One evdns_getaddrinfo in flight. Heap-allocated because its callback can arrive after the
  // refresher is gone (a cancel is reported on the next loop pass).
  struct Lookup {
    DnsRefresher* owner;  // null once the refresher has gone
    size_t target;
    evdns_getaddrinfo_request* request = nullptr;
    bool cancelled = false;
    std::string cancel_reason;  // why the refresher cancelled it, reported as the failure
    DnsResolver::Cancelled* orphaned_in = nullptr;
  };
  struct Target {
    DnsTarget config;
    bool literal = false;
    std::vector<std::string> addresses;  // the last good answer, sorted
    bool failing = false;
    Lookup* lookup = nullptr;
  };

  static void onTimer(evutil_socket_t, short, void* arg);
  static void onAnswer(int result, evutil_addrinfo* answer, void* arg);
  void startRound();
  void lookUp(size_t index);
  void finishLookup(Target& target, int result, const evutil_addrinfo* answer,
                    const std::string& cancel_reason);
  // Called when every lookup of the round has answered. Last in every call chain, because
  // on_change may destroy the refresher.
  void completeRound();

  DnsResolver* resolver_;
  std::string cluster_;
  std::vector<Target> targets_;
  DnsFamily family_;
  absl::Duration refresh_;
  DnsStats stats_;
  stats::Cells* cells_;
  OnChange on_change_;
  event* timer_;
  size_t pending_ = 0;
  bool resolved_once_ = false;
  std::vector<ResolvedEndpoint> endpoints_;
};

}  // namespace sluice::upstream
