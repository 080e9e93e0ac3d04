#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sluice::testing {

// One parsed HTTP/1.1 response.
struct HttpResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;                                          // chunked framing removed
  int chunks = 0;  // data chunks, when the body came chunked

  // The first value of header `name` (case-insensitive), or "" when absent.
  std::string header(absl::string_view name) const;
  int headerCount(absl::string_view name) const;
};

// A blocking HTTP/1.1 client connection to 127.0.0.1 for tests where the bytes on the wire
// matter: it sends exactly the bytes it is given and parses responses strictly (CRLF line ends;
// Content-Length, chunked, or read-until-close bodies). Several requests may share it.
class HttpConnection {
 public:
  // Every read and write gives up after `timeout`.
  static absl::StatusOr<std::unique_ptr<HttpConnection>> connect(
      int port, absl::Duration timeout = absl::Seconds(10));
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  absl::Status send(absl::string_view bytes);
  // Reads the next response; `head` for the answer to a HEAD request, which has no body.
  absl::StatusOr<HttpResponse> read(bool head = false);
  absl::StatusOr<HttpResponse> roundTrip(absl::string_view request, bool head = false);
  // Whether response bytes (or the peer's close) arrive within `wait`.
  bool readable(absl::Duration wait = absl::ZeroDuration());
  // Whether the peer closes (or resets) the connection within `wait`, with no bytes before the
  // close.
  bool closedByPeer(absl::Duration wait);

 private:
  explicit HttpConnection(int fd) : fd_(fd) {}
  // Appends what the socket has to buffer_; false on timeout, error or (unless `eof_ok`) close.
  absl::Status fill(bool eof_ok = false);
  absl::StatusOr<std::string> readLine();
  absl::StatusOr<std::string> readBytes(size_t n);
  absl::Status readChunked(HttpResponse* response);

  int fd_;
  bool eof_ = false;
  std::string buffer_;  // received, not yet parsed, from offset pos_
  size_t pos_ = 0;
};

// For tests that play an upstream on a raw socket: reads one request head from `fd` into
// `*head`, keeping what follows it in `*buf`; false if the connection ended first.
bool readRequestHead(int fd, std::string* buf, std::string* head);
// Writes all of `bytes` to `fd` (blocking); false if the connection failed.
bool sendAll(int fd, absl::string_view bytes);

// `body` in chunked transfer coding, in pieces of `piece` bytes, with the last chunk.
std::string chunkedBody(absl::string_view body, size_t piece);

}  // namespace sluice::testing
