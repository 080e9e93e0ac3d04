#pragma once

// The proxy's end of the ADS stream to sluice-cp: one gRPC bidirectional stream on its own
// thread, subscribing to every resource type, reconnecting with jittered exponential backoff.
//
// Responses are handed to `on_update` on the stream thread (the proxy posts them to its main
// loop); the main thread answers each with ack() or nack(). On every (re)connect the client
// subscribes to all four types, reporting the versions last ACKed so an unchanged control plane
// need not resend them.
//
// Reconnects: each attempt opens a fresh channel and waits at most a few seconds for it to
// connect. After a failed attempt or a lost stream the client waits `backoff` scaled by a random
// factor in [0.5, 1.5) (so proxies restarted together do not reconnect together); `backoff`
// starts at `initial_backoff` and doubles per failure up to `max_backoff`. It goes back to
// `initial_backoff` after a stream that delivered a response or stayed up for `max_backoff`
// (a resubscription with current versions gets no response, yet the stream was healthy).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/config/config_set.h"
#include "google/protobuf/any.pb.h"

namespace sluice::xds {

struct Update {
  config::Kind kind;
  std::string version;
  std::string nonce;
  std::vector<google::protobuf::Any> resources;
  uint64_t stream_id = 0;  // which connection it came on; an ack for an old stream is dropped
};

struct AdsClientOptions {
  std::string target;  // "127.0.0.1:18000"
  std::string node_id;
  std::string node_group;
  std::string user_agent;  // "sluice/0.1"
  absl::Duration initial_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(30);
};

class AdsClient {
 public:
  using UpdateCallback = std::function<void(Update)>;
  // Called on the stream thread when a stream is established (true: every subscription was
  // written) or when an established stream ends (false, once per stream). Failed connection
  // attempts while already disconnected are not reported again.
  using StateCallback = std::function<void(bool connected)>;

  // Callbacks run on the stream thread and must not call stop().
  static std::unique_ptr<AdsClient> create(AdsClientOptions options, UpdateCallback on_update,
                                           StateCallback on_state);
  // The implementation's destructor calls stop().
  virtual ~AdsClient() = default;

  // Starts the stream thread (once). stop() cancels the stream or the backoff wait and joins the
  // thread; no callback runs after it returns, and none starts once stop() began. Idempotent.
  virtual void start() = 0;
  virtual void stop() = 0;

  // Answers an update. `version` is the type's version the proxy now runs: the update's on an
  // ACK, the last applied one on a NACK. Thread-safe; may block while a write is in flight.
  // Not sent if the update's stream is gone (the new stream resubscribes instead), but an ACK
  // still records the version the proxy runs, which the next subscription reports. An Update
  // this client did not produce is ignored.
  virtual void ack(const Update& update) = 0;
  virtual void nack(const Update& update, const std::string& running_version,
                    const std::string& message) = 0;
};

}  // namespace sluice::xds
