#pragma once

// TLS contexts compiled from config on the main thread and shared read-only by every worker: an
// SSL_CTX is thread safe for creating connections, for its session cache and for its session
// ticket keys, so resumption works across workers. Only the OpenSSL API that BoringSSL also
// provides is used (DESIGN.md, "TLS").
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "sluice/config/v1/tls.pb.h"

namespace sluice::tls {

class Connection;

// What the peer's certificate said, read once per connection after the handshake. The auth
// filter chain reads the client's through the downstream connection.
struct PeerInfo {
  bool presented = false;  // the peer sent a certificate
  bool verified = false;   // ... and it verified (chain and subjectAltNames)
  std::string subject;     // RFC 2253, e.g. "CN=client,O=Example"
  // DNS names, URIs and email addresses from subjectAltName, in certificate order, as written
  // (no "DNS:" prefix).
  std::vector<std::string> sans;
};

// Why a handshake failed (a metric label: handshakeFailureName).
enum class HandshakeFailure : uint8_t {
  kProtocol,       // no version or cipher in common, a malformed message, the peer's fatal alert
  kAlpn,           // no application protocol in common
  kNoCertificate,  // a client certificate is required and none was sent
  kVerify,         // the peer's certificate chain did not verify
  kVerifySan,      // ... or it names none of the accepted names
  kClosed,         // the peer closed or reset the connection
  kTimeout,        // not finished in time (the owner's timer)
};
inline constexpr int kHandshakeFailureCount = 7;
const char* handshakeFailureName(HandshakeFailure failure);

// Reads the peer's certificate of a finished handshake.
PeerInfo peerInfo(SSL* ssl);

// Compiled from one listener's DownstreamTls: one SSL_CTX per certificate, chosen by SNI.
class ServerContext : public std::enable_shared_from_this<ServerContext> {
 public:
  // Compiles `config`, reading its files. `name` starts every error ("listener 'https'"); key
  // bytes never appear in one. When `previous` was compiled from the same config and the same
  // bytes it is returned as it is, so that its session tickets and cache stay valid.
  static absl::StatusOr<std::shared_ptr<const ServerContext>> create(
      const config::v1::DownstreamTls& config, std::string name,
      std::shared_ptr<const ServerContext> previous = nullptr);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // A server connection over accepted socket `fd` (still owned by the caller); it keeps this
  // context alive.
  std::unique_ptr<Connection> accept(int fd) const;

  // The index of the certificate served for SNI `server_name` ("" when the client sent none):
  // an exact name first, then a "*.example.com" wildcard for one more label, else the first.
  size_t certificateFor(std::string_view server_name) const;
  size_t certificateCount() const { return contexts_.size(); }
  // Whether clients are asked for a certificate (OPTIONAL or REQUIRE).
  bool asksClientCertificate() const { return asks_client_certificate_; }

  const config::v1::DownstreamTls& config() const { return config_; }
  const std::string& name() const { return name_; }
  // Whether any of its DataSources names a file (what reloading watches).
  bool readsFiles() const { return reads_files_; }

 private:
  ServerContext() = default;
  static int onServerName(SSL* ssl, int* alert, void* arg);
  static int onAlpn(SSL* ssl, const unsigned char** out, unsigned char* out_len,
                    const unsigned char* in, unsigned int in_len, void* arg);

  config::v1::DownstreamTls config_;
  std::string name_;
  bool reads_files_ = false;
  bool asks_client_certificate_ = false;
  std::string fingerprint_;          // SHA-256 of the config and every byte read
  std::vector<SSL_CTX*> contexts_;   // one per certificate; the first is the default
  std::vector<std::string> accept_;  // client certificates' subjectAltNames accepted (any: empty)
  absl::flat_hash_map<std::string, size_t> exact_names_;
  absl::flat_hash_map<std::string, size_t> wildcard_names_;  // "example.com" for *.example.com
  std::string alpn_;                                         // wire format: length-prefixed
};

// Compiled from one cluster's UpstreamTls: certificates always verified against its trusted CA.
class ClientContext : public std::enable_shared_from_this<ClientContext> {
 public:
  // As ServerContext::create ("cluster 'users'").
  static absl::StatusOr<std::shared_ptr<const ClientContext>> create(
      const config::v1::UpstreamTls& config, std::string name,
      std::shared_ptr<const ClientContext> previous = nullptr);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A client connection over connected socket `fd` (still owned by the caller). The name sent
  // in SNI and verified against the certificate: the configured sni, else `host` (the
  // endpoint's DNS name, may be empty), else none (the chain is still verified). `session`, if
  // not null, is offered for resumption (not taken).
  std::unique_ptr<Connection> connect(int fd, std::string_view host, SSL_SESSION* session) const;
  // A client SSL set up as connect() does (SNI and the names verified) without a socket, for
  // another TLS driver (libevent's bufferevent_openssl); the caller owns it. Null on failure.
  SSL* newSsl(std::string_view host) const;

  // Unique among the contexts of this process: a session resumes only with the context that
  // made it (another may trust other CAs).
  uint64_t id() const { return id_; }
  const config::v1::UpstreamTls& config() const { return config_; }
  const std::string& name() const { return name_; }
  bool readsFiles() const { return reads_files_; }

 private:
  ClientContext() = default;
  static int onNewSession(SSL* ssl, SSL_SESSION* session);

  config::v1::UpstreamTls config_;
  std::string name_;
  bool reads_files_ = false;
  std::string fingerprint_;
  uint64_t id_ = 0;
  SSL_CTX* ctx_ = nullptr;
  std::vector<std::string> accept_;  // match_subject_alt_names
};

}  // namespace sluice::tls
