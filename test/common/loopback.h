#pragma once

// Sockets on 127.0.0.1 for tests that play a server.
#include <cstdint>

namespace sluice::testing {

// A listening TCP socket on 127.0.0.1 with a free port (in *port); -1 on failure. `flags` are
// added to the socket type (e.g. SOCK_NONBLOCK); the socket is always close-on-exec.
int listenLoopback(int backlog, int* port, int flags = 0);

// A port on 127.0.0.1 that nothing listens on: bound once, then closed.
uint16_t closedLoopbackPort();

}  // namespace sluice::testing
