#include "proxy/xds/ads_client.h"

#include <algorithm>
#include <array>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "grpcpp/grpcpp.h"
#include "sluice/discovery/v1/ads.grpc.pb.h"

namespace sluice::xds {

namespace {

using discovery::v1::AggregatedDiscoveryService;
using discovery::v1::DiscoveryRequest;
using discovery::v1::DiscoveryResponse;
using Stream = grpc::ClientReaderWriter<DiscoveryRequest, DiscoveryResponse>;

// How long one attempt waits for the channel to connect (a black-holed control plane would
// otherwise hold it for gRPC's 20 s), and how often that wait looks at stop().
constexpr absl::Duration kConnectTimeout = absl::Seconds(5);
constexpr absl::Duration kConnectPoll = absl::Milliseconds(50);
// Detects a control plane that vanished without closing the connection. Above the 5-minute
// minimum ping interval gRPC servers enforce by default (sluice-cp keeps the default).
constexpr absl::Duration kKeepaliveTime = absl::Seconds(330);
// Config bundles are larger than gRPC's 4 MiB default receive limit (as on sluice-cp).
constexpr int kMaxResponseBytes = 64 << 20;
// google.rpc.Code INVALID_ARGUMENT: the proxy rejects the config.
constexpr int kNackCode = 3;

class AdsClientImpl final : public AdsClient {
 public:
  AdsClientImpl(AdsClientOptions options, UpdateCallback on_update, StateCallback on_state)
      : options_(std::move(options)),
        on_update_(std::move(on_update)),
        on_state_(std::move(on_state)) {}

  ~AdsClientImpl() override { stop(); }

  void start() override {
    absl::MutexLock join_lock(&join_mu_);
    absl::MutexLock lock(&mu_);
    if (started_ || stopping_) return;
    started_ = true;
    thread_ = std::thread([this] { run(); });
  }

  void stop() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;  // also wakes a backoff wait
      if (context_ != nullptr) context_->TryCancel();
    }
    absl::MutexLock join_lock(&join_mu_);
    if (thread_.joinable()) {
      thread_.join();
      log::info("xds: stopped");
    }
  }

  void ack(const Update& update) override {
    {
      absl::MutexLock lock(&mu_);
      if (!producedLocked(update)) return;
      acked_[static_cast<int>(update.kind)] = update.version;
    }
    DiscoveryRequest request;
    request.set_type_url(std::string(config::kindInfo(update.kind).type_url));
    request.set_version_info(update.version);
    request.set_response_nonce(update.nonce);
    send(update.stream_id, request);
  }

  void nack(const Update& update, const std::string& running_version,
            const std::string& message) override {
    {
      absl::MutexLock lock(&mu_);
      if (!producedLocked(update)) return;
    }
    DiscoveryRequest request;
    request.set_type_url(std::string(config::kindInfo(update.kind).type_url));
    request.set_version_info(running_version);
    request.set_response_nonce(update.nonce);
    request.mutable_error_detail()->set_code(kNackCode);
    request.mutable_error_detail()->set_message(message);
    send(update.stream_id, request);
  }

 private:
  // The outcome of one connection attempt, for the backoff.
  struct Attempt {
    bool established = false;
    bool healthy = false;  // delivered a response or stayed up for max_backoff
  };

  void run() {
    absl::BitGen random;
    absl::Duration backoff = options_.initial_backoff;
    while (!stopping()) {
      const Attempt attempt = runStream();
      if (attempt.established) notifyState(false);
      if (attempt.healthy) backoff = options_.initial_backoff;
      const absl::Duration wait = backoff * absl::Uniform(random, 0.5, 1.5);
      backoff = std::min(backoff * 2, options_.max_backoff);
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      log::debug("xds: reconnecting to %s in %s", options_.target, absl::FormatDuration(wait));
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
    }
  }

  std::shared_ptr<grpc::Channel> makeChannel() const {
    grpc::ChannelArguments args;
    // A private subchannel per attempt: gRPC's own reconnect backoff, kept in shared
    // subchannels, would otherwise fail new attempts fast and override ours.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, absl::ToInt64Milliseconds(kKeepaliveTime));
    // The stream is idle between config changes; keepalive pings must go on without data.
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    args.SetMaxReceiveMessageSize(kMaxResponseBytes);
    if (!options_.user_agent.empty()) args.SetUserAgentPrefix(options_.user_agent);
    return grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(), args);
  }

  // Waits for the channel to be ready, giving up on a refused connection, after kConnectTimeout
  // or on stop().
  bool waitConnected(grpc::Channel& channel) {
    const absl::Time deadline = absl::Now() + kConnectTimeout;
    grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
    while (state != GRPC_CHANNEL_READY) {
      if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
      const absl::Time now = absl::Now();
      if (now >= deadline || stopping()) return false;
      channel.WaitForStateChange(state, absl::ToChronoTime(std::min(now + kConnectPoll, deadline)));
      state = channel.GetState(/*try_to_connect=*/true);
    }
    return true;
  }

  Attempt runStream() {
    Attempt attempt;
    std::shared_ptr<grpc::Channel> channel = makeChannel();
    if (!waitConnected(*channel)) {
      if (!stopping()) log::warn("xds: cannot connect to %s", options_.target);
      return attempt;
    }

    grpc::ClientContext context;
    std::array<std::string, config::kKindCount> versions;
    uint64_t stream_id;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return attempt;
      context_ = &context;  // from here stop() can cancel every blocking call below
      stream_id = ++stream_id_;
      versions = acked_;
    }
    std::unique_ptr<AggregatedDiscoveryService::Stub> stub =
        AggregatedDiscoveryService::NewStub(channel);
    std::unique_ptr<Stream> stream = stub->StreamResources(&context);

    bool subscribed = true;
    for (int k = 0; k < config::kKindCount && subscribed; ++k) {
      DiscoveryRequest request;
      if (k == 0) {
        request.mutable_node()->set_id(options_.node_id);
        request.mutable_node()->set_group(options_.node_group);
        request.mutable_node()->set_user_agent(options_.user_agent);
      }
      request.set_type_url(std::string(config::kindInfo(static_cast<config::Kind>(k)).type_url));
      request.set_version_info(versions[k]);
      subscribed = stream->Write(request);
    }

    if (subscribed) {
      {
        absl::MutexLock lock(&mu_);
        stream_ = stream.get();
      }
      attempt.established = true;
      log::info("xds: connected to %s (stream %d)", options_.target, stream_id);
      notifyState(true);
      const absl::Time established = absl::Now();
      DiscoveryResponse response;
      while (stream->Read(&response)) {
        attempt.healthy = true;
        handle(stream_id, response);
      }
      if (absl::Now() - established >= options_.max_backoff) attempt.healthy = true;
    }

    {
      absl::MutexLock lock(&mu_);
      stream_ = nullptr;
    }
    grpc::Status status;
    {
      // Finish must not overlap an answer being written; context_ stays set so stop() can
      // still cancel a write that never completes.
      absl::MutexLock write_lock(&write_mu_);
      status = stream->Finish();
    }
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
    }
    if (!stopping()) {
      log::warn("xds: stream %d to %s ended: %s (%d)", stream_id, options_.target,
                status.error_message(), static_cast<int>(status.error_code()));
    }
    return attempt;
  }

  void handle(uint64_t stream_id, DiscoveryResponse& response) {
    const config::KindInfo* info = config::findKindByTypeUrl(response.type_url());
    if (info == nullptr) {
      log::warn("xds: ignoring a response of unknown type '%s'", response.type_url());
      return;
    }
    log::debug("xds: received %s version %s (nonce %s, %d resources)", info->name,
               response.version_info(), response.nonce(), response.resources_size());
    Update update;
    update.kind = info->kind;
    update.version = std::move(*response.mutable_version_info());
    update.nonce = std::move(*response.mutable_nonce());
    update.stream_id = stream_id;
    update.resources.reserve(response.resources_size());
    for (google::protobuf::Any& resource : *response.mutable_resources()) {
      update.resources.push_back(std::move(resource));
    }
    if (!stopping()) on_update_(std::move(update));
  }

  void notifyState(bool connected) {
    if (!stopping() && on_state_) on_state_(connected);
  }

  // Writes an answer on the stream `stream_id` if it is still the current one.
  void send(uint64_t stream_id, const DiscoveryRequest& request) {
    absl::MutexLock write_lock(&write_mu_);
    Stream* stream;
    {
      absl::MutexLock lock(&mu_);
      stream = stream_id == stream_id_ ? stream_ : nullptr;
    }
    if (stream == nullptr) {
      log::debug("xds: dropping the answer to nonce %s of stream %d: that stream is gone",
                 request.response_nonce(), stream_id);
      return;
    }
    // A failed write means the stream broke; the reading thread sees that and reconnects.
    if (!stream->Write(request)) log::debug("xds: writing to stream %d failed", stream_id);
  }

  // Only updates this client produced (stream ids start at 1) name a valid kind.
  bool producedLocked(const Update& update) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return update.stream_id != 0 && update.stream_id <= stream_id_;
  }

  bool stopping() const {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }

  const AdsClientOptions options_;
  const UpdateCallback on_update_;
  const StateCallback on_state_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The current attempt's call, for stop() to cancel.
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The established stream answers go to; null between streams.
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t stream_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<std::string, config::kKindCount> acked_ ABSL_GUARDED_BY(mu_);

  // Serializes writers (gRPC allows one Write alongside the one Read); taken before mu_.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // two concurrent stop()s must not both join
  std::thread thread_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace

std::unique_ptr<AdsClient> AdsClient::create(AdsClientOptions options, UpdateCallback on_update,
                                             StateCallback on_state) {
  return std::make_unique<AdsClientImpl>(std::move(options), std::move(on_update),
                                         std::move(on_state));
}

}  // namespace sluice::xds
