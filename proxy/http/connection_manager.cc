#include "proxy/http/connection_manager.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "common/log/log.h"
#include "proxy/http/chunked.h"
#include "proxy/http/socket_io.h"
#include "proxy/router/route_table.h"
#include "proxy/tls/connection.h"

namespace sluice::http {
namespace {

using Clock = std::chrono::steady_clock;

// How long a closing connection keeps reading (and discarding) what the client still sends, so
// that closing with unread bytes does not reset the connection before the client reads our
// answer (nginx's lingering close).
constexpr absl::Duration kLingerTimeout = absl::Seconds(2);
constexpr std::string_view kVia = "1.1 sluice";
// The window min_bytes_per_second is averaged over.
constexpr int64_t kMinRateWindowSeconds = 10;
constexpr std::string_view k100Continue = "HTTP/1.1 100 Continue\r\n\r\n";

void add(evbuffer* b, std::string_view s) { evbuffer_add(b, s.data(), s.size()); }

// The first non-empty run of bytes in `buf` (reserving space can leave empty chains in front).
std::string_view firstSegment(evbuffer* buf) {
  evbuffer_iovec vec[4];
  int n = evbuffer_peek(buf, -1, nullptr, vec, 4);
  for (int i = 0; i < n && i < 4; ++i) {
    if (vec[i].iov_len > 0) return {static_cast<const char*>(vec[i].iov_base), vec[i].iov_len};
  }
  return {};
}

// Serializes a message head into one run of bytes before it reaches the evbuffer: one
// evbuffer_add per head instead of one per piece.
class HeadWriter {
 public:
  explicit HeadWriter(evbuffer* to) : to_(to) {}
  HeadWriter(const HeadWriter&) = delete;
  HeadWriter& operator=(const HeadWriter&) = delete;
  ~HeadWriter() { flush(); }

  void append(std::string_view s) {
    if (s.size() > sizeof(buf_) - len_) {
      flush();
      if (s.size() > sizeof(buf_)) {
        evbuffer_add(to_, s.data(), s.size());
        return;
      }
    }
    std::memcpy(buf_ + len_, s.data(), s.size());
    len_ += s.size();
  }
  void flush() {
    if (len_ == 0) return;
    evbuffer_add(to_, buf_, len_);
    len_ = 0;
  }

 private:
  evbuffer* to_;
  size_t len_ = 0;
  char buf_[8192];
};

void add(HeadWriter& b, std::string_view s) { b.append(s); }

void addHeader(HeadWriter& b, std::string_view name, std::string_view value) {
  add(b, name);
  add(b, ": ");
  add(b, value);
  add(b, "\r\n");
}

void addNumber(HeadWriter& b, uint64_t n) {
  char buf[24];
  char* end = buf + sizeof(buf);
  char* p = end;
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  b.append(std::string_view(p, static_cast<size_t>(end - p)));
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

bool inList(std::string_view name, const std::vector<std::string>& lower_names) {
  for (const std::string& n : lower_names) {
    if (equalsIgnoreCase(name, n)) return true;
  }
  return false;
}

// Headers that describe one hop or the message framing: never copied, regenerated instead.
bool isHopByHop(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive",        "proxy-connection", "te",     "trailer",
      "upgrade",    "transfer-encoding", "content-length",   "expect", "proxy-authenticate",
  };
  for (std::string_view n : kNames) {
    if (equalsIgnoreCase(name, n)) return true;
  }
  return false;
}

template <class Head>
bool namedByConnection(const Head& head, std::string_view name) {
  for (size_t i = 0; i < head.connection_token_count; ++i) {
    if (equalsIgnoreCase(head.connection_tokens[i], name)) return true;
  }
  return false;
}

// Whether a header is replaced or removed by `ops` (removals, and additions that replace).
bool removedBy(const router::HeaderOps& ops, std::string_view name) {
  if (inList(name, ops.remove)) return true;
  for (const auto& a : ops.add) {
    if (!a.append && equalsIgnoreCase(name, a.name)) return true;
  }
  return false;
}

void addOps(HeadWriter& b, const router::HeaderOps& ops) {
  for (const auto& a : ops.add) addHeader(b, a.name, a.value);
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 418:
      return "I'm a teapot";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

class HeadHeaders : public router::HeaderSource {
 public:
  explicit HeadHeaders(const RequestHead& head) : head_(head) {}
  bool find(std::string_view name, std::string_view* value) const override {
    const Header* h = head_.find(name);
    if (h == nullptr) return false;
    *value = h->value;
    return true;
  }
  // A client may split its cookies over several Cookie headers.
  bool cookie(std::string_view name, std::string_view* value) const override {
    for (const Header& h : head_.headerList()) {
      if (equalsIgnoreCase(h.name, "cookie") && router::findCookie(h.value, name, value)) {
        return true;
      }
    }
    return false;
  }

 private:
  const RequestHead& head_;
};

// Copies the first `n` bytes of `from` to the end of `to`, leaving `from` as it is.
void copyPrefix(evbuffer* from, evbuffer* to, size_t n) {
  evbuffer_iovec vec[8];
  evbuffer_ptr pos;
  evbuffer_ptr_set(from, &pos, 0, EVBUFFER_PTR_SET);
  while (n > 0) {
    int count = evbuffer_peek(from, static_cast<ev_ssize_t>(n), &pos, vec, 8);
    if (count <= 0) return;
    for (int i = 0; i < count && i < 8 && n > 0; ++i) {
      size_t take = std::min(n, vec[i].iov_len);
      evbuffer_add(to, vec[i].iov_base, take);
      n -= take;
      evbuffer_ptr_set(from, &pos, take, EVBUFFER_PTR_ADD);
    }
  }
}

bool idempotent(Method m) {
  return m == Method::kGet || m == Method::kHead || m == Method::kOptions || m == Method::kTrace ||
         m == Method::kPut || m == Method::kDelete;
}

void formatPeer(const sockaddr_storage& peer, char* out, size_t cap) {
  out[0] = '\0';
  if (peer.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&peer)->sin_addr, out, cap);
  } else if (peer.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr, out, cap);
  }
}

}  // namespace

WorkerContext::WorkerContext(int index, event_base* base, stats::Cells* cells)
    : index(index),
      base(base),
      cells(cells),
      pool(base, cells),
      shadows(base, cells),
      request_head(std::make_unique<RequestHead>()),
      response_head(std::make_unique<ResponseHead>()) {
  std::random_device rd;
  rng_ = (uint64_t{rd()} << 32 | rd()) | 1;
}

WorkerContext::~WorkerContext() {
  if (reaper != nullptr) event_free(reaper);
}

uint64_t WorkerContext::random() {
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545F4914F6CDD1DULL;
}

// A TLS connection's own state, allocated only for TLS listeners.
struct DownstreamTls {
  std::unique_ptr<tls::Connection> conn;
  tls::ServerStats stats;  // copied: the listener's generation may go first
  bool asks_client_certificate = false;
  bool handshaking = true;
  // The events actually watched: what reading_ and writing_ ask for, turned around where a TLS
  // read waits for writability or a write for readability.
  bool read_armed = false;
  bool write_armed = false;
};

class DownstreamConnection : public upstream::UpstreamOwner {
 public:
  DownstreamConnection(WorkerContext* worker, int fd, const sockaddr_storage& peer,
                       std::shared_ptr<const server::Generation> generation,
                       const server::ListenerConfig* listener,
                       std::shared_ptr<ListenerCounter> counter);
  ~DownstreamConnection() override;

  void start();
  // The connection was counted against its client address (max_connections_per_ip): closing
  // it gives the place back.
  void countedAddress(const AddressKey& address) {
    address_ = address;
    address_counted_ = true;
  }
  // Drain: close now if between requests, else after the current response.
  void drain();
  bool closed() const { return phase_ == Phase::kClosed; }
  void closeNow();
  // Holds a write until the end of the loop pass (flushDeferred).
  enum Deferred : uint8_t { kDeferUpstream = 1, kDeferDownstream = 2 };
  void defer(Deferred what);
  void runDeferred();

  void onUpstreamConnected(upstream::UpstreamConn* conn) override;
  void onUpstreamConnectFailed(upstream::UpstreamConn* conn, bool timed_out) override;
  void onUpstreamReadable(upstream::UpstreamConn* conn) override;
  void onUpstreamWritable(upstream::UpstreamConn* conn) override;

  // The client's certificate on a TLS listener (after the handshake; nothing presented when the
  // listener asks for none); null on plain HTTP. For access control.
  const tls::PeerInfo* peerInfo() const { return tls_ != nullptr ? &tls_->conn->peer() : nullptr; }
  // Whether the client reached us over TLS: the request's scheme is https.
  bool secure() const { return tls_ != nullptr; }

 private:
  enum class Phase {
    kHead,       // waiting for (the rest of) a request head
    kStream,     // a request is in progress
    kClosing,    // flushing the last response, then lingering
    kLingering,  // output shut down; discarding input until EOF or timeout
    kClosed,
  };
  enum class Timer { kNone, kHeader, kIdle, kStream, kLinger };
  enum class BodyMode { kNone, kLength, kChunked, kClose };

  static void onSocket(evutil_socket_t fd, short what, void* arg);
  static void onTimer(evutil_socket_t fd, short what, void* arg);
  static void onRouteTimeout(evutil_socket_t fd, short what, void* arg);
  static void onTryTimeout(evutil_socket_t fd, short what, void* arg);
  // A fault-injection delay or a retry backoff ended.
  static void onWaitOver(evutil_socket_t fd, short what, void* arg);
  // request_body_idle: checks how long the client has left the body paused.
  static void onBodyTimer(evutil_socket_t fd, short what, void* arg);
  // min_bytes_per_second: the end of a window in which the proxy waited on the client.
  static void onRateTimer(evutil_socket_t fd, short what, void* arg);
  // No bytes moved on either side for the listener's idle timeout while a request was in
  // progress or its answer was being flushed.
  void onStreamTimer();

  void onReadable();
  void onWritable();
  // TLS: the handshake's next step, and the socket's events once it is done.
  void handshake();
  void onTlsSocket(short what);
  void syncTlsEvents();
  void process();
  void parseHead();
  // Answers a request at its head with `status` and closes, leaving its body unread.
  void refuseRequest(const RequestHead& head, int status, std::string_view body);
  // The chunked body grew past max_request_body_bytes.
  void bodyTooLarge();
  // Notes whether the proxy now waits for request body bytes from the client.
  void watchBody(bool waiting);
  // The proxy starts waiting on the client (body bytes or room for response bytes): starts a
  // min_bytes_per_second window unless one runs.
  void watchClientRate();
  void startRequest(RequestHead& head);
  // The listener-wide checks of the client address (behind trusted proxies); false: answered.
  bool checkClient(RequestHead& head);
  // Runs the route's access filters from filter `from`; false: the request was answered or waits
  // for its body.
  bool runAccess(RequestHead& head, const router::Route& route, size_t from);
  // The body a filter waits for has arrived: runs the rest of the chain, then the route.
  void resumeAccess();
  // After the access phase: the route's action.
  void dispatch(RequestHead& head, const router::Route& route);
  void forward(RequestHead& head, const router::Route& route, const upstream::Cluster& cluster);
  // Connects the first attempt (after any injected delay) and starts sending.
  void startUpstream();
  const upstream::Endpoint* pickEndpoint(const upstream::Cluster& cluster, uint32_t attempt);
  // The ring hash / Maglev key of the route's hash policy; false: the request has none.
  bool requestHash(const RequestHead& head, uint64_t* hash) const;
  // Sends the copies the route's mirror policies draw for this request.
  void startShadows(const router::Route& route);
  // Answers Expect: 100-continue once an attempt is under way (at most once per request).
  void sendContinue();
  // Tells outlier detection how the attempt on endpoint_ went.
  void outcome(upstream::Outcome outcome);
  // Why an attempt failed, for the retry policy.
  enum class Failure { kConnect, kReset, kPerTryTimeout, kStatus };
  // Starts a retry (after its backoff) if the route's policy, the request and the circuit
  // breakers allow one; false: answer with the failure.
  bool retryAfter(Failure failure, uint32_t status = 0);
  void retryNow();
  // No endpoint can take the request: the route's fallback answer, or 503. `overflow` names the
  // limit that refused it (x-sluice-overflow), if one did.
  void unavailable(std::string_view body, const char* overflow = nullptr);
  // Ends what a request holds beyond its connection: limits' counts, timers, the body copy.
  void settleRequest();
  void writeUpstreamHead(const RequestHead& head, const router::Route& route,
                         const upstream::Endpoint& endpoint, evbuffer* b);
  bool connectUpstream(bool fresh);
  void pumpRequestBody();
  void requestComplete();
  void processUpstream();
  bool writeResponseHead(const ResponseHead& head);
  void pumpResponseBody();
  void responseComplete();
  void upstreamFailed(const char* what);
  void releaseUpstream(bool reusable);

  // Answers from the proxy itself. `close` ends the connection after the answer.
  // `headers`: extra header lines, each ending in CRLF.
  void localReply(int status, std::string_view body, bool close,
                  const router::HeaderOps* ops = nullptr, std::string_view location = {},
                  const char* overflow = nullptr, std::string_view headers = {});
  // The listener's https_redirect: the same URL over https.
  void redirectToHttps(const RequestHead& head);
  void reject(const Error& err);
  // Whether the request body (if any) is already entirely buffered; if so it is dropped.
  bool discardBufferedBody();
  void countResponse(int status);
  void endStream(bool close);
  void beginClose();
  void flushDownstream();
  void updateReadInterest();
  void setTimer(Timer timer, absl::Duration d);
  void wantRead(bool on);
  void wantWrite(bool on);

  WorkerContext* worker_;
  int fd_;
  std::unique_ptr<DownstreamTls> tls_;  // TLS listeners only
  char peer_[INET6_ADDRSTRLEN] = {};
  ip_filter::IpAddress peer_ip_;
  std::shared_ptr<const server::Generation> accept_gen_;
  std::string listener_name_;
  std::shared_ptr<ListenerCounter> counter_;
  server::ListenerStats lstats_;
  Limits limits_;
  size_t window_;
  absl::Duration header_timeout_, idle_timeout_;
  // The listener's body and slow-client limits at accept (0: none).
  uint64_t max_body_;
  uint32_t min_rate_;
  absl::Duration body_idle_;
  bool address_counted_ = false;
  AddressKey address_{};

  Phase phase_ = Phase::kHead;
  Timer timer_kind_ = Timer::kNone;
  bool reading_ = false, writing_ = false;
  bool peer_closed_ = false;
  bool drain_ = false;
  uint8_t deferred_ = 0;  // Deferred bits; set while in worker_->deferred
  event sock_read_, sock_write_, timer_, route_timer_, try_timer_, wait_timer_;
  evbuffer* in_;
  evbuffer* out_;
  HeadScan scan_;
  bool head_bytes_seen_ = false;

  // The generation the last request looked up its listener and route table in (nullptr: look
  // again), and what it found.
  const server::Generation* seen_gen_ = nullptr;
  const server::ListenerConfig* listener_ = nullptr;
  const router::RouteTable* table_ = nullptr;
  bool listener_gone_ = false;

  // The request in progress. `gen_` is accept_gen_'s, which holds it for the request's life.
  const server::Generation* gen_ = nullptr;
  const router::Route* route_ = nullptr;
  const upstream::Cluster* cluster_ = nullptr;
  const upstream::Endpoint* endpoint_ = nullptr;
  Clock::time_point start_;
  Clock::time_point upstream_start_;
  Method method_ = Method::kGet;
  uint8_t version_minor_ = 1;
  bool keep_alive_ = true;
  BodyMode req_mode_ = BodyMode::kNone;
  uint64_t req_remaining_ = 0;
  ChunkedDecoder req_chunked_;
  bool req_done_ = false;
  upstream::UpstreamConn* up_ = nullptr;
  bool reused_ = false;
  bool retried_ = false;
  evbuffer* head_copy_;  // the upstream head of a bodyless request, kept for one retry
  bool retryable_ = false;
  bool expect_continue_ = false;
  // The access phase of the request in progress: what its filters found out, and, while the
  // chain waits for the request body, where it resumes and the bytes of head and body it needs.
  AccessContext access_;
  size_t filter_next_ = 0;
  bool awaiting_body_ = false;
  uint64_t body_needed_ = 0;
  // Traffic management of the request in progress (null: the route has none of it).
  const router::TrafficPolicy* traffic_ = nullptr;
  const router::RetryPolicy* retry_ = nullptr;
  uint32_t attempt_ = 0;  // policy retries made
  // body_copy_ holds the request body sent so far, for a retry (the policy allows one for this
  // request and the body fits its buffer).
  bool body_copied_ = false;
  evbuffer* body_copy_;
  uint32_t failed_pool_key_ = UINT32_MAX;  // the endpoint of the last failed attempt
  bool has_hash_ = false;
  uint64_t hash_ = 0;
  // Mirrored copies still taking the request body (Shadow's contract: finishBody or abort).
  std::vector<Shadow*> shadows_;
  bool route_slot_ = false;    // counted in the route's max_concurrent_requests
  bool cluster_slot_ = false;  // counted in the cluster's requests in flight
  bool retry_slot_ = false;    // counted in the cluster's retries in flight
  bool route_timer_armed_ = false;
  enum class Wait : uint8_t { kNone, kFault, kBackoff };
  Wait wait_ = Wait::kNone;
  absl::Duration stream_idle_;  // the stream timer's timeout for this request
  // Response side.
  HeadScan resp_scan_;
  bool response_started_ = false;  // a final response head was sent to the client
  int status_ = 0;
  BodyMode resp_mode_ = BodyMode::kNone;
  bool resp_rechunk_ = false;  // body until close, sent chunked to an HTTP/1.1 client
  bool resp_dechunk_ = false;  // chunked body sent close-delimited to an HTTP/1.0 client
  uint64_t resp_remaining_ = 0;
  ChunkedDecoder resp_chunked_;
  bool resp_keep_alive_ = true;
  bool close_after_ = false;
  bool upstream_eof_ = false;         // a close-delimited body's end was read
  bool resp_announced_body_ = false;  // a bodiless answer with body framing (see responseComplete)
  // Reads and writes that moved bytes, on either side; the stream timer checks it moved.
  uint64_t progress_ = 0;
  uint64_t progress_at_arm_ = 0;
  bool in_process_ = false;  // process() is on the stack: it serves pipelined requests itself
  // Decoded bytes of a chunked request body so far (a Content-Length is checked at the head).
  uint64_t req_body_bytes_ = 0;
  // The proxy waits for request body bytes from the client (not for room upstream) since
  // body_wait_since_, or the last body byte, whichever is later.
  bool waiting_body_ = false;
  Clock::time_point body_wait_since_;
  bool body_timer_armed_ = false;
  event body_timer_;
  // Bytes read from or written to the client; a min_bytes_per_second window started at
  // client_bytes_at_window_.
  uint64_t client_bytes_ = 0;
  uint64_t client_bytes_at_window_ = 0;
  bool rate_timer_armed_ = false;
  event rate_timer_;
};

DownstreamConnection::DownstreamConnection(WorkerContext* worker, int fd,
                                           const sockaddr_storage& peer,
                                           std::shared_ptr<const server::Generation> generation,
                                           const server::ListenerConfig* listener,
                                           std::shared_ptr<ListenerCounter> counter)
    : worker_(worker),
      fd_(fd),
      accept_gen_(std::move(generation)),
      listener_name_(listener->name),
      counter_(std::move(counter)),
      lstats_(listener->stats),
      limits_(listener->limits),
      window_(listener->buffer_limit),
      header_timeout_(listener->request_headers_timeout),
      idle_timeout_(listener->idle_timeout),
      max_body_(listener->max_request_body_bytes),
      min_rate_(listener->min_bytes_per_second),
      body_idle_(listener->request_body_idle_timeout),
      req_chunked_(listener->limits),
      resp_chunked_(listener->limits) {
  formatPeer(peer, peer_, sizeof(peer_));
  if (auto ip = ip_filter::IpAddress::fromSockaddr(peer)) peer_ip_ = *ip;
  if (listener->tls != nullptr) {
    tls_ = std::make_unique<DownstreamTls>();
    tls_->conn = listener->tls->accept(fd);
    tls_->stats = listener->tls_stats;
    tls_->asks_client_certificate = listener->tls->asksClientCertificate();
  }
  in_ = evbuffer_new();
  out_ = evbuffer_new();
  head_copy_ = evbuffer_new();
  body_copy_ = evbuffer_new();
  stream_idle_ = idle_timeout_;
  event_assign(&sock_read_, worker->base, fd, EV_READ | EV_PERSIST, &onSocket, this);
  event_assign(&sock_write_, worker->base, fd, EV_WRITE | EV_PERSIST, &onSocket, this);
  event_assign(&timer_, worker->base, -1, 0, &onTimer, this);
  event_assign(&route_timer_, worker->base, -1, 0, &onRouteTimeout, this);
  event_assign(&try_timer_, worker->base, -1, 0, &onTryTimeout, this);
  event_assign(&wait_timer_, worker->base, -1, 0, &onWaitOver, this);
  event_assign(&body_timer_, worker->base, -1, 0, &onBodyTimer, this);
  event_assign(&rate_timer_, worker->base, -1, 0, &onRateTimer, this);
  worker->cells->add(lstats_.cx_total);
  worker->cells->gaugeAdd(lstats_.cx_active, 1);
}

DownstreamConnection::~DownstreamConnection() {
  evbuffer_free(in_);
  evbuffer_free(out_);
  evbuffer_free(head_copy_);
  evbuffer_free(body_copy_);
}

void DownstreamConnection::start() {
  // On TLS listeners the handshake counts against the request head's timeout.
  setTimer(Timer::kHeader, header_timeout_);
  if (tls_ == nullptr) {
    wantRead(true);
  } else if (tls_->conn == nullptr) {
    closeNow();
  } else {
    handshake();
  }
}

void DownstreamConnection::wantRead(bool on) {
  if (on == reading_ || phase_ == Phase::kClosed) return;
  reading_ = on;
  if (tls_ != nullptr) {
    syncTlsEvents();
  } else if (on) {
    event_add(&sock_read_, nullptr);
  } else {
    event_del(&sock_read_);
  }
}

void DownstreamConnection::wantWrite(bool on) {
  if (on == writing_ || phase_ == Phase::kClosed) return;
  writing_ = on;
  if (on) watchClientRate();
  if (tls_ != nullptr) {
    syncTlsEvents();
  } else if (on) {
    event_add(&sock_write_, nullptr);
  } else {
    event_del(&sock_write_);
  }
}

void DownstreamConnection::syncTlsEvents() {
  if (phase_ == Phase::kClosed) return;
  // Lingering reads the socket without TLS.
  const bool tls_io = phase_ != Phase::kLingering;
  const bool read_flip = tls_io && tls_->conn->readWantsWrite();
  const bool write_flip = tls_io && tls_->conn->writeWantsRead();
  const bool read = (reading_ && !read_flip) || write_flip;
  const bool write = (writing_ && !write_flip) || read_flip;
  if (read != tls_->read_armed) {
    tls_->read_armed = read;
    read ? event_add(&sock_read_, nullptr) : event_del(&sock_read_);
  }
  if (write != tls_->write_armed) {
    tls_->write_armed = write;
    write ? event_add(&sock_write_, nullptr) : event_del(&sock_write_);
  }
}

void DownstreamConnection::handshake() {
  tls::Connection& conn = *tls_->conn;
  switch (conn.handshake()) {
    case tls::Connection::Step::kWantRead:
      wantWrite(false);
      wantRead(true);
      return;
    case tls::Connection::Step::kWantWrite:
      wantRead(false);
      wantWrite(true);
      return;
    case tls::Connection::Step::kFailed:
      // No HTTP answer: the client has no TLS to read one with.
      worker_->cells->add(tls_->stats.handshake_error[static_cast<int>(conn.failure())]);
      log::debug("TLS handshake from %s on %s failed: %s", peer_, listener_name_,
                 tls::handshakeFailureName(conn.failure()));
      closeNow();
      return;
    case tls::Connection::Step::kDone:
      break;
  }
  tls_->handshaking = false;
  stats::Cells* cells = worker_->cells;
  cells->add(tls_->stats.handshake);
  if (conn.sessionReused()) cells->add(tls_->stats.session_reused);
  if (tls_->asks_client_certificate && !conn.peer().presented) {
    cells->add(tls_->stats.no_certificate);
  }
  wantWrite(false);
  wantRead(true);
  // The first request may have come with the client's last handshake message.
  onReadable();
}

void DownstreamConnection::onTlsSocket(short what) {
  if (tls_->handshaking) {
    handshake();
  } else if ((what & EV_READ) && tls_->conn->writeWantsRead()) {
    onWritable();
  } else if ((what & EV_WRITE) && tls_->conn->readWantsWrite()) {
    onReadable();
  } else if (what & EV_READ) {
    onReadable();
  } else if (what & EV_WRITE) {
    onWritable();
  }
}

void DownstreamConnection::setTimer(Timer timer, absl::Duration d) {
  timer_kind_ = timer;
  if (timer == Timer::kNone) {
    event_del(&timer_);
    return;
  }
  timeval tv = absl::ToTimeval(d);
  event_add(&timer_, &tv);
}

void DownstreamConnection::onSocket(evutil_socket_t, short what, void* arg) {
  auto* c = static_cast<DownstreamConnection*>(arg);
  if (c->tls_ != nullptr) {
    c->onTlsSocket(what);
    return;
  }
  if (what & EV_READ) {
    c->onReadable();
  } else if (what & EV_WRITE) {
    c->onWritable();
  }
}

void DownstreamConnection::onTimer(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<DownstreamConnection*>(arg);
  switch (c->timer_kind_) {
    case Timer::kHeader:
      c->timer_kind_ = Timer::kNone;
      if (c->phase_ != Phase::kHead) return;
      if (c->tls_ != nullptr && c->tls_->handshaking) {
        c->worker_->cells->add(
            c->tls_->stats.handshake_error[static_cast<int>(tls::HandshakeFailure::kTimeout)]);
        c->closeNow();
        return;
      }
      if (evbuffer_get_length(c->in_) == 0 && !c->head_bytes_seen_) {
        c->closeNow();
        return;
      }
      c->worker_->cells->add(c->lstats_.rq_timeout);
      c->localReply(408, "request header timeout\n", true);
      return;
    case Timer::kStream:
      c->onStreamTimer();
      return;
    case Timer::kIdle:
    case Timer::kLinger:
      c->timer_kind_ = Timer::kNone;
      c->closeNow();
      return;
    case Timer::kNone:
      return;
  }
}

void DownstreamConnection::onStreamTimer() {
  if (progress_ != progress_at_arm_) {
    progress_at_arm_ = progress_;
    setTimer(Timer::kStream, phase_ == Phase::kStream ? stream_idle_ : idle_timeout_);
    return;
  }
  timer_kind_ = Timer::kNone;
  if (phase_ != Phase::kStream) {
    closeNow();  // a closing connection whose client stopped reading
    return;
  }
  if (response_started_) {
    if (cluster_ != nullptr) worker_->cells->add(cluster_->stats().rq_idle_timeout);
    releaseUpstream(false);
    countResponse(status_);
    closeNow();
  } else if (!req_done_) {
    releaseUpstream(false);
    localReply(408, "request body timeout\n", true);
  } else {
    releaseUpstream(false);
    if (cluster_ != nullptr) {
      worker_->cells->add(cluster_->stats().rq_idle_timeout);
      worker_->cells->add(cluster_->stats().rq_5xx);
    }
    localReply(504, "upstream idle timeout\n", false);
  }
}

void DownstreamConnection::onRouteTimeout(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<DownstreamConnection*>(arg);
  if (c->phase_ != Phase::kStream || c->response_started_ || c->cluster_ == nullptr) return;
  c->worker_->cells->add(c->cluster_->stats().rq_timeout);
  if (c->up_ != nullptr) c->outcome(upstream::Outcome::kGatewayFailure);
  c->releaseUpstream(false);
  c->wait_ = Wait::kNone;
  event_del(&c->wait_timer_);
  c->worker_->cells->add(c->cluster_->stats().rq_5xx);
  c->localReply(504, "upstream request timeout\n", !c->req_done_);
}

void DownstreamConnection::onTryTimeout(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<DownstreamConnection*>(arg);
  if (c->phase_ != Phase::kStream || c->response_started_ || c->cluster_ == nullptr) return;
  c->worker_->cells->add(c->cluster_->stats().rq_per_try_timeout);
  c->outcome(upstream::Outcome::kGatewayFailure);
  if (c->retryAfter(Failure::kPerTryTimeout)) return;
  c->releaseUpstream(false);
  c->worker_->cells->add(c->cluster_->stats().rq_5xx);
  c->localReply(504, "upstream per-try timeout\n", !c->req_done_);
}

void DownstreamConnection::onWaitOver(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<DownstreamConnection*>(arg);
  if (c->phase_ != Phase::kStream) return;
  const Wait wait = c->wait_;
  c->wait_ = Wait::kNone;
  if (wait == Wait::kFault) {
    c->startUpstream();
  } else if (wait == Wait::kBackoff) {
    c->retryNow();
  }
  if (c->phase_ == Phase::kStream) c->updateReadInterest();
}

void DownstreamConnection::onBodyTimer(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<DownstreamConnection*>(arg);
  c->body_timer_armed_ = false;
  if (c->phase_ != Phase::kStream || c->req_done_) return;
  absl::Duration left = c->body_idle_;
  if (c->waiting_body_) {
    left -= absl::FromChrono(Clock::now() - c->body_wait_since_);
    if (left <= absl::ZeroDuration()) {
      c->worker_->cells->add(c->lstats_.rq_body_timeout);
      c->releaseUpstream(false);
      if (c->response_started_) {
        c->countResponse(c->status_);
        c->closeNow();
      } else {
        c->localReply(408, "request body timeout\n", true);
      }
      return;
    }
  }
  // Waiting for room upstream is not the client's pause: look again a full timeout later.
  c->body_timer_armed_ = true;
  timeval tv = absl::ToTimeval(left);
  event_add(&c->body_timer_, &tv);
}

void DownstreamConnection::onRateTimer(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<DownstreamConnection*>(arg);
  c->rate_timer_armed_ = false;
  if (c->phase_ == Phase::kClosed) return;
  // Only a window that ends with the proxy still waiting on the client judges the client.
  if (!c->waiting_body_ && !c->writing_) return;
  const uint64_t moved = c->client_bytes_ - c->client_bytes_at_window_;
  if (moved < uint64_t{c->min_rate_} * kMinRateWindowSeconds) {
    log::debug("closing %s on %s: %d bytes in %ds, below min_bytes_per_second %d", c->peer_,
               c->listener_name_, moved, kMinRateWindowSeconds, c->min_rate_);
    c->worker_->cells->add(c->lstats_.cx_too_slow);
    if (c->phase_ == Phase::kStream && c->response_started_) c->countResponse(c->status_);
    c->releaseUpstream(false);
    c->closeNow();
    return;
  }
  c->watchClientRate();
}

void DownstreamConnection::watchClientRate() {
  if (min_rate_ == 0 || rate_timer_armed_) return;
  rate_timer_armed_ = true;
  client_bytes_at_window_ = client_bytes_;
  timeval tv{kMinRateWindowSeconds, 0};
  event_add(&rate_timer_, &tv);
}

void DownstreamConnection::watchBody(bool waiting) {
  if (waiting == waiting_body_) return;
  waiting_body_ = waiting;
  if (!waiting) return;
  body_wait_since_ = Clock::now();
  watchClientRate();
  if (!body_timer_armed_) {
    body_timer_armed_ = true;
    timeval tv = absl::ToTimeval(body_idle_);
    event_add(&body_timer_, &tv);
  }
}

void DownstreamConnection::onReadable() {
  if (phase_ == Phase::kLingering) {
    char buf[16 * 1024];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) closeNow();
    return;
  }
  ssize_t n;
  if (tls_ == nullptr) {
    n = readInto(in_, fd_);
  } else {
    n = tls_->conn->readInto(in_);
    const int err = errno;
    syncTlsEvents();
    errno = err;
    // close_notify may come with the last bytes, and no socket event after it.
    if (n > 0 && tls_->conn->peerClosed()) peer_closed_ = true;
  }
  if (n > 0) {
    ++progress_;
    client_bytes_ += static_cast<uint64_t>(n);
    if (waiting_body_) body_wait_since_ = Clock::now();
  }
  if (n == 0) {
    peer_closed_ = true;
  } else if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    peer_closed_ = true;
  }
  process();
}

void DownstreamConnection::process() {
  in_process_ = true;
  // Serve every complete pipelined request already buffered, one after another.
  for (;;) {
    Phase before = phase_;
    size_t buffered = evbuffer_get_length(in_);
    if (phase_ == Phase::kHead) {
      parseHead();
    } else if (phase_ == Phase::kStream && !req_done_) {
      if (!awaiting_body_) {
        pumpRequestBody();
      } else if (evbuffer_get_length(in_) >= body_needed_) {
        resumeAccess();
      }
    }
    if (phase_ == Phase::kClosed) {
      in_process_ = false;
      return;
    }
    if (phase_ == before && evbuffer_get_length(in_) == buffered) break;
    if (phase_ != Phase::kHead && phase_ != Phase::kStream) break;
    if (evbuffer_get_length(out_) >= window_) break;  // onWritable resumes
  }
  in_process_ = false;
  if (peer_closed_) {
    if (phase_ == Phase::kHead) {
      // Answers still waiting for room: onWritable serves the rest of what was sent.
      if (evbuffer_get_length(out_) >= window_) return;
      // What is left is a head that will never be finished (or nothing): answer what was
      // answered, then close.
      if (evbuffer_get_length(out_) > 0) {
        beginClose();
      } else {
        closeNow();
      }
      return;
    }
    if (phase_ == Phase::kStream && !req_done_) {
      // The client went away in the middle of its request: nothing can complete it.
      releaseUpstream(false);
      closeNow();
      return;
    }
    if (phase_ == Phase::kLingering) {
      closeNow();
      return;
    }
  }
  updateReadInterest();
}

void DownstreamConnection::updateReadInterest() {
  bool on = false;
  if (!peer_closed_) {
    switch (phase_) {
      case Phase::kHead:
        // Requests answered by the proxy itself pile up in out_ if the client does not read.
        on = evbuffer_get_length(out_) < window_;
        break;
      case Phase::kStream:
        if (awaiting_body_) {
          on = evbuffer_get_length(in_) < body_needed_;
        } else if (!req_done_) {
          on = up_ != nullptr && evbuffer_get_length(up_->out()) < window_;
        } else {
          on = evbuffer_get_length(in_) < window_;  // pipelined requests wait here
        }
        break;
      case Phase::kClosing:
        on = false;
        break;
      case Phase::kLingering:
        on = true;
        break;
      case Phase::kClosed:
        return;
    }
  }
  watchBody(on && phase_ == Phase::kStream && !req_done_);
  wantRead(on);
}

void DownstreamConnection::parseHead() {
  size_t len = evbuffer_get_length(in_);
  if (len == 0) return;
  if (!head_bytes_seen_) {
    head_bytes_seen_ = true;
    if (timer_kind_ != Timer::kHeader) setTimer(Timer::kHeader, header_timeout_);
  }
  size_t want = std::min(len, limits_.max_head_bytes + 1);
  const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in_, want));
  size_t head_len = 0;
  Error err;
  ParseStatus st = findHeadEnd(std::string_view(data, want), limits_, &scan_, &head_len, &err);
  if (st == ParseStatus::kIncomplete) return;
  if (st == ParseStatus::kError) {
    reject(err);
    return;
  }
  RequestHead& head = *worker_->request_head;
  st = parseRequestHead(std::string_view(data, head_len), limits_, &head, &err);
  if (st != ParseStatus::kDone) {
    if (st == ParseStatus::kIncomplete) err = Error{400, "incomplete request head"};
    reject(err);
    return;
  }
  // Requests in flight finish; new ones are shed while the process is short of memory.
  if (worker_->overload != nullptr && worker_->overload->active.load(std::memory_order_relaxed)) {
    worker_->cells->add(worker_->overload->rq_shed);
    refuseRequest(head, 503, "overloaded\n");
    return;
  }
  if (max_body_ != 0 && head.content_length.value_or(0) > max_body_) {
    worker_->cells->add(lstats_.rq_too_large);
    refuseRequest(head, 413, "request body too large\n");
    return;
  }
  req_body_bytes_ = 0;
  startRequest(head);
}

void DownstreamConnection::refuseRequest(const RequestHead& head, int status,
                                         std::string_view body) {
  phase_ = Phase::kStream;
  start_ = Clock::now();
  method_ = head.method_kind;
  version_minor_ = head.version_minor;
  keep_alive_ = false;
  req_mode_ = BodyMode::kNone;
  // The body is not read: closing after the answer ends it.
  evbuffer_drain(in_, evbuffer_get_length(in_));
  localReply(status, body, true);
}

void DownstreamConnection::bodyTooLarge() {
  worker_->cells->add(lstats_.rq_too_large);
  releaseUpstream(false);
  evbuffer_drain(in_, evbuffer_get_length(in_));
  if (response_started_) {
    countResponse(status_);
    closeNow();
  } else {
    localReply(413, "request body too large\n", true);
  }
}

void DownstreamConnection::reject(const Error& err) {
  worker_->cells->add(lstats_.rq_rejected);
  log::debug("rejecting request from %s on %s: %d %s", peer_, listener_name_, err.status,
             err.reason);
  std::string body = std::string(err.reason) + "\n";
  evbuffer_drain(in_, evbuffer_get_length(in_));
  localReply(err.status, body, true);
}

void DownstreamConnection::startRequest(RequestHead& head) {
  phase_ = Phase::kStream;
  access_.reset();
  awaiting_body_ = false;
  progress_at_arm_ = progress_;
  setTimer(Timer::kStream, idle_timeout_);
  start_ = Clock::now();
  method_ = head.method_kind;
  version_minor_ = head.version_minor;
  keep_alive_ = head.keep_alive && !drain_ && !worker_->draining;
  req_done_ = false;
  response_started_ = false;
  retried_ = false;
  upstream_eof_ = false;
  route_ = nullptr;
  cluster_ = nullptr;
  endpoint_ = nullptr;
  resp_scan_.reset();
  switch (bodyKind(head)) {
    case BodyKind::kChunked:
      req_mode_ = BodyMode::kChunked;
      req_chunked_.reset();
      break;
    case BodyKind::kContentLength:
      req_mode_ = *head.content_length > 0 ? BodyMode::kLength : BodyMode::kNone;
      req_remaining_ = *head.content_length;
      break;
    default:
      req_mode_ = BodyMode::kNone;
      break;
  }

  // The newest generation that still has this connection's listener; a listener removed since
  // the accept keeps serving its connections on the generation they were accepted on.
  // Looked up again only when the worker has a new generation: no name lookups and no
  // reference counting per request.
  const server::Generation* newest = worker_->generation.get();
  if (newest != seen_gen_ || newest == nullptr) {
    const server::ListenerConfig* listener =
        newest != nullptr ? newest->listener(listener_name_) : nullptr;
    if (listener != nullptr) {
      // A long-lived connection must not pin old generations.
      if (accept_gen_.get() != newest) accept_gen_ = worker_->generation;
      seen_gen_ = newest;
      listener_gone_ = false;
      listener_ = listener;
    } else {
      listener = accept_gen_->listener(listener_name_);
      // Not remembered: `newest` is not ours to keep alive, and this connection closes anyway.
      seen_gen_ = nullptr;
      listener_gone_ = true;
      listener_ = listener;
    }
    table_ = accept_gen_->routeTable(listener->route_config);
  }
  if (listener_gone_) keep_alive_ = false;
  gen_ = accept_gen_.get();
  access_.client = peer_ip_;
  if (tls_ != nullptr) {
    const tls::PeerInfo& peer = tls_->conn->peer();
    access_.cert_verified = peer.verified;
    access_.cert_subject = peer.subject;
    access_.cert_sans = &peer.sans;
  }
  if ((listener_->ip_filter != nullptr || listener_->xff_hops > 0) && !checkClient(head)) return;
  if (listener_->https_redirect_code != 0) {
    redirectToHttps(head);
    return;
  }
  const router::RouteTable* table = table_;
  HeadHeaders headers(head);
  router::RequestView view{head.method, head.host, head.path, head.query, &headers};
  const router::Route* route = table != nullptr ? table->route(view) : nullptr;
  route_ = route;
  if (route == nullptr) {
    evbuffer_drain(in_, head.head_len);
    localReply(404, "no route\n", !discardBufferedBody());
    return;
  }
  if (route->access != nullptr && !runAccess(head, *route, 0)) return;
  dispatch(head, *route);
}

bool DownstreamConnection::checkClient(RequestHead& head) {
  const server::ListenerConfig& l = *listener_;
  if (l.xff_hops > 0) {
    std::string& joined = access_.scratch;
    joined.clear();
    for (const Header& h : head.headerList()) {
      if (!equalsIgnoreCase(h.name, "x-forwarded-for")) continue;
      if (!joined.empty()) joined.push_back(',');
      joined.append(h.value);
    }
    std::optional<ip_filter::IpAddress> client =
        ip_filter::clientAddress(peer_ip_, joined, l.xff_hops);
    joined.clear();
    if (!client.has_value()) {
      reject(Error{400, "malformed x-forwarded-for"});
      return false;
    }
    access_.client = *client;
  }
  if (l.ip_filter != nullptr && !l.ip_filter->admits(access_.client)) {
    worker_->cells->add(lstats_.ip_denied);
    evbuffer_drain(in_, head.head_len);
    localReply(403, "forbidden\n", !discardBufferedBody());
    return false;
  }
  return true;
}

bool DownstreamConnection::runAccess(RequestHead& head, const router::Route& route, size_t from) {
  const FilterChain& chain = *route.access;
  access_.head = &head;
  access_.now = absl::Now();
  access_.consumers = gen_->consumers.get();
  access_.jwks = gen_->jwks.get();
  access_.cells = worker_->cells;
  access_.strip = &chain.strip;
  for (size_t i = from; i < chain.filters.size(); ++i) {
    LocalReply reply;
    switch (chain.filters[i]->onRequest(access_, &reply)) {
      case FilterStatus::kContinue:
        continue;
      case FilterStatus::kReply:
        evbuffer_drain(in_, head.head_len);
        localReply(reply.status, reply.body, !discardBufferedBody(), nullptr, {}, nullptr,
                   reply.headers);
        return false;
      case FilterStatus::kNeedBody:
        if (req_mode_ == BodyMode::kChunked) {
          evbuffer_drain(in_, head.head_len);
          localReply(411, "a signed request body needs a content-length\n", true);
          return false;
        }
        if (req_mode_ == BodyMode::kLength && req_remaining_ > chain.filters[i]->maxBody()) {
          evbuffer_drain(in_, head.head_len);
          localReply(413, "request body too large to verify\n", true);
          return false;
        }
        // The head stays at the front of in_ until the body is in: the chain resumes on a head
        // parsed again from the same bytes (the worker's head scratch serves other connections
        // meanwhile).
        filter_next_ = i;
        awaiting_body_ = true;
        body_needed_ = head.head_len + (req_mode_ == BodyMode::kLength ? req_remaining_ : 0);
        if (evbuffer_get_length(in_) >= body_needed_) {
          resumeAccess();
        } else if (head.expect_continue && evbuffer_get_length(in_) == head.head_len) {
          add(out_, k100Continue);
          flushDownstream();
        }
        return false;
    }
  }
  return true;
}

void DownstreamConnection::resumeAccess() {
  awaiting_body_ = false;
  RequestHead& head = *worker_->request_head;
  size_t head_len = 0;
  Error err;
  HeadScan scan;
  const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in_, body_needed_));
  std::string_view bytes(data, body_needed_);
  if (findHeadEnd(bytes, limits_, &scan, &head_len, &err) != ParseStatus::kDone ||
      parseRequestHead(bytes.substr(0, head_len), limits_, &head, &err) != ParseStatus::kDone) {
    // The same bytes parsed a moment ago.
    closeNow();
    return;
  }
  access_.body = in_;
  access_.body_offset = head_len;
  access_.body_length = body_needed_ - head_len;
  const router::Route& route = *route_;
  if (!runAccess(head, route, filter_next_)) return;
  access_.body = nullptr;
  dispatch(head, route);
}

void DownstreamConnection::dispatch(RequestHead& head, const router::Route& route_ref) {
  const router::Route* route = &route_ref;
  switch (route->action) {
    case router::Route::Action::kDirectResponse:
      evbuffer_drain(in_, head.head_len);
      localReply(static_cast<int>(route->status), route->body, !discardBufferedBody(),
                 &route->response_headers);
      return;
    case router::Route::Action::kRedirect: {
      std::string location;
      // Both arms string_view: "http" : std::string would make a temporary string to point into.
      // Unset keeps the request's scheme.
      std::string_view scheme = route->scheme_redirect.empty()
                                    ? std::string_view(tls_ != nullptr ? "https" : "http")
                                    : std::string_view(route->scheme_redirect);
      location.append(scheme).append("://");
      location.append(route->host_redirect.empty() ? head.host : route->host_redirect);
      if (!route->path_redirect.empty()) {
        location.append(route->path_redirect);
      } else if (!route->prefix_rewrite.empty() &&
                 route->path_kind == router::Route::PathKind::kPrefix) {
        location.append(route->prefix_rewrite).append(head.path.substr(route->path.size()));
      } else {
        location.append(head.path);
      }
      if (head.has_query && !route->strip_query) location.append("?").append(head.query);
      evbuffer_drain(in_, head.head_len);
      localReply(static_cast<int>(route->redirect_code), "", !discardBufferedBody(),
                 &route->response_headers, location);
      return;
    }
    case router::Route::Action::kCluster:
      break;
  }
  uint32_t index = route->pickCluster(worker_->random());
  cluster_ = gen_->clusters[index].get();
  forward(head, *route, *cluster_);
}

// A share given in parts per million, drawn at random.
bool drawn(WorkerContext* worker, uint32_t per_million) {
  return per_million >= 1'000'000 ||
         (per_million > 0 && worker->random() % 1'000'000 < per_million);
}

const upstream::Endpoint* DownstreamConnection::pickEndpoint(const upstream::Cluster& cluster,
                                                             uint32_t attempt) {
  auto active = [&](size_t i) { return worker_->pool.busy(cluster.endpoints()[i].pool_key); };
  upstream::LbRequest request{.worker = worker_->index,
                              .random = worker_->random(),
                              .has_hash = has_hash_,
                              .hash = hash_,
                              .attempt = attempt};
  const upstream::Endpoint* endpoint = cluster.pick(request, active);
  // A retry prefers another endpoint than the one that just failed, when the cluster has one.
  for (int i = 0; attempt > 0 && i < 3 && endpoint != nullptr &&
                  endpoint->pool_key == failed_pool_key_ && cluster.endpoints().size() > 1;
       ++i) {
    request.random = worker_->random();
    ++request.attempt;
    endpoint = cluster.pick(request, active);
  }
  if (cluster.panic()) worker_->cells->add(cluster.stats().lb_panic_rq);
  return endpoint;
}

bool DownstreamConnection::requestHash(const RequestHead& head, uint64_t* hash) const {
  HeadHeaders headers(head);
  for (const router::HashPolicy& p : traffic_->hash) {
    std::string_view value;
    switch (p.kind) {
      case router::HashPolicy::Kind::kHeader:
        if (!headers.find(p.name, &value)) continue;
        break;
      case router::HashPolicy::Kind::kCookie:
        if (!headers.cookie(p.name, &value)) continue;
        break;
      case router::HashPolicy::Kind::kSourceIp:
        value = peer_;
        break;
    }
    *hash = upstream::hashKey(value);
    return true;
  }
  return false;
}

void DownstreamConnection::outcome(upstream::Outcome outcome) {
  const upstream::OutlierConfig* config = cluster_->outlier();
  if (config == nullptr || endpoint_ == nullptr) return;
  upstream::recordOutcome(endpoint_->state, *config, outcome, cluster_->outlierWakeFd());
}

void DownstreamConnection::forward(RequestHead& head, const router::Route& route,
                                   const upstream::Cluster& cluster) {
  traffic_ = route.traffic.get();
  retry_ = traffic_ != nullptr ? traffic_->retry.get() : nullptr;
  attempt_ = 0;
  failed_pool_key_ = UINT32_MAX;
  has_hash_ = false;
  if (traffic_ != nullptr) {
    if (cluster.hashed() && !traffic_->hash.empty()) has_hash_ = requestHash(head, &hash_);
    if (traffic_->idle_timeout_ms > 0) {
      stream_idle_ = absl::Milliseconds(traffic_->idle_timeout_ms);
      setTimer(Timer::kStream, stream_idle_);
    }
    if (traffic_->fault_abort_status != 0 && drawn(worker_, traffic_->fault_abort_per_million)) {
      worker_->cells->add(lstats_.fault_aborts);
      evbuffer_drain(in_, head.head_len);
      localReply(static_cast<int>(traffic_->fault_abort_status), "fault filter abort\n",
                 !discardBufferedBody(), &route.response_headers);
      return;
    }
    if (traffic_->max_concurrent != 0) {
      route_slot_ = true;
      if (traffic_->active.fetch_add(1, std::memory_order_relaxed) >= traffic_->max_concurrent) {
        worker_->cells->add(stats::CounterId{traffic_->overflow_counter});
        evbuffer_drain(in_, head.head_len);
        unavailable("route concurrency limit reached\n", "route_max_concurrent_requests");
        return;
      }
    }
  }
  const upstream::Breakers& limits = cluster.breakers();
  if (limits.countRequests()) {
    cluster_slot_ = true;
    if (cluster.counters().rq_active.fetch_add(1, std::memory_order_relaxed) >=
        limits.max_requests) {
      worker_->cells->add(cluster.stats().rq_overflow);
      evbuffer_drain(in_, head.head_len);
      unavailable("upstream overflow: too many requests\n", "max_requests");
      return;
    }
  }
  const upstream::Endpoint* endpoint = pickEndpoint(cluster, 0);
  if (endpoint == nullptr) {
    worker_->cells->add(cluster.stats().no_healthy);
    evbuffer_drain(in_, head.head_len);
    unavailable("no healthy upstream\n");
    return;
  }
  endpoint_ = endpoint;
  evbuffer_drain(head_copy_, evbuffer_get_length(head_copy_));
  writeUpstreamHead(head, route, *endpoint, head_copy_);
  expect_continue_ = head.expect_continue;
  // A Content-Length body larger than the retry buffer streams without a copy.
  const bool body_fits = retry_ != nullptr && (req_mode_ != BodyMode::kLength ||
                                               req_remaining_ <= retry_->max_buffered_body);
  evbuffer_drain(in_, head.head_len);  // `head` is invalid from here on
  // Without a policy only idempotent requests without a body are retried, and only when a
  // pooled connection turns out closed (the upstream may have acted on the request before).
  if (traffic_ != nullptr && !traffic_->mirrors.empty()) startShadows(route);
  retryable_ = req_mode_ == BodyMode::kNone && idempotent(method_);
  body_copied_ = body_fits && (idempotent(method_) || retry_->retry_non_idempotent);
  if (req_mode_ == BodyMode::kNone) req_done_ = true;
  upstream_start_ = Clock::now();
  if (traffic_ != nullptr && traffic_->fault_delay_ms > 0 &&
      drawn(worker_, traffic_->fault_delay_per_million)) {
    worker_->cells->add(lstats_.fault_delays);
    wait_ = Wait::kFault;
    timeval tv = absl::ToTimeval(absl::Milliseconds(traffic_->fault_delay_ms));
    event_add(&wait_timer_, &tv);
    return;
  }
  startUpstream();
}

void DownstreamConnection::startShadows(const router::Route& route) {
  const size_t n = evbuffer_get_length(head_copy_);
  std::string_view head(reinterpret_cast<const char*>(evbuffer_pullup(head_copy_, n)), n);
  // A copy has no client to give up on it: bounded by the route timeout, or 15 s without one.
  const absl::Duration timeout =
      route.timeout_ms > 0 ? absl::Milliseconds(route.timeout_ms) : absl::Seconds(15);
  for (const router::MirrorPolicy& m : traffic_->mirrors) {
    if (!drawn(worker_, m.per_million)) continue;
    Shadow* shadow = Shadow::start(&worker_->shadows, &worker_->pool, *gen_->clusters[m.cluster],
                                   worker_->index, worker_->random(), head,
                                   method_ == Method::kHead, req_mode_ != BodyMode::kNone, timeout);
    if (shadow != nullptr && req_mode_ != BodyMode::kNone) shadows_.push_back(shadow);
  }
}

void DownstreamConnection::sendContinue() {
  if (!expect_continue_) return;
  expect_continue_ = false;
  if (req_mode_ != BodyMode::kNone && evbuffer_get_length(in_) == 0 && !response_started_) {
    add(out_, k100Continue);
    flushDownstream();
  }
}

void DownstreamConnection::startUpstream() {
  upstream_start_ = Clock::now();
  if (!connectUpstream(false)) return;
  sendContinue();
  if (phase_ != Phase::kStream) return;
  if (req_done_) {
    requestComplete();
  } else {
    pumpRequestBody();
  }
}

void DownstreamConnection::unavailable(std::string_view body, const char* overflow) {
  const bool fallback = traffic_ != nullptr && traffic_->has_fallback;
  if (!fallback || traffic_->fallback_status >= 500) worker_->cells->add(cluster_->stats().rq_5xx);
  const bool close = !req_done_ && !discardBufferedBody();
  if (fallback) {
    localReply(static_cast<int>(traffic_->fallback_status), traffic_->fallback_body, close,
               &route_->response_headers, {}, overflow);
  } else {
    localReply(503, body, close, nullptr, {}, overflow);
  }
}

bool DownstreamConnection::retryAfter(Failure failure, uint32_t status) {
  if (retry_ == nullptr || !body_copied_ || response_started_ || phase_ != Phase::kStream) {
    return false;
  }
  const router::RetryPolicy& p = *retry_;
  bool applies = false;
  switch (failure) {
    case Failure::kConnect:
      applies = p.on_connect_failure || p.on_gateway_error || p.on_5xx;
      break;
    case Failure::kReset:
      applies = p.on_reset || p.on_gateway_error || p.on_5xx;
      break;
    case Failure::kPerTryTimeout:
      applies = p.on_gateway_error || p.on_5xx;
      break;
    case Failure::kStatus:
      applies = p.retriesStatus(status);
      break;
  }
  if (!applies || attempt_ >= p.num_retries) return false;
  const upstream::Breakers& limits = cluster_->breakers();
  upstream::ClusterCounters& counters = cluster_->counters();
  if (!retry_slot_) {
    // One place per retrying request: it has at most one retry in flight at a time.
    uint32_t limit = limits.max_retries;
    if (limits.budget) {
      double share =
          limits.budget_percent / 100.0 * counters.rq_active.load(std::memory_order_relaxed);
      limit = std::max<uint32_t>(limits.min_retry_concurrency, static_cast<uint32_t>(share));
    }
    if (counters.retries_active.fetch_add(1, std::memory_order_relaxed) >= limit) {
      counters.retries_active.fetch_sub(1, std::memory_order_relaxed);
      worker_->cells->add(cluster_->stats().rq_retry_overflow);
      return false;
    }
    retry_slot_ = true;
  }
  ++attempt_;
  worker_->cells->add(cluster_->stats().rq_retry);
  failed_pool_key_ = endpoint_->pool_key;
  releaseUpstream(false);
  event_del(&try_timer_);
  resp_scan_.reset();
  // Jittered exponential backoff: a random time up to base * 2^(n-1), capped.
  int64_t cap = p.base_interval_ms << std::min<uint32_t>(attempt_ - 1, 20);
  cap = std::min(cap, p.max_interval_ms);
  int64_t delay_us = static_cast<int64_t>(worker_->random() % (uint64_t(cap) * 1000 + 1));
  wait_ = Wait::kBackoff;
  timeval tv = absl::ToTimeval(absl::Microseconds(delay_us));
  event_add(&wait_timer_, &tv);
  return true;
}

void DownstreamConnection::retryNow() {
  const upstream::Endpoint* endpoint = pickEndpoint(*cluster_, attempt_);
  if (endpoint == nullptr) {
    worker_->cells->add(cluster_->stats().no_healthy);
    unavailable("no healthy upstream\n");
    return;
  }
  endpoint_ = endpoint;
  upstream_start_ = Clock::now();
  if (!connectUpstream(false)) return;
  sendContinue();  // the first attempt may have failed before it could
  if (phase_ != Phase::kStream) return;
  if (req_done_) {
    requestComplete();
  } else {
    pumpRequestBody();
  }
}

bool DownstreamConnection::connectUpstream(bool fresh) {
  const upstream::ClusterStats& cs = cluster_->stats();
  bool reused = false;
  if (fresh) {
    // A retry must not take another pooled connection that may be just as stale.
    worker_->pool.drainEndpoint(endpoint_->pool_key);
  }
  upstream::ConnPool::Refusal refusal;
  upstream::UpstreamConn* conn =
      worker_->pool.acquire(*cluster_, *endpoint_, this, &reused, &refusal);
  if (conn == nullptr) {
    switch (refusal) {
      case upstream::ConnPool::Refusal::kMaxConnections:
        worker_->cells->add(cs.cx_overflow);
        unavailable("upstream overflow: too many connections\n", "max_connections");
        return false;
      case upstream::ConnPool::Refusal::kMaxPending:
        worker_->cells->add(cs.rq_pending_overflow);
        unavailable("upstream overflow: too many pending requests\n", "max_pending_requests");
        return false;
      default:
        break;
    }
    worker_->cells->add(cs.cx_connect_fail);
    if (retryAfter(Failure::kConnect)) return false;
    worker_->cells->add(cs.rq_5xx);
    localReply(502, "upstream connect error\n", !req_done_ || !discardBufferedBody());
    return false;
  }
  up_ = conn;
  reused_ = reused;
  worker_->cells->gaugeAdd(endpoint_->rq_active, 1);
  worker_->cells->add(cs.rq_total);
  worker_->cells->add(endpoint_->rq_total);
  if (reused) worker_->cells->add(cs.rq_reused);
  if (retryable_ || body_copied_) {
    size_t n = evbuffer_get_length(head_copy_);
    evbuffer_add(up_->out(), evbuffer_pullup(head_copy_, n), n);
    // A retry resends what the failed attempt had sent of the body.
    copyPrefix(body_copy_, up_->out(), evbuffer_get_length(body_copy_));
  } else {
    evbuffer_add_buffer(up_->out(), head_copy_);
  }
  if (up_->connected()) {
    up_->wantRead(true);
    if (req_mode_ == BodyMode::kNone) {
      defer(kDeferUpstream);  // sent with the rest of this pass's requests
    } else if (!up_->flush()) {
      upstreamFailed("upstream write error");
      return false;
    }
  }
  return true;
}

void DownstreamConnection::writeUpstreamHead(const RequestHead& head, const router::Route& route,
                                             const upstream::Endpoint& endpoint, evbuffer* to) {
  HeadWriter b(to);
  add(b, head.method);
  add(b, " ");
  if (!route.prefix_rewrite.empty() && route.path_kind == router::Route::PathKind::kPrefix) {
    add(b, route.prefix_rewrite);
    add(b, head.path.substr(route.path.size()));
  } else {
    add(b, head.path);
  }
  if (head.has_query) {
    add(b, "?");
    add(b, head.query);
  }
  add(b, " HTTP/1.1\r\n");
  const router::HeaderOps& ops = route.request_headers;
  if (!route.host_rewrite.empty()) {
    addHeader(b, "host", route.host_rewrite);
  } else if (!head.host.empty()) {
    addHeader(b, "host", head.host);
  } else {
    addHeader(b, "host", endpoint.name);
  }
  bool has_request_id = false;
  for (const Header& h : head.headerList()) {
    if (equalsIgnoreCase(h.name, "host") || isHopByHop(h.name) ||
        startsWithIgnoreCase(h.name, "x-sluice-") ||
        equalsIgnoreCase(h.name, "x-forwarded-proto") || namedByConnection(head, h.name) ||
        removedBy(ops, h.name) || (access_.strip != nullptr && inList(h.name, *access_.strip))) {
      continue;
    }
    if (equalsIgnoreCase(h.name, "x-request-id")) has_request_id = true;
    if (equalsIgnoreCase(h.name, "x-forwarded-for")) continue;  // joined below
    addHeader(b, h.name, h.value);
  }
  // One x-forwarded-for: the client's own list, if any, with the client's address appended.
  add(b, "x-forwarded-for: ");
  for (const Header& h :
       removedBy(ops, "x-forwarded-for") ? std::span<const Header>() : head.headerList()) {
    if (equalsIgnoreCase(h.name, "x-forwarded-for") && !h.value.empty()) {
      add(b, h.value);
      add(b, ", ");
    }
  }
  add(b, peer_);
  add(b, "\r\n");
  addHeader(b, "x-forwarded-proto", tls_ != nullptr ? "https" : "http");
  if (!has_request_id && !removedBy(ops, "x-request-id")) {
    // A random UUID (version 4).
    uint64_t hi = worker_->random(), lo = worker_->random();
    char id[37];
    static constexpr char kHex[] = "0123456789abcdef";
    hi = (hi & ~uint64_t{0xF000}) | 0x4000;
    lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);
    int p = 0;
    for (int i = 15; i >= 0; --i) {
      id[p++] = kHex[(hi >> (i * 4)) & 0xF];
      if (p == 8 || p == 13 || p == 18) id[p++] = '-';
    }
    for (int i = 15; i >= 0; --i) {
      id[p++] = kHex[(lo >> (i * 4)) & 0xF];
      if (p == 23) id[p++] = '-';
    }
    addHeader(b, "x-request-id", std::string_view(id, 36));
  }
  addHeader(b, "via", kVia);
  for (int i = 0; i < access_.added.count; ++i) {
    addHeader(b, access_.added.items[i].first, access_.added.items[i].second);
  }
  addOps(b, ops);
  if (req_mode_ == BodyMode::kChunked) {
    addHeader(b, "transfer-encoding", "chunked");
  } else if (head.content_length.has_value()) {
    add(b, "content-length: ");
    addNumber(b, *head.content_length);
    add(b, "\r\n");
  }
  add(b, "\r\n");
}

void DownstreamConnection::pumpRequestBody() {
  if (up_ == nullptr || req_done_) return;
  evbuffer* to = up_->out();
  for (bool more = true; more;) {
    while (!req_done_ && evbuffer_get_length(in_) > 0 && evbuffer_get_length(to) < window_) {
      if (req_mode_ == BodyMode::kLength) {
        size_t n = std::min<uint64_t>(req_remaining_, evbuffer_get_length(in_));
        if (body_copied_) copyPrefix(in_, body_copy_, n);
        for (Shadow* shadow : shadows_) shadow->feed(in_, n);
        evbuffer_remove_buffer(in_, to, n);
        req_remaining_ -= n;
        if (req_remaining_ == 0) req_done_ = true;
      } else {
        // Chunked: validate and forward the framing as received.
        std::string_view segment = firstSegment(in_);
        if (segment.empty()) {
          more = false;
          break;
        }
        Error err;
        ChunkedDecoder::Result r = req_chunked_.decode(segment, &err);
        if (r.status == ParseStatus::kError) {
          releaseUpstream(false);
          worker_->cells->add(lstats_.rq_rejected);
          evbuffer_drain(in_, evbuffer_get_length(in_));
          if (response_started_) {
            closeNow();
          } else {
            localReply(err.status, std::string(err.reason) + "\n", true);
          }
          return;
        }
        req_body_bytes_ += r.data.size();
        if (max_body_ != 0 && req_body_bytes_ > max_body_) {
          bodyTooLarge();
          return;
        }
        if (body_copied_) copyPrefix(in_, body_copy_, r.consumed);
        for (Shadow* shadow : shadows_) shadow->feed(in_, r.consumed);
        evbuffer_remove_buffer(in_, to, r.consumed);
        if (r.status == ParseStatus::kDone) req_done_ = true;
      }
      if (body_copied_ && evbuffer_get_length(body_copy_) > retry_->max_buffered_body) {
        // Too large to keep for a retry: this request streams and is not retried.
        body_copied_ = false;
        evbuffer_drain(body_copy_, evbuffer_get_length(body_copy_));
      }
    }
    if (!up_->connected()) break;  // onUpstreamConnected pumps again
    if (!up_->flush()) {
      upstreamFailed("upstream write error");
      return;
    }
    more = more && !req_done_ && evbuffer_get_length(in_) > 0 && evbuffer_get_length(to) < window_;
  }
  if (req_done_) requestComplete();
}

void DownstreamConnection::requestComplete() {
  for (Shadow* shadow : shadows_) shadow->finishBody();
  shadows_.clear();
  if (response_started_ || route_ == nullptr) return;
  // The route timeout covers every attempt: armed once, at the end of the request.
  if (route_->timeout_ms > 0 && !route_timer_armed_) {
    route_timer_armed_ = true;
    timeval tv = absl::ToTimeval(absl::Milliseconds(route_->timeout_ms));
    event_add(&route_timer_, &tv);
  }
  if (retry_ != nullptr && retry_->per_try_timeout_ms > 0) {
    timeval tv = absl::ToTimeval(absl::Milliseconds(retry_->per_try_timeout_ms));
    event_add(&try_timer_, &tv);
  }
}

void DownstreamConnection::onUpstreamConnected(upstream::UpstreamConn* conn) {
  conn->wantRead(true);
  if (!conn->flush()) {
    upstreamFailed("upstream write error");
    return;
  }
  if (!req_done_) {
    pumpRequestBody();
    if (phase_ == Phase::kStream) updateReadInterest();
  }
}

void DownstreamConnection::onUpstreamConnectFailed(upstream::UpstreamConn* conn, bool timed_out) {
  int err = errno;
  const bool tls_failed = conn->tlsFailed();
  outcome(upstream::Outcome::kGatewayFailure);
  if (retryAfter(Failure::kConnect)) return;
  releaseUpstream(false);
  worker_->cells->add(cluster_->stats().rq_5xx);
  if (timed_out) {
    localReply(504, "upstream connect timeout\n", !req_done_);
  } else if (tls_failed) {
    localReply(502, "upstream TLS handshake failed\n", !req_done_);
  } else {
    std::string body = "upstream connect error: ";
    body.append(strerror(err)).append("\n");
    localReply(502, body, !req_done_);
  }
}

void DownstreamConnection::onUpstreamWritable(upstream::UpstreamConn* conn) {
  ++progress_;
  if (!conn->flush()) {
    upstreamFailed("upstream write error");
    return;
  }
  if (!req_done_) {
    pumpRequestBody();
    if (phase_ == Phase::kStream) updateReadInterest();
  }
}

void DownstreamConnection::onUpstreamReadable(upstream::UpstreamConn* conn) {
  ssize_t n = conn->read();
  if (n > 0) ++progress_;
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    if (n == 0 && response_started_ && resp_mode_ == BodyMode::kClose) {
      // The body ends with the connection.
      upstream_eof_ = true;
      conn->wantRead(false);
      pumpResponseBody();
      return;
    }
    upstreamFailed(n == 0 ? "upstream connection closed" : "upstream connection reset");
    return;
  }
  processUpstream();
}

void DownstreamConnection::upstreamFailed(const char* what) {
  if (response_started_) {
    // Part of the response is out: all the client can learn is that it is truncated.
    releaseUpstream(false);
    countResponse(status_);
    closeNow();
    return;
  }
  const bool nothing_received = evbuffer_get_length(up_->in()) == 0;
  if (reused_ && !retried_ && (retryable_ || body_copied_) && nothing_received) {
    // A pooled connection the upstream closed just as we used it: try once more, fresh.
    retried_ = true;
    worker_->cells->add(cluster_->stats().rq_retry);
    releaseUpstream(false);
    resp_scan_.reset();
    if (!connectUpstream(true)) return;
    sendContinue();
    if (phase_ == Phase::kStream && req_done_) requestComplete();
    return;
  }
  outcome(upstream::Outcome::kGatewayFailure);
  if (retryAfter(Failure::kReset)) return;
  releaseUpstream(false);
  worker_->cells->add(cluster_->stats().rq_5xx);
  std::string body = what;
  body.append("\n");
  localReply(502, body, !req_done_);
}

void DownstreamConnection::releaseUpstream(bool reusable) {
  if (up_ == nullptr) return;
  worker_->cells->gaugeAdd(up_->endpointStats().rq_active, -1);
  if (reusable) {
    worker_->pool.release(up_);
  } else {
    worker_->pool.destroy(up_);
  }
  up_ = nullptr;
}

void DownstreamConnection::processUpstream() {
  while (!response_started_) {
    size_t len = evbuffer_get_length(up_->in());
    if (len == 0) return;
    size_t want = std::min(len, limits_.max_head_bytes + 1);
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(up_->in(), want));
    size_t head_len = 0;
    Error err;
    ParseStatus st =
        findHeadEnd(std::string_view(data, want), limits_, &resp_scan_, &head_len, &err);
    if (st == ParseStatus::kIncomplete) return;
    ResponseHead& head = *worker_->response_head;
    if (st == ParseStatus::kDone) {
      st = parseResponseHead(std::string_view(data, head_len), limits_, &head, &err);
    }
    if (st != ParseStatus::kDone) {
      log::debug("bad response from %s: %s", endpoint_->name, err.reason);
      retryable_ = false;
      upstreamFailed("upstream sent an invalid response");
      return;
    }
    if (head.status < 200) {
      if (head.status == 101) {
        retryable_ = false;
        upstreamFailed("upstream switched protocols");
        return;
      }
      // Interim responses: our own 100 Continue already went out; others (103) pass on.
      if (head.status != 100 && version_minor_ == 1) {
        HeadWriter w(out_);
        add(w, "HTTP/1.1 ");
        addNumber(w, head.status);
        add(w, " ");
        add(w, head.reason);
        add(w, "\r\n");
        for (const Header& h : head.headerList()) {
          if (!isHopByHop(h.name)) addHeader(w, h.name, h.value);
        }
        add(w, "\r\n");
      }
      evbuffer_drain(up_->in(), head_len);
      resp_scan_.reset();
      retryable_ = false;  // the client has seen part of this answer
      continue;
    }
    if (head.status >= 500) {
      outcome(head.status >= 502 && head.status <= 504 ? upstream::Outcome::kGatewayFailure
                                                       : upstream::Outcome::k5xx);
    } else {
      outcome(upstream::Outcome::kSuccess);
    }
    if (retry_ != nullptr && retry_->retriesStatus(head.status) &&
        retryAfter(Failure::kStatus, head.status)) {
      return;  // the answer and its connection are dropped
    }
    event_del(&route_timer_);
    event_del(&try_timer_);
    if (attempt_ > 0 && !retry_->retriesStatus(head.status)) {
      worker_->cells->add(cluster_->stats().rq_retry_success);
    }
    if (!writeResponseHead(head)) return;
    evbuffer_drain(up_->in(), head_len);
  }
  pumpResponseBody();
}

bool DownstreamConnection::writeResponseHead(const ResponseHead& head) {
  response_started_ = true;
  status_ = head.status;
  resp_keep_alive_ = head.keep_alive;
  resp_rechunk_ = resp_dechunk_ = false;
  resp_announced_body_ =
      bodyKind(method_, head) == BodyKind::kNone &&
      (method_ == Method::kHead || head.content_length.has_value() || head.chunked);
  switch (bodyKind(method_, head)) {
    case BodyKind::kNone:
      resp_mode_ = BodyMode::kNone;
      break;
    case BodyKind::kContentLength:
      resp_mode_ = *head.content_length > 0 ? BodyMode::kLength : BodyMode::kNone;
      resp_remaining_ = *head.content_length;
      break;
    case BodyKind::kChunked:
      resp_mode_ = BodyMode::kChunked;
      resp_chunked_.reset();
      resp_dechunk_ = version_minor_ == 0;
      break;
    case BodyKind::kUntilClose:
      resp_mode_ = BodyMode::kClose;
      resp_keep_alive_ = false;
      resp_rechunk_ = version_minor_ == 1;
      break;
  }
  // A response that ends before the request body does leaves the rest of it unread: close.
  close_after_ = !keep_alive_ || !req_done_ || resp_dechunk_ ||
                 (resp_mode_ == BodyMode::kClose && !resp_rechunk_);
  const router::HeaderOps& ops = route_->response_headers;
  HeadWriter w(out_);
  add(w, version_minor_ == 1 ? "HTTP/1.1 " : "HTTP/1.0 ");
  addNumber(w, head.status);
  add(w, " ");
  add(w, head.reason.empty() ? reasonPhrase(head.status) : head.reason);
  add(w, "\r\n");
  for (const Header& h : head.headerList()) {
    bool keep_length = resp_mode_ == BodyMode::kNone && equalsIgnoreCase(h.name, "content-length");
    if ((isHopByHop(h.name) && !keep_length) || namedByConnection(head, h.name) ||
        removedBy(ops, h.name)) {
      continue;
    }
    addHeader(w, h.name, h.value);
  }
  addHeader(w, "via", kVia);
  addOps(w, ops);
  if (resp_mode_ == BodyMode::kLength) {
    add(w, "content-length: ");
    addNumber(w, resp_remaining_);
    add(w, "\r\n");
  } else if ((resp_mode_ == BodyMode::kChunked && !resp_dechunk_) || resp_rechunk_) {
    addHeader(w, "transfer-encoding", "chunked");
  }
  if (close_after_) {
    addHeader(w, "connection", "close");
  } else if (version_minor_ == 0) {
    addHeader(w, "connection", "keep-alive");
  }
  add(w, "\r\n");
  return true;
}

void DownstreamConnection::pumpResponseBody() {
  bool done = resp_mode_ == BodyMode::kNone;
  evbuffer* from = up_ != nullptr ? up_->in() : nullptr;
  // Move, then write; repeat while the write made room and bytes wait (one move stops at the
  // window, and a write that empties out_ leaves no event to come back on).
  for (bool stuck = false; !stuck;) {
    while (!done && !stuck && from != nullptr && evbuffer_get_length(from) > 0 &&
           evbuffer_get_length(out_) < window_) {
      switch (resp_mode_) {
        case BodyMode::kLength: {
          size_t n = std::min<uint64_t>(resp_remaining_, evbuffer_get_length(from));
          evbuffer_remove_buffer(from, out_, n);
          resp_remaining_ -= n;
          done = resp_remaining_ == 0;
          break;
        }
        case BodyMode::kChunked: {
          std::string_view segment = firstSegment(from);
          if (segment.empty()) {
            stuck = true;
            break;
          }
          Error err;
          ChunkedDecoder::Result r = resp_chunked_.decode(segment, &err);
          if (r.status == ParseStatus::kError) {
            log::debug("bad chunked body from %s: %s", endpoint_->name, err.reason);
            releaseUpstream(false);
            countResponse(status_);
            closeNow();
            return;
          }
          if (resp_dechunk_) {
            evbuffer_add(out_, r.data.data(), r.data.size());
            evbuffer_drain(from, r.consumed);
          } else {
            evbuffer_remove_buffer(from, out_, r.consumed);
          }
          done = r.status == ParseStatus::kDone;
          break;
        }
        case BodyMode::kClose: {
          size_t n = evbuffer_get_length(from);
          if (resp_rechunk_) {
            char line[kMaxChunkHeaderBytes];
            evbuffer_add(out_, line, encodeChunkHeader(n, line));
            evbuffer_remove_buffer(from, out_, n);
            add(out_, "\r\n");
          } else {
            evbuffer_remove_buffer(from, out_, n);
          }
          break;
        }
        case BodyMode::kNone:
          done = true;
          break;
      }
    }
    if (resp_mode_ == BodyMode::kClose && upstream_eof_ && evbuffer_get_length(from) == 0) {
      done = true;
    }
    if (done) break;  // endStream() sends it
    flushDownstream();
    if (phase_ != Phase::kStream) return;
    stuck = stuck || done || from == nullptr || evbuffer_get_length(from) == 0 ||
            evbuffer_get_length(out_) >= window_;
  }
  if (done) {
    responseComplete();
    return;
  }
  if (up_ != nullptr) up_->wantRead(!upstream_eof_ && evbuffer_get_length(out_) < window_);
}

void DownstreamConnection::responseComplete() {
  if (resp_rechunk_) add(out_, kLastChunk);
  // Not after a bodiless answer that announced a body (HEAD, 204, 304 with Content-Length or
  // chunked): an upstream that wrongly sends that body would have it taken as the next
  // request's response.
  const bool reusable = up_ != nullptr && resp_keep_alive_ && req_done_ &&
                        resp_mode_ != BodyMode::kClose && !resp_announced_body_;
  if (up_ != nullptr) {
    auto elapsed = std::chrono::duration<double>(Clock::now() - upstream_start_).count();
    worker_->cells->observe(cluster_->stats().rq_time, elapsed);
  }
  releaseUpstream(reusable);
  countResponse(status_);
  endStream(close_after_);
}

void DownstreamConnection::countResponse(int status) {
  int cls = status / 100 - 1;
  if (cls >= 0 && cls < 5) worker_->cells->add(lstats_.rq_by_class[cls]);
  auto elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  worker_->cells->observe(lstats_.rq_time, elapsed);
}

void DownstreamConnection::settleRequest() {
  event_del(&route_timer_);
  event_del(&try_timer_);
  event_del(&wait_timer_);
  wait_ = Wait::kNone;
  route_timer_armed_ = false;
  if (route_slot_) {
    traffic_->active.fetch_sub(1, std::memory_order_relaxed);
    route_slot_ = false;
  }
  if (cluster_slot_) {
    cluster_->counters().rq_active.fetch_sub(1, std::memory_order_relaxed);
    cluster_slot_ = false;
  }
  if (retry_slot_) {
    cluster_->counters().retries_active.fetch_sub(1, std::memory_order_relaxed);
    retry_slot_ = false;
  }
  if (body_copied_) {
    evbuffer_drain(body_copy_, evbuffer_get_length(body_copy_));
    body_copied_ = false;
  }
  // A request that ends before its body did: its copies cannot be completed either.
  for (Shadow* shadow : shadows_) shadow->abort();
  shadows_.clear();
  traffic_ = nullptr;
  retry_ = nullptr;
  stream_idle_ = idle_timeout_;
}

void DownstreamConnection::endStream(bool close) {
  settleRequest();
  gen_ = nullptr;
  route_ = nullptr;
  cluster_ = nullptr;
  endpoint_ = nullptr;
  response_started_ = false;
  scan_.reset();
  head_bytes_seen_ = false;
  waiting_body_ = false;
  // A client that half-closed after pipelining still gets answers to what it sent.
  const bool closing =
      close || drain_ || worker_->draining || (peer_closed_ && evbuffer_get_length(in_) == 0);
  if (closing) {
    flushDownstream();
    if (phase_ == Phase::kClosed) return;
    beginClose();
    return;
  }
  // Kept alive: the answer leaves at the end of the loop pass, with the others answered in it.
  defer(kDeferDownstream);
  phase_ = Phase::kHead;
  setTimer(Timer::kIdle, idle_timeout_);
  // Serve a pipelined request already buffered, and read again.
  if (!in_process_) process();
}

void DownstreamConnection::localReply(int status, std::string_view body, bool close,
                                      const router::HeaderOps* ops, std::string_view location,
                                      const char* overflow, std::string_view headers) {
  if (phase_ == Phase::kHead) {
    start_ = Clock::now();
    version_minor_ = 1;
    method_ = Method::kGet;
  }
  close = close || !keep_alive_ || phase_ == Phase::kHead;
  phase_ = Phase::kStream;
  {
    HeadWriter w(out_);  // flushed before endStream() writes to the socket
    add(w, version_minor_ == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
    addNumber(w, status);
    add(w, " ");
    add(w, reasonPhrase(status));
    add(w, "\r\n");
    if (!location.empty()) addHeader(w, "location", location);
    if (overflow != nullptr) addHeader(w, "x-sluice-overflow", overflow);
    add(w, headers);
    if (ops != nullptr) {
      for (const auto& a : ops->add) {
        if (!equalsIgnoreCase(a.name, "content-length")) addHeader(w, a.name, a.value);
      }
    }
    // These statuses never have a body (RFC 9110 6.4.1), nor a Content-Length of ours.
    const bool bodiless = status < 200 || status == 204 || status == 304;
    if (bodiless) body = {};
    if (!body.empty()) addHeader(w, "content-type", "text/plain");
    if (status >= 200 && status != 204 && status != 304) {
      add(w, "content-length: ");
      addNumber(w, body.size());
      add(w, "\r\n");
    }
    if (close) {
      addHeader(w, "connection", "close");
    } else if (version_minor_ == 0) {
      addHeader(w, "connection", "keep-alive");
    }
    add(w, "\r\n");
    if (method_ != Method::kHead) add(w, body);
  }
  status_ = status;
  countResponse(status);
  endStream(close);
}

void DownstreamConnection::redirectToHttps(const RequestHead& head) {
  std::string_view host = head.host;
  // Without its port: an IPv6 literal keeps its brackets.
  const size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.empty()) {
    evbuffer_drain(in_, head.head_len);
    localReply(400, "no host to redirect to\n", true);
    return;
  }
  std::string location = "https://";
  location.append(host);
  if (listener_->https_redirect_port != 443) {
    location.append(":").append(std::to_string(listener_->https_redirect_port));
  }
  location.append(head.path == "*" ? std::string_view("/") : head.path);
  if (head.has_query) location.append("?").append(head.query);
  evbuffer_drain(in_, head.head_len);
  localReply(static_cast<int>(listener_->https_redirect_code), "", !discardBufferedBody(), nullptr,
             location);
}

bool DownstreamConnection::discardBufferedBody() {
  switch (req_mode_) {
    case BodyMode::kNone:
      req_done_ = true;
      return true;
    case BodyMode::kLength:
      if (evbuffer_get_length(in_) < req_remaining_) return false;
      evbuffer_drain(in_, req_remaining_);
      req_done_ = true;
      return true;
    case BodyMode::kChunked: {
      size_t len = evbuffer_get_length(in_);
      if (len == 0) return false;
      const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in_, len));
      Error err;
      ChunkedDecoder::Result r = req_chunked_.decode(std::string_view(data, len), &err);
      // The decoder returns at most one data run per call: loop over the buffered bytes.
      size_t used = 0;
      while (r.status == ParseStatus::kIncomplete && r.consumed > 0 && used + r.consumed < len) {
        used += r.consumed;
        r = req_chunked_.decode(std::string_view(data + used, len - used), &err);
      }
      if (r.status != ParseStatus::kDone) return false;
      evbuffer_drain(in_, used + r.consumed);
      req_done_ = true;
      return true;
    }
    case BodyMode::kClose:
      return false;
  }
  return false;
}

void DownstreamConnection::flushDownstream() {
  if (phase_ == Phase::kClosed) return;
  while (evbuffer_get_length(out_) > 0) {
    ssize_t n = tls_ == nullptr ? writeFrom(out_, fd_) : tls_->conn->writeFrom(out_);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      // The client is gone.
      releaseUpstream(false);
      closeNow();
      return;
    }
    if (n == 0) break;
    ++progress_;
    client_bytes_ += static_cast<uint64_t>(n);
  }
  wantWrite(evbuffer_get_length(out_) > 0);
  if (tls_ != nullptr) syncTlsEvents();
}

void DownstreamConnection::onWritable() {
  flushDownstream();
  if (phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kClosing) {
    if (evbuffer_get_length(out_) == 0) beginClose();
    return;
  }
  if (phase_ == Phase::kHead && evbuffer_get_length(out_) < window_) {
    process();  // pipelined requests waiting for room
    return;
  }
  if (phase_ == Phase::kStream && response_started_ && up_ != nullptr &&
      evbuffer_get_length(out_) < window_) {
    // Room again: forward what the upstream already sent, then read more of it.
    pumpResponseBody();
  }
}

void DownstreamConnection::beginClose() {
  phase_ = Phase::kClosing;
  if (evbuffer_get_length(out_) > 0) {
    wantRead(false);
    wantWrite(true);
    progress_at_arm_ = progress_;
    setTimer(Timer::kStream, idle_timeout_);
    return;
  }
  if (peer_closed_) {
    closeNow();
    return;
  }
  // Everything is sent: stop sending, and drain what the client still sends for a moment so
  // that its unread bytes do not turn our close into a reset that destroys the answer.
  if (tls_ != nullptr) tls_->conn->shutdown();  // close_notify
  shutdown(fd_, SHUT_WR);
  phase_ = Phase::kLingering;
  wantWrite(false);
  evbuffer_drain(in_, evbuffer_get_length(in_));
  setTimer(Timer::kLinger, kLingerTimeout);
  wantRead(true);
}

void DownstreamConnection::defer(Deferred what) {
  if (deferred_ == 0) worker_->deferred.push_back(this);
  deferred_ |= what;
}

void DownstreamConnection::runDeferred() {
  const uint8_t what = deferred_;
  deferred_ = 0;
  if ((what & kDeferUpstream) != 0 && up_ != nullptr && up_->connected() &&
      evbuffer_get_length(up_->out()) > 0 && !up_->flush()) {
    upstreamFailed("upstream write error");
    if (phase_ == Phase::kClosed) return;
  }
  // As if the socket had turned writable: send, then whatever waited for room.
  if ((what & kDeferDownstream) != 0) onWritable();
}

void flushDeferred(WorkerContext* worker) {
  // By index: running one may defer more (a retry, the next pipelined answer).
  for (size_t i = 0; i < worker->deferred.size(); ++i) {
    DownstreamConnection* c = worker->deferred[i];
    if (c != nullptr) {
      worker->deferred[i] = nullptr;
      c->runDeferred();
    }
  }
  worker->deferred.clear();
}

void DownstreamConnection::closeNow() {
  if (phase_ == Phase::kClosed) return;
  if (deferred_ != 0) {
    deferred_ = 0;
    auto& d = worker_->deferred;
    *std::find(d.begin(), d.end(), this) = nullptr;
  }
  releaseUpstream(false);
  settleRequest();
  wantRead(false);
  wantWrite(false);
  if (tls_ != nullptr) {
    // TLS may watch an event neither reading_ nor writing_ asks for.
    event_del(&sock_read_);
    event_del(&sock_write_);
    // An idle or drained connection tells its client it ends here (not a truncation).
    if (!tls_->handshaking && !peer_closed_ && tls_->conn != nullptr) tls_->conn->shutdown();
  }
  event_del(&timer_);
  event_del(&body_timer_);
  event_del(&rate_timer_);
  phase_ = Phase::kClosed;
  close(fd_);
  fd_ = -1;
  worker_->cells->gaugeAdd(lstats_.cx_active, -1);
  counter_->connections.fetch_sub(1, std::memory_order_relaxed);
  if (address_counted_) counter_->per_address.release(address_);
  gen_ = nullptr;
  seen_gen_ = nullptr;
  table_ = nullptr;
  accept_gen_.reset();
  auto& list = worker_->connections;
  list.erase(std::find(list.begin(), list.end(), this));
  worker_->closed.push_back(this);
  event_active(worker_->reaper, EV_TIMEOUT, 0);
}

void DownstreamConnection::drain() {
  drain_ = true;
  if (phase_ == Phase::kHead && evbuffer_get_length(in_) == 0) closeNow();
}

void acceptConnection(WorkerContext* worker, int fd, const sockaddr_storage& peer,
                      const std::string& listener, std::shared_ptr<ListenerCounter> counter) {
  std::shared_ptr<const server::Generation> gen = worker->generation;
  const server::ListenerConfig* config = gen != nullptr ? gen->listener(listener) : nullptr;
  if (config == nullptr || worker->draining) {
    close(fd);
    return;
  }
  // Accepted between the guard turning on and this worker pausing its listeners.
  if (worker->overload != nullptr && worker->overload->active.load(std::memory_order_relaxed)) {
    worker->cells->add(worker->overload->cx_refused);
    close(fd);
    return;
  }
  if (config->max_connection_rate != 0 &&
      !counter->rate.admit(
          config->max_connection_rate,
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
              .count())) {
    worker->cells->add(config->stats.cx_rate_limited);
    close(fd);
    return;
  }
  if (config->ip_filter != nullptr && config->xff_hops == 0) {
    std::optional<ip_filter::IpAddress> ip = ip_filter::IpAddress::fromSockaddr(peer);
    if (!ip.has_value() || !config->ip_filter->admits(*ip)) {
      worker->cells->add(config->stats.ip_denied);
      close(fd);
      return;
    }
  }
  uint32_t n = counter->connections.fetch_add(1, std::memory_order_relaxed);
  if (config->max_connections != 0 && n >= config->max_connections) {
    counter->connections.fetch_sub(1, std::memory_order_relaxed);
    worker->cells->add(config->stats.cx_overflow);
    close(fd);
    return;
  }
  AddressKey address;
  const bool per_address = config->max_connections_per_ip != 0 && addressKey(peer, &address);
  if (per_address && !counter->per_address.acquire(address, config->max_connections_per_ip)) {
    counter->connections.fetch_sub(1, std::memory_order_relaxed);
    worker->cells->add(config->stats.cx_per_ip_overflow);
    close(fd);
    return;
  }
  auto* conn =
      new DownstreamConnection(worker, fd, peer, std::move(gen), config, std::move(counter));
  if (per_address) conn->countedAddress(address);
  worker->connections.push_back(conn);
  conn->start();
}

void drainConnections(WorkerContext* worker) {
  worker->draining = true;
  worker->pool.drain();
  // drain() may close connections, which removes them from the list.
  std::vector<DownstreamConnection*> all = worker->connections;
  for (DownstreamConnection* c : all) c->drain();
}

void reapConnections(WorkerContext* worker) {
  for (DownstreamConnection* c : worker->closed) delete c;
  worker->closed.clear();
}

void closeAllConnections(WorkerContext* worker) {
  std::vector<DownstreamConnection*> all = worker->connections;
  for (DownstreamConnection* c : all) c->closeNow();
  reapConnections(worker);
}

}  // namespace sluice::http
