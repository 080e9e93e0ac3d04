#pragma once

// The HTTP/1.1 connection manager: one DownstreamConnection per accepted client connection,
// running on its worker's loop. It reads request heads with the strict codec, routes them with
// the generation current at the request's start, forwards each request to an upstream
// connection from the worker's pool, streams bodies both ways within a bounded window, and
// answers locally when no upstream answers (404, 502, 503, 504). Requests on a connection are
// served one after another, so pipelined requests are answered in order.
#include <event2/event.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/http/admission.h"
#include "proxy/http/codec.h"
#include "proxy/http/mirror.h"
#include "proxy/server/generation.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/conn_pool.h"

namespace sluice::http {

class DownstreamConnection;

// Per-worker state shared by that worker's connections (one thread: no locks).
struct WorkerContext {
  WorkerContext(int index, event_base* base, stats::Cells* cells);
  ~WorkerContext();

  int index;
  event_base* base;
  stats::Cells* cells;
  upstream::ConnPool pool;
  // Mirrored copies of requests in flight; after `pool`, so that they go first.
  ShadowSet shadows;
  // The generation new requests start on; replaced by the worker when the main thread posts one.
  std::shared_ptr<const server::Generation> generation;
  // Null when the process has no overload guard.
  const Overload* overload = nullptr;
  // Scratch space for the head being parsed: a head is parsed and forwarded in one go, so one of
  // each serves every connection of the worker.
  std::unique_ptr<RequestHead> request_head;
  std::unique_ptr<ResponseHead> response_head;

  bool draining = false;
  std::vector<DownstreamConnection*> connections;  // open ones, for drain
  // Connections closed during this loop iteration, freed from the loop afterwards (callbacks
  // further up the stack may still refer to them).
  std::vector<DownstreamConnection*> closed;
  event* reaper = nullptr;
  // Connections whose writes wait for the end of this loop pass (nullptr: closed since), so that
  // a pass's answers and forwarded requests leave together and their readers wake once for them.
  std::vector<DownstreamConnection*> deferred;

  uint64_t random();  // xorshift64*, per worker

 private:
  uint64_t rng_;
};

// Sends what connections held back during the loop pass that just ended (the worker calls it
// after each pass).
void flushDeferred(WorkerContext* worker);

// A listener's shared connection counts, across workers and generations: max_connections,
// max_connections_per_ip and max_connection_rate.
struct ListenerCounter {
  std::atomic<uint32_t> connections{0};
  AddressCounts per_address;
  ConnectionRate rate;
};

// Takes over an accepted socket of listener `listener` (a name in the worker's generation).
void acceptConnection(WorkerContext* worker, int fd, const sockaddr_storage& peer,
                      const std::string& listener, std::shared_ptr<ListenerCounter> counter);

// Stops keep-alive on every connection: idle ones close now, busy ones after their response.
void drainConnections(WorkerContext* worker);
// Frees the connections closed since the last call (the worker's `reaper` event runs it).
void reapConnections(WorkerContext* worker);
// Closes every connection at once (the end of a drain).
void closeAllConnections(WorkerContext* worker);

}  // namespace sluice::http
