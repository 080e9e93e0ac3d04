#pragma once

// The access phase of a request (DESIGN.md "A request's way", phase 4): IP lists, then
// authentication, then authorization. Each step is a filter: an immutable object compiled once
// per route with its config (shared read-only by every worker) and a method that looks at one
// request. What a request's filters learn and decide lives in its AccessContext, owned by the
// downstream connection and reset per request, so filters keep no per-request state of their
// own. A filter continues, answers the request itself (401, 403, 413 ...), or asks for the
// request body first (a signature over the body): the connection manager then buffers the body
// and runs the chain again from that filter.
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "proxy/filters/ip_filter/cidr.h"
#include "proxy/http/codec.h"
#include "proxy/stats/store.h"

struct evbuffer;

namespace sluice::authn {
struct Consumer;
class Consumers;
class JwksCache;
}  // namespace sluice::authn
namespace sluice::jwt_authn {
class Claims;
}

namespace sluice::http {

// Headers the access filters set on the request sent upstream (the consumer's name, claims).
// Values point into objects that outlive the request (the generation's consumers, the
// connection's cached claims, the context's scratch).
struct AddedHeaders {
  static constexpr int kMax = 16;
  std::array<std::pair<std::string_view, std::string_view>, kMax> items;
  int count = 0;

  void add(std::string_view name, std::string_view value) {
    if (count < kMax) items[count++] = {name, value};
  }
};

struct AccessContext {
  // The request, as the codec parsed it (valid while the chain runs).
  const RequestHead* head = nullptr;
  absl::Time now;
  // The client: the peer, or the address `xff_num_trusted_hops` from the right of
  // x-forwarded-for.
  ip_filter::IpAddress client;
  // The client certificate (mTLS), when one was presented and verified: its subject (RFC 2253)
  // and subjectAltNames, which authorization rules match. Owned by the connection.
  bool cert_verified = false;
  std::string_view cert_subject;
  const std::vector<std::string>* cert_sans = nullptr;
  // The worker's metric cells.
  stats::Cells* cells = nullptr;
  // What the generation the request runs on knows: consumers and fetched key sets.
  const authn::Consumers* consumers = nullptr;
  const authn::JwksCache* jwks = nullptr;

  // Set by authentication.
  const authn::Consumer* consumer = nullptr;
  std::shared_ptr<const jwt_authn::Claims> claims;  // a verified JWT's
  bool authenticated = false;

  // Set when the chain runs again after waiting for the body: the buffer holding the head
  // and the whole body right after it.
  evbuffer* body = nullptr;
  size_t body_offset = 0;
  size_t body_length = 0;

  AddedHeaders added;
  // Header names of the request not to forward (credentials, headers the filters set).
  const std::vector<std::string>* strip = nullptr;
  // Room for values the filters compose (joined claim arrays); reused across requests.
  std::string scratch;

  void reset() {
    head = nullptr;
    cert_verified = false;
    cert_subject = {};
    cert_sans = nullptr;
    consumer = nullptr;
    claims.reset();
    authenticated = false;
    body = nullptr;
    body_offset = body_length = 0;
    added.count = 0;
    strip = nullptr;
    scratch.clear();
  }
};

// A filter's own answer to the request.
struct LocalReply {
  int status = 403;
  std::string_view body;
  // Extra response header lines, each ending in "\r\n" (WWW-Authenticate challenges).
  std::string_view headers;
};

enum class FilterStatus {
  kContinue,
  kReply,     // answer with *reply and stop
  kNeedBody,  // run again from this filter once the whole body is buffered
};

class AccessFilter {
 public:
  virtual ~AccessFilter() = default;
  virtual FilterStatus onRequest(AccessContext& ctx, LocalReply* reply) const = 0;
  // The most body bytes kNeedBody may ask for (413 beyond).
  virtual uint64_t maxBody() const { return 0; }
};

// A route's access filters in phase order, with what they need of the connection manager.
struct FilterChain {
  std::vector<std::unique_ptr<const AccessFilter>> filters;
  // Request headers never forwarded on routes with this chain (lower case).
  std::vector<std::string> strip;
};

}  // namespace sluice::http
