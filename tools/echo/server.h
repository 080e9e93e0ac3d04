#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

typedef struct ssl_ctx_st SSL_CTX;

// sluice-echo: the demo and test upstream, an HTTP/1.1 server on libevent's evhttp.
//
// Every request except GET /__stats is answered, by default, with status 200,
// "Content-Type: text/plain", "x-echo-name: NAME" and a body that echoes the request:
//
//   METHOD REQUEST_TARGET HTTP/1.x        request target as received, query included
//   Name: value                           one line per request header, in order received
//   ...                                   (names keep their case; values as evhttp parsed them:
//                                          leading spaces and trailing whitespace removed)
//                                         an empty line
//   body-bytes: N                         length of the decoded request body
//   body-sha256: HEX                      its SHA-256, 64 lowercase hex digits
//
// Every line ends with "\n" (no "\r"). Request headers steer the response (see README.md):
// x-echo-status, x-echo-delay-ms, x-echo-body-size, x-echo-chunked, x-echo-close, x-echo-header.
// GET /__stats answers {"requests": N, "connections_accepted": N, "connections_open": N}.
// With a certificate it serves HTTPS instead (an upstream for TLS tests); with a client CA it
// requires client certificates and names the client's in x-echo-client-subject.
namespace sluice::echo {

struct Options {
  std::string listen;  // "127.0.0.1:8081" or "[::1]:8081"; port 0 picks a free port
  std::string name;    // x-echo-name; empty: the bound address
  int status = 200;
  std::string body;  // a fixed response body instead of the echo; empty: echo
  absl::Duration delay;
  int threads = 1;
  std::string tls_cert;       // PEM certificate chain file: serve HTTPS
  std::string tls_key;        // its PEM private key file
  std::string tls_client_ca;  // PEM CA file: require client certificates it signed
};

// Counters shared by every worker; /__stats reports them.
struct Stats {
  std::atomic<uint64_t> requests{0};  // answered by the echo handler (not /__stats)
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<int64_t> connections_open{0};
};

class Worker;

class Server {
 public:
  // Binds (one SO_REUSEPORT socket per thread when threads > 1) and starts the event loops.
  static absl::StatusOr<std::unique_ptr<Server>> start(const Options& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound address, "127.0.0.1:PORT" or "[::1]:PORT".
  const std::string& address() const { return address_; }
  // Stops every loop and joins the threads; open connections are closed. Idempotent.
  void stop();

 private:
  Server() = default;

  std::string address_;
  Stats stats_;
  SSL_CTX* ssl_ctx_ = nullptr;  // HTTPS; shared by the workers
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice::echo
