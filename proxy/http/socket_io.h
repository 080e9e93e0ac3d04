#pragma once

// Socket reads and writes for evbuffers with one system call each, for both sides of a proxied
// request. recv/sendmsg rather than read/writev: the socket calls skip the file layer (the
// kernel's fdget_pos and vfs paths), and MSG_NOSIGNAL spares a SIGPIPE on a reset peer.
#include <sys/types.h>

struct evbuffer;

namespace sluice::http {

// The most one readInto() takes from the socket.
constexpr size_t kReadChunk = 32 * 1024;

// Reads what the socket has, up to kReadChunk, into `buf`: one recv(2). (evbuffer_read first
// asks the kernel how much there is with an ioctl: a second syscall per read. Reading straight
// into evbuffer_reserve_space() memory stalled large chunked responses in our tests, which we
// did not get to the bottom of; one copy from the stack is simple and safe.) Returns the bytes
// read, 0 at EOF, or -1 with errno set.
ssize_t readInto(evbuffer* buf, int fd);

// Sends as much of `buf` as the socket takes in one sendmsg(2) over up to 64 of its segments and
// drains what was sent. Returns the bytes sent, or -1 with errno set (EAGAIN: the socket is full).
ssize_t writeFrom(evbuffer* buf, int fd);

}  // namespace sluice::http
