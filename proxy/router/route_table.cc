#include "proxy/router/route_table.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sluice::router {
namespace {

namespace v1 = config::v1;

// Hosts longer than this never match a domain (DNS names are at most 253 characters).
constexpr size_t kMaxHost = 260;
// Query values longer than this are matched undecoded.
constexpr size_t kMaxQueryValue = 2048;
// Hosts with at most this many routes are scanned in order. A scan costs 1.5-2.5 ns per exact or
// prefix route it passes and beats the index (35-40 ns at any size) by 5-10 ns on the first
// route; the two are even on average at about 20 routes, the index twice as fast at 32
// (tools/bench/router_benchmark, BM_Uniform with 20, 32 and 64 routes).
constexpr size_t kLinearMax = 24;
// Regex routes are tried in runs of this many, each ruled out at once by an RE2::Set (one DFA
// pass costs about one route's regex). 64 balances the sets passed over against the routes tried
// one by one in the run that matches: 12 us for the last of 10,000 regexes.
constexpr uint32_t kRegexChunk = 64;
// Fewer candidates than this are cheaper to try one by one than with a set.
constexpr uint32_t kMinSetRun = 4;

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

absl::string_view av(std::string_view s) { return {s.data(), s.size()}; }

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}
bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool fullMatch(const RE2& re, std::string_view s) {
  return RE2::FullMatch(re2::StringPiece(s.data(), s.size()), re);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes (and '+' to space) into `buf`; false if it does not fit or is malformed.
bool decodeQuery(std::string_view in, char* buf, size_t cap, std::string_view* out) {
  size_t n = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (n == cap) return false;
    char c = in[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    buf[n++] = c;
  }
  *out = std::string_view(buf, n);
  return true;
}

// Finds parameter `name` in a query string; `value` is its raw (undecoded) value.
bool findQuery(std::string_view query, std::string_view name, std::string_view* value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) {
      *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
  }
  return false;
}

bool headerMatches(const Route::HeaderMatch& m, const HeaderSource* headers) {
  std::string_view value;
  bool found = headers != nullptr && headers->find(m.name, &value);
  bool ok = false;
  switch (m.kind) {
    case Route::HeaderMatch::Kind::kPresent:
      ok = found == m.present;
      break;
    case Route::HeaderMatch::Kind::kExact:
      ok = found && value == m.value;
      break;
    case Route::HeaderMatch::Kind::kPrefix:
      ok = found && startsWith(value, m.value);
      break;
    case Route::HeaderMatch::Kind::kSuffix:
      ok = found && endsWith(value, m.value);
      break;
    case Route::HeaderMatch::Kind::kRegex:
      ok = found && fullMatch(*m.regex, value);
      break;
  }
  return ok != m.invert;
}

bool cookieMatches(const Route::CookieMatch& m, const HeaderSource* headers) {
  std::string_view value;
  bool found = headers != nullptr && headers->cookie(m.name, &value);
  bool ok = false;
  switch (m.kind) {
    case Route::CookieMatch::Kind::kPresent:
      ok = found == m.present;
      break;
    case Route::CookieMatch::Kind::kExact:
      ok = found && value == m.value;
      break;
    case Route::CookieMatch::Kind::kRegex:
      ok = found && fullMatch(*m.regex, value);
      break;
  }
  return ok != m.invert;
}

bool queryMatches(const Route::QueryMatch& m, std::string_view query) {
  std::string_view raw;
  bool found = findQuery(query, m.name, &raw);
  if (m.kind == Route::QueryMatch::Kind::kPresent) return found == m.present;
  if (!found) return false;
  char buf[kMaxQueryValue];
  std::string_view value = raw;
  if (raw.find_first_of("%+") != std::string_view::npos &&
      !decodeQuery(raw, buf, sizeof buf, &value)) {
    value = raw;
  }
  return m.kind == Route::QueryMatch::Kind::kExact ? value == m.value : fullMatch(*m.regex, value);
}

// Inline: the scan of a small host calls it for every route, and the call costs 20-30% there.
inline bool pathMatches(const Route& r, std::string_view path) {
  switch (r.path_kind) {
    case Route::PathKind::kExact:
      return path == r.path;
    case Route::PathKind::kPrefix:
      return startsWith(path, r.path);
    case Route::PathKind::kRegex:
      return fullMatch(*r.regex, path);
  }
  return false;
}

// The method, header and query conditions of `r`.
bool conditionsMatch(const Route& r, const RequestView& request) {
  if (!r.methods.empty() &&
      std::none_of(r.methods.begin(), r.methods.end(),
                   [&](const std::string& m) { return m == request.method; })) {
    return false;
  }
  for (const Route::HeaderMatch& h : r.headers) {
    if (!headerMatches(h, request.headers)) return false;
  }
  for (const Route::QueryMatch& q : r.query) {
    if (!queryMatches(q, request.query)) return false;
  }
  for (const Route::CookieMatch& c : r.cookies) {
    if (!cookieMatches(c, request.headers)) return false;
  }
  return true;
}

int64_t millisRoundedUp(const google::protobuf::Duration& d) {
  // Rounded up: a sub-millisecond duration must not become 0, which means none.
  return d.seconds() * 1000 + (d.nanos() + 999'999) / 1'000'000;
}

uint32_t perMillion(double percentage) {
  return static_cast<uint32_t>(std::clamp(percentage, 0.0, 100.0) * 10'000 + 0.5);
}

std::unique_ptr<RetryPolicy> compileRetry(const v1::RetryPolicy& p) {
  auto r = std::make_unique<RetryPolicy>();
  for (const std::string& on : p.retry_on()) {
    if (on == "5xx") r->on_5xx = true;
    if (on == "gateway-error") r->on_gateway_error = true;
    if (on == "connect-failure") r->on_connect_failure = true;
    if (on == "reset") r->on_reset = true;
  }
  for (const std::string& on : p.retry_on()) {
    // The listed codes count only with their condition.
    if (on == "retriable-status-codes") {
      r->status_codes.assign(p.retriable_status_codes().begin(), p.retriable_status_codes().end());
    }
  }
  if (p.has_num_retries()) r->num_retries = p.num_retries();
  if (p.has_per_try_timeout()) r->per_try_timeout_ms = millisRoundedUp(p.per_try_timeout());
  if (p.has_base_interval()) r->base_interval_ms = millisRoundedUp(p.base_interval());
  r->max_interval_ms =
      p.has_max_interval() ? millisRoundedUp(p.max_interval()) : 10 * r->base_interval_ms;
  if (p.has_max_buffered_body_bytes()) r->max_buffered_body = p.max_buffered_body_bytes();
  r->retry_non_idempotent = p.retry_non_idempotent();
  return r;
}

HeaderOps compileOps(const v1::HeaderMutation& outer, const v1::HeaderMutation& inner) {
  HeaderOps ops;
  for (const v1::HeaderMutation* m : {&outer, &inner}) {
    for (const auto& r : m->remove()) ops.remove.push_back(absl::AsciiStrToLower(r));
    for (const auto& a : m->add()) {
      ops.add.push_back({absl::AsciiStrToLower(a.name()), a.value(), a.append()});
    }
  }
  return ops;
}

// For every route's regexes and the index's sets over them, which must agree on what matches.
RE2::Options regexOptions() {
  RE2::Options options;
  options.set_log_errors(false);
  return options;
}

std::unique_ptr<RE2> compileRegex(const std::string& pattern, absl::Status* status) {
  auto re = std::make_unique<RE2>(pattern, regexOptions());
  if (!re->ok() && status->ok()) {
    *status =
        absl::InvalidArgumentError(absl::StrCat("invalid regex '", pattern, "': ", re->error()));
  }
  return re;
}

}  // namespace

bool HeaderSource::cookie(std::string_view name, std::string_view* value) const {
  std::string_view header;
  return find("cookie", &header) && findCookie(header, name, value);
}

bool findCookie(std::string_view header, std::string_view name, std::string_view* value) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
    std::string_view v = pair.substr(eq + 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    // RFC 6265: a value may be wrapped in double quotes, which are not part of it.
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    *value = v;
    return true;
  }
  return false;
}

bool RetryPolicy::retriesStatus(uint32_t status) const {
  if (status >= 500 && on_5xx) return true;
  if ((status == 502 || status == 503 || status == 504) && on_gateway_error) return true;
  return std::find(status_codes.begin(), status_codes.end(), status) != status_codes.end();
}

bool Route::matches(const RequestView& request) const {
  return pathMatches(*this, request.path) && conditionsMatch(*this, request);
}

uint32_t Route::pickCluster(uint64_t draw) const {
  if (clusters.size() == 1) return clusters[0].cluster;
  uint64_t point = draw % total_weight;
  for (const ClusterChoice& c : clusters) {
    if (point < c.cumulative) return c.cluster;
  }
  return clusters.back().cluster;
}

RouteIndex::Span RouteIndex::addIds(const std::vector<uint32_t>& ids) {
  Span span{static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(ids.size())};
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  return span;
}

RouteIndex RouteIndex::build(const std::vector<Route>& routes) {
  RouteIndex index;
  if (routes.size() <= kLinearMax || routes.size() >= kNone) return index;
  index.linear_ = false;
  absl::flat_hash_map<std::string, std::vector<uint32_t>> exact;
  std::map<std::string, std::vector<uint32_t>> prefixes;
  for (uint32_t i = 0; i < routes.size(); ++i) {
    const Route& r = routes[i];
    switch (r.path_kind) {
      case Route::PathKind::kExact:
        exact[r.path].push_back(i);
        break;
      case Route::PathKind::kPrefix:
        prefixes[r.path].push_back(i);
        break;
      case Route::PathKind::kRegex:
        index.regex_.push_back(i);
        break;
    }
  }
  index.exact_.reserve(exact.size());
  for (const auto& [path, ids] : exact) index.exact_.emplace(path, index.addIds(ids));
  index.buildPrefixTree(
      {std::make_move_iterator(prefixes.begin()), std::make_move_iterator(prefixes.end())});

  const auto regex_count = static_cast<uint32_t>(index.regex_.size());
  for (uint32_t begin = 0; begin < regex_count; begin += kRegexChunk) {
    RegexChunk chunk{begin, std::min(begin + kRegexChunk, regex_count), nullptr};
    if (chunk.end - chunk.begin >= kMinSetRun) {
      auto set = std::make_unique<RE2::Set>(regexOptions(), RE2::ANCHOR_BOTH);
      bool ok = true;
      for (uint32_t j = chunk.begin; j < chunk.end && ok; ++j) {
        ok = set->Add(routes[index.regex_[j]].regex->pattern(), nullptr) >= 0;
      }
      // Without a set (too large for RE2's memory budget) the run is tried route by route.
      if (ok && set->Compile()) chunk.set = std::move(set);
    }
    index.regex_chunks_.push_back(std::move(chunk));
  }
  return index;
}

void RouteIndex::buildPrefixTree(
    std::vector<std::pair<std::string, std::vector<uint32_t>>> prefixes) {
  if (prefixes.empty()) return;
  // `prefixes` is sorted and unique. Every node covers the prefixes [lo, hi), which share their
  // first `depth` bytes; a prefix of exactly that length sorts first and ends at the node.
  struct Work {
    uint32_t node;
    size_t lo, hi, depth;
  };
  std::vector<Work> work{{0, 0, prefixes.size(), 0}};
  prefix_nodes_.emplace_back();
  while (!work.empty()) {
    Work w = work.back();
    work.pop_back();
    if (prefixes[w.lo].first.size() == w.depth) {
      prefix_nodes_[w.node].ids = addIds(prefixes[w.lo].second);
      ++w.lo;
    }
    prefix_nodes_[w.node].first_child = static_cast<uint32_t>(prefix_nodes_.size());
    for (size_t lo = w.lo; lo < w.hi;) {
      const std::string& first = prefixes[lo].first;
      size_t hi = lo + 1;
      while (hi < w.hi && prefixes[hi].first[w.depth] == first[w.depth]) ++hi;
      // Sorted, so what the group shares is what its first and last prefixes share.
      const std::string& last = prefixes[hi - 1].first;
      size_t common = w.depth + 1;
      while (common < first.size() && common < last.size() && first[common] == last[common]) {
        ++common;
      }
      PrefixNode child;
      child.label_begin = static_cast<uint32_t>(labels_.size());
      child.label_size = static_cast<uint32_t>(common - w.depth);
      child.first_byte = static_cast<unsigned char>(first[w.depth]);
      labels_.append(first, w.depth, common - w.depth);
      work.push_back({static_cast<uint32_t>(prefix_nodes_.size()), lo, hi, common});
      prefix_nodes_.push_back(child);
      ++prefix_nodes_[w.node].child_count;
      lo = hi;
    }
  }
  // Children come after their parents.
  for (size_t i = prefix_nodes_.size(); i-- > 0;) {
    PrefixNode& node = prefix_nodes_[i];
    node.subtree_min = node.ids.size > 0 ? ids_[node.ids.begin] : kNone;
    for (uint32_t c = 0; c < node.child_count; ++c) {
      node.subtree_min =
          std::min(node.subtree_min, prefix_nodes_[node.first_child + c].subtree_min);
    }
  }
}

const Route* RouteIndex::match(const std::vector<Route>& routes, const RequestView& request) const {
  if (linear_) {
    for (const Route& r : routes) {
      if (r.matches(request)) return &r;
    }
    return nullptr;
  }
  const std::string_view path = request.path;
  uint32_t best = kNone;
  // The first route of `span` below `best` whose conditions hold; the path matches them all.
  auto scan = [&](Span span) {
    for (uint32_t i = span.begin; i < span.begin + span.size; ++i) {
      const uint32_t id = ids_[i];
      if (id >= best) return;
      if (conditionsMatch(routes[id], request)) {
        best = id;
        return;
      }
    }
  };

  if (!exact_.empty()) {
    if (auto it = exact_.find(av(path)); it != exact_.end()) {
      scan(it->second);
    }
  }

  if (!prefix_nodes_.empty()) {
    const PrefixNode* node = &prefix_nodes_[0];
    size_t pos = 0;
    while (node->subtree_min < best) {
      if (node->ids.size > 0) scan(node->ids);
      if (pos == path.size() || node->child_count == 0) break;
      const PrefixNode* first = &prefix_nodes_[node->first_child];
      const PrefixNode* last = first + node->child_count;
      const auto byte = static_cast<unsigned char>(path[pos]);
      const PrefixNode* child = std::lower_bound(
          first, last, byte, [](const PrefixNode& n, unsigned char b) { return n.first_byte < b; });
      if (child == last || child->first_byte != byte || path.size() - pos < child->label_size ||
          std::memcmp(path.data() + pos, labels_.data() + child->label_begin, child->label_size) !=
              0) {
        break;
      }
      pos += child->label_size;
      node = child;
    }
  }

  // Last and only below the best so far: regexes are the expensive part.
  const re2::StringPiece text(path.data(), path.size());
  for (const RegexChunk& chunk : regex_chunks_) {
    if (regex_[chunk.begin] >= best) break;
    const bool few =
        chunk.end - chunk.begin < kMinSetRun || regex_[chunk.begin + kMinSetRun - 1] >= best;
    if (chunk.set != nullptr && !few) {
      RE2::Set::ErrorInfo error{RE2::Set::kNoError};
      // On an error (the DFA out of memory) the run is tried route by route.
      if (!chunk.set->Match(text, nullptr, &error) && error.kind == RE2::Set::kNoError) continue;
    }
    for (uint32_t j = chunk.begin; j < chunk.end; ++j) {
      const uint32_t id = regex_[j];
      if (id >= best) break;
      if (pathMatches(routes[id], path) && conditionsMatch(routes[id], request)) {
        best = id;
        break;
      }
    }
  }
  return best == kNone ? nullptr : &routes[best];
}

const VirtualHost* RouteTable::findVirtualHost(std::string_view host) const {
  if (host.size() > kMaxHost) return any_;
  char buf[kMaxHost];
  for (size_t i = 0; i < host.size(); ++i) buf[i] = absl::ascii_tolower(host[i]);
  std::string_view lower(buf, host.size());
  if (auto it = exact_.find(av(lower)); it != exact_.end()) return it->second;
  // Without the port (but not inside an IPv6 literal's brackets).
  std::string_view bare = lower;
  size_t colon = lower.rfind(':');
  if (colon != std::string_view::npos && lower.find(']', colon) == std::string_view::npos) {
    bare = lower.substr(0, colon);
    if (auto it = exact_.find(av(bare)); it != exact_.end()) return it->second;
  }
  // As with exact domains, a wildcard that names the port ("*.example.com:8443") comes first.
  for (std::string_view h : {lower, bare}) {
    for (const auto& [suffix, vh] : suffixes_) {
      if (h.size() > suffix.size() && endsWith(h, suffix)) return vh;
    }
  }
  return any_;
}

const Route* RouteTable::route(const RequestView& request) const {
  const VirtualHost* vh = findVirtualHost(request.host);
  return vh == nullptr ? nullptr : vh->index.match(vh->routes, request);
}

void RouteTable::forEachRoute(const std::function<void(const std::string&, Route&)>& fn) {
  for (auto& vh : hosts_) {
    for (Route& r : vh->routes) fn(vh->name, r);
  }
}

size_t RouteTable::routeCount() const {
  size_t n = 0;
  for (const auto& vh : hosts_) n += vh->routes.size();
  return n;
}

absl::StatusOr<std::unique_ptr<RouteTable>> RouteTable::compileWith(
    const v1::RouteConfiguration& config, const Resolver& resolve) {
  auto table = std::unique_ptr<RouteTable>(new RouteTable());
  table->name_ = config.name();
  absl::Status status;
  for (const v1::VirtualHost& vhc : config.virtual_hosts()) {
    auto vh = std::make_unique<VirtualHost>();
    vh->name = vhc.name();
    for (const v1::Route& rc : vhc.routes()) {
      Route r;
      r.name = rc.name();
      const v1::RouteMatch& m = rc.match();
      switch (m.path_specifier_case()) {
        case v1::RouteMatch::kPath:
          r.path_kind = Route::PathKind::kExact;
          r.path = m.path();
          break;
        case v1::RouteMatch::kRegex:
          r.path_kind = Route::PathKind::kRegex;
          r.regex = compileRegex(m.regex(), &status);
          break;
        default:
          r.path_kind = Route::PathKind::kPrefix;
          r.path = m.prefix();
          break;
      }
      r.methods.assign(m.methods().begin(), m.methods().end());
      for (const v1::HeaderMatcher& h : m.headers()) {
        Route::HeaderMatch hm;
        hm.name = absl::AsciiStrToLower(h.name());
        hm.invert = h.invert();
        switch (h.match_case()) {
          case v1::HeaderMatcher::kExact:
            hm.kind = Route::HeaderMatch::Kind::kExact;
            hm.value = h.exact();
            break;
          case v1::HeaderMatcher::kPrefix:
            hm.kind = Route::HeaderMatch::Kind::kPrefix;
            hm.value = h.prefix();
            break;
          case v1::HeaderMatcher::kSuffix:
            hm.kind = Route::HeaderMatch::Kind::kSuffix;
            hm.value = h.suffix();
            break;
          case v1::HeaderMatcher::kRegex:
            hm.kind = Route::HeaderMatch::Kind::kRegex;
            hm.regex = compileRegex(h.regex(), &status);
            break;
          default:
            hm.kind = Route::HeaderMatch::Kind::kPresent;
            hm.present = h.present();
            break;
        }
        r.headers.push_back(std::move(hm));
      }
      for (const v1::QueryParameterMatcher& q : m.query_parameters()) {
        Route::QueryMatch qm;
        qm.name = q.name();
        switch (q.match_case()) {
          case v1::QueryParameterMatcher::kExact:
            qm.kind = Route::QueryMatch::Kind::kExact;
            qm.value = q.exact();
            break;
          case v1::QueryParameterMatcher::kRegex:
            qm.kind = Route::QueryMatch::Kind::kRegex;
            qm.regex = compileRegex(q.regex(), &status);
            break;
          default:
            qm.kind = Route::QueryMatch::Kind::kPresent;
            qm.present = q.present();
            break;
        }
        r.query.push_back(std::move(qm));
      }
      for (const v1::CookieMatcher& c : m.cookies()) {
        Route::CookieMatch cm;
        cm.name = c.name();
        cm.invert = c.invert();
        switch (c.match_case()) {
          case v1::CookieMatcher::kExact:
            cm.kind = Route::CookieMatch::Kind::kExact;
            cm.value = c.exact();
            break;
          case v1::CookieMatcher::kRegex:
            cm.kind = Route::CookieMatch::Kind::kRegex;
            cm.regex = compileRegex(c.regex(), &status);
            break;
          default:
            cm.kind = Route::CookieMatch::Kind::kPresent;
            cm.present = c.present();
            break;
        }
        r.cookies.push_back(std::move(cm));
      }
      switch (rc.action_case()) {
        case v1::Route::kRoute: {
          const v1::RouteAction& a = rc.route();
          r.action = Route::Action::kCluster;
          auto add = [&](const std::string& name, uint64_t weight) {
            int index = resolve(name);
            if (index < 0) {
              if (status.ok()) {
                status = absl::InvalidArgumentError(
                    absl::StrCat("route configuration '", config.name(),
                                 "' names unknown cluster '", name, "'"));
              }
              return;
            }
            r.total_weight += weight;
            r.clusters.push_back({static_cast<uint32_t>(index), r.total_weight});
          };
          if (a.has_weighted_clusters()) {
            for (const auto& w : a.weighted_clusters().clusters()) {
              if (w.weight() > 0) add(w.name(), w.weight());
            }
          } else {
            add(a.cluster(), 1);
          }
          // pickCluster divides by the total weight.
          if (r.clusters.empty() && status.ok()) {
            status = absl::InvalidArgumentError(absl::StrCat(
                "route configuration '", config.name(), "' has ",
                rc.name().empty() ? "a route" : absl::StrCat("route '", rc.name(), "'"),
                " without a cluster of weight > 0"));
          }
          r.prefix_rewrite = a.prefix_rewrite();
          r.host_rewrite = a.host_rewrite();
          if (a.has_timeout()) r.timeout_ms = millisRoundedUp(a.timeout());
          if (a.has_retry_policy() || a.has_idle_timeout() ||
              a.request_mirror_policies_size() > 0 || a.hash_policy_size() > 0 ||
              a.has_max_concurrent_requests() || a.has_fallback() || a.has_fault()) {
            auto t = std::make_unique<TrafficPolicy>();
            if (a.has_retry_policy()) t->retry = compileRetry(a.retry_policy());
            if (a.has_idle_timeout()) t->idle_timeout_ms = millisRoundedUp(a.idle_timeout());
            for (const v1::RequestMirrorPolicy& mp : a.request_mirror_policies()) {
              int index = resolve(mp.cluster());
              if (index < 0) {
                if (status.ok()) {
                  status = absl::InvalidArgumentError(
                      absl::StrCat("route configuration '", config.name(),
                                   "' mirrors to unknown cluster '", mp.cluster(), "'"));
                }
                continue;
              }
              t->mirrors.push_back({static_cast<uint32_t>(index),
                                    mp.has_percentage() ? perMillion(mp.percentage()) : 1'000'000});
            }
            for (const v1::HashPolicy& hp : a.hash_policy()) {
              switch (hp.policy_case()) {
                case v1::HashPolicy::kHeader:
                  t->hash.push_back(
                      {HashPolicy::Kind::kHeader, absl::AsciiStrToLower(hp.header())});
                  break;
                case v1::HashPolicy::kCookie:
                  t->hash.push_back({HashPolicy::Kind::kCookie, hp.cookie()});
                  break;
                default:
                  t->hash.push_back({HashPolicy::Kind::kSourceIp, ""});
                  break;
              }
            }
            if (a.has_max_concurrent_requests()) t->max_concurrent = a.max_concurrent_requests();
            if (a.has_fallback()) {
              t->has_fallback = true;
              t->fallback_status = a.fallback().status();
              t->fallback_body = a.fallback().body();
            }
            if (a.fault().has_delay()) {
              t->fault_delay_ms = millisRoundedUp(a.fault().delay().fixed_delay());
              t->fault_delay_per_million = perMillion(a.fault().delay().percentage());
            }
            if (a.fault().has_abort()) {
              t->fault_abort_status = a.fault().abort().http_status();
              t->fault_abort_per_million = perMillion(a.fault().abort().percentage());
            }
            r.traffic = std::move(t);
          }
          break;
        }
        case v1::Route::kDirectResponse:
          r.action = Route::Action::kDirectResponse;
          r.status = rc.direct_response().status();
          r.body = rc.direct_response().body();
          break;
        case v1::Route::kRedirect: {
          const v1::RedirectAction& rd = rc.redirect();
          r.action = Route::Action::kRedirect;
          r.redirect_code = rd.response_code() == 0 ? 301 : rd.response_code();
          r.scheme_redirect = rd.scheme_redirect();
          r.host_redirect = rd.host_redirect();
          r.path_redirect = rd.path_redirect();
          r.prefix_rewrite = rd.prefix_rewrite();
          r.strip_query = rd.strip_query();
          break;
        }
        default:
          if (status.ok()) {
            status = absl::InvalidArgumentError(absl::StrCat("route configuration '", config.name(),
                                                             "' has a route without action"));
          }
          break;
      }
      r.request_headers = compileOps(vhc.request_headers(), rc.request_headers());
      r.response_headers = compileOps(vhc.response_headers(), rc.response_headers());
      vh->routes.push_back(std::move(r));
    }
    if (status.ok()) vh->index = RouteIndex::build(vh->routes);
    for (const std::string& domain : vhc.domains()) {
      std::string d = absl::AsciiStrToLower(domain);
      if (d == "*") {
        table->any_ = vh.get();
      } else if (d.size() > 2 && d[0] == '*' && d[1] == '.') {
        table->suffixes_.emplace_back(d.substr(1), vh.get());
      } else {
        table->exact_.emplace(d, vh.get());
      }
    }
    table->hosts_.push_back(std::move(vh));
  }
  if (!status.ok()) return status;
  std::stable_sort(table->suffixes_.begin(), table->suffixes_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return table;
}

}  // namespace sluice::router
