#include "test/common/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice::testing {
namespace {

// Binds a TCP socket to 127.0.0.1 port 0; its fd and port, or -1.
int bindLoopback(int flags, int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

int listenLoopback(int backlog, int* port, int flags) {
  int fd = bindLoopback(flags, port);
  if (fd >= 0 && listen(fd, backlog) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

uint16_t closedLoopbackPort() {
  int port = 0;
  int fd = bindLoopback(0, &port);
  if (fd >= 0) close(fd);
  return static_cast<uint16_t>(port);
}

}  // namespace sluice::testing
