#pragma once

// The TLS metrics of listeners and clusters, declared here only (names after Envoy's ssl.*
// statistics, with the sluice_ prefix).
#include <array>
#include <string>

#include "proxy/stats/store.h"
#include "proxy/tls/context.h"

namespace sluice::tls {

// One TLS listener's. Workers count handshakes; the main thread counts reloads.
struct ServerStats {
  stats::CounterId handshake;                                            // handshakes finished
  std::array<stats::CounterId, kHandshakeFailureCount> handshake_error;  // by HandshakeFailure
  stats::CounterId session_reused;  // ... that resumed a session (ticket or cache)
  stats::CounterId no_certificate;  // ... without a client certificate where one was asked for
  stats::CounterId reload;          // contexts rebuilt because a certificate file changed
  stats::CounterId reload_error;    // changed files that could not be used (the old stay)
};
ServerStats declareServerStats(stats::Store* store, const std::string& listener);

// One TLS cluster's.
struct ClientStats {
  stats::CounterId handshake;
  // By HandshakeFailure; kAlpn and kNoCertificate do not happen upstream (invalid ids).
  std::array<stats::CounterId, kHandshakeFailureCount> handshake_error;
  stats::CounterId session_reused;
  stats::CounterId reload;
  stats::CounterId reload_error;
};
ClientStats declareClientStats(stats::Store* store, const std::string& cluster);

}  // namespace sluice::tls
