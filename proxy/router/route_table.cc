#include "proxy/router/route_table.h"

#include <algorithm>

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
  return true;
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

std::unique_ptr<RE2> compileRegex(const std::string& pattern, absl::Status* status) {
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<RE2>(pattern, options);
  if (!re->ok() && status->ok()) {
    *status =
        absl::InvalidArgumentError(absl::StrCat("invalid regex '", pattern, "': ", re->error()));
  }
  return re;
}

}  // namespace

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
  if (vh == nullptr) return nullptr;
  for (const Route& r : vh->routes) {
    if (r.matches(request)) return &r;
  }
  return nullptr;
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
          if (a.has_timeout()) {
            // Rounded up: a sub-millisecond timeout must not become 0, which means none.
            r.timeout_ms =
                a.timeout().seconds() * 1000 + (a.timeout().nanos() + 999'999) / 1'000'000;
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
