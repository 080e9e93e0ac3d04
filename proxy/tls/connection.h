#pragma once

// Non-blocking TLS over a socket, for evbuffers, with the contract of proxy/http/socket_io.h:
// readInto() and writeFrom() return bytes moved, 0 at EOF (reads), or -1 with errno set (EAGAIN:
// try again when the socket is ready). Which readiness: a TLS read may have to write (the peer's
// key update answered into a full socket) and a write may have to read (a renegotiation);
// readWantsWrite() and writeWantsRead() tell, and the owner watches the socket accordingly.
#include <openssl/ssl.h>
#include <sys/types.h>

#include <memory>

#include "proxy/tls/context.h"

struct evbuffer;

namespace sluice::tls {

// Why the handshake of `ssl` failed, given SSL_get_error's `error` (context.cc knows the marks
// its callbacks leave).
HandshakeFailure classifyHandshakeFailure(SSL* ssl, int error);

class Connection {
 public:
  // Takes `ssl`, set up for its role; `context` is what its callbacks refer to, kept alive.
  Connection(SSL* ssl, std::shared_ptr<const void> context);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  enum class Step { kDone, kWantRead, kWantWrite, kFailed };
  // Advances the handshake. After kFailed, failure() says why.
  Step handshake();
  HandshakeFailure failure() const { return failure_; }
  bool sessionReused() const;
  SSL* ssl() const { return ssl_; }
  // The peer's certificate: filled when the handshake finishes.
  const PeerInfo& peer() const { return peer_; }

  // What the connection has, up to about http::kReadChunk, into `buf`. Leaves no decrypted
  // bytes inside the SSL object, so waiting for the socket's readability never strands data.
  ssize_t readInto(evbuffer* buf);
  // One TLS record of up to 16 KiB from the front of `buf` (one system call), drained once sent.
  ssize_t writeFrom(evbuffer* buf);
  // The same for plain memory (health checks).
  ssize_t read(char* data, size_t size);
  ssize_t write(const char* data, size_t size);

  bool readWantsWrite() const { return read_wants_write_; }
  bool writeWantsRead() const { return write_wants_read_; }
  // The peer ended its side (close_notify or the socket's EOF) after the bytes last returned.
  bool peerClosed() const { return peer_closed_; }

  // Sends close_notify, best effort, once (nothing before the handshake finished): the caller
  // then shuts the socket down or closes it.
  void shutdown();

  // Client side: the newest resumable session the server issued since the last call, owned by
  // the caller (SSL_SESSION_free), or nullptr.
  SSL_SESSION* takeSession();

 private:
  friend class ClientContext;
  // A read or write returned `ret`: EAGAIN, EOF (0) or an error, with errno set.
  ssize_t readFailed(int ret);
  ssize_t writeFailed(int ret);

  SSL* ssl_;
  std::shared_ptr<const void> context_;
  SSL_SESSION* session_ = nullptr;  // from ClientContext's new-session callback
  PeerInfo peer_;
  HandshakeFailure failure_ = HandshakeFailure::kProtocol;
  bool read_wants_write_ = false;
  bool write_wants_read_ = false;
  bool peer_closed_ = false;
  // An error that ended a read which had already returned bytes: the next read reports it.
  int pending_errno_ = 0;
};

}  // namespace sluice::tls
