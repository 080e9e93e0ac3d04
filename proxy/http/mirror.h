#pragma once

// Request mirroring (Envoy's request_mirror_policies): copies of requests sent to a mirror
// cluster, whose answers are read and thrown away. Nothing about a copy reaches the client or
// the request it copies.
#include <event2/event.h>
#include <event2/event_struct.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/time/time.h"
#include "proxy/http/chunked.h"
#include "proxy/http/codec.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/cluster.h"
#include "proxy/upstream/conn_pool.h"

struct evbuffer;

namespace sluice::http {

class ShadowSet;

// A copy of a request sent to a mirror cluster; its answer is read and discarded. It never
// delays or fails the request it copies: it owns its upstream connection, lives on after the
// original request ends, and deletes itself when done. Worker thread only.
//
// The caller's pointer: a shadow started with `body_expected` stays valid until the caller has
// called finishBody() or abort() (one of them, once), whatever becomes of the copy meanwhile
// (feeds after it ended are dropped). After that call, and right after start() for a shadow
// without a body, the caller must forget the pointer.
class Shadow : public upstream::UpstreamOwner {
 public:
  // Unsent bytes (head included) a shadow buffers for a mirror slower than the client; beyond
  // this the copy fails rather than grow without bound.
  static constexpr size_t kMaxBuffered = 1 << 20;

  // Starts the copy: picks an endpoint of `cluster` (cluster.pick with `worker` and `random`),
  // acquires a connection from `pool`, and queues `head`, a complete upstream request head as
  // the proxy writes it (request line, then "host: X\r\n" as the FIRST header line, ...,
  // "\r\n\r\n"), with the host changed to "X-shadow" (before the port, if any: Envoy's
  // convention). Counts rq_mirror, and rq_total (and rq_reused) like any request to the cluster.
  // Returns nullptr and counts rq_mirror_failed when no endpoint or connection is available (or
  // `head` does not start as described). `body_expected`: the request has a body that will
  // arrive through feed(). `timeout` bounds the copy from the end of the request (start()
  // without a body, finishBody() with one). It must be positive even for a route whose own
  // timeout is off: no client bounds a copy, and a zero fails it at once.
  static Shadow* start(ShadowSet* set, upstream::ConnPool* pool, const upstream::Cluster& cluster,
                       int worker, uint64_t random, std::string_view head, bool head_request,
                       bool body_expected, absl::Duration timeout);

  // Copies the first n bytes of `data` (the body as the proxy forwards it, framing included)
  // without draining them.
  void feed(evbuffer* data, size_t n);
  // The request body is complete.
  void finishBody();
  // The client went away mid-body: gives up (counts rq_mirror_failed unless the copy had
  // already ended).
  void abort();

 private:
  friend class ShadowSet;
  // What becomes of the connection when the copy ends.
  enum class Outcome { kRelease, kClose, kFailed };
  // Where the answer's reading stands.
  enum class Answer : uint8_t { kHead, kLength, kChunked, kUntilClose };

  Shadow(ShadowSet* set, upstream::ConnPool* pool, stats::CounterId failed, absl::Duration timeout,
         bool head_request, bool body_expected);
  ~Shadow() override;

  void onUpstreamConnected(upstream::UpstreamConn* conn) override;
  void onUpstreamConnectFailed(upstream::UpstreamConn* conn, bool timed_out) override;
  void onUpstreamReadable(upstream::UpstreamConn* conn) override;
  void onUpstreamWritable(upstream::UpstreamConn* conn) override;
  static void onTimeout(evutil_socket_t fd, short what, void* arg);

  void armTimer();
  // Discards what has arrived of the answer; ends the copy once all of it is read.
  void readAnswer();
  void answered();
  // Gives back or closes the connection and counts a failure; deletes the shadow unless its
  // caller still feeds it. Nothing may touch the shadow after calling it.
  void end(Outcome outcome);

  ShadowSet* set_;
  upstream::ConnPool* pool_;
  upstream::UpstreamConn* conn_ = nullptr;  // nullptr once the copy ended
  // Copied: the cluster's generation may end before the copy does.
  stats::CounterId failed_;
  absl::Duration timeout_;
  event timer_;
  Shadow* prev_ = nullptr;  // in set_
  Shadow* next_ = nullptr;
  HeadScan scan_;
  ChunkedDecoder chunked_;
  uint64_t remaining_ = 0;  // of a Content-Length answer's body
  Answer answer_ = Answer::kHead;
  bool head_request_;
  bool feeding_;  // the caller may still call feed(), finishBody() or abort()
  // The answer's framing and keep-alive let the connection carry another request.
  bool reusable_ = false;
};

// A worker's live shadows, so that shutdown can free them and tests can count them. Worker
// thread only; an intrusive list, so that a shadow joins and leaves without allocating.
class ShadowSet {
 public:
  ShadowSet(event_base* base, stats::Cells* cells);
  // Frees the shadows in flight (closeAll).
  ~ShadowSet();
  ShadowSet(const ShadowSet&) = delete;
  ShadowSet& operator=(const ShadowSet&) = delete;

  size_t size() const { return size_; }
  // Frees every shadow, closing its connection; not counted as failed (shutdown is not the
  // mirror's fault). Call after the requests that feed shadows have ended and before the
  // ConnPool the shadows use goes.
  void closeAll();

 private:
  friend class Shadow;
  void add(Shadow* shadow);
  void remove(Shadow* shadow);

  event_base* base_;
  stats::Cells* cells_;
  // Scratch for the answer head being parsed: a head is parsed and done with in one go, so one
  // serves every shadow of the worker (it is too large to keep one per shadow).
  ResponseHead response_head_;
  Shadow* first_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sluice::http
