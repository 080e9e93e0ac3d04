#include "proxy/filters/authn/jwks_fetcher.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace sluice::authn {
namespace {

// After a failure: 1s, doubling up to a minute (and never beyond the refresh interval).
constexpr absl::Duration kFirstRetry = absl::Seconds(1);
constexpr absl::Duration kMaxRetry = absl::Minutes(1);

struct Url {
  std::string host;  // for the Host header
  std::string path;  // with the query
  bool https = false;
};

std::optional<Url> parseUrl(const std::string& uri) {
  std::string_view rest = uri;
  Url url;
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
    url.https = true;
  } else {
    return std::nullopt;
  }
  size_t slash = rest.find('/');
  url.host = std::string(rest.substr(0, slash));
  url.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (url.host.empty()) return std::nullopt;
  return url;
}

// "127.0.0.1:80" or "[::1]:80" into an address and a port.
bool splitAddress(const std::string& address, std::string* host, uint16_t* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  std::string h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  uint32_t p;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p == 0 || p > 65535) return false;
  *host = h;
  *port = static_cast<uint16_t>(p);
  return true;
}

}  // namespace

struct JwksFetcher::Source {
  JwksFetcher* owner;
  JwksSource config;
  event* timer = nullptr;
  evhttp_connection* conn = nullptr;
  absl::Duration backoff = kFirstRetry;
  bool have_keys = false;

  ~Source() {
    if (conn != nullptr) evhttp_connection_free(conn);
    if (timer != nullptr) event_free(timer);
  }
};

JwksFetcher::JwksFetcher(event_base* base, Resolve resolve, Publish publish, stats::Store* store,
                         stats::Cells* cells)
    : base_(base), resolve_(std::move(resolve)), publish_(std::move(publish)), cells_(cells) {
  fetched_ = store->counter("sluice_jwks_fetch_total",
                            "Remote JWKS documents fetched with at least one usable key.", {});
  failed_ = store->counter("sluice_jwks_fetch_failed_total",
                           "Remote JWKS fetches that failed (the last keys stay).", {});
}

JwksFetcher::~JwksFetcher() = default;

void JwksFetcher::update(const std::vector<JwksSource>& sources) {
  std::map<std::string, std::unique_ptr<Source>> next;
  for (const JwksSource& s : sources) {
    if (next.count(s.key) != 0) continue;
    auto it = sources_.find(s.key);
    if (it != sources_.end()) {
      it->second->config = s;  // a new interval applies from the next fetch
      next[s.key] = std::move(it->second);
      continue;
    }
    auto source = std::make_unique<Source>();
    source->owner = this;
    source->config = s;
    source->timer = evtimer_new(base_, &JwksFetcher::onTimer, source.get());
    Source* raw = source.get();
    next[s.key] = std::move(source);
    start(raw);
  }
  sources_ = std::move(next);
}

void JwksFetcher::onTimer(evutil_socket_t, short, void* arg) {
  auto* source = static_cast<Source*>(arg);
  source->owner->start(source);
}

void JwksFetcher::start(Source* source) {
  if (source->conn != nullptr) {
    evhttp_connection_free(source->conn);
    source->conn = nullptr;
  }
  std::optional<Url> url = parseUrl(source->config.uri);
  std::optional<JwksTarget> target = resolve_(source->config.cluster);
  std::string host;
  uint16_t port = 0;
  if (!url.has_value() || !target.has_value() || !splitAddress(target->address, &host, &port)) {
    finish(source, std::nullopt,
           absl::StrCat("cluster '", source->config.cluster, "' has no endpoint to fetch from"));
    return;
  }
  if (url->https != (target->tls != nullptr)) {
    // The validator keeps them in step; a cluster changed under a provider still must not
    // send an https:// request in the clear.
    finish(source, std::nullopt,
           url->https ? "the URL is https:// and the cluster has no tls"
                      : "the URL is http:// and the cluster connects with tls");
    return;
  }
  if (target->tls != nullptr) {
    std::string_view name = target->host;
    if (name.empty()) {
      // The URL's host without its port (an IPv6 literal without its brackets).
      name = url->host;
      const size_t bracket = name.rfind(']');
      const size_t colon = name.rfind(':');
      if (colon != std::string_view::npos &&
          (bracket == std::string_view::npos || colon > bracket)) {
        name = name.substr(0, colon);
      }
      if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
        name = name.substr(1, name.size() - 2);
      }
    }
    SSL* ssl = target->tls->newSsl(name);
    bufferevent* bev = ssl == nullptr
                           ? nullptr
                           : bufferevent_openssl_socket_new(
                                 base_, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == nullptr) {
      if (ssl != nullptr) SSL_free(ssl);
      finish(source, std::nullopt, "cannot create a TLS connection");
      return;
    }
    // Servers often close without close_notify after the response; the body is already
    // complete then (Content-Length or chunked), so that is not an error.
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    source->conn = evhttp_connection_base_bufferevent_new(base_, nullptr, bev, host.c_str(), port);
  } else {
    source->conn = evhttp_connection_base_new(base_, nullptr, host.c_str(), port);
  }
  if (source->conn == nullptr) {
    finish(source, std::nullopt, "cannot create a connection");
    return;
  }
  evhttp_connection_set_timeout_tv(source->conn, nullptr);
  timeval tv = absl::ToTimeval(source->config.timeout);
  evhttp_connection_set_timeout_tv(source->conn, &tv);
  evhttp_request* req = evhttp_request_new(&JwksFetcher::onResponse, source);
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Host", url->host.c_str());
  evhttp_add_header(headers, "Accept", "application/json");
  evhttp_add_header(headers, "Connection", "close");
  if (evhttp_make_request(source->conn, req, EVHTTP_REQ_GET, url->path.c_str()) != 0) {
    finish(source, std::nullopt, "cannot send the request");
  }
}

void JwksFetcher::onResponse(evhttp_request* req, void* arg) {
  auto* source = static_cast<Source*>(arg);
  if (req == nullptr || evhttp_request_get_response_code(req) == 0) {
    source->owner->finish(source, std::nullopt, "no answer (connect failure or timeout)");
    return;
  }
  int code = evhttp_request_get_response_code(req);
  if (code != 200) {
    source->owner->finish(source, std::nullopt, absl::StrCat("status ", code));
    return;
  }
  evbuffer* in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in);
  if (len > jwt_authn::kMaxJwksBytes) {
    source->owner->finish(source, std::nullopt, absl::StrCat("document of ", len, " bytes"));
    return;
  }
  std::string body(len, '\0');
  evbuffer_copyout(in, body.data(), len);
  source->owner->finish(source, std::move(body), "");
}

void JwksFetcher::finish(Source* source, std::optional<std::string> body,
                         const std::string& error) {
  std::string why = error;
  if (body.has_value()) {
    absl::StatusOr<jwt_authn::KeySet> keys = jwt_authn::parseJwks(*body);
    if (keys.ok()) {
      cells_->add(fetched_);
      source->backoff = kFirstRetry;
      source->have_keys = true;
      for (const std::string& skipped : keys->skipped()) {
        log::warn("jwks %s: %s", source->config.uri, skipped);
      }
      publish_(source->config.key, std::make_shared<const jwt_authn::KeySet>(*std::move(keys)));
      timeval tv = absl::ToTimeval(source->config.refresh);
      evtimer_add(source->timer, &tv);
      return;
    }
    why = std::string(keys.status().message());
  }
  cells_->add(failed_);
  log::warn("jwks %s via cluster '%s': fetch failed: %s; %s", source->config.uri,
            source->config.cluster, why,
            source->have_keys ? "keeping the last keys" : "tokens are refused until it succeeds");
  timeval tv = absl::ToTimeval(std::min(source->backoff, source->config.refresh));
  source->backoff = std::min(source->backoff * 2, kMaxRetry);
  evtimer_add(source->timer, &tv);
}

}  // namespace sluice::authn
