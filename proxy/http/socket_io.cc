#include "proxy/http/socket_io.h"

#include <event2/buffer.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

namespace sluice::http {

ssize_t readInto(evbuffer* buf, int fd) {
  char data[kReadChunk];
  ssize_t got = recv(fd, data, sizeof(data), 0);
  if (got > 0 && evbuffer_add(buf, data, static_cast<size_t>(got)) != 0) {
    errno = ENOMEM;
    return -1;
  }
  return got;
}

ssize_t writeFrom(evbuffer* buf, int fd) {
  constexpr int kMaxSegments = 64;
  evbuffer_iovec vec[kMaxSegments];
  int n = evbuffer_peek(buf, -1, nullptr, vec, kMaxSegments);
  if (n <= 0) return 0;
  if (n > kMaxSegments) n = kMaxSegments;
  iovec iov[kMaxSegments];
  for (int i = 0; i < n; ++i) {
    iov[i].iov_base = vec[i].iov_base;
    iov[i].iov_len = vec[i].iov_len;
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n);
  ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent > 0) evbuffer_drain(buf, static_cast<size_t>(sent));
  return sent;
}

}  // namespace sluice::http
