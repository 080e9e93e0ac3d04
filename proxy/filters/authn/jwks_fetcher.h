#pragma once

// Fetches the remote JWKS documents of JWT providers on the main thread: at once when a
// provider first appears, then every refresh_interval; a failed fetch (connect error, timeout,
// non-200, a document without a usable key) keeps the last keys and is retried after a
// shorter backoff. New keys are handed to `publish`, which puts them in a new generation.
// An https:// document is fetched over TLS with the cluster's context: the server's certificate
// is verified against the cluster's CA and its name (the cluster's sni, else the endpoint's DNS
// name, else the URL's host).
#include <event2/event.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proxy/filters/jwt_authn/jwks.h"
#include "proxy/stats/store.h"
#include "proxy/tls/context.h"

struct evhttp_connection;
struct evhttp_request;

namespace sluice::authn {

struct JwksSource {
  std::string key;  // remoteJwksKey(uri, cluster)
  std::string uri;
  std::string cluster;
  absl::Duration refresh = absl::Minutes(10);
  absl::Duration timeout = absl::Seconds(5);
};

// Where a cluster's document is fetched from.
struct JwksTarget {
  std::string address;  // "127.0.0.1:8080" or "[::1]:8080"
  std::string host;     // the endpoint's DNS name, if it was resolved from one
  std::shared_ptr<const tls::ClientContext> tls;  // the cluster's, if it has tls
};

class JwksFetcher {
 public:
  // An endpoint of `cluster` to fetch from.
  using Resolve = std::function<std::optional<JwksTarget>(const std::string& cluster)>;
  using Publish =
      std::function<void(const std::string& key, std::shared_ptr<const jwt_authn::KeySet> keys)>;

  JwksFetcher(event_base* base, Resolve resolve, Publish publish, stats::Store* store,
              stats::Cells* cells);
  ~JwksFetcher();
  JwksFetcher(const JwksFetcher&) = delete;
  JwksFetcher& operator=(const JwksFetcher&) = delete;

  // The sources the live config names: new ones are fetched now, gone ones stop.
  void update(const std::vector<JwksSource>& sources);

  // Sources by key, for tests and logs.
  size_t size() const { return sources_.size(); }

 private:
  struct Source;
  void start(Source* source);
  void finish(Source* source, std::optional<std::string> body, const std::string& error);
  static void onTimer(evutil_socket_t, short, void* arg);
  static void onResponse(evhttp_request* req, void* arg);

  event_base* base_;
  Resolve resolve_;
  Publish publish_;
  stats::Cells* cells_;
  stats::CounterId fetched_, failed_;
  std::map<std::string, std::unique_ptr<Source>> sources_;
};

}  // namespace sluice::authn
