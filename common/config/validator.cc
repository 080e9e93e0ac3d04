#include "common/config/validator.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config/data_source.h"
#include "re2/re2.h"

namespace sluice::config {
namespace {

using google::protobuf::Duration;

constexpr int64_t kMaxTimeoutSeconds = 3600;
constexpr int64_t kDaySeconds = 86400;
constexpr size_t kMaxDirectBody = 64 << 10;
constexpr uint32_t kMaxTotalWeight = 1'000'000;
constexpr uint32_t kMaxPriority = 7;
constexpr uint32_t kDefaultMinRingSize = 1024;
constexpr uint32_t kMaxRingSize = 8'388'608;
constexpr uint32_t kMaxMaglevTableSize = 5'000'011;
constexpr uint32_t kMaxNumRetries = 10;
constexpr uint32_t kMaxBufferedBodyBytes = 16 << 20;
constexpr uint64_t kMaxRequestBodyBytes = uint64_t{1} << 40;
constexpr absl::string_view kRetryConditions[] = {"5xx", "gateway-error", "connect-failure",
                                                  "reset", "retriable-status-codes"};

// RFC 9110 token characters: header names and methods.
bool isToken(absl::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return absl::ascii_isalnum(c) ||
           absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
  });
}

// Visible ASCII, space and tab (and obs-text): what a header value may hold.
bool isHeaderValue(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); });
}

bool isIpLiteral(const std::string& s) {
  // inet_pton would stop at a NUL ("127.0.0.1\0junk"), YAML can write one ("\0").
  if (s.find('\0') != std::string::npos) return false;
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool isGroupName(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

bool isHostName(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == ':' || c == '[' || c == ']';
  });
}

// An RFC 1123 host name for DNS: labels of 1-63 letters, digits and '-' (not at either end),
// separated by '.', at most 253 characters, one trailing '.' allowed (a fully qualified name).
bool isDnsName(absl::string_view s) {
  absl::ConsumeSuffix(&s, ".");
  if (s.empty() || s.size() > 253) return false;
  absl::string_view last;
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    if (!std::all_of(label.begin(), label.end(),
                     [](unsigned char c) { return absl::ascii_isalnum(c) || c == '-'; })) {
      return false;
    }
    last = label;
  }
  // The resolver reads an all-digit last label as an IPv4 address ("10.0.0.256", "10.1").
  return !std::all_of(last.begin(), last.end(),
                      [](unsigned char c) { return absl::ascii_isdigit(c); });
}

// Visible ASCII without spaces: what a request target may hold unencoded.
bool isVisibleAscii(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

bool isPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; d <= n / d; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// "10.0.0.0/8", "2001:db8::/32" or a bare address.
bool isCidr(absl::string_view s) {
  std::string address(s.substr(0, s.find('/')));
  unsigned char buf[16];
  int bits;
  if (address.find('\0') != std::string::npos) return false;
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    bits = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    bits = 128;
  } else {
    return false;
  }
  if (address.size() == s.size()) return true;
  absl::string_view len = s.substr(address.size() + 1);
  uint32_t prefix;
  return !len.empty() && len.size() <= 3 && absl::ascii_isdigit(len[0]) &&
         absl::SimpleAtoi(len, &prefix) && prefix <= static_cast<uint32_t>(bits);
}

// Names of consumers: also used in headers and metric labels.
bool isConsumerName(absl::string_view s) { return isGroupName(s) && s.size() <= 128; }

bool isHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return absl::ascii_isxdigit(c); });
}

// Headers the proxy itself owns: routes may not add or remove them.
bool isManagedHeader(absl::string_view name) {
  static const char* const kManaged[] = {"host",       "content-length", "transfer-encoding",
                                         "connection", "keep-alive",     "upgrade",
                                         "te",         "trailer",        "proxy-connection"};
  return std::any_of(std::begin(kManaged), std::end(kManaged),
                     [&](const char* m) { return absl::EqualsIgnoreCase(name, m); });
}

std::string durationText(const Duration& d) {
  return absl::StrCat(d.seconds() + d.nanos() / 1e9, "s");
}

Duration millis(int64_t ms) {
  Duration d;
  d.set_seconds(ms / 1000);
  d.set_nanos(static_cast<int32_t>(ms % 1000) * 1'000'000);
  return d;
}

bool shorter(const Duration& a, const Duration& b) {
  return std::make_pair(a.seconds(), a.nanos()) < std::make_pair(b.seconds(), b.nanos());
}

// A duration field as written, or its default when unset.
struct DurationField {
  absl::string_view name;
  bool set;
  Duration value;

  DurationField(absl::string_view name, bool set, const Duration& value, int64_t default_ms)
      : name(name), set(set), value(set ? value : millis(default_ms)) {}
};

// Collects diagnostics for one resource at a time.
class Checker {
 public:
  Checker(Diagnostics* out, absl::string_view kind, std::string name, const Origin& origin)
      : out_(out), kind_(kind), name_(std::move(name)), origin_(origin) {}

  void error(const std::string& field, std::string message, bool dangling_reference = false) {
    out_->push_back({.file = origin_.file,
                     .line = origin_.lineOf(field),
                     .kind = std::string(kind_),
                     .resource = name_,
                     .field = field,
                     .message = std::move(message),
                     .dangling_reference = dangling_reference});
  }

  void regex(const std::string& field, const std::string& pattern) {
    RE2::Options options;
    options.set_log_errors(false);
    RE2 re(pattern, options);
    if (!re.ok()) error(field, absl::StrCat("invalid RE2 regex '", pattern, "': ", re.error()));
  }

  // A duration that, when set, must lie in [min_ms, max_s]. Returns whether it is unset or does.
  bool duration(const std::string& field, bool has, const Duration& d, int64_t min_ms,
                int64_t max_s) {
    if (!has) return true;
    int64_t ms = d.seconds() * 1000 + d.nanos() / 1'000'000;
    if (d.seconds() < 0 || d.nanos() < 0 || ms < min_ms || d.seconds() > max_s ||
        (d.seconds() == max_s && d.nanos() > 0)) {
      error(field,
            absl::StrCat("must be between ", min_ms, "ms and ", max_s, "s, got ", durationText(d)));
      return false;
    }
    return true;
  }

  // Reports `field`, holding `actual`, when it is shorter than `bound`.
  void notShorter(const std::string& field, const DurationField& actual,
                  const DurationField& bound) {
    if (shorter(actual.value, bound.value)) {
      error(field,
            absl::StrCat("must be at least ", describeBound(bound), ", ", describeActual(actual)));
    }
  }

  // Reports `field`, holding `actual`, when it is longer than `bound`.
  void notLonger(const std::string& field, const DurationField& actual,
                 const DurationField& bound) {
    if (shorter(bound.value, actual.value)) {
      error(field,
            absl::StrCat("must be at most ", describeBound(bound), ", ", describeActual(actual)));
    }
  }

  // A share of requests in percent. NaN cannot come from YAML but can arrive over xDS.
  void percentage(const std::string& field, double value) {
    if (!(value >= 0 && value <= 100)) {
      error(field, absl::StrCat("must be a percentage between 0 and 100, got ", value));
    }
  }

  // A limit that, when set, must let something through: 0 is not "unlimited" here.
  void positiveLimit(const std::string& field, bool has, uint32_t value, absl::string_view what) {
    if (has && value == 0) {
      error(field, absl::StrCat("must be at least 1 (0 would refuse every ", what,
                                "); leave it out for no limit"));
    }
  }

  void range(const std::string& field, uint64_t value, uint64_t min, uint64_t max,
             bool zero_is_default = true) {
    if (zero_is_default && value == 0) return;
    if (value < min || value > max) {
      error(field, absl::StrCat("must be between ", min, " and ", max, ", got ", value));
    }
  }

  const Origin& origin() const { return origin_; }

 private:
  // "interval (5s by default)"
  static std::string describeBound(const DurationField& f) {
    return absl::StrCat(f.name, " (", durationText(f.value), f.set ? "" : " by default", ")");
  }
  // "got 10s" or "is 1s by default"
  static std::string describeActual(const DurationField& f) {
    return f.set ? absl::StrCat("got ", durationText(f.value))
                 : absl::StrCat("is ", durationText(f.value), " by default");
  }

  Diagnostics* out_;
  absl::string_view kind_;
  std::string name_;
  const Origin& origin_;
};

// Names by kind, for reference checks.
template <class T>
std::map<std::string, const Sourced<T>*> indexByName(const std::vector<Sourced<T>>& items,
                                                     absl::string_view kind, Diagnostics* out,
                                                     const std::string& (T::*name)() const,
                                                     absl::string_view name_field) {
  std::map<std::string, const Sourced<T>*> index;
  for (const auto& item : items) {
    const std::string& n = (item.resource.*name)();
    Checker check(out, kind, n, item.origin);
    if (n.empty()) {
      check.error(std::string(name_field), "is required");
      continue;
    }
    auto [it, inserted] = index.emplace(n, &item);
    if (!inserted) {
      const Origin& first = it->second->origin;
      check.error(std::string(name_field), absl::StrCat(kind, " name '", n, "' is already used at ",
                                                        first.file, ":", first.line));
    }
  }
  return index;
}

class Validator {
 public:
  explicit Validator(const ConfigSet& config) : config_(config) {}

  Diagnostics run() {
    clusters_ = indexByName(config_.clusters, "Cluster", &out_, &v1::Cluster::name, "name");
    routes_ = indexByName(config_.route_configs, "RouteConfiguration", &out_,
                          &v1::RouteConfiguration::name, "name");
    indexByName(config_.listeners, "Listener", &out_, &v1::Listener::name, "name");
    indexByName(config_.assignments, "ClusterLoadAssignment", &out_,
                &v1::ClusterLoadAssignment::cluster_name, "cluster_name");
    consumers_ = indexByName(config_.consumers, "Consumer", &out_, &v1::Consumer::name, "name");
    consumerCredentials();
    for (const auto& l : config_.listeners) listener(l);
    listenerConflicts();
    for (const auto& r : config_.route_configs) routeConfig(r);
    for (const auto& c : config_.clusters) cluster(c);
    for (const auto& a : config_.assignments) assignment(a);
    std::stable_sort(out_.begin(), out_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.file, a.line) < std::tie(b.file, b.line);
    });
    return std::move(out_);
  }

 private:
  void groups(Checker& check) {
    for (const std::string& g : check.origin().node_groups) {
      if (!isGroupName(g)) {
        check.error(
            "node_groups",
            absl::StrCat("node group '", g, "' may hold only letters, digits, '-', '_' and '.'"));
      }
    }
  }

  // Reports a reference from `check`'s resource to `target_kind` named `target`.
  template <class T>
  void reference(Checker& check, const std::string& field, absl::string_view target_kind,
                 const std::string& target, const std::map<std::string, const Sourced<T>*>& index,
                 Kind kind) {
    if (target.empty()) {
      check.error(field, absl::StrCat("needs the name of a ", target_kind));
      return;
    }
    auto it = index.find(target);
    if (it == index.end()) {
      if (config_.incomplete || config_.unparsed.count({kind, target})) return;
      check.error(field,
                  absl::StrCat("names ", target_kind, " '", target, "' which does not exist"),
                  /*dangling_reference=*/true);
      return;
    }
    const Origin& to = it->second->origin;
    if (!to.servedWherever(check.origin())) {
      std::string served =
          check.origin().node_groups.empty()
              ? std::string("every node group")
              : absl::StrCat("node groups ", absl::StrJoin(check.origin().node_groups, ", "));
      check.error(field, absl::StrCat("names ", target_kind, " '", target,
                                      "', which is served only to node groups ",
                                      absl::StrJoin(to.node_groups, ", "),
                                      ", but this resource is served to ", served));
    }
  }

  void listener(const Sourced<v1::Listener>& item) {
    const v1::Listener& l = item.resource;
    Checker check(&out_, "Listener", l.name(), item.origin);
    groups(check);
    if (!l.address().empty() && !isIpLiteral(l.address())) {
      check.error("address", absl::StrCat("'", l.address(),
                                          "' is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)"));
    }
    if (l.port() == 0 || l.port() > 65535) {
      check.error("port", absl::StrCat("must be between 1 and 65535, got ", l.port()));
    }
    reference(check, "route_config", "RouteConfiguration", l.route_config(), routes_,
              Kind::kRouteConfiguration);
    const v1::ListenerLimits& lim = l.limits();
    check.range("limits.max_request_headers_kb", lim.max_request_headers_kb(), 1, 1024);
    check.range("limits.max_request_headers", lim.max_request_headers(), 1, 1000);
    check.range("limits.max_request_line_kb", lim.max_request_line_kb(), 1, 64);
    check.range("limits.buffer_limit_kb", lim.buffer_limit_kb(), 4, 16384);
    check.range("limits.max_connections", lim.max_connections(), 1, 10'000'000);
    const v1::ListenerTimeouts& t = l.timeouts();
    check.duration("timeouts.request_headers", t.has_request_headers(), t.request_headers(), 1,
                   kMaxTimeoutSeconds);
    check.duration("timeouts.idle", t.has_idle(), t.idle(), 1, kMaxTimeoutSeconds);
    check.duration("timeouts.drain", t.has_drain(), t.drain(), 0, kMaxTimeoutSeconds);
    ipFilter(check, "ip_filter", l.ip_filter());
    check.range("xff_num_trusted_hops", l.xff_num_trusted_hops(), 0, 10, false);
    listenerHardening(check, l);
    listenerTls(check, l);
  }

  // Per-address and rate limits on connections, body size, slow clients, path handling.
  void listenerHardening(Checker& check, const v1::Listener& l) {
    const v1::ListenerLimits& lim = l.limits();
    check.range("limits.max_connections_per_ip", lim.max_connections_per_ip(), 1, 100'000);
    check.range("limits.max_connection_rate", lim.max_connection_rate(), 1, 1'000'000);
    check.range("limits.max_request_body_bytes", lim.max_request_body_bytes(), 1,
                kMaxRequestBodyBytes);
    // Faster than 1 MiB/s would cut off ordinary clients on slow links.
    check.range("limits.min_bytes_per_second", lim.min_bytes_per_second(), 1, 1 << 20);
    if (lim.max_connections() != 0 && lim.max_connections_per_ip() > lim.max_connections()) {
      check.error("limits.max_connections_per_ip",
                  absl::StrCat("must not exceed limits.max_connections (", lim.max_connections(),
                               "), got ", lim.max_connections_per_ip()));
    }
    const v1::ListenerTimeouts& t = l.timeouts();
    check.duration("timeouts.request_body_idle", t.has_request_body_idle(), t.request_body_idle(),
                   1, kMaxTimeoutSeconds);
    // Proto3 enums are open: a number from a newer or broken client arrives over xDS as is.
    const int slashes = l.path_handling().escaped_slashes();
    if (!v1::PathHandling::EscapedSlashes_IsValid(slashes)) {
      check.error("path_handling.escaped_slashes",
                  absl::StrCat("must be REJECT or KEEP_ENCODED, got ", slashes));
    }
  }

  void ipFilter(Checker& check, const std::string& path, const v1::IpFilter& f) {
    auto list = [&](const char* name, const auto& entries) {
      for (int i = 0; i < entries.size(); ++i) {
        if (!isCidr(entries[i])) {
          check.error(absl::StrCat(path, ".", name, "[", i, "]"),
                      absl::StrCat("'", entries[i],
                                   "' is not an address or CIDR block (e.g. 10.0.0.0/8, ::1)"));
        }
      }
    };
    list("allow", f.allow());
    list("deny", f.deny());
  }

  // Credentials must name one consumer each: a key, user, HMAC keyId or JWT subject shared by
  // two consumers would make the identity depend on which entry a lookup meets first.
  void consumerCredentials() {
    std::map<std::string, std::string> keys, users, key_ids, subjects;  // credential -> consumer
    auto unique = [](Checker& check, std::map<std::string, std::string>& seen,
                     const std::string& field, const std::string& credential,
                     const std::string& consumer, absl::string_view what) {
      auto [it, inserted] = seen.emplace(credential, consumer);
      if (!inserted && it->second != consumer) {
        check.error(field, absl::StrCat(what, " is also consumer '", it->second, "''s"));
      } else if (!inserted) {
        check.error(field, absl::StrCat(what, " is listed twice"));
      }
    };
    for (const auto& item : config_.consumers) {
      const v1::Consumer& c = item.resource;
      Checker check(&out_, "Consumer", c.name(), item.origin);
      groups(check);
      if (!c.name().empty() && !isConsumerName(c.name())) {
        check.error("name", "may hold only letters, digits, '-', '_' and '.' (at most 128)");
      }
      for (int i = 0; i < c.groups_size(); ++i) {
        if (!isConsumerName(c.groups(i))) {
          check.error(absl::StrCat("groups[", i, "]"),
                      "may hold only letters, digits, '-', '_' and '.' (at most 128)");
        }
      }
      for (int i = 0; i < c.api_keys_size(); ++i) {
        const v1::ApiKeyCredential& k = c.api_keys(i);
        std::string field = absl::StrCat("api_keys[", i, "]");
        switch (k.key_case()) {
          case v1::ApiKeyCredential::kValue:
            if (dataSource(check, field + ".value", k.value()) && k.value().has_inline_string()) {
              if (k.value().inline_string().size() < 16) {
                check.error(field + ".value", "an API key needs at least 16 characters");
              }
              unique(check, keys, field, k.value().inline_string(), c.name(), "this key");
            }
            break;
          case v1::ApiKeyCredential::kSha256:
            if (k.sha256().size() != 64 || !isHex(k.sha256())) {
              check.error(field + ".sha256", "must be 64 hex digits (a SHA-256)");
            } else {
              unique(check, keys, field, absl::AsciiStrToLower(k.sha256()), c.name(), "this key");
            }
            break;
          case v1::ApiKeyCredential::KEY_NOT_SET:
            check.error(field, "needs value or sha256");
            break;
        }
      }
      for (int i = 0; i < c.basic_auth_size(); ++i) {
        const v1::BasicAuthCredential& b = c.basic_auth(i);
        std::string field = absl::StrCat("basic_auth[", i, "]");
        if (b.username().empty() || absl::StrContains(b.username(), ':') ||
            !isHeaderValue(b.username())) {
          check.error(field + ".username", "needs a user name without ':' or control characters");
        } else {
          unique(check, users, field + ".username", b.username(), c.name(),
                 absl::StrCat("user '", b.username(), "'"));
        }
        absl::string_view h = b.password_hash();
        if (!(absl::StartsWith(h, "$2y$") || absl::StartsWith(h, "$2b$") ||
              absl::StartsWith(h, "$2a$") || absl::StartsWith(h, "$5$") ||
              absl::StartsWith(h, "$6$") || absl::StartsWith(h, "{SHA}"))) {
          check.error(field + ".password_hash",
                      "must be a bcrypt ($2y$), SHA-crypt ($5$, $6$) or {SHA} hash (htpasswd -B "
                      "makes one); plain text, MD5 ($apr1$) and DES are not accepted");
        }
      }
      for (int i = 0; i < c.hmac_keys_size(); ++i) {
        const v1::HmacCredential& h = c.hmac_keys(i);
        std::string field = absl::StrCat("hmac_keys[", i, "]");
        if (h.key_id().empty() || !isHeaderValue(h.key_id()) ||
            absl::StrContains(h.key_id(), '"')) {
          check.error(field + ".key_id", "needs a key id without quotes or control characters");
        } else {
          unique(check, key_ids, field + ".key_id", h.key_id(), c.name(),
                 absl::StrCat("key id '", h.key_id(), "'"));
        }
        if (dataSource(check, field + ".secret", h.secret()) && h.secret().has_inline_string() &&
            h.secret().inline_string().size() < 32) {
          check.error(field + ".secret", "an HMAC secret needs at least 32 bytes");
        }
      }
      for (int i = 0; i < c.jwt_subjects_size(); ++i) {
        std::string field = absl::StrCat("jwt_subjects[", i, "]");
        if (c.jwt_subjects(i).empty()) {
          check.error(field, "is empty");
        } else {
          unique(check, subjects, field, c.jwt_subjects(i), c.name(),
                 absl::StrCat("subject '", c.jwt_subjects(i), "'"));
        }
      }
    }
  }

  // TLS settings. Files are never read here: the control plane's machine does not have the
  // proxy's; the proxy reports what it cannot read or use when it compiles the config, and the
  // update is NACKed with that.
  void listenerTls(Checker& check, const v1::Listener& l) {
    if (l.has_tls()) downstreamTls(check, "tls", l.tls());
    if (!l.has_https_redirect()) return;
    const v1::HttpsRedirect& r = l.https_redirect();
    check.range("https_redirect.port", r.port(), 1, 65535);
    const uint32_t code = r.response_code();
    if (code != 0 && code != 301 && code != 302 && code != 307 && code != 308) {
      check.error("https_redirect.response_code",
                  absl::StrCat("must be 301, 302, 307 or 308, got ", code));
    }
    if (l.has_tls()) {
      check.error("https_redirect",
                  "redirects plain HTTP to https, and this listener already serves https (tls)");
    }
  }

  void downstreamTls(Checker& check, const std::string& path, const v1::DownstreamTls& t) {
    if (t.certificates_size() == 0) {
      check.error(path + ".certificates", "needs at least one certificate");
    }
    // Server names across certificates (lower case) -> the first certificate naming it.
    std::map<std::string, int> names;
    for (int i = 0; i < t.certificates_size(); ++i) {
      const std::string field = absl::StrCat(path, ".certificates[", i, "]");
      const v1::TlsCertificate& c = t.certificates(i);
      tlsCertificate(check, field, c);
      for (int j = 0; j < c.server_names_size(); ++j) {
        const std::string& name = c.server_names(j);
        const std::string nf = absl::StrCat(field, ".server_names[", j, "]");
        absl::string_view host = name;
        absl::ConsumePrefix(&host, "*.");
        if (!isDnsName(host) || absl::StrContains(host, '*')) {
          check.error(
              nf, absl::StrCat("'", name, "' is not a server name: a DNS name or \"*.\" and one"));
          continue;
        }
        auto [it, added] = names.emplace(absl::AsciiStrToLower(name), i);
        if (!added && it->second != i) {
          check.error(
              nf, absl::StrCat("'", name, "' is already served by certificates[", it->second, "]"));
        }
      }
    }
    tlsParams(check, path + ".params", t.params());
    std::set<std::string> alpn;
    for (int i = 0; i < t.alpn_protocols_size(); ++i) {
      const std::string& p = t.alpn_protocols(i);
      const std::string field = absl::StrCat(path, ".alpn_protocols[", i, "]");
      // A protocol negotiated through ALPN must be one the proxy speaks.
      if (p != "http/1.1" && p != "http/1.0") {
        check.error(field, absl::StrCat("'", p, "' is not served; use http/1.1 or http/1.0"));
      } else if (!alpn.insert(p).second) {
        check.error(field, absl::StrCat("'", p, "' is listed twice"));
      }
    }
    if (!v1::DownstreamTls::ClientCertificate_IsValid(t.client_certificate())) {
      check.error(path + ".client_certificate",
                  absl::StrCat("unknown value ", t.client_certificate()));
    } else if (t.client_certificate() == v1::DownstreamTls::NONE) {
      if (t.has_client_validation()) {
        check.error(path + ".client_validation",
                    "applies only when client_certificate is OPTIONAL or REQUIRE");
      }
    } else if (!hasDataSource(t.client_validation().trusted_ca())) {
      check.error(path + ".client_validation.trusted_ca",
                  absl::StrCat("is required: client_certificate is ",
                               v1::DownstreamTls::ClientCertificate_Name(t.client_certificate())));
    } else {
      certificateValidation(check, path + ".client_validation", t.client_validation());
    }
    check.duration(path + ".session_timeout", t.has_session_timeout(), t.session_timeout(), 0,
                   kDaySeconds);
  }

  void upstreamTls(Checker& check, const std::string& path, const v1::UpstreamTls& t) {
    if (!hasDataSource(t.validation().trusted_ca())) {
      check.error(path + ".validation.trusted_ca",
                  "is required: upstream certificates are always verified");
    } else {
      certificateValidation(check, path + ".validation", t.validation());
    }
    if (!t.sni().empty() && !isDnsName(t.sni())) {
      check.error(path + ".sni", absl::StrCat("'", t.sni(), "' is not a DNS name"));
    }
    const v1::TlsCertificate& cc = t.client_certificate();
    if (t.has_client_certificate()) {
      tlsCertificate(check, path + ".client_certificate", cc);
      if (cc.server_names_size() > 0) {
        check.error(path + ".client_certificate.server_names",
                    "apply to listener certificates only");
      }
    }
    tlsParams(check, path + ".params", t.params());
  }

  void tlsCertificate(Checker& check, const std::string& path, const v1::TlsCertificate& c) {
    dataSource(check, path + ".certificate_chain", c.certificate_chain());
    dataSource(check, path + ".private_key", c.private_key());
  }

  void certificateValidation(Checker& check, const std::string& path,
                             const v1::CertificateValidation& v) {
    dataSource(check, path + ".trusted_ca", v.trusted_ca());
    for (int i = 0; i < v.match_subject_alt_names_size(); ++i) {
      const std::string& san = v.match_subject_alt_names(i);
      absl::string_view rest = san;
      const bool wildcard = absl::ConsumePrefix(&rest, "*.");
      if (san.empty() || !isVisibleAscii(san) || absl::StrContains(rest, '*') ||
          (wildcard && !isDnsName(rest))) {
        check.error(absl::StrCat(path, ".match_subject_alt_names[", i, "]"),
                    absl::StrCat("'", san,
                                 "' is not a subjectAltName to match: a DNS name (or \"*.\" and "
                                 "one), a URI or an email address"));
      }
    }
  }

  // A DataSource that must be set; whether it is.
  bool dataSource(Checker& check, const std::string& field, const v1::DataSource& d) {
    switch (d.specifier_case()) {
      case v1::DataSource::kFilename:
        if (d.filename().empty() || d.filename().find('\0') != std::string::npos) {
          check.error(field + ".filename", "must be a file's path");
          return false;
        }
        return true;
      case v1::DataSource::kInlineString:
        if (d.inline_string().empty()) check.error(field + ".inline_string", "is empty");
        return !d.inline_string().empty();
      case v1::DataSource::SPECIFIER_NOT_SET:
        break;
    }
    check.error(field, "is required: a filename or an inline_string");
    return false;
  }

  void tlsParams(Checker& check, const std::string& path, const v1::TlsParameters& p) {
    const bool known_min = v1::TlsVersion_IsValid(p.min_version());
    const bool known_max = v1::TlsVersion_IsValid(p.max_version());
    if (!known_min) {
      check.error(path + ".min_version", absl::StrCat("unknown value ", p.min_version()));
    }
    if (!known_max) {
      check.error(path + ".max_version", absl::StrCat("unknown value ", p.max_version()));
    }
    // TLS_AUTO: at least 1.2, at most 1.3.
    const bool min13 = p.min_version() == v1::TLS_V1_3;
    if (known_min && known_max && min13 && p.max_version() == v1::TLS_V1_2) {
      check.error(path + ".max_version", "is TLS_V1_2, below min_version TLS_V1_3");
    }
    for (int i = 0; i < p.cipher_suites_size(); ++i) {
      const std::string& c = p.cipher_suites(i);
      if (c.empty() || !std::all_of(c.begin(), c.end(), [](unsigned char ch) {
            return absl::ascii_isalnum(ch) || ch == '-' || ch == '_';
          })) {
        check.error(absl::StrCat(path, ".cipher_suites[", i, "]"),
                    absl::StrCat("'", c,
                                 "' is not a cipher suite name (OpenSSL's, e.g. "
                                 "ECDHE-RSA-AES128-GCM-SHA256)"));
      }
    }
    if (p.cipher_suites_size() > 0 && min13) {
      check.error(path + ".cipher_suites",
                  "apply to TLS 1.2 only, and min_version is TLS_V1_3 (TLS 1.3 suites are not "
                  "configurable)");
    }
  }

  // Two listeners served to a common node group cannot bind the same port on overlapping
  // addresses (a wildcard address overlaps every address of its family). Each listener is
  // reported once, for the first it overlaps: n copies of one listener give n - 1 diagnostics,
  // not n^2 / 2.
  void listenerConflicts() {
    const auto& ls = config_.listeners;
    for (size_t i = 0; i < ls.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        const v1::Listener& a = ls[i].resource;
        const v1::Listener& b = ls[j].resource;
        if (a.port() != b.port() || a.port() == 0 || !shareGroup(ls[i].origin, ls[j].origin)) {
          continue;
        }
        std::string aa = a.address().empty() ? "0.0.0.0" : a.address();
        std::string ba = b.address().empty() ? "0.0.0.0" : b.address();
        bool a6 = absl::StrContains(aa, ':'), b6 = absl::StrContains(ba, ':');
        bool overlap =
            aa == ba ||
            (a6 == b6 && (aa == "0.0.0.0" || ba == "0.0.0.0" || aa == "::" || ba == "::"));
        if (overlap) {
          Checker check(&out_, "Listener", a.name(), ls[i].origin);
          check.error("port", absl::StrCat(aa, ":", a.port(), " overlaps listener '", b.name(),
                                           "' on ", ba, ":", b.port(), " (", ls[j].origin.file, ":",
                                           ls[j].origin.line, ")"));
          break;
        }
      }
    }
  }

  static bool shareGroup(const Origin& a, const Origin& b) {
    if (a.node_groups.empty() || b.node_groups.empty()) return true;
    return std::any_of(a.node_groups.begin(), a.node_groups.end(), [&](const std::string& g) {
      return std::find(b.node_groups.begin(), b.node_groups.end(), g) != b.node_groups.end();
    });
  }

  void routeConfig(const Sourced<v1::RouteConfiguration>& item) {
    const v1::RouteConfiguration& rc = item.resource;
    Checker check(&out_, "RouteConfiguration", rc.name(), item.origin);
    groups(check);
    std::map<std::string, std::string> domains;  // lower-cased domain -> virtual host
    std::set<std::string> vhost_names;
    std::set<std::string> providers = jwtProviders(check, rc);
    for (int v = 0; v < rc.virtual_hosts_size(); ++v) {
      const v1::VirtualHost& vh = rc.virtual_hosts(v);
      std::string path = absl::StrCat("virtual_hosts[", v, "]");
      if (vh.name().empty()) {
        check.error(path + ".name", "is required");
      } else if (!vhost_names.insert(vh.name()).second) {
        check.error(path + ".name",
                    absl::StrCat("virtual host name '", vh.name(), "' is used twice"));
      }
      if (vh.domains_size() == 0) {
        check.error(path + ".domains", "needs at least one domain (\"*\" matches any host)");
      }
      for (int d = 0; d < vh.domains_size(); ++d) {
        std::string field = absl::StrCat(path, ".domains[", d, "]");
        std::string domain = absl::AsciiStrToLower(vh.domains(d));
        absl::string_view rest = domain;
        if (rest == "*") {
          rest = "";
        } else if (absl::StartsWith(rest, "*.")) {
          rest.remove_prefix(2);
          if (rest.empty()) check.error(field, "'*.' needs a suffix, as in '*.example.com'");
        }
        if (!rest.empty() && !isHostName(rest)) {
          check.error(field, absl::StrCat("'", vh.domains(d),
                                          "' is not a host name, '*.suffix' or '*' (wildcards "
                                          "only as a leading '*.')"));
          continue;
        }
        if (domain.empty()) {
          check.error(field, "is empty");
          continue;
        }
        auto [it, inserted] = domains.emplace(domain, vh.name());
        if (!inserted) {
          check.error(field,
                      absl::StrCat("domain '", vh.domains(d),
                                   "' is already served by virtual host '", it->second, "'"));
        }
      }
      headerMutation(check, path + ".request_headers", vh.request_headers());
      headerMutation(check, path + ".response_headers", vh.response_headers());
      if (vh.has_access()) accessPolicy(check, path + ".access", vh.access(), providers);
      for (int r = 0; r < vh.routes_size(); ++r) {
        std::string rp = absl::StrCat(path, ".routes[", r, "]");
        route(check, rp, vh.routes(r));
        if (vh.routes(r).has_access()) {
          accessPolicy(check, rp + ".access", vh.routes(r).access(), providers);
        }
      }
    }
  }

  // Checks the route configuration's JWT providers; returns their names.
  std::set<std::string> jwtProviders(Checker& check, const v1::RouteConfiguration& rc) {
    std::set<std::string> names;
    for (int i = 0; i < rc.jwt_providers_size(); ++i) {
      const v1::JwtProvider& p = rc.jwt_providers(i);
      std::string path = absl::StrCat("jwt_providers[", i, "]");
      if (p.name().empty()) {
        check.error(path + ".name", "is required");
      } else if (!names.insert(p.name()).second) {
        check.error(path + ".name", absl::StrCat("JWT provider '", p.name(), "' is defined twice"));
      }
      if (p.issuer().empty()) check.error(path + ".issuer", "is required (the tokens' \"iss\")");
      switch (p.jwks_case()) {
        case v1::JwtProvider::kLocalJwks:
          dataSource(check, path + ".local_jwks", p.local_jwks());
          break;
        case v1::JwtProvider::kRemoteJwks: {
          const v1::RemoteJwks& r = p.remote_jwks();
          const std::string rp = path + ".remote_jwks";
          if (!absl::StartsWith(r.uri(), "http://") && !absl::StartsWith(r.uri(), "https://")) {
            check.error(rp + ".uri", "must be an http:// or https:// URL");
          } else if (!isHeaderValue(r.uri()) || absl::StrContains(r.uri(), ' ')) {
            check.error(rp + ".uri", "must not hold spaces or control characters");
          }
          reference(check, rp + ".cluster", "Cluster", r.cluster(), clusters_, Kind::kCluster);
          // The cluster's TLS decides how the document is fetched; the URL must say the same.
          if (auto c = clusters_.find(r.cluster()); c != clusters_.end()) {
            const bool https = absl::StartsWith(r.uri(), "https://");
            const bool tls = c->second->resource.has_tls();
            if (https && !tls) {
              check.error(rp + ".uri", absl::StrCat("is https:// but Cluster '", r.cluster(),
                                                    "' has no tls to verify the server with"));
            } else if (!https && tls && absl::StartsWith(r.uri(), "http://")) {
              check.error(rp + ".uri", absl::StrCat("is http:// but Cluster '", r.cluster(),
                                                    "' connects with tls; use https://"));
            }
          }
          check.duration(rp + ".refresh_interval", r.has_refresh_interval(), r.refresh_interval(),
                         1000, kDaySeconds);
          check.duration(rp + ".timeout", r.has_timeout(), r.timeout(), 1, 60);
          break;
        }
        case v1::JwtProvider::JWKS_NOT_SET:
          check.error(path, "needs local_jwks or remote_jwks");
          break;
      }
      check.duration(path + ".clock_skew", p.has_clock_skew(), p.clock_skew(), 0, 600);
      for (int h = 0; h < p.from_headers_size(); ++h) {
        if (!isToken(p.from_headers(h))) {
          check.error(absl::StrCat(path, ".from_headers[", h, "]"),
                      absl::StrCat("'", p.from_headers(h), "' is not a valid header name"));
        }
      }
      for (int c = 0; c < p.claim_to_headers_size(); ++c) {
        const v1::ClaimToHeader& ch = p.claim_to_headers(c);
        std::string cp = absl::StrCat(path, ".claim_to_headers[", c, "]");
        if (ch.claim().empty()) check.error(cp + ".claim", "is required");
        if (!isToken(ch.header()) || isManagedHeader(ch.header())) {
          check.error(cp + ".header",
                      absl::StrCat("'", ch.header(), "' is not a header the proxy can set"));
        }
      }
    }
    return names;
  }

  void accessPolicy(Checker& check, const std::string& path, const v1::AccessPolicy& a,
                    const std::set<std::string>& providers) {
    ipFilter(check, path + ".ip_filter", a.ip_filter());
    if (a.has_authentication()) {
      const v1::Authentication& au = a.authentication();
      const std::string ap = path + ".authentication";
      if (!au.has_api_key() && au.jwt_providers_size() == 0 && !au.has_basic_auth() &&
          !au.has_hmac()) {
        check.error(ap, "needs at least one of api_key, jwt_providers, basic_auth or hmac");
      }
      if (au.has_api_key()) {
        for (int i = 0; i < au.api_key().headers_size(); ++i) {
          if (!isToken(au.api_key().headers(i))) {
            check.error(absl::StrCat(ap, ".api_key.headers[", i, "]"),
                        absl::StrCat("'", au.api_key().headers(i), "' is not a valid header name"));
          }
        }
        for (int i = 0; i < au.api_key().query_parameters_size(); ++i) {
          if (au.api_key().query_parameters(i).empty()) {
            check.error(absl::StrCat(ap, ".api_key.query_parameters[", i, "]"), "is empty");
          }
        }
      }
      for (int i = 0; i < au.jwt_providers_size(); ++i) {
        if (providers.count(au.jwt_providers(i)) == 0) {
          check.error(absl::StrCat(ap, ".jwt_providers[", i, "]"),
                      absl::StrCat("names JWT provider '", au.jwt_providers(i),
                                   "' which this route configuration's jwt_providers do not "
                                   "define"));
        }
      }
      if (au.has_basic_auth() && (absl::StrContains(au.basic_auth().realm(), '"') ||
                                  !isHeaderValue(au.basic_auth().realm()))) {
        check.error(ap + ".basic_auth.realm", "must not hold quotes or control characters");
      }
      if (au.has_hmac()) {
        check.duration(ap + ".hmac.clock_skew", au.hmac().has_clock_skew(), au.hmac().clock_skew(),
                       1000, kMaxTimeoutSeconds);
        if (au.hmac().max_body_bytes() > (64u << 20)) {
          check.error(ap + ".hmac.max_body_bytes",
                      absl::StrCat("must be at most 67108864, got ", au.hmac().max_body_bytes()));
        }
      }
      if (!au.consumer_header().empty() &&
          (!isToken(au.consumer_header()) || isManagedHeader(au.consumer_header()))) {
        check.error(ap + ".consumer_header",
                    absl::StrCat("'", au.consumer_header(), "' is not a header the proxy can set"));
      }
    }
    if (a.has_rbac()) {
      const v1::Rbac& rbac = a.rbac();
      for (int i = 0; i < rbac.rules_size(); ++i) {
        rbacRule(check, absl::StrCat(path, ".rbac.rules[", i, "]"), rbac.rules(i));
      }
      if (rbac.rules_size() == 0 && rbac.default_action() == v1::Rbac::DENY && !rbac.shadow()) {
        check.error(path + ".rbac", "denies every request (no rules, default_action DENY)");
      }
    }
  }

  void rbacRule(Checker& check, const std::string& path, const v1::RbacRule& r) {
    for (int i = 0; i < r.consumers_size(); ++i) {
      reference(check, absl::StrCat(path, ".consumers[", i, "]"), "Consumer", r.consumers(i),
                consumers_, Kind::kConsumer);
    }
    for (int i = 0; i < r.groups_size(); ++i) {
      if (!isConsumerName(r.groups(i))) {
        check.error(absl::StrCat(path, ".groups[", i, "]"),
                    "may hold only letters, digits, '-', '_' and '.' (at most 128)");
      }
    }
    for (int i = 0; i < r.claims_size(); ++i) {
      const v1::ClaimMatcher& c = r.claims(i);
      std::string cp = absl::StrCat(path, ".claims[", i, "]");
      if (c.name().empty()) check.error(cp + ".name", "is required");
      switch (c.match_case()) {
        case v1::ClaimMatcher::kValue:
          stringMatcher(check, cp + ".value", c.value());
          break;
        case v1::ClaimMatcher::MATCH_NOT_SET:
          check.error(cp, "needs one of contains, value or present");
          break;
        default:
          break;
      }
    }
    for (int i = 0; i < r.client_certificates_size(); ++i) {
      stringMatcher(check, absl::StrCat(path, ".client_certificates[", i, "]"),
                    r.client_certificates(i));
    }
    for (int i = 0; i < r.methods_size(); ++i) {
      if (!isToken(r.methods(i)) || r.methods(i) != absl::AsciiStrToUpper(r.methods(i))) {
        check.error(absl::StrCat(path, ".methods[", i, "]"),
                    absl::StrCat("'", r.methods(i), "' is not an upper-case HTTP method"));
      }
    }
    for (int i = 0; i < r.paths_size(); ++i) {
      stringMatcher(check, absl::StrCat(path, ".paths[", i, "]"), r.paths(i));
    }
    for (int i = 0; i < r.source_ips_size(); ++i) {
      if (!isCidr(r.source_ips(i))) {
        check.error(absl::StrCat(path, ".source_ips[", i, "]"),
                    absl::StrCat("'", r.source_ips(i),
                                 "' is not an address or CIDR block (e.g. 10.0.0.0/8, ::1)"));
      }
    }
  }

  void stringMatcher(Checker& check, const std::string& path, const v1::StringMatcher& m) {
    switch (m.match_case()) {
      case v1::StringMatcher::kRegex:
        check.regex(path + ".regex", m.regex());
        break;
      case v1::StringMatcher::MATCH_NOT_SET:
        check.error(path, "needs one of exact, prefix, suffix, contains or regex");
        break;
      default:
        break;
    }
  }

  void route(Checker& check, const std::string& path, const v1::Route& r) {
    const v1::RouteMatch& m = r.match();
    const std::string mp = path + ".match";
    switch (m.path_specifier_case()) {
      case v1::RouteMatch::kPath:
        if (!absl::StartsWith(m.path(), "/")) check.error(mp + ".path", "must start with '/'");
        break;
      case v1::RouteMatch::kPrefix:
        if (!absl::StartsWith(m.prefix(), "/")) check.error(mp + ".prefix", "must start with '/'");
        break;
      case v1::RouteMatch::kRegex:
        check.regex(mp + ".regex", m.regex());
        break;
      case v1::RouteMatch::PATH_SPECIFIER_NOT_SET:
        check.error(mp, "needs one of path, prefix or regex (prefix: / matches every path)");
        break;
    }
    for (int i = 0; i < m.methods_size(); ++i) {
      const std::string& method = m.methods(i);
      std::string field = absl::StrCat(mp, ".methods[", i, "]");
      if (!isToken(method)) {
        check.error(field, absl::StrCat("'", method, "' is not an HTTP method"));
      } else if (method != absl::AsciiStrToUpper(method)) {
        check.error(field, absl::StrCat("methods are case-sensitive; write '",
                                        absl::AsciiStrToUpper(method), "'"));
      }
    }
    for (int i = 0; i < m.headers_size(); ++i) {
      const v1::HeaderMatcher& h = m.headers(i);
      std::string field = absl::StrCat(mp, ".headers[", i, "]");
      if (!isToken(h.name())) {
        check.error(field + ".name", absl::StrCat("'", h.name(), "' is not a valid header name"));
      }
      if (h.match_case() == v1::HeaderMatcher::MATCH_NOT_SET) {
        check.error(field, "needs one of exact, prefix, suffix, regex or present");
      }
      if (h.match_case() == v1::HeaderMatcher::kRegex) check.regex(field + ".regex", h.regex());
    }
    for (int i = 0; i < m.query_parameters_size(); ++i) {
      const v1::QueryParameterMatcher& q = m.query_parameters(i);
      std::string field = absl::StrCat(mp, ".query_parameters[", i, "]");
      if (q.name().empty()) check.error(field + ".name", "is required");
      if (q.match_case() == v1::QueryParameterMatcher::MATCH_NOT_SET) {
        check.error(field, "needs one of exact, regex or present");
      }
      if (q.match_case() == v1::QueryParameterMatcher::kRegex)
        check.regex(field + ".regex", q.regex());
    }
    for (int i = 0; i < m.cookies_size(); ++i) {
      const v1::CookieMatcher& c = m.cookies(i);
      std::string field = absl::StrCat(mp, ".cookies[", i, "]");
      cookieName(check, field + ".name", c.name());
      if (c.match_case() == v1::CookieMatcher::MATCH_NOT_SET) {
        check.error(field, "needs one of exact, regex or present");
      }
      if (c.match_case() == v1::CookieMatcher::kRegex) check.regex(field + ".regex", c.regex());
    }

    const bool prefix_match = m.path_specifier_case() == v1::RouteMatch::kPrefix;
    switch (r.action_case()) {
      case v1::Route::kRoute:
        routeAction(check, path + ".route", r.route(), prefix_match);
        break;
      case v1::Route::kDirectResponse:
        directResponse(check, path + ".direct_response", r.direct_response());
        break;
      case v1::Route::kRedirect: {
        const auto& rd = r.redirect();
        const std::string rp = path + ".redirect";
        uint32_t code = rd.response_code();
        if (code != 0 && code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
          check.error(rp + ".response_code",
                      absl::StrCat("must be 301, 302, 303, 307 or 308, got ", code));
        }
        if (!rd.scheme_redirect().empty() && rd.scheme_redirect() != "http" &&
            rd.scheme_redirect() != "https") {
          check.error(rp + ".scheme_redirect", "must be http or https");
        }
        if (!rd.host_redirect().empty() && !isHostName(rd.host_redirect())) {
          check.error(rp + ".host_redirect",
                      absl::StrCat("'", rd.host_redirect(), "' is not a host name"));
        }
        if (!rd.path_redirect().empty() && !absl::StartsWith(rd.path_redirect(), "/")) {
          check.error(rp + ".path_redirect", "must start with '/'");
        }
        if (!rd.path_redirect().empty() && !rd.prefix_rewrite().empty()) {
          check.error(rp + ".prefix_rewrite", "cannot be combined with path_redirect");
        }
        if (!rd.prefix_rewrite().empty() && !prefix_match) {
          check.error(rp + ".prefix_rewrite", "needs a prefix match");
        }
        break;
      }
      case v1::Route::ACTION_NOT_SET:
        check.error(path, "needs an action: route, direct_response or redirect");
        break;
    }
    headerMutation(check, path + ".request_headers", r.request_headers());
    headerMutation(check, path + ".response_headers", r.response_headers());
  }

  void routeAction(Checker& check, const std::string& ap, const v1::RouteAction& a,
                   bool prefix_match) {
    if (a.cluster_specifier_case() == v1::RouteAction::kCluster) {
      reference(check, ap + ".cluster", "Cluster", a.cluster(), clusters_, Kind::kCluster);
    } else if (a.cluster_specifier_case() == v1::RouteAction::kWeightedClusters) {
      const auto& wc = a.weighted_clusters();
      uint64_t total = 0;
      if (wc.clusters_size() == 0) {
        check.error(ap + ".weighted_clusters.clusters", "needs at least one cluster");
      }
      for (int i = 0; i < wc.clusters_size(); ++i) {
        std::string field = absl::StrCat(ap, ".weighted_clusters.clusters[", i, "]");
        reference(check, field + ".name", "Cluster", wc.clusters(i).name(), clusters_,
                  Kind::kCluster);
        total += wc.clusters(i).weight();
      }
      if (wc.clusters_size() > 0 && total == 0) {
        check.error(ap + ".weighted_clusters", "weights add up to 0; at least one must be > 0");
      } else if (total > kMaxTotalWeight) {
        check.error(ap + ".weighted_clusters",
                    absl::StrCat("weights add up to ", total, "; at most ", kMaxTotalWeight));
      }
    } else {
      check.error(ap, "needs cluster or weighted_clusters");
    }
    if (!a.prefix_rewrite().empty() && !prefix_match) {
      check.error(ap + ".prefix_rewrite", "needs a prefix match");
    }
    check.duration(ap + ".timeout", a.has_timeout(), a.timeout(), 0, kMaxTimeoutSeconds);
    if (!a.host_rewrite().empty() && !isHostName(a.host_rewrite())) {
      check.error(ap + ".host_rewrite",
                  absl::StrCat("'", a.host_rewrite(), "' is not a host name"));
    }
    if (a.has_retry_policy()) retryPolicy(check, ap + ".retry_policy", a.retry_policy());
    check.duration(ap + ".idle_timeout", a.has_idle_timeout(), a.idle_timeout(), 1,
                   kMaxTimeoutSeconds);
    for (int i = 0; i < a.request_mirror_policies_size(); ++i) {
      const v1::RequestMirrorPolicy& mirror = a.request_mirror_policies(i);
      std::string field = absl::StrCat(ap, ".request_mirror_policies[", i, "]");
      reference(check, field + ".cluster", "Cluster", mirror.cluster(), clusters_, Kind::kCluster);
      if (mirror.has_percentage()) check.percentage(field + ".percentage", mirror.percentage());
    }
    for (int i = 0; i < a.hash_policy_size(); ++i) {
      hashPolicy(check, absl::StrCat(ap, ".hash_policy[", i, "]"), a.hash_policy(i));
    }
    check.positiveLimit(ap + ".max_concurrent_requests", a.has_max_concurrent_requests(),
                        a.max_concurrent_requests(), "request");
    if (a.has_fallback()) directResponse(check, ap + ".fallback", a.fallback());
    if (a.has_fault()) fault(check, ap + ".fault", a.fault());
  }

  // A direct_response route's answer, and a forwarding route's fallback answer.
  void directResponse(Checker& check, const std::string& path, const v1::DirectResponseAction& d) {
    check.range(path + ".status", d.status(), 200, 599, false);
    if (d.body().size() > kMaxDirectBody) {
      check.error(path + ".body",
                  absl::StrCat("is ", d.body().size(), " bytes; at most ", kMaxDirectBody));
    }
    if ((d.status() == 204 || d.status() == 304) && !d.body().empty()) {
      check.error(path + ".body",
                  absl::StrCat("must be empty: a ", d.status(), " response has no body"));
    }
  }

  void retryPolicy(Checker& check, const std::string& path, const v1::RetryPolicy& p) {
    const std::string conditions = absl::StrJoin(kRetryConditions, ", ");
    if (p.retry_on_size() == 0) {
      check.error(path + ".retry_on", absl::StrCat("needs at least one of ", conditions));
    }
    bool status_codes = false;
    for (int i = 0; i < p.retry_on_size(); ++i) {
      const std::string& on = p.retry_on(i);
      std::string field = absl::StrCat(path, ".retry_on[", i, "]");
      if (on == "retriable-status-codes") {
        status_codes = true;
        if (p.retriable_status_codes_size() == 0) {
          check.error(field, "needs retriable_status_codes, the statuses to retry");
        }
      } else if (std::find(std::begin(kRetryConditions), std::end(kRetryConditions), on) ==
                 std::end(kRetryConditions)) {
        check.error(field,
                    absl::StrCat("'", on, "' is not a retry condition; use one of ", conditions));
      }
    }
    if (!status_codes && p.retriable_status_codes_size() > 0) {
      check.error(path + ".retriable_status_codes",
                  "apply only with retry_on 'retriable-status-codes'; add it to retry_on");
    }
    for (int i = 0; i < p.retriable_status_codes_size(); ++i) {
      check.range(absl::StrCat(path, ".retriable_status_codes[", i, "]"),
                  p.retriable_status_codes(i), 100, 599, false);
    }
    check.range(path + ".num_retries", p.num_retries(), 0, kMaxNumRetries, false);
    check.duration(path + ".per_try_timeout", p.has_per_try_timeout(), p.per_try_timeout(), 1,
                   kMaxTimeoutSeconds);
    bool base_ok =
        check.duration(path + ".base_interval", p.has_base_interval(), p.base_interval(), 1, 60);
    bool max_ok = check.duration(path + ".max_interval", p.has_max_interval(), p.max_interval(), 1,
                                 kMaxTimeoutSeconds);
    // An unset max_interval is 10 x base_interval, never shorter.
    if (base_ok && max_ok && p.has_max_interval()) {
      check.notShorter(
          path + ".max_interval", DurationField("max_interval", true, p.max_interval(), 0),
          DurationField("base_interval", p.has_base_interval(), p.base_interval(), 25));
    }
    check.range(path + ".max_buffered_body_bytes", p.max_buffered_body_bytes(), 0,
                kMaxBufferedBodyBytes, false);
  }

  void hashPolicy(Checker& check, const std::string& path, const v1::HashPolicy& h) {
    switch (h.policy_case()) {
      case v1::HashPolicy::kHeader:
        if (!isToken(h.header())) {
          check.error(path + ".header",
                      absl::StrCat("'", h.header(), "' is not a valid header name"));
        }
        break;
      case v1::HashPolicy::kCookie:
        cookieName(check, path + ".cookie", h.cookie());
        break;
      case v1::HashPolicy::kSourceIp:
        if (!h.source_ip()) {
          check.error(path + ".source_ip",
                      "must be true; leave the entry out to not hash on the client address");
        }
        break;
      case v1::HashPolicy::POLICY_NOT_SET:
        check.error(path, "needs one of header, cookie or source_ip");
        break;
    }
  }

  void fault(Checker& check, const std::string& path, const v1::FaultInjection& f) {
    if (!f.has_delay() && !f.has_abort()) {
      check.error(path, "needs delay, abort or both");
    }
    if (f.has_delay()) {
      const v1::FaultDelay& d = f.delay();
      if (!d.has_fixed_delay()) {
        check.error(path + ".delay.fixed_delay", "is required (1ms-1h)");
      }
      check.duration(path + ".delay.fixed_delay", d.has_fixed_delay(), d.fixed_delay(), 1,
                     kMaxTimeoutSeconds);
      check.percentage(path + ".delay.percentage", d.percentage());
    }
    if (f.has_abort()) {
      check.range(path + ".abort.http_status", f.abort().http_status(), 200, 599, false);
      check.percentage(path + ".abort.percentage", f.abort().percentage());
    }
  }

  void cookieName(Checker& check, const std::string& field, const std::string& name) {
    if (name.empty()) {
      check.error(field, "needs a cookie name");
    } else if (!isToken(name)) {
      check.error(field, absl::StrCat("'", name,
                                      "' is not a valid cookie name (letters, digits and "
                                      "!#$%&'*+-.^_`|~)"));
    }
  }

  void headerMutation(Checker& check, const std::string& path, const v1::HeaderMutation& h) {
    for (int i = 0; i < h.add_size(); ++i) {
      std::string field = absl::StrCat(path, ".add[", i, "]");
      const v1::HeaderValue& hv = h.add(i);
      if (!isToken(hv.name())) {
        check.error(field + ".name", absl::StrCat("'", hv.name(), "' is not a valid header name"));
      } else if (isManagedHeader(hv.name())) {
        check.error(field + ".name", absl::StrCat("'", hv.name(), "' is managed by the proxy"));
      }
      if (!isHeaderValue(hv.value())) {
        check.error(field + ".value", "may not hold control characters (CR, LF, NUL)");
      }
    }
    for (int i = 0; i < h.remove_size(); ++i) {
      std::string field = absl::StrCat(path, ".remove[", i, "]");
      if (!isToken(h.remove(i))) {
        check.error(field, absl::StrCat("'", h.remove(i), "' is not a valid header name"));
      } else if (isManagedHeader(h.remove(i))) {
        check.error(field, absl::StrCat("'", h.remove(i), "' is managed by the proxy"));
      }
    }
  }

  // The endpoints of a cluster of `type`, or of an assignment (type EDS).
  void endpoints(Checker& check, const std::string& path,
                 const google::protobuf::RepeatedPtrField<v1::Endpoint>& eps,
                 v1::Cluster::DiscoveryType type) {
    std::set<std::pair<std::string, uint32_t>> seen;
    for (int i = 0; i < eps.size(); ++i) {
      std::string field = absl::StrCat(path, "[", i, "]");
      const v1::Endpoint& e = eps[i];
      if (type == v1::Cluster::STRICT_DNS) {
        if (!isIpLiteral(e.address()) && !isDnsName(e.address())) {
          check.error(field + ".address",
                      absl::StrCat("'", e.address(),
                                   "' is neither an IP address nor a host name (labels of 1-63 "
                                   "letters, digits and '-' separated by '.', at most 253 "
                                   "characters)"));
        }
      } else if (!isIpLiteral(e.address())) {
        check.error(field + ".address",
                    absl::StrCat("'", e.address(), "' is not an IPv4 or IPv6 address",
                                 type == v1::Cluster::STATIC && isDnsName(e.address())
                                     ? "; a host name needs type STRICT_DNS"
                                     : ""));
      }
      if (e.port() == 0 || e.port() > 65535) {
        check.error(field + ".port", absl::StrCat("must be between 1 and 65535, got ", e.port()));
      }
      check.range(field + ".weight", e.weight(), 1, 1000);
      check.range(field + ".priority", e.priority(), 0, kMaxPriority, false);
      // Host names and IPv6 hex digits are case-insensitive.
      if (!seen.emplace(absl::AsciiStrToLower(e.address()), e.port()).second) {
        check.error(field,
                    absl::StrCat("endpoint ", e.address(), ":", e.port(), " is listed twice"));
      }
    }
  }

  void cluster(const Sourced<v1::Cluster>& item) {
    const v1::Cluster& c = item.resource;
    Checker check(&out_, "Cluster", c.name(), item.origin);
    groups(check);
    check.duration("connect_timeout", c.has_connect_timeout(), c.connect_timeout(), 1, 60);
    const std::string type = v1::Cluster::DiscoveryType_Name(c.type());
    if (c.type() != v1::Cluster::EDS && c.endpoints_size() == 0) {
      check.error("endpoints", absl::StrCat("a ", type, " cluster needs at least one endpoint"));
    }
    if (c.type() == v1::Cluster::EDS && c.endpoints_size() > 0) {
      check.error("endpoints",
                  "an EDS cluster takes its endpoints from a ClusterLoadAssignment, not from here");
    }
    endpoints(check, "endpoints", c.endpoints(), c.type());
    check.range("max_idle_connections_per_endpoint", c.max_idle_connections_per_endpoint(), 0,
                10000);
    if (c.type() == v1::Cluster::STRICT_DNS) {
      check.duration("dns_refresh_rate", c.has_dns_refresh_rate(), c.dns_refresh_rate(), 100,
                     kMaxTimeoutSeconds);
    } else {
      std::string only_dns =
          absl::StrCat("applies only to STRICT_DNS clusters; this one is ", type);
      if (c.has_dns_refresh_rate()) check.error("dns_refresh_rate", only_dns);
      if (c.dns_lookup_family() != v1::Cluster::AUTO) check.error("dns_lookup_family", only_dns);
    }
    loadBalancing(check, c);
    if (c.has_health_check()) healthCheck(check, "health_check", c.health_check());
    if (c.has_outlier_detection()) {
      outlierDetection(check, "outlier_detection", c.outlier_detection());
    }
    if (c.has_circuit_breakers()) {
      circuitBreakers(check, "circuit_breakers", c.circuit_breakers());
    }
    check.range("healthy_panic_threshold", c.healthy_panic_threshold(), 0, 100, false);
    if (c.has_tls()) upstreamTls(check, "tls", c.tls());
  }

  void loadBalancing(Checker& check, const v1::Cluster& c) {
    const std::string policy = v1::Cluster::LbPolicy_Name(c.lb_policy());
    if (c.has_ring_hash()) {
      if (c.lb_policy() != v1::Cluster::RING_HASH) {
        check.error("ring_hash", absl::StrCat("applies only with lb_policy RING_HASH; this "
                                              "cluster's lb_policy is ",
                                              policy));
      }
      const v1::RingHashConfig& rh = c.ring_hash();
      check.range("ring_hash.minimum_ring_size", rh.minimum_ring_size(), 1, kMaxRingSize);
      check.range("ring_hash.maximum_ring_size", rh.maximum_ring_size(), 1, kMaxRingSize);
      uint32_t min = rh.minimum_ring_size() != 0 ? rh.minimum_ring_size() : kDefaultMinRingSize;
      uint32_t max = rh.maximum_ring_size() != 0 ? rh.maximum_ring_size() : kMaxRingSize;
      if (min <= kMaxRingSize && max < min) {
        check.error("ring_hash.maximum_ring_size",
                    absl::StrCat("must be at least minimum_ring_size (", min,
                                 rh.minimum_ring_size() != 0 ? "" : " by default", "), got ", max));
      }
    }
    if (c.has_maglev()) {
      if (c.lb_policy() != v1::Cluster::MAGLEV) {
        check.error("maglev", absl::StrCat("applies only with lb_policy MAGLEV; this cluster's "
                                           "lb_policy is ",
                                           policy));
      }
      uint32_t size = c.maglev().table_size();
      if (size > kMaxMaglevTableSize) {
        check.error("maglev.table_size", absl::StrCat("must be a prime of at most ",
                                                      kMaxMaglevTableSize, ", got ", size));
      } else if (size != 0 && !isPrime(size)) {
        uint32_t next = size + 1;
        while (!isPrime(next)) ++next;  // kMaxMaglevTableSize is prime: this ends there.
        check.error("maglev.table_size", absl::StrCat("must be a prime number, got ", size,
                                                      "; the next prime is ", next));
      }
    }
  }

  void healthCheck(Checker& check, const std::string& path, const v1::HealthCheck& hc) {
    bool interval_ok = check.duration(path + ".interval", hc.has_interval(), hc.interval(), 10,
                                      kMaxTimeoutSeconds);
    bool timeout_ok =
        check.duration(path + ".timeout", hc.has_timeout(), hc.timeout(), 1, kMaxTimeoutSeconds);
    if (interval_ok && timeout_ok) {
      check.notLonger(path + ".timeout",
                      DurationField("timeout", hc.has_timeout(), hc.timeout(), 1000),
                      DurationField("interval", hc.has_interval(), hc.interval(), 5000));
    }
    check.duration(path + ".interval_jitter", hc.has_interval_jitter(), hc.interval_jitter(), 0,
                   kMaxTimeoutSeconds);
    check.range(path + ".unhealthy_threshold", hc.unhealthy_threshold(), 1, 1000);
    check.range(path + ".healthy_threshold", hc.healthy_threshold(), 1, 1000);
    switch (hc.checker_case()) {
      case v1::HealthCheck::kHttp:
        httpHealthCheck(check, path + ".http", hc.http());
        break;
      case v1::HealthCheck::kTcp:
        break;
      case v1::HealthCheck::CHECKER_NOT_SET:
        check.error(path, "needs http (e.g. http: {path: /healthz}) or tcp (tcp: {})");
        break;
    }
  }

  void httpHealthCheck(Checker& check, const std::string& path, const v1::HttpHealthCheck& h) {
    if (h.path().empty()) {
      check.error(path + ".path", "is required, e.g. /healthz");
    } else if (!absl::StartsWith(h.path(), "/")) {
      check.error(path + ".path", "must start with '/'");
    } else if (!isVisibleAscii(h.path())) {
      check.error(path + ".path",
                  "may hold only visible ASCII characters (no spaces, CR or LF); "
                  "percent-encode others");
    }
    if (!h.host().empty() && !isHostName(h.host())) {
      check.error(path + ".host", absl::StrCat("'", h.host(), "' is not a host name"));
    }
    for (int i = 0; i < h.expected_statuses_size(); ++i) {
      const v1::StatusRange& r = h.expected_statuses(i);
      std::string field = absl::StrCat(path, ".expected_statuses[", i, "]");
      check.range(field + ".min", r.min(), 100, 599, false);
      check.range(field + ".max", r.max(), 100, 599, false);
      if (r.min() >= 100 && r.max() >= 100 && r.min() <= 599 && r.max() < r.min()) {
        check.error(field + ".max",
                    absl::StrCat("must be at least min (", r.min(), "), got ", r.max()));
      }
    }
  }

  void outlierDetection(Checker& check, const std::string& path, const v1::OutlierDetection& od) {
    check.range(path + ".consecutive_5xx", od.consecutive_5xx(), 0, 1000, false);
    check.range(path + ".consecutive_gateway_failure", od.consecutive_gateway_failure(), 0, 1000,
                false);
    bool base_ok = check.duration(path + ".base_ejection_time", od.has_base_ejection_time(),
                                  od.base_ejection_time(), 1, kMaxTimeoutSeconds);
    bool max_ok = check.duration(path + ".max_ejection_time", od.has_max_ejection_time(),
                                 od.max_ejection_time(), 1, kDaySeconds);
    if (base_ok && max_ok) {
      check.notShorter(path + ".max_ejection_time",
                       DurationField("max_ejection_time", od.has_max_ejection_time(),
                                     od.max_ejection_time(), 300'000),
                       DurationField("base_ejection_time", od.has_base_ejection_time(),
                                     od.base_ejection_time(), 30'000));
    }
    check.range(path + ".max_ejection_percent", od.max_ejection_percent(), 0, 100, false);
  }

  void circuitBreakers(Checker& check, const std::string& path, const v1::CircuitBreakers& cb) {
    check.positiveLimit(path + ".max_connections", cb.has_max_connections(), cb.max_connections(),
                        "connection");
    // Every new connection waits for its connect as a pending request: 0 would refuse them all.
    check.positiveLimit(path + ".max_pending_requests", cb.has_max_pending_requests(),
                        cb.max_pending_requests(), "new connection");
    check.positiveLimit(path + ".max_requests", cb.has_max_requests(), cb.max_requests(),
                        "request");
    if (cb.has_retry_budget()) {
      if (cb.has_max_retries()) {
        check.error(path + ".retry_budget", "retry_budget replaces max_retries; set only one");
      }
      const v1::RetryBudget& rb = cb.retry_budget();
      if (rb.has_budget_percent()) {
        check.percentage(path + ".retry_budget.budget_percent", rb.budget_percent());
      }
    }
  }

  void assignment(const Sourced<v1::ClusterLoadAssignment>& item) {
    const v1::ClusterLoadAssignment& a = item.resource;
    Checker check(&out_, "ClusterLoadAssignment", a.cluster_name(), item.origin);
    groups(check);
    if (!a.cluster_name().empty()) {
      reference(check, "cluster_name", "Cluster", a.cluster_name(), clusters_, Kind::kCluster);
      auto it = clusters_.find(a.cluster_name());
      if (it != clusters_.end() && it->second->resource.type() != v1::Cluster::EDS) {
        check.error("cluster_name",
                    absl::StrCat("cluster '", a.cluster_name(), "' is ",
                                 v1::Cluster::DiscoveryType_Name(it->second->resource.type()),
                                 "; only EDS clusters take assignments"));
      }
    }
    endpoints(check, "endpoints", a.endpoints(), v1::Cluster::EDS);
  }

  const ConfigSet& config_;
  Diagnostics out_;
  std::map<std::string, const Sourced<v1::Cluster>*> clusters_;
  std::map<std::string, const Sourced<v1::RouteConfiguration>*> routes_;
  std::map<std::string, const Sourced<v1::Consumer>*> consumers_;
};

}  // namespace

Diagnostics validateConfig(const ConfigSet& config) { return Validator(config).run(); }

}  // namespace sluice::config
