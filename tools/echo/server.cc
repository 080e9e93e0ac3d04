#include "tools/echo/server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
// For the request's HTTP version, which 2.1 has no accessor for.
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice::echo {
namespace {

// Request bodies are buffered whole by evhttp before the handler runs.
constexpr ev_ssize_t kMaxRequestBody = 64 << 20;
// Streamed bodies go out in pieces of this size, the next one when the previous is written.
constexpr size_t kPieceBytes = 64 << 10;
constexpr int64_t kMaxDelayMs = 3600 * 1000;
constexpr int64_t kMaxBodySize = int64_t{1} << 40;

// Byte i of a generated body is 'a' + (i % 26); a piece starting at offset o is
// kPattern + (o % 26), so pieces are references into this one buffer, never copies.
const char* pattern() {
  static const std::string bytes = [] {
    std::string s(kPieceBytes + 26, '\0');
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
  }();
  return bytes.data();
}

const char* methodName(evhttp_cmd_type type) {
  switch (type) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_TRACE:
      return "TRACE";
    case EVHTTP_REQ_CONNECT:
      return "CONNECT";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
  }
  return "UNKNOWN";
}

std::string sha256Hex(evbuffer* buffer) {
  int n = evbuffer_peek(buffer, -1, nullptr, nullptr, 0);
  std::vector<evbuffer_iovec> chunks(std::max(n, 0));
  evbuffer_peek(buffer, -1, nullptr, chunks.data(), n);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (const evbuffer_iovec& c : chunks) EVP_DigestUpdate(ctx, c.iov_base, c.iov_len);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

// The echo body; the format is documented in server.h and README.md.
std::string echoBody(evhttp_request* req) {
  std::string out =
      absl::StrCat(methodName(evhttp_request_get_command(req)), " ", evhttp_request_get_uri(req),
                   " HTTP/", static_cast<int>(req->major), ".", static_cast<int>(req->minor), "\n");
  const evkeyvalq* headers = evhttp_request_get_input_headers(req);
  for (const evkeyval* h = headers->tqh_first; h != nullptr; h = h->next.tqe_next) {
    absl::StrAppend(&out, h->key, ": ", h->value, "\n");
  }
  evbuffer* body = evhttp_request_get_input_buffer(req);
  absl::StrAppend(&out, "\nbody-bytes: ", evbuffer_get_length(body),
                  "\nbody-sha256: ", sha256Hex(body), "\n");
  return out;
}

bool isToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && !absl::StrContains("!#$%&'*+-.^_`|~", c)) return false;
  }
  return true;
}

// What the request's x-echo-* headers ask for, over the defaults from the flags.
struct Controls {
  int status = 200;
  absl::Duration delay;
  std::optional<int64_t> body_size;
  bool chunked = true;
  bool close = false;
  std::vector<std::pair<std::string, std::string>> headers;
};

absl::Status badHeader(const char* name, const char* value, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": expected ", expected, ", got '", value, "'"));
}

absl::Status parseInt(const evkeyvalq* headers, const char* name, int64_t lo, int64_t hi,
                      std::optional<int64_t>* out) {
  const char* value = evhttp_find_header(headers, name);
  if (value == nullptr) return absl::OkStatus();
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < lo || v > hi) {
    return badHeader(name, value, absl::StrCat("an integer in ", lo, "..", hi));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status parseFlag(const evkeyvalq* headers, const char* name, bool* out) {
  const char* value = evhttp_find_header(headers, name);
  if (value == nullptr) return absl::OkStatus();
  if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0) return badHeader(name, value, "0 or 1");
  *out = value[0] == '1';
  return absl::OkStatus();
}

absl::StatusOr<Controls> parseControls(const evkeyvalq* headers, const Options& defaults) {
  Controls c;
  c.status = defaults.status;
  c.delay = defaults.delay;
  std::optional<int64_t> v;
  if (absl::Status s = parseInt(headers, "x-echo-status", 200, 599, &v); !s.ok()) return s;
  if (v) c.status = static_cast<int>(*v);
  v.reset();
  if (absl::Status s = parseInt(headers, "x-echo-delay-ms", 0, kMaxDelayMs, &v); !s.ok()) return s;
  if (v) c.delay = absl::Milliseconds(*v);
  if (absl::Status s = parseInt(headers, "x-echo-body-size", 0, kMaxBodySize, &c.body_size);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = parseFlag(headers, "x-echo-chunked", &c.chunked); !s.ok()) return s;
  if (absl::Status s = parseFlag(headers, "x-echo-close", &c.close); !s.ok()) return s;
  for (const evkeyval* h = headers->tqh_first; h != nullptr; h = h->next.tqe_next) {
    if (!absl::EqualsIgnoreCase(h->key, "x-echo-header")) continue;
    absl::string_view value = h->value;
    size_t eq = value.find('=');
    if (eq == absl::string_view::npos || !isToken(value.substr(0, eq))) {
      return badHeader("x-echo-header", h->value, "name=value");
    }
    c.headers.emplace_back(value.substr(0, eq), value.substr(eq + 1));
  }
  return c;
}

// HEAD, 1xx, 204 and 304 responses carry no body; evhttp would send one if given.
bool responseHasBody(evhttp_request* req, int status) {
  return evhttp_request_get_command(req) != EVHTTP_REQ_HEAD && status != 204 && status != 304 &&
         status >= 200;
}

void sendText(evhttp_request* req, int status, absl::string_view text,
              const char* content_type = "text/plain") {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
  evbuffer* buf = evbuffer_new();
  if (responseHasBody(req, status)) evbuffer_add(buf, text.data(), text.size());
  evhttp_send_reply(req, status, nullptr, buf);
  evbuffer_free(buf);
}

// "127.0.0.1:8081" or "[::1]:8081"; port 0 allowed (evutil_parse_sockaddr_port rejects it).
bool parseListen(const std::string& listen, sockaddr_storage* addr, socklen_t* len) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) return false;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* a = reinterpret_cast<sockaddr_in6*>(addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    *len = sizeof *a;
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr) == 1;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(addr);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  *len = sizeof *a;
  return inet_pton(AF_INET, host.c_str(), &a->sin_addr) == 1;
}

absl::StatusOr<int> openListener(const sockaddr* addr, socklen_t len, bool reuse_port) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Only with several loops: otherwise a second server on the same port must fail, not share.
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, addr, len) != 0 || listen(fd, 1024) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(strerror(err));
  }
  return fd;
}

std::string formatAddress(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return absl::StrCat("[", host, "]:", ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return absl::StrCat(host, ":", ntohs(a->sin_port));
}

}  // namespace

// One event loop with its own evhttp and listening socket. Everything but stop() runs on the
// loop's thread.
class Worker {
 public:
  Worker(const Options& options, std::string name, Stats* stats, SSL_CTX* ssl_ctx)
      : options_(options), name_(std::move(name)), stats_(stats), ssl_ctx_(ssl_ctx) {}
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Takes ownership of `listen_fd`.
  absl::Status init(int listen_fd);
  void run() { event_base_dispatch(base_); }
  // From any thread. An activated event rather than event_base_loopbreak, which would be lost
  // if it came before the loop started.
  void stop() { event_active(stop_, 0, 0); }

 private:
  // The response to a connection's current request, kept while it is delayed or streaming.
  struct Reply {
    ~Reply() {
      if (timer != nullptr) event_free(timer);
      if (piece != nullptr) evbuffer_free(piece);
    }
    evhttp_request* req = nullptr;
    int status = 200;
    bool has_body = true;
    std::string body;     // when not streaming
    bool stream = false;  // x-echo-body-size: generate `size` bytes
    bool chunked = true;  // otherwise Content-Length
    int64_t size = 0;
    int64_t sent = 0;
    event* timer = nullptr;  // x-echo-delay-ms
    evbuffer* piece = nullptr;
  };

  struct Connection {
    Worker* worker = nullptr;
    std::unique_ptr<Reply> reply;  // at most one: evhttp reads the next request after a reply
  };

  static bufferevent* onAccept(event_base* base, void* arg);
  static void onAdopt(evutil_socket_t, short, void* arg);
  static void onClose(evhttp_connection* evcon, void* arg);
  static void onRequest(evhttp_request* req, void* arg);
  static void onStop(evutil_socket_t, short, void* arg);
  static void onDelayDone(evutil_socket_t, short, void* arg);
  static void onPieceWritten(evhttp_connection*, void* arg);

  void handle(evhttp_request* req);
  void sendStats(evhttp_request* req);
  void respond(Connection* conn);
  void sendPiece(Connection* conn);

  const Options options_;
  const std::string name_;
  Stats* const stats_;
  SSL_CTX* const ssl_ctx_;  // null: plain HTTP
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* adopt_ = nullptr;
  event* stop_ = nullptr;
  // Bufferevents handed to evhttp for new connections since onAdopt last ran.
  std::vector<bufferevent*> accepted_;
  absl::flat_hash_map<evhttp_connection*, std::unique_ptr<Connection>> connections_;
};

Worker::~Worker() {
  // Frees every connection first, which runs onClose for each.
  if (http_ != nullptr) evhttp_free(http_);
  if (adopt_ != nullptr) event_free(adopt_);
  if (stop_ != nullptr) event_free(stop_);
  if (base_ != nullptr) event_base_free(base_);
}

absl::Status Worker::init(int listen_fd) {
  base_ = event_base_new();
  http_ = base_ != nullptr ? evhttp_new(base_) : nullptr;
  if (http_ == nullptr) {
    close(listen_fd);
    return absl::InternalError("cannot create the event loop");
  }
  adopt_ = event_new(base_, -1, 0, &Worker::onAdopt, this);
  stop_ = event_new(base_, -1, 0, &Worker::onStop, this);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                        EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_max_body_size(http_, kMaxRequestBody);
  evhttp_set_default_content_type(http_, "text/plain");
  evhttp_set_gencb(http_, &Worker::onRequest, this);
  evhttp_set_bevcb(http_, &Worker::onAccept, this);
  if (evhttp_accept_socket_with_handle(http_, listen_fd) == nullptr) {
    close(listen_fd);
    return absl::InternalError("cannot accept on the listening socket");
  }
  return absl::OkStatus();
}

// libevent 2.1 has no new-connection hook (evhttp_set_newreqcb is 2.2) and a connection's close
// callback can only be set on its evhttp_connection, which evhttp creates right after asking us
// for the bufferevent and makes the bufferevent's callback argument. onAdopt picks it up from
// there; activated now, it runs after this accept callback and before any I/O on the connection.
bufferevent* Worker::onAccept(event_base* base, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  bufferevent* bev = nullptr;
  if (self->ssl_ctx_ == nullptr) {
    bev = bufferevent_socket_new(base, -1, 0);
  } else {
    bev = bufferevent_openssl_socket_new(base, -1, SSL_new(self->ssl_ctx_),
                                         BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    // Clients that close without close_notify are common; evhttp sees an EOF either way.
    if (bev != nullptr) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  }
  if (bev != nullptr) {
    self->accepted_.push_back(bev);
    event_active(self->adopt_, 0, 0);
  }
  return bev;
}

void Worker::onAdopt(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  for (bufferevent* bev : self->accepted_) {
    void* cbarg = nullptr;
    bufferevent_getcb(bev, nullptr, nullptr, nullptr, &cbarg);
    if (cbarg == nullptr) continue;
    auto* evcon = static_cast<evhttp_connection*>(cbarg);
    auto conn = std::make_unique<Connection>();
    conn->worker = self;
    evhttp_connection_set_closecb(evcon, &Worker::onClose, conn.get());
    self->connections_[evcon] = std::move(conn);
    self->stats_->connections_accepted.fetch_add(1, std::memory_order_relaxed);
    self->stats_->connections_open.fetch_add(1, std::memory_order_relaxed);
  }
  self->accepted_.clear();
}

void Worker::onClose(evhttp_connection* evcon, void* arg) {
  auto* conn = static_cast<Connection*>(arg);
  Worker* self = conn->worker;
  if (conn->reply != nullptr) {
    // A request whose client went away mid-reply has been detached from the connection and is
    // ours to free; otherwise evhttp frees it with the connection.
    evhttp_request* req = conn->reply->req;
    bool detached = evhttp_request_get_connection(req) == nullptr;
    conn->reply.reset();
    if (detached) evhttp_request_free(req);
  }
  self->stats_->connections_open.fetch_sub(1, std::memory_order_relaxed);
  self->connections_.erase(evcon);
}

void Worker::onStop(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<Worker*>(arg)->base_);
}

void Worker::onRequest(evhttp_request* req, void* arg) { static_cast<Worker*>(arg)->handle(req); }

void Worker::handle(evhttp_request* req) {
  const char* path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  if (path != nullptr && strcmp(path, "/__stats") == 0) {
    sendStats(req);
    return;
  }
  stats_->requests.fetch_add(1, std::memory_order_relaxed);
  auto it = connections_.find(evhttp_request_get_connection(req));
  if (it == connections_.end()) {
    sendText(req, 500, "sluice-echo: request on a connection it did not see accepted\n");
    return;
  }
  Connection* conn = it->second.get();
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "x-echo-name", name_.c_str());
  if (!options_.tls_client_ca.empty()) {
    SSL* ssl = bufferevent_openssl_get_ssl(
        evhttp_connection_get_bufferevent(evhttp_request_get_connection(req)));
    X509* peer = ssl != nullptr ? SSL_get_peer_certificate(ssl) : nullptr;
    if (peer != nullptr) {
      char subject[512];
      X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof(subject));
      evhttp_add_header(out, "x-echo-client-subject", subject);
      X509_free(peer);
    }
  }
  absl::StatusOr<Controls> controls =
      parseControls(evhttp_request_get_input_headers(req), options_);
  if (!controls.ok()) {
    sendText(req, 400, absl::StrCat("sluice-echo: ", controls.status().message(), "\n"));
    return;
  }

  bool has_content_type = false;
  for (const auto& [name, value] : controls->headers) {
    has_content_type |= absl::EqualsIgnoreCase(name, "content-type");
    evhttp_add_header(out, name.c_str(), value.c_str());
  }
  if (!has_content_type) evhttp_add_header(out, "Content-Type", "text/plain");
  if (controls->close) evhttp_add_header(out, "Connection", "close");

  auto reply = std::make_unique<Reply>();
  reply->req = req;
  reply->status = controls->status;
  reply->has_body = responseHasBody(req, controls->status);
  if (controls->body_size) {
    reply->stream = true;
    reply->size = *controls->body_size;
    // HTTP/1.0 has no chunked encoding.
    reply->chunked = controls->chunked && req->minor >= 1;
  } else {
    reply->body = options_.body.empty() ? echoBody(req) : options_.body;
  }
  conn->reply = std::move(reply);
  if (controls->delay > absl::ZeroDuration()) {
    timeval tv = absl::ToTimeval(controls->delay);
    conn->reply->timer = evtimer_new(base_, &Worker::onDelayDone, conn);
    evtimer_add(conn->reply->timer, &tv);
    return;
  }
  respond(conn);
}

void Worker::sendStats(evhttp_request* req) {
  sendText(req, 200,
           absl::StrFormat(R"({"requests": %d, "connections_accepted": %d, "connections_open": %d})"
                           "\n",
                           stats_->requests.load(), stats_->connections_accepted.load(),
                           stats_->connections_open.load()),
           "application/json");
}

void Worker::onDelayDone(evutil_socket_t, short, void* arg) {
  auto* conn = static_cast<Connection*>(arg);
  event_free(conn->reply->timer);
  conn->reply->timer = nullptr;
  conn->worker->respond(conn);
}

// Sends conn->reply. Once evhttp has the last of it, conn may be freed under us (a closing
// connection), so nothing touches conn after that.
void Worker::respond(Connection* conn) {
  Reply* r = conn->reply.get();
  evhttp_request* req = r->req;
  if (!r->stream || !r->has_body) {
    std::unique_ptr<Reply> done = std::move(conn->reply);
    evbuffer* buf = evbuffer_new();
    if (r->has_body) evbuffer_add(buf, r->body.data(), r->body.size());
    evhttp_send_reply(req, r->status, nullptr, buf);
    evbuffer_free(buf);
    return;
  }
  if (!r->chunked) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length",
                      absl::StrCat(r->size).c_str());
  }
  r->piece = evbuffer_new();
  evhttp_send_reply_start(req, r->status, nullptr);
  sendPiece(conn);
}

void Worker::sendPiece(Connection* conn) {
  Reply* r = conn->reply.get();
  if (r->sent == r->size) {
    evhttp_request* req = r->req;
    conn->reply.reset();
    evhttp_send_reply_end(req);
    return;
  }
  size_t n = std::min<int64_t>(kPieceBytes, r->size - r->sent);
  evbuffer_add_reference(r->piece, pattern() + r->sent % 26, n, nullptr, nullptr);
  r->sent += n;
  evhttp_send_reply_chunk_with_cb(r->req, r->piece, &Worker::onPieceWritten, conn);
}

// evhttp calls this each time the connection's output buffer has drained.
void Worker::onPieceWritten(evhttp_connection*, void* arg) {
  auto* conn = static_cast<Connection*>(arg);
  if (conn->reply != nullptr && conn->reply->stream) conn->worker->sendPiece(conn);
}

// The HTTPS context of --tls-cert, --tls-key and --tls-client-ca.
absl::StatusOr<SSL_CTX*> makeSslContext(const Options& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("cannot create an SSL_CTX");
  auto fail = [ctx](const std::string& what) {
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return absl::InvalidArgumentError(what);
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, options.tls_cert.c_str()) != 1) {
    return fail(absl::StrCat("--tls-cert '", options.tls_cert, "': not a PEM certificate file"));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, options.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return fail(absl::StrCat("--tls-key '", options.tls_key, "': not the certificate's key"));
  }
  if (!options.tls_client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.tls_client_ca.c_str(), nullptr) != 1) {
      return fail(absl::StrCat("--tls-client-ca '", options.tls_client_ca, "': not a PEM file"));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    // Without one, OpenSSL fails every resumed handshake that verifies the client.
    static constexpr unsigned char kSessionContext[] = "sluice-echo";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  }
  return ctx;
}

absl::StatusOr<std::unique_ptr<Server>> Server::start(const Options& options) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });
  SSL_CTX* ssl_ctx = nullptr;
  if (!options.tls_cert.empty()) {
    absl::StatusOr<SSL_CTX*> ctx = makeSslContext(options);
    if (!ctx.ok()) return ctx.status();
    ssl_ctx = *ctx;
  }

  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!parseListen(options.listen, &addr, &len)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen '", options.listen, "': expected IP:PORT or [IPv6]:PORT"));
  }

  std::vector<int> fds;
  for (int i = 0; i < options.threads; ++i) {
    absl::StatusOr<int> fd =
        openListener(reinterpret_cast<sockaddr*>(&addr), len, options.threads > 1);
    if (!fd.ok()) {
      for (int f : fds) close(f);
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options.listen, ": ", fd.status().message()));
    }
    if (i == 0) {
      // With port 0 the other loops' sockets must bind the port the first one got.
      socklen_t bound_len = sizeof addr;
      getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &bound_len);
    }
    fds.push_back(*fd);
  }

  auto server = absl::WrapUnique(new Server());
  server->ssl_ctx_ = ssl_ctx;
  server->address_ = formatAddress(addr);
  std::string name = options.name.empty() ? server->address_ : options.name;
  for (size_t i = 0; i < fds.size(); ++i) {
    auto worker = std::make_unique<Worker>(options, name, &server->stats_, ssl_ctx);
    absl::Status status = worker->init(fds[i]);
    if (!status.ok()) {
      for (size_t j = i + 1; j < fds.size(); ++j) close(fds[j]);
      return status;
    }
    server->workers_.push_back(std::move(worker));
  }
  for (auto& worker : server->workers_) {
    server->threads_.emplace_back([w = worker.get()] { w->run(); });
  }
  return server;
}

Server::~Server() {
  stop();
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

void Server::stop() {
  for (auto& worker : workers_) worker->stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  workers_.clear();
}

}  // namespace sluice::echo
