#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "proxy/http/filter.h"
#include "re2/re2.h"
#include "re2/set.h"
#include "sluice/config/v1/route.pb.h"

namespace sluice::router {

// Read access to a request's headers, for header matchers. `name` is lower case.
class HeaderSource {
 public:
  virtual ~HeaderSource() = default;
  // The first value of header `name`, if present.
  virtual bool find(std::string_view name, std::string_view* value) const = 0;
  // The value of cookie `name` (case-sensitive). This default reads the first Cookie header;
  // a source that can hold several overrides it.
  virtual bool cookie(std::string_view name, std::string_view* value) const;
};

// The value of cookie `name` in one Cookie header value ("a=1; b=2").
bool findCookie(std::string_view header, std::string_view name, std::string_view* value);

// What route matching looks at. Every view points into the request head; `path` is the one
// normalized path that routing, auth and forwarding all use.
struct RequestView {
  std::string_view method;
  std::string_view host;  // as sent; matching ignores case and, unless a domain names one, the port
  std::string_view path;
  std::string_view query;  // without '?'
  const HeaderSource* headers = nullptr;
};

// Header additions and removals, applied in that order: removals first, then additions.
struct HeaderOps {
  struct Add {
    std::string name;  // lower case
    std::string value;
    bool append = false;
  };
  std::vector<std::string> remove;  // lower case
  std::vector<Add> add;

  bool empty() const { return remove.empty() && add.empty(); }
};

// Retries of a forwarding route (RouteAction.retry_policy), with defaults applied.
struct RetryPolicy {
  bool on_5xx = false;
  bool on_gateway_error = false;
  bool on_connect_failure = false;
  bool on_reset = false;
  std::vector<uint32_t> status_codes;  // "retriable-status-codes"
  uint32_t num_retries = 1;
  int64_t per_try_timeout_ms = 0;  // 0: none
  int64_t base_interval_ms = 25;
  int64_t max_interval_ms = 250;
  uint32_t max_buffered_body = 64 * 1024;
  bool retry_non_idempotent = false;

  // Whether an upstream answer with `status` is retried.
  bool retriesStatus(uint32_t status) const;
};

struct MirrorPolicy {
  uint32_t cluster = 0;            // index in the generation's cluster table
  uint32_t per_million = 1000000;  // share of requests mirrored
};

struct HashPolicy {
  enum class Kind { kHeader, kCookie, kSourceIp };
  Kind kind = Kind::kHeader;
  std::string name;  // header (lower case) or cookie name
};

// The traffic-management settings of a forwarding route, kept apart from Route because most
// routes have none of them (a route table of 10,000 routes stays small).
struct TrafficPolicy {
  std::unique_ptr<RetryPolicy> retry;
  std::vector<MirrorPolicy> mirrors;
  std::vector<HashPolicy> hash;
  int64_t idle_timeout_ms = 0;  // 0: the listener's
  // Route-wide concurrency limit across workers; the count is shared by every worker.
  uint32_t max_concurrent = 0;  // 0: unlimited
  mutable std::atomic<uint32_t> active{0};
  // The stats::CounterId cell of its overflow counter (the generation declares it).
  uint32_t overflow_counter = UINT32_MAX;
  bool has_fallback = false;
  uint32_t fallback_status = 503;
  std::string fallback_body;
  int64_t fault_delay_ms = 0;
  uint32_t fault_delay_per_million = 0;
  uint32_t fault_abort_status = 0;
  uint32_t fault_abort_per_million = 0;
};

struct ClusterChoice {
  uint32_t cluster = 0;     // index in the generation's cluster table
  uint64_t cumulative = 0;  // running total of weights up to and including this one
};

struct Route {
  enum class PathKind { kExact, kPrefix, kRegex };
  enum class Action { kCluster, kDirectResponse, kRedirect };

  struct HeaderMatch {
    enum class Kind { kExact, kPrefix, kSuffix, kRegex, kPresent };
    std::string name;  // lower case
    Kind kind;
    std::string value;
    std::unique_ptr<RE2> regex;
    bool present = true;  // kPresent: true = must be present, false = must be absent
    bool invert = false;
  };
  struct QueryMatch {
    enum class Kind { kExact, kRegex, kPresent };
    std::string name;
    Kind kind;
    std::string value;
    std::unique_ptr<RE2> regex;
    bool present = true;
  };
  struct CookieMatch {
    enum class Kind { kExact, kRegex, kPresent };
    std::string name;
    Kind kind;
    std::string value;
    std::unique_ptr<RE2> regex;
    bool present = true;
    bool invert = false;
  };

  std::string name;
  PathKind path_kind = PathKind::kPrefix;
  std::string path;  // exact path or prefix
  std::unique_ptr<RE2> regex;
  std::vector<std::string> methods;
  std::vector<HeaderMatch> headers;
  std::vector<QueryMatch> query;
  std::vector<CookieMatch> cookies;

  Action action = Action::kCluster;
  // kCluster: one entry, or a weighted split.
  std::vector<ClusterChoice> clusters;
  uint64_t total_weight = 0;
  std::string prefix_rewrite;
  std::string host_rewrite;
  int64_t timeout_ms = 15'000;             // 0: none
  std::unique_ptr<TrafficPolicy> traffic;  // null: none of its settings
  // The access phase (the route's or its virtual host's AccessPolicy); null: open to all.
  std::shared_ptr<const http::FilterChain> access;
  // kDirectResponse.
  uint32_t status = 200;
  std::string body;
  // kRedirect.
  uint32_t redirect_code = 301;
  std::string scheme_redirect;
  std::string host_redirect;
  std::string path_redirect;
  bool strip_query = false;

  // The virtual host's mutations followed by the route's.
  HeaderOps request_headers;
  HeaderOps response_headers;

  bool matches(const RequestView& request) const;
  // The cluster for a weighted split, given a uniformly random `draw`.
  uint32_t pickCluster(uint64_t draw) const;
};

// Where the routes of one virtual host can match, so that a request looks only at the routes its
// path can select: exact paths by hash, prefixes in a radix tree, regexes in order with RE2 sets
// over runs of them. Every candidate list is in route order, so the first route that fully
// matches is the lowest index found in any of them, and each list stops at the best so far.
// Small hosts are scanned in order instead. Matching allocates nothing (RE2 itself may, when it
// adds a state to a DFA's cache, as it does for every route's regex too).
class RouteIndex {
 public:
  // Indexes `routes`; match() must be given the same routes, unchanged.
  static RouteIndex build(const std::vector<Route>& routes);

  // The first route of `routes` that matches `request`, or nullptr.
  const Route* match(const std::vector<Route>& routes, const RequestView& request) const;

  // False for small hosts, which are scanned in order.
  bool indexed() const { return !linear_; }

 private:
  // A run of route indexes in ids_.
  struct Span {
    uint32_t begin = 0;
    uint32_t size = 0;
  };
  // A radix tree node: the prefix of a node is the labels on the way from the root to it.
  struct PrefixNode {
    uint32_t label_begin = 0;  // in labels_
    uint32_t label_size = 0;
    uint32_t first_child = 0;  // children are contiguous, ordered by the first byte of their label
    uint32_t child_count = 0;
    Span ids;                      // routes whose prefix ends here
    uint32_t subtree_min = 0;      // the lowest route index here or below
    unsigned char first_byte = 0;  // labels_[label_begin], or 0 for the root
  };
  // Consecutive regex routes (regex_[begin, end)) and, for long runs, a set that rules them all
  // out with one DFA pass.
  struct RegexChunk {
    uint32_t begin = 0;
    uint32_t end = 0;
    std::unique_ptr<RE2::Set> set;
  };

  void buildPrefixTree(std::vector<std::pair<std::string, std::vector<uint32_t>>> prefixes);
  Span addIds(const std::vector<uint32_t>& ids);

  bool linear_ = true;
  std::vector<uint32_t> ids_;
  absl::flat_hash_map<std::string, Span> exact_;
  std::vector<PrefixNode> prefix_nodes_;  // [0] is the root (the empty prefix), if any prefixes
  std::string labels_;
  std::vector<uint32_t> regex_;  // indexes of the regex routes, ascending
  std::vector<RegexChunk> regex_chunks_;
};

struct VirtualHost {
  std::string name;
  std::vector<Route> routes;
  RouteIndex index;  // over `routes`
};

// A RouteConfiguration compiled for matching: hosts by hash, suffix wildcards longest first,
// routes indexed by path (RouteIndex). Immutable once built; shared by every worker.
class RouteTable {
 public:
  // Resolves cluster names to indexes with `cluster_index`, which returns -1 for an unknown name.
  template <class ClusterIndex>
  static absl::StatusOr<std::unique_ptr<RouteTable>> compile(
      const config::v1::RouteConfiguration& config, const ClusterIndex& cluster_index) {
    return compileWith(config, [&](const std::string& n) { return int(cluster_index(n)); });
  }

  const std::string& name() const { return name_; }
  const VirtualHost* findVirtualHost(std::string_view host) const;
  // The first matching route of the request's virtual host, or nullptr.
  const Route* route(const RequestView& request) const;
  size_t routeCount() const;
  // For the generation to fill in what only it knows (metric ids), before the table is shared.
  void forEachRoute(const std::function<void(const std::string& vhost, Route&)>& fn);

 private:
  using Resolver = std::function<int(const std::string&)>;
  static absl::StatusOr<std::unique_ptr<RouteTable>> compileWith(
      const config::v1::RouteConfiguration& config, const Resolver& resolve);

  std::string name_;
  std::vector<std::unique_ptr<VirtualHost>> hosts_;
  absl::flat_hash_map<std::string, const VirtualHost*> exact_;  // lower-case domain
  std::vector<std::pair<std::string, const VirtualHost*>>
      suffixes_;  // ".example.com", longest first
  const VirtualHost* any_ = nullptr;
};

}  // namespace sluice::router
