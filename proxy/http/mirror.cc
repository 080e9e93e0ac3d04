#include "proxy/http/mirror.h"

#include <errno.h>
#include <event2/buffer.h>

#include <algorithm>

namespace sluice::http {
namespace {

constexpr std::string_view kShadowSuffix = "-shadow";
constexpr std::string_view kHostPrefix = "host: ";
// Answers are only skipped, so the codec's defaults serve every mirror.
constexpr Limits kLimits;

// Where the shadow suffix goes in `head`: right after the host name in its first header line,
// before any port (Envoy's shadowAppendedHost). npos when that line is not a Host header.
size_t shadowSuffixAt(std::string_view head) {
  const size_t line = head.find("\r\n");
  if (line == std::string_view::npos) return std::string_view::npos;
  const size_t value = line + 2 + kHostPrefix.size();
  if (head.size() < value ||
      !equalsIgnoreCase(head.substr(line + 2, kHostPrefix.size()), kHostPrefix)) {
    return std::string_view::npos;
  }
  const size_t end = head.find("\r\n", value);
  if (end == std::string_view::npos || end == value) return std::string_view::npos;
  const std::string_view host = head.substr(value, end - value);
  const size_t colon = host.rfind(':');
  const size_t bracket = host.rfind(']');  // an IPv6 literal's colons are not a port's
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || bracket < colon)) {
    return value + colon;
  }
  return end;
}

// The first non-empty run of bytes in `buf` (reserving space can leave empty chains in front).
std::string_view firstSegment(evbuffer* buf) {
  evbuffer_iovec vec[4];
  const int n = evbuffer_peek(buf, -1, nullptr, vec, 4);
  for (int i = 0; i < n && i < 4; ++i) {
    if (vec[i].iov_len > 0) return {static_cast<const char*>(vec[i].iov_base), vec[i].iov_len};
  }
  return {};
}

}  // namespace

Shadow* Shadow::start(ShadowSet* set, upstream::ConnPool* pool, const upstream::Cluster& cluster,
                      int worker, uint64_t random, std::string_view head, bool head_request,
                      bool body_expected, absl::Duration timeout) {
  const upstream::ClusterStats& cs = cluster.stats();
  set->cells_->add(cs.rq_mirror);
  const size_t suffix_at = shadowSuffixAt(head);
  auto busy = [&](size_t i) { return pool->busy(cluster.endpoints()[i].pool_key); };
  // A head of another shape is not sent: a copy that the mirror could take for a real request
  // (its own Host) is worse than none.
  const upstream::Endpoint* endpoint =
      suffix_at == std::string_view::npos ? nullptr : cluster.pick(worker, random, busy);
  if (endpoint == nullptr) {
    set->cells_->add(cs.rq_mirror_failed);
    return nullptr;
  }
  auto* shadow = new Shadow(set, pool, cs.rq_mirror_failed, timeout, head_request, body_expected);
  bool reused = false;
  upstream::ConnPool::Refusal refusal;
  shadow->conn_ = pool->acquire(cluster, *endpoint, shadow, &reused, &refusal);
  if (shadow->conn_ == nullptr) {
    delete shadow;
    set->cells_->add(cs.rq_mirror_failed);
    return nullptr;
  }
  set->cells_->add(cs.rq_total);
  set->cells_->add(endpoint->rq_total);
  if (reused) set->cells_->add(cs.rq_reused);
  evbuffer* out = shadow->conn_->out();
  evbuffer_add(out, head.data(), suffix_at);
  evbuffer_add(out, kShadowSuffix.data(), kShadowSuffix.size());
  evbuffer_add(out, head.data() + suffix_at, head.size() - suffix_at);
  // A pooled connection is written from the loop's next pass, off the original request's way
  // (a new one once connected).
  if (shadow->conn_->connected()) shadow->conn_->wantWrite(true);
  if (!body_expected) shadow->armTimer();
  return shadow;
}

Shadow::Shadow(ShadowSet* set, upstream::ConnPool* pool, stats::CounterId failed,
               absl::Duration timeout, bool head_request, bool body_expected)
    : set_(set),
      pool_(pool),
      failed_(failed),
      timeout_(timeout),
      chunked_(kLimits),
      head_request_(head_request),
      feeding_(body_expected) {
  event_assign(&timer_, set->base_, -1, 0, &Shadow::onTimeout, this);
  set->add(this);
}

Shadow::~Shadow() {
  event_del(&timer_);
  if (conn_ != nullptr) pool_->destroy(conn_);
  set_->remove(this);
}

void Shadow::armTimer() {
  timeval tv = absl::ToTimeval(timeout_);
  event_add(&timer_, &tv);
}

void Shadow::feed(evbuffer* data, size_t n) {
  if (conn_ == nullptr) return;  // the copy ended; the original goes on without it
  evbuffer* out = conn_->out();
  // Never past the end: a position there is one evbuffer_peek must not start from.
  n = std::min(n, evbuffer_get_length(data));
  evbuffer_ptr pos;
  evbuffer_ptr_set(data, &pos, 0, EVBUFFER_PTR_SET);
  while (n > 0) {
    evbuffer_iovec vec[16];
    const int got = std::min(evbuffer_peek(data, static_cast<ev_ssize_t>(n), &pos, vec, 16), 16);
    if (got <= 0) break;
    for (int i = 0; i < got && n > 0; ++i) {
      const size_t take = std::min(vec[i].iov_len, n);
      evbuffer_add(out, vec[i].iov_base, take);
      n -= take;
      evbuffer_ptr_set(data, &pos, take, EVBUFFER_PTR_ADD);
    }
  }
  if (conn_->connected() && !conn_->flush()) {
    end(Outcome::kFailed);
    return;
  }
  if (evbuffer_get_length(out) > kMaxBuffered) end(Outcome::kFailed);
}

void Shadow::finishBody() {
  feeding_ = false;
  if (conn_ == nullptr) {
    delete this;
    return;
  }
  armTimer();
}

void Shadow::abort() {
  feeding_ = false;
  if (conn_ == nullptr) {
    delete this;
    return;
  }
  end(Outcome::kFailed);
}

void Shadow::onUpstreamConnected(upstream::UpstreamConn* conn) {
  conn->wantRead(true);
  if (!conn->flush()) end(Outcome::kFailed);
}

void Shadow::onUpstreamConnectFailed(upstream::UpstreamConn*, bool) { end(Outcome::kFailed); }

void Shadow::onUpstreamWritable(upstream::UpstreamConn* conn) {
  if (!conn->flush()) end(Outcome::kFailed);
}

void Shadow::onUpstreamReadable(upstream::UpstreamConn* conn) {
  const ssize_t n = conn->read();
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n == 0 && answer_ == Answer::kUntilClose) {
    answered();
    return;
  }
  if (n <= 0) {
    end(Outcome::kFailed);
    return;
  }
  readAnswer();
}

void Shadow::onTimeout(evutil_socket_t, short, void* arg) {
  static_cast<Shadow*>(arg)->end(Outcome::kFailed);
}

void Shadow::readAnswer() {
  evbuffer* in = conn_->in();
  for (size_t len; (len = evbuffer_get_length(in)) > 0;) {
    switch (answer_) {
      case Answer::kHead: {
        const size_t want = std::min(len, kLimits.max_head_bytes + 1);
        const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, want));
        size_t head_len = 0;
        Error err;
        ParseStatus st =
            findHeadEnd(std::string_view(data, want), kLimits, &scan_, &head_len, &err);
        if (st == ParseStatus::kIncomplete) return;
        ResponseHead& head = set_->response_head_;
        if (st == ParseStatus::kDone) {
          st = parseResponseHead(std::string_view(data, head_len), kLimits, &head, &err);
        }
        // 101: the proxy never asks to switch protocols, so it is as invalid as garbage.
        if (st != ParseStatus::kDone || head.status == 101) {
          end(Outcome::kFailed);
          return;
        }
        evbuffer_drain(in, head_len);
        scan_.reset();
        if (head.status < 200) break;  // interim (100, 103): the final answer follows
        const BodyKind kind = bodyKind(head_request_ ? Method::kHead : Method::kGet, head);
        // As for proxied answers: a bodiless answer that announced a body (HEAD, 204, 304 with
        // framing headers) may be followed by that body from a wrong upstream, so no reuse.
        const bool announced = kind == BodyKind::kNone &&
                               (head_request_ || head.content_length.has_value() || head.chunked);
        reusable_ = head.keep_alive && kind != BodyKind::kUntilClose && !announced;
        switch (kind) {
          case BodyKind::kNone:
            answered();
            return;
          case BodyKind::kContentLength:
            if (*head.content_length == 0) {
              answered();
              return;
            }
            remaining_ = *head.content_length;
            answer_ = Answer::kLength;
            break;
          case BodyKind::kChunked:
            chunked_.reset();
            answer_ = Answer::kChunked;
            break;
          case BodyKind::kUntilClose:
            answer_ = Answer::kUntilClose;
            break;
        }
        break;
      }
      case Answer::kLength: {
        const size_t n = std::min<uint64_t>(remaining_, len);
        evbuffer_drain(in, n);
        remaining_ -= n;
        if (remaining_ == 0) {
          answered();
          return;
        }
        break;
      }
      case Answer::kChunked: {
        const std::string_view segment = firstSegment(in);
        if (segment.empty()) return;
        Error err;
        const ChunkedDecoder::Result r = chunked_.decode(segment, &err);
        if (r.status == ParseStatus::kError) {
          end(Outcome::kFailed);
          return;
        }
        evbuffer_drain(in, r.consumed);
        if (r.status == ParseStatus::kDone) {
          answered();
          return;
        }
        break;
      }
      case Answer::kUntilClose:
        evbuffer_drain(in, len);
        break;
    }
  }
}

void Shadow::answered() {
  // An answer that came before the whole request went out leaves the mirror mid-request: the
  // connection cannot carry another one. (The pool also closes it on unread answer bytes.)
  const bool sent = !feeding_ && evbuffer_get_length(conn_->out()) == 0;
  end(reusable_ && sent ? Outcome::kRelease : Outcome::kClose);
}

void Shadow::end(Outcome outcome) {
  if (outcome == Outcome::kRelease) {
    pool_->release(conn_);
  } else {
    pool_->destroy(conn_);
  }
  conn_ = nullptr;
  event_del(&timer_);
  if (outcome == Outcome::kFailed) set_->cells_->add(failed_);
  if (!feeding_) delete this;
}

ShadowSet::ShadowSet(event_base* base, stats::Cells* cells) : base_(base), cells_(cells) {}

ShadowSet::~ShadowSet() { closeAll(); }

void ShadowSet::closeAll() {
  while (first_ != nullptr) delete first_;
}

void ShadowSet::add(Shadow* shadow) {
  shadow->next_ = first_;
  if (first_ != nullptr) first_->prev_ = shadow;
  first_ = shadow;
  ++size_;
}

void ShadowSet::remove(Shadow* shadow) {
  if (shadow->prev_ != nullptr) {
    shadow->prev_->next_ = shadow->next_;
  } else {
    first_ = shadow->next_;
  }
  if (shadow->next_ != nullptr) shadow->next_->prev_ = shadow->prev_;
  --size_;
}

}  // namespace sluice::http
