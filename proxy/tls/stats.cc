#include "proxy/tls/stats.h"

namespace sluice::tls {

ServerStats declareServerStats(stats::Store* store, const std::string& listener) {
  ServerStats s;
  const stats::Labels labels = {{"listener", listener}};
  s.handshake = store->counter("sluice_listener_ssl_handshake_total",
                               "TLS handshakes finished on the listener.", labels);
  for (int i = 0; i < kHandshakeFailureCount; ++i) {
    s.handshake_error[i] = store->counter(
        "sluice_listener_ssl_handshake_error_total",
        "TLS handshakes that failed (the connection closed without an HTTP answer), by reason.",
        {{"listener", listener}, {"reason", handshakeFailureName(HandshakeFailure(i))}});
  }
  s.session_reused = store->counter("sluice_listener_ssl_session_reused_total",
                                    "TLS handshakes that resumed a session.", labels);
  s.no_certificate =
      store->counter("sluice_listener_ssl_no_certificate_total",
                     "TLS connections served without a client certificate where one was asked "
                     "for (client_certificate OPTIONAL).",
                     labels);
  s.reload = store->counter("sluice_listener_ssl_reload_total",
                            "Certificates reloaded because their files changed.", labels);
  s.reload_error = store->counter(
      "sluice_listener_ssl_reload_error_total",
      "Changed certificate files that could not be used; the previous ones stay.", labels);
  return s;
}

ClientStats declareClientStats(stats::Store* store, const std::string& cluster) {
  ClientStats s;
  const stats::Labels labels = {{"cluster", cluster}};
  s.handshake = store->counter("sluice_cluster_upstream_ssl_handshake_total",
                               "TLS handshakes finished with the cluster's endpoints.", labels);
  for (int i = 0; i < kHandshakeFailureCount; ++i) {
    const auto failure = HandshakeFailure(i);
    if (failure == HandshakeFailure::kAlpn || failure == HandshakeFailure::kNoCertificate) {
      continue;
    }
    s.handshake_error[i] =
        store->counter("sluice_cluster_upstream_ssl_handshake_error_total",
                       "TLS handshakes with the cluster's endpoints that failed, by reason.",
                       {{"cluster", cluster}, {"reason", handshakeFailureName(failure)}});
  }
  s.session_reused = store->counter("sluice_cluster_upstream_ssl_session_reused_total",
                                    "Upstream TLS handshakes that resumed a session.", labels);
  s.reload = store->counter("sluice_cluster_upstream_ssl_reload_total",
                            "Upstream TLS contexts reloaded because their files changed.", labels);
  s.reload_error = store->counter(
      "sluice_cluster_upstream_ssl_reload_error_total",
      "Changed upstream TLS files that could not be used; the previous ones stay.", labels);
  return s;
}

}  // namespace sluice::tls
