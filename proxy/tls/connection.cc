#include "proxy/tls/connection.h"

#include <errno.h>
#include <event2/buffer.h>
#include <openssl/err.h>

#include <algorithm>
#include <utility>

#include "proxy/http/socket_io.h"

namespace sluice::tls {
namespace {

// The largest TLS record's plaintext.
constexpr size_t kRecord = 16 * 1024;

}  // namespace

Connection::Connection(SSL* ssl, std::shared_ptr<const void> context)
    : ssl_(ssl), context_(std::move(context)) {}

Connection::~Connection() {
  // OpenSSL takes a connection freed before close_notify for a broken one and makes its session
  // unresumable; most are simply closed (idle, pooled, the peer went away). A fatal alert has
  // already done that to the sessions that deserve it.
  SSL_set_shutdown(ssl_, SSL_get_shutdown(ssl_) | SSL_SENT_SHUTDOWN);
  SSL_free(ssl_);
  if (session_ != nullptr) SSL_SESSION_free(session_);
}

Connection::Step Connection::handshake() {
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    if (SSL_is_server(ssl_)) peer_ = peerInfo(ssl_);
    return Step::kDone;
  }
  const int error = SSL_get_error(ssl_, r);
  if (error == SSL_ERROR_WANT_READ) return Step::kWantRead;
  if (error == SSL_ERROR_WANT_WRITE) return Step::kWantWrite;
  failure_ = classifyHandshakeFailure(ssl_, error);
  // The queue is per thread: left over, it would make the next connection's SSL_get_error lie.
  ERR_clear_error();
  return Step::kFailed;
}

bool Connection::sessionReused() const { return SSL_session_reused(ssl_) == 1; }

ssize_t Connection::readFailed(int ret) {
  const int error = SSL_get_error(ssl_, ret);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      read_wants_write_ = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      peer_closed_ = true;
      return 0;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (errno == 0 || ret == 0) {
        peer_closed_ = true;  // the socket's EOF without close_notify
        return 0;
      }
      return -1;
    default:
      ERR_clear_error();
      errno = EPROTO;
      return -1;
  }
}

ssize_t Connection::writeFailed(int ret) {
  const int error = SSL_get_error(ssl_, ret);
  switch (error) {
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_READ:
      write_wants_read_ = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (errno == 0) errno = EPIPE;
      return -1;
    default:
      ERR_clear_error();
      errno = error == SSL_ERROR_ZERO_RETURN ? EPIPE : EPROTO;
      return -1;
  }
}

ssize_t Connection::readInto(evbuffer* buf) {
  if (pending_errno_ != 0) {
    errno = std::exchange(pending_errno_, 0);
    return -1;
  }
  if (peer_closed_) return 0;
  read_wants_write_ = false;
  char data[kRecord];
  size_t total = 0;
  for (;;) {
    errno = 0;
    const int n = SSL_read(ssl_, data, sizeof(data));
    if (n > 0) {
      if (evbuffer_add(buf, data, static_cast<size_t>(n)) != 0) {
        errno = ENOMEM;
        return -1;
      }
      total += static_cast<size_t>(n);
      // SSL_read returns one record at a time. Stop after a socket read's worth, but never
      // with decrypted bytes left inside: the socket would not wake us for them. (With
      // read-ahead off, OpenSSL's default, nothing beyond the current record is buffered.)
      if (total >= http::kReadChunk && SSL_pending(ssl_) == 0) break;
      continue;
    }
    const ssize_t r = readFailed(n);
    if (total == 0) return r;
    if (r < 0 && errno != EAGAIN) pending_errno_ = errno;
    break;
  }
  return static_cast<ssize_t>(total);
}

ssize_t Connection::writeFrom(evbuffer* buf) {
  write_wants_read_ = false;
  const size_t n = std::min(evbuffer_get_length(buf), kRecord);
  if (n == 0) return 0;
  evbuffer_iovec first;
  const void* data = nullptr;
  char copy[kRecord];
  if (evbuffer_peek(buf, static_cast<ev_ssize_t>(n), nullptr, &first, 1) >= 1 &&
      first.iov_len >= n) {
    data = first.iov_base;
  } else {
    // A record from several small segments: one copy, so that one record (and one system call)
    // carries them all. A retry copies the same bytes again (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
    evbuffer_copyout(buf, copy, n);
    data = copy;
  }
  errno = 0;
  const int sent = SSL_write(ssl_, data, static_cast<int>(n));
  if (sent <= 0) return writeFailed(sent);
  evbuffer_drain(buf, static_cast<size_t>(sent));
  return sent;
}

ssize_t Connection::read(char* data, size_t size) {
  if (peer_closed_) return 0;
  read_wants_write_ = false;
  errno = 0;
  const int n = SSL_read(ssl_, data, static_cast<int>(std::min(size, kRecord)));
  return n > 0 ? n : readFailed(n);
}

ssize_t Connection::write(const char* data, size_t size) {
  write_wants_read_ = false;
  errno = 0;
  const int n = SSL_write(ssl_, data, static_cast<int>(std::min(size, kRecord)));
  return n > 0 ? n : writeFailed(n);
}

void Connection::shutdown() {
  // Once, and only after a handshake: a second call would wait for the peer's close_notify.
  if ((SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) != 0 || !SSL_is_init_finished(ssl_)) return;
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

SSL_SESSION* Connection::takeSession() { return std::exchange(session_, nullptr); }

}  // namespace sluice::tls
