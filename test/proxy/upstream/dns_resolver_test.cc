// STRICT_DNS resolution with evdns on a real event loop, offline: names come from a temporary
// hosts file, and DNS proper from nameservers on 127.0.0.1 that the test runs itself (one that
// answers, one that never does). Every resolver gets a resolv.conf written here, so no query ever
// leaves the loopback interface.
#include "proxy/upstream/dns_resolver.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace sluice::upstream {

void PrintTo(const ResolvedEndpoint& e, std::ostream* os) {
  *os << e.host << "=" << e.address << ":" << e.port << " w" << e.weight << " p" << e.priority;
}

namespace {

// Every wait is bounded by this; it only matters when a test fails.
constexpr absl::Duration kWait = absl::Seconds(10);
// Short, so that tests see several rounds.
constexpr absl::Duration kRefresh = absl::Milliseconds(20);

constexpr char kHosts[] =
    "127.0.0.1 web.sluice.test\n"
    "::1 web.sluice.test\n"
    "127.0.0.2 multi.sluice.test\n"
    "127.0.0.3 multi.sluice.test\n";

// A UDP socket on 127.0.0.1 with a free port.
int loopbackUdp(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << errno;
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A nameserver on 127.0.0.1 (libevent's evdns server): A records for the names in `a`, an empty
// answer for their other record types, NXDOMAIN for every other name.
class FakeNameserver {
 public:
  explicit FakeNameserver(event_base* base) {
    fd_ = loopbackUdp(&port_);
    port_handle_ = evdns_add_server_port_with_base(base, fd_, 0, &FakeNameserver::onRequest, this);
  }
  ~FakeNameserver() {
    evdns_close_server_port(port_handle_);
    close(fd_);
  }

  uint16_t port() const { return port_; }

  std::map<std::string, std::string> a;  // lower-case name -> IPv4 address
  int queries = 0;

 private:
  static void onRequest(evdns_server_request* request, void* arg) {
    auto* self = static_cast<FakeNameserver*>(arg);
    int error = DNS_ERR_NONE;
    for (int i = 0; i < request->nquestions; ++i) {
      const evdns_server_question* q = request->questions[i];
      ++self->queries;
      // evdns randomizes the case of the names it asks for.
      auto it = self->a.find(absl::AsciiStrToLower(q->name));
      if (it == self->a.end()) {
        error = DNS_ERR_NOTEXIST;
      } else if (q->type == EVDNS_TYPE_A) {
        in_addr addr;
        inet_pton(AF_INET, it->second.c_str(), &addr);
        evdns_server_request_add_a_reply(request, q->name, 1, &addr, 30);
      }
    }
    evdns_server_request_respond(request, error);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  evdns_server_port* port_handle_ = nullptr;
};

// A "nameserver" that receives queries and never answers.
class SilentNameserver {
 public:
  SilentNameserver() { fd_ = loopbackUdp(&port_); }
  ~SilentNameserver() { close(fd_); }

  uint16_t port() const { return port_; }
  // True once a query has arrived (consumed).
  bool received() {
    char packet[512];
    return recv(fd_, packet, sizeof(packet), 0) > 0;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class DnsResolverTest : public ::testing::Test {
 protected:
  DnsResolverTest() : base_(event_base_new()), store_(stats::Store::create(1)) {
    std::string pattern = testing::TempDir() + "dns_resolver_test.XXXXXX";
    dir_ = mkdtemp(pattern.data());
    hosts_ = dir_ + "/hosts";
    writeHosts(kHosts);
    // Absent: no nameserver at all, unless a test writes one.
    resolv_conf_ = dir_ + "/resolv.conf";
    stats_ = DnsStats::declare(store_.get(), "web");
  }

  ~DnsResolverTest() override {
    refresher_.reset();
    resolver_.reset();
    servers_.clear();
    event_base_free(base_);
    std::remove(hosts_.c_str());
    std::remove(resolv_conf_.c_str());
    rmdir(dir_.c_str());
  }

  // Replaces the hosts file by a new one (a new inode), as editors and config tools do.
  void writeHosts(const std::string& content) {
    const std::string next = hosts_ + ".next";
    std::ofstream(next) << content;
    ASSERT_EQ(std::rename(next.c_str(), hosts_.c_str()), 0) << errno;
  }

  // resolv.conf naming one nameserver on 127.0.0.1 (evdns accepts a port), with one attempt of
  // `timeout_seconds`.
  void useNameserver(uint16_t port, const std::string& timeout_seconds) {
    std::ofstream(resolv_conf_) << "nameserver 127.0.0.1:" << port
                                << "\noptions timeout:" << timeout_seconds << " attempts:1\n";
  }

  FakeNameserver* startNameserver() {
    auto server = std::make_unique<FakeNameserver>(base_);
    FakeNameserver* raw = server.get();
    servers_.push_back(std::move(server));
    useNameserver(raw->port(), "5");
    return raw;
  }

  ResolverOptions options() const {
    ResolverOptions o;
    o.hosts_file = hosts_;
    o.resolv_conf = resolv_conf_;
    return o;
  }

  void createResolver() {
    auto resolver = DnsResolver::create(base_, options());
    ASSERT_TRUE(resolver.ok()) << resolver.status();
    resolver_ = *std::move(resolver);
  }

  void startRefresher(std::vector<DnsTarget> targets, DnsFamily family = DnsFamily::kAuto) {
    if (resolver_ == nullptr) createResolver();
    ASSERT_NE(resolver_, nullptr);
    refresher_ = std::make_unique<DnsRefresher>(
        resolver_.get(), "web", std::move(targets), family, kRefresh, stats_, store_->cells(0),
        [this](const std::vector<ResolvedEndpoint>& endpoints) { changes_.push_back(endpoints); });
    refresher_->start();
  }

  // Runs the loop until `done` or kWait passes; wakes at least every 10 ms to check.
  bool runUntil(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    while (!done()) {
      if (absl::Now() > deadline) return false;
      timeval tick = absl::ToTimeval(absl::Milliseconds(10));
      event_base_once(
          base_, -1, EV_TIMEOUT, [](evutil_socket_t, short, void*) {}, nullptr, &tick);
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }

  // Runs until `rounds` more rounds of `lookups` lookups each have been counted.
  bool runRounds(int rounds, int lookups) {
    const int64_t target = lookupCount() + rounds * lookups;
    return runUntil([&] { return lookupCount() >= target; });
  }

  int64_t lookupCount() const { return store_->value(stats_.resolve_total); }
  int64_t failureCount() const { return store_->value(stats_.resolve_failure_total); }
  int64_t endpointGauge() const { return store_->value(stats_.endpoints); }

  event_base* base_;
  std::unique_ptr<stats::Store> store_;
  DnsStats stats_;
  std::string dir_;
  std::string hosts_;
  std::string resolv_conf_;
  std::vector<std::unique_ptr<FakeNameserver>> servers_;
  std::unique_ptr<DnsResolver> resolver_;
  std::unique_ptr<DnsRefresher> refresher_;
  std::vector<std::vector<ResolvedEndpoint>> changes_;  // every on_change argument
};

TEST_F(DnsResolverTest, EveryAddressOfAHostBecomesAnEndpointWithTheTargetsPortWeightPriority) {
  startRefresher({{"web.sluice.test", 8080, 3, 0}, {"multi.sluice.test", 9090, 1, 1}});
  // Reported from the loop, never from inside start().
  EXPECT_TRUE(changes_.empty());
  EXPECT_FALSE(refresher_->resolvedOnce());

  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  // AUTO: web.sluice.test has an IPv4 address, so its IPv6 one is left out.
  const std::vector<ResolvedEndpoint> expected = {
      {"127.0.0.1", 8080, 3, 0, "web.sluice.test"},
      {"127.0.0.2", 9090, 1, 1, "multi.sluice.test"},
      {"127.0.0.3", 9090, 1, 1, "multi.sluice.test"},
  };
  EXPECT_EQ(refresher_->endpoints(), expected);
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0], expected);
  EXPECT_EQ(lookupCount(), 2);
  EXPECT_EQ(failureCount(), 0);
  EXPECT_EQ(endpointGauge(), 3);
  EXPECT_TRUE(absl::StrContains(store_->prometheusText(),
                                "sluice_cluster_dns_resolve_total{cluster=\"web\"} 2"));
}

TEST_F(DnsResolverTest, LookupFamilies) {
  struct Case {
    DnsFamily family;
    std::vector<std::string> addresses;
  };
  const Case cases[] = {
      {DnsFamily::kAuto, {"127.0.0.1"}},
      {DnsFamily::kV4Only, {"127.0.0.1"}},
      {DnsFamily::kV6Only, {"::1"}},
      {DnsFamily::kAll, {"127.0.0.1", "::1"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.family));
    changes_.clear();
    startRefresher({{"web.sluice.test", 80, 1, 0}}, c.family);
    ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
    std::vector<std::string> addresses;
    for (const ResolvedEndpoint& e : refresher_->endpoints()) addresses.push_back(e.address);
    EXPECT_EQ(addresses, c.addresses);
    EXPECT_EQ(changes_.size(), 1u);
  }
}

TEST_F(DnsResolverTest, ANameWithoutAnAddressOfTheFamilyFails) {
  startRefresher({{"multi.sluice.test", 80, 1, 0}, {"web.sluice.test", 81, 1, 0}},
                 DnsFamily::kV6Only);
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  const std::vector<ResolvedEndpoint> expected = {{"::1", 81, 1, 0, "web.sluice.test"}};
  EXPECT_EQ(refresher_->endpoints(), expected);
  EXPECT_EQ(lookupCount(), 2);
  EXPECT_EQ(failureCount(), 1);
}

TEST_F(DnsResolverTest, IpLiteralsResolveToThemselvesWithoutALookup) {
  startRefresher({{"10.1.2.3", 80, 2, 0}, {"::0001", 81, 1, 3}}, DnsFamily::kV4Only);
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  const std::vector<ResolvedEndpoint> expected = {
      {"10.1.2.3", 80, 2, 0, "10.1.2.3"},
      {"::1", 81, 1, 3, "::0001"},
  };
  EXPECT_EQ(refresher_->endpoints(), expected);
  EXPECT_EQ(changes_.size(), 1u);
  EXPECT_EQ(lookupCount(), 0);
}

TEST_F(DnsResolverTest, DuplicateTargetsGiveOneEndpoint) {
  startRefresher({{"multi.sluice.test", 80, 1, 0}, {"multi.sluice.test", 80, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  EXPECT_EQ(refresher_->endpoints().size(), 2u);
  EXPECT_EQ(endpointGauge(), 2);
}

TEST_F(DnsResolverTest, WithoutNameserverAnUnknownNameFailsAtOnceAndTheFirstRoundStillReports) {
  startRefresher({{"nope.invalid", 80, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_TRUE(changes_[0].empty());
  EXPECT_TRUE(refresher_->endpoints().empty());
  EXPECT_EQ(failureCount(), 1);
  EXPECT_EQ(resolver_->cancelledPending(), 0);
}

TEST_F(DnsResolverTest, AFailingLookupKeepsTheLastAnswerAndWarnsOncePerStreak) {
  writeHosts(absl::StrCat(kHosts, "127.0.0.5 flaky.sluice.test\n"));
  startRefresher({{"flaky.sluice.test", 80, 1, 0}, {"web.sluice.test", 81, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  const std::vector<ResolvedEndpoint> before = {
      {"127.0.0.1", 81, 1, 0, "web.sluice.test"},
      {"127.0.0.5", 80, 1, 0, "flaky.sluice.test"},
  };
  EXPECT_EQ(refresher_->endpoints(), before);

  // Gone from the hosts file, and no nameserver: the lookup fails, round after round.
  testing::internal::CaptureStderr();
  writeHosts(kHosts);
  ASSERT_TRUE(runUntil([&] { return failureCount() >= 3; }));
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(refresher_->endpoints(), before);
  EXPECT_EQ(changes_.size(), 1u);
  EXPECT_EQ(endpointGauge(), 2);
  const std::string warning = "DNS lookup of 'flaky.sluice.test' failed";
  ASSERT_TRUE(absl::StrContains(log, warning)) << log;
  EXPECT_EQ(log.find(warning), log.rfind(warning)) << log;

  // Back with another address: replaces the kept one.
  writeHosts(absl::StrCat(kHosts, "127.0.0.6 flaky.sluice.test\n"));
  ASSERT_TRUE(runUntil([&] { return changes_.size() == 2; }));
  const std::vector<ResolvedEndpoint> after = {
      {"127.0.0.1", 81, 1, 0, "web.sluice.test"},
      {"127.0.0.6", 80, 1, 0, "flaky.sluice.test"},
  };
  EXPECT_EQ(changes_[1], after);
  EXPECT_EQ(refresher_->endpoints(), after);
}

TEST_F(DnsResolverTest, AChangedHostsFileIsReloadedAndReportedOnce) {
  startRefresher({{"multi.sluice.test", 80, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_FALSE(resolver_->reloadHostsIfChanged());

  writeHosts("127.0.0.2 multi.sluice.test\n127.0.0.4 multi.sluice.test\n");
  ASSERT_TRUE(runUntil([&] { return changes_.size() == 2; }));
  const std::vector<ResolvedEndpoint> changed = {
      {"127.0.0.2", 80, 1, 0, "multi.sluice.test"},
      {"127.0.0.4", 80, 1, 0, "multi.sluice.test"},
  };
  EXPECT_EQ(changes_[1], changed);
  ASSERT_TRUE(runRounds(3, 1));
  EXPECT_EQ(changes_.size(), 2u);

  // Rewritten with the same answer: reloaded, but nothing to report.
  writeHosts("127.0.0.4 multi.sluice.test\n127.0.0.2 multi.sluice.test\n");
  EXPECT_TRUE(resolver_->reloadHostsIfChanged());
  ASSERT_TRUE(runRounds(3, 1));
  EXPECT_EQ(changes_.size(), 2u);
  EXPECT_EQ(refresher_->endpoints(), changed);
  EXPECT_EQ(failureCount(), 0);
}

TEST_F(DnsResolverTest, NamesMissingFromTheHostsFilesAreAskedOfTheNameserver) {
  FakeNameserver* dns = startNameserver();
  dns->a["dyn.sluice.test"] = "127.0.0.9";
  startRefresher({{"dyn.sluice.test", 80, 1, 0}, {"web.sluice.test", 81, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  const std::vector<ResolvedEndpoint> expected = {
      {"127.0.0.1", 81, 1, 0, "web.sluice.test"},
      {"127.0.0.9", 80, 1, 0, "dyn.sluice.test"},
  };
  EXPECT_EQ(refresher_->endpoints(), expected);
  // A and AAAA for dyn.sluice.test; web.sluice.test comes from the hosts file.
  EXPECT_EQ(dns->queries, 2);

  // NXDOMAIN keeps the last answer.
  dns->a.clear();
  ASSERT_TRUE(runUntil([&] { return failureCount() >= 2; }));
  EXPECT_EQ(refresher_->endpoints(), expected);
  EXPECT_EQ(changes_.size(), 1u);
}

TEST_F(DnsResolverTest, ANameserverThatNeverAnswersTimesOutAsAFailure) {
  SilentNameserver silent;
  useNameserver(silent.port(), "0.2");
  startRefresher({{"dyn.sluice.test", 80, 1, 0}, {"web.sluice.test", 81, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return refresher_->resolvedOnce(); }));
  EXPECT_TRUE(silent.received());
  const std::vector<ResolvedEndpoint> expected = {{"127.0.0.1", 81, 1, 0, "web.sluice.test"}};
  EXPECT_EQ(refresher_->endpoints(), expected);
  EXPECT_EQ(failureCount(), 1);
}

TEST_F(DnsResolverTest, DestroyingARefresherCancelsItsLookupInFlight) {
  SilentNameserver silent;
  useNameserver(silent.port(), "60");
  startRefresher({{"dyn.sluice.test", 80, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return silent.received(); }));

  refresher_.reset();
  // evdns reports the cancel on the next loop pass, to a callback that must not find the
  // refresher.
  EXPECT_EQ(resolver_->cancelledPending(), 1);
  ASSERT_TRUE(runUntil([&] { return resolver_->cancelledPending() == 0; }));
  EXPECT_TRUE(changes_.empty());
}

TEST_F(DnsResolverTest, TheResolverMayGoBeforeTheCancelledLookupsCallBack) {
  SilentNameserver silent;
  useNameserver(silent.port(), "60");
  startRefresher({{"dyn.sluice.test", 80, 1, 0}});
  ASSERT_TRUE(runUntil([&] { return silent.received(); }));

  refresher_.reset();
  resolver_.reset();
  // The cancel's callback runs now and frees the evdns state the resolver left to it.
  bool ticked = false;
  timeval tick = absl::ToTimeval(absl::Milliseconds(10));
  event_base_once(
      base_, -1, EV_TIMEOUT,
      [](evutil_socket_t, short, void* arg) { *static_cast<bool*>(arg) = true; }, &ticked, &tick);
  ASSERT_TRUE(runUntil([&] { return ticked; }));
  EXPECT_TRUE(changes_.empty());
}

TEST_F(DnsResolverTest, AMissingResolvConfLeavesTheHostsFiles) {
  ASSERT_NE(access(resolv_conf_.c_str(), F_OK), 0);
  auto resolver = DnsResolver::create(base_, options());
  ASSERT_TRUE(resolver.ok()) << resolver.status();
  EXPECT_EQ(evdns_base_count_nameservers((*resolver)->base()), 0);
}

TEST_F(DnsResolverTest, AnUnreadableHostsFileIsAnError) {
  ResolverOptions o = options();
  o.hosts_file = dir_ + "/missing-hosts";
  auto resolver = DnsResolver::create(base_, o);
  ASSERT_FALSE(resolver.ok());
  EXPECT_TRUE(absl::StrContains(resolver.status().message(), o.hosts_file)) << resolver.status();
}

}  // namespace
}  // namespace sluice::upstream
