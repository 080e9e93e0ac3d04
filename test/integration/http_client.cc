#include "test/integration/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/memory/memory.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace sluice::testing {

std::string HttpResponse::header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

int HttpResponse::headerCount(absl::string_view name) const {
  return std::count_if(headers.begin(), headers.end(),
                       [name](const auto& h) { return absl::EqualsIgnoreCase(h.first, name); });
}

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::connect(int port,
                                                                        absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port, ": ", strerror(err)));
  }
  return absl::WrapUnique(new HttpConnection(fd));
}

HttpConnection::~HttpConnection() { close(fd_); }

absl::Status HttpConnection::send(absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    bytes.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status HttpConnection::fill(bool eof_ok) {
  if (eof_) {
    return eof_ok ? absl::OkStatus() : absl::UnavailableError("connection closed by the peer");
  }
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  char buf[64 * 1024];
  ssize_t n;
  do {
    n = recv(fd_, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    buffer_.append(buf, n);
    return absl::OkStatus();
  }
  if (n == 0) {
    eof_ = true;
    return eof_ok ? absl::OkStatus() : absl::UnavailableError("connection closed by the peer");
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::DeadlineExceededError("read timed out");
  return absl::UnavailableError(absl::StrCat("recv: ", strerror(errno)));
}

absl::StatusOr<std::string> HttpConnection::readLine() {
  size_t end;
  while ((end = buffer_.find('\n', pos_)) == std::string::npos) {
    if (absl::Status s = fill(); !s.ok()) return s;
  }
  if (end == pos_ || buffer_[end - 1] != '\r') {
    return absl::DataLossError("line ends in a bare LF instead of CRLF");
  }
  std::string line = buffer_.substr(pos_, end - 1 - pos_);
  pos_ = end + 1;
  return line;
}

absl::StatusOr<std::string> HttpConnection::readBytes(size_t n) {
  while (buffer_.size() - pos_ < n) {
    if (absl::Status s = fill(); !s.ok()) return s;
  }
  std::string bytes = buffer_.substr(pos_, n);
  pos_ += n;
  return bytes;
}

absl::Status HttpConnection::readChunked(HttpResponse* response) {
  for (;;) {
    absl::StatusOr<std::string> line = readLine();
    if (!line.ok()) return line.status();
    absl::string_view size_text = *line;
    size_text = size_text.substr(0, size_text.find(';'));
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_text), &size)) {
      return absl::DataLossError(absl::StrCat("bad chunk size line '", *line, "'"));
    }
    if (size == 0) break;
    absl::StatusOr<std::string> data = readBytes(size);
    if (!data.ok()) return data.status();
    response->body += *data;
    ++response->chunks;
    absl::StatusOr<std::string> crlf = readLine();
    if (!crlf.ok()) return crlf.status();
    if (!crlf->empty()) return absl::DataLossError("chunk data longer than its size");
  }
  for (;;) {  // trailer section
    absl::StatusOr<std::string> line = readLine();
    if (!line.ok()) return line.status();
    if (line->empty()) return absl::OkStatus();
  }
}

absl::StatusOr<HttpResponse> HttpConnection::read(bool head) {
  HttpResponse response;
  absl::StatusOr<std::string> status_line = readLine();
  if (!status_line.ok()) return status_line.status();
  std::vector<std::string> parts = absl::StrSplit(*status_line, absl::MaxSplits(' ', 2));
  if (parts.size() < 2 || !absl::StartsWith(parts[0], "HTTP/1.") ||
      !absl::SimpleAtoi(parts[1], &response.status)) {
    return absl::DataLossError(absl::StrCat("bad status line '", *status_line, "'"));
  }
  response.version = parts[0];
  if (parts.size() == 3) response.reason = parts[2];
  for (;;) {
    absl::StatusOr<std::string> line = readLine();
    if (!line.ok()) return line.status();
    if (line->empty()) break;
    size_t colon = line->find(':');
    if (colon == std::string::npos || colon == 0) {
      return absl::DataLossError(absl::StrCat("bad header line '", *line, "'"));
    }
    response.headers.emplace_back(
        line->substr(0, colon),
        std::string(absl::StripAsciiWhitespace(absl::string_view(*line).substr(colon + 1))));
  }

  int status = response.status;
  if (head || status / 100 == 1 || status == 204 || status == 304) return response;
  if (absl::EndsWithIgnoreCase(response.header("transfer-encoding"), "chunked")) {
    if (absl::Status s = readChunked(&response); !s.ok()) return s;
    return response;
  }
  if (response.headerCount("content-length") > 0) {
    uint64_t length = 0;
    if (!absl::SimpleAtoi(response.header("content-length"), &length)) {
      return absl::DataLossError("bad Content-Length");
    }
    absl::StatusOr<std::string> body = readBytes(length);
    if (!body.ok()) return body.status();
    response.body = std::move(*body);
    return response;
  }
  while (!eof_) {  // delimited by the close
    if (absl::Status s = fill(/*eof_ok=*/true); !s.ok()) return s;
  }
  response.body = buffer_.substr(pos_);
  pos_ = buffer_.size();
  return response;
}

absl::StatusOr<HttpResponse> HttpConnection::roundTrip(absl::string_view request, bool head) {
  if (absl::Status s = send(request); !s.ok()) return s;
  return read(head);
}

bool HttpConnection::readable(absl::Duration wait) {
  if (pos_ < buffer_.size() || eof_) return true;
  pollfd p{fd_, POLLIN, 0};
  return poll(&p, 1, absl::ToInt64Milliseconds(wait)) > 0;
}

bool HttpConnection::closedByPeer(absl::Duration wait) {
  if (pos_ < buffer_.size()) return false;
  if (eof_) return true;
  if (!readable(wait)) return false;
  char byte;
  ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  // A peer that closes with our bytes unread resets the connection: closed all the same.
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

std::string chunkedBody(absl::string_view body, size_t piece) {
  std::string out;
  for (size_t i = 0; i < body.size(); i += piece) {
    absl::string_view chunk = body.substr(i, piece);
    absl::StrAppendFormat(&out, "%x\r\n", chunk.size());
    absl::StrAppend(&out, chunk, "\r\n");
  }
  out += "0\r\n\r\n";
  return out;
}

bool readRequestHead(int fd, std::string* buf, std::string* head) {
  size_t end;
  while ((end = buf->find("\r\n\r\n")) == std::string::npos) {
    char data[16384];
    ssize_t n = recv(fd, data, sizeof data, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf->append(data, n);
  }
  *head = buf->substr(0, end + 4);
  buf->erase(0, end + 4);
  return true;
}

bool sendAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(n);
  }
  return true;
}

}  // namespace sluice::testing
