#include "control-plane/ads_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config/config_set.h"
#include "common/log/log.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/impl/codegen/proto_utils.h"

namespace sluice::cp {

using admin::v1::TypeStatus;
using discovery::v1::DiscoveryRequest;
using discovery::v1::DiscoveryResponse;

namespace {

google::protobuf::Timestamp toProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace

// One proxy's stream. gRPC calls the On* methods on its threads; publish() calls onSnapshot() on
// the publisher's thread. `mu_` guards the state; writes are started outside it, one at a time.
class AdsStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
  friend class AdsServer;

 public:
  AdsStream(AdsServer* server, grpc::CallbackServerContext* context,
            std::shared_ptr<const Snapshot> snapshot)
      : server_(server),
        peer_(context->peer()),
        connected_(absl::Now()),
        snapshot_(std::move(snapshot)) {
    StartRead(&request_);
  }

  // Called with the server's lock held: queues what changed; the caller flush()es after
  // releasing that lock (a reference keeps the stream alive until then).
  void onSnapshot(std::shared_ptr<const Snapshot> snapshot) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    snapshot_ = std::move(snapshot);
    for (int k = 0; k < config::kKindCount; ++k) maybeSendLocked(static_cast<config::Kind>(k));
  }

  void ref() { refs_.fetch_add(1); }
  void unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  // Starts the next queued write, or Finish once finish() was called and no write is running.

  admin::v1::ProxyStatus status() const {
    absl::MutexLock lock(&mu_);
    admin::v1::ProxyStatus out;
    out.set_node_id(node_.id());
    out.set_node_group(node_.group());
    out.set_user_agent(node_.user_agent());
    out.set_peer(peer_);
    *out.mutable_connected() = toProto(connected_);
    for (int k = 0; k < config::kKindCount; ++k) {
      const TypeState& st = types_[k];
      if (!st.subscribed) continue;
      TypeStatus* t = out.add_types();
      t->set_type_url(std::string(config::kindInfo(static_cast<config::Kind>(k)).type_url));
      t->set_state(st.state);
      t->set_version_sent(st.version_sent);
      t->set_version_acked(st.version_acked);
      t->set_nonce(st.nonce_sent);
      t->set_last_nack(st.last_nack);
      if (st.nack_time != absl::InfinitePast()) *t->mutable_nack_time() = toProto(st.nack_time);
      *t->mutable_updated() = toProto(st.updated);
    }
    return out;
  }

 private:
  struct TypeState {
    bool subscribed = false;
    TypeStatus::State state = TypeStatus::UNKNOWN;
    std::string version_sent;
    std::string nonce_sent;
    std::string version_acked;
    std::string last_nack;
    absl::Time nack_time = absl::InfinitePast();
    absl::Time updated;
  };

  void OnReadDone(bool ok) override {
    if (!ok) {  // the proxy closed its side, or the call was cancelled
      finish(grpc::Status::OK);
      return;
    }
    DiscoveryRequest request;
    grpc::Status parsed =
        grpc::SerializationTraits<DiscoveryRequest>::Deserialize(&request_, &request);
    if (!parsed.ok()) {
      finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "request is not a sluice.discovery.v1.DiscoveryRequest"));
      return;
    }
    grpc::Status handled;
    {
      absl::MutexLock lock(&mu_);
      handled = handleLocked(request);
    }
    if (!handled.ok()) {
      finish(handled);
      return;
    }
    flush();
    StartRead(&request_);
  }

  grpc::Status handleLocked(const DiscoveryRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (node_.id().empty()) {
      if (request.node().id().empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "the first DiscoveryRequest of a stream must carry node.id");
      }
      node_ = request.node();
      log::info("proxy %s (group '%s') connected from %s", node_.id(), node_.group(), peer_);
    }
    const config::KindInfo* info = config::findKindByTypeUrl(request.type_url());
    if (info == nullptr) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("unknown type_url '", request.type_url(), "'"));
    }
    TypeState& st = types_[static_cast<int>(info->kind)];
    const absl::Time now = absl::Now();
    if (!request.response_nonce().empty()) {
      // An answer to an earlier response than the latest is stale: a newer one is on its way.
      if (request.response_nonce() != st.nonce_sent) return grpc::Status::OK;
      if (request.has_error_detail()) {
        st.state = TypeStatus::NACKED;
        st.last_nack = request.error_detail().message();
        st.nack_time = now;
        server_->metrics_->nacks(info->kind).Increment();
        log::warn("proxy %s rejected %s version %s: %s", node_.id(), info->name, st.version_sent,
                  st.last_nack);
      } else {
        st.state = TypeStatus::ACKED;
        st.version_acked = request.version_info();
        server_->metrics_->acks(info->kind).Increment();
      }
      st.updated = now;
    } else {
      // A subscription. After a reconnect the proxy says which version it runs: if that is
      // still current, there is nothing to send.
      st.subscribed = true;
      st.updated = now;
      if (!request.version_info().empty()) {
        st.version_sent = request.version_info();
        st.version_acked = request.version_info();
        st.state = TypeStatus::ACKED;
      }
    }
    maybeSendLocked(info->kind);
    return grpc::Status::OK;
  }

  void maybeSendLocked(config::Kind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    TypeState& st = types_[static_cast<int>(kind)];
    if (!st.subscribed || snapshot_ == nullptr) return;
    std::shared_ptr<const TypeResources> res = snapshot_->resources(node_.group(), kind);
    if (res->version == st.version_sent) return;
    DiscoveryResponse nonce_only;
    nonce_only.set_nonce(absl::StrCat(server_->nonces_.fetch_add(1) + 1));
    std::string nonce_bytes = nonce_only.SerializeAsString();
    grpc::Slice slices[2] = {res->response, grpc::Slice(nonce_bytes)};
    // At most one queued response per type: a newer one replaces a queued older one (whose nonce
    // the proxy never saw), so a proxy that stops reading costs one response per type, not one
    // per published snapshot.
    auto queued = std::find_if(writes_.begin(), writes_.end(),
                               [kind](const QueuedWrite& w) { return w.kind == kind; });
    if (queued != writes_.end()) {
      queued->buffer = grpc::ByteBuffer(slices, 2);
    } else {
      writes_.push_back({kind, grpc::ByteBuffer(slices, 2)});
    }
    st.version_sent = res->version;
    st.nonce_sent = nonce_only.nonce();
    st.state = TypeStatus::PENDING;
    st.updated = absl::Now();
    server_->metrics_->responses(kind).Increment();
  }

  // Starts the next queued write, or Finish once finish() was called and no write is running.
  void flush() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (finishing_) {
        finished_ = true;
        status = finish_status_;
        action = kFinish;
      } else if (!writes_.empty()) {
        writing_ = true;
        current_write_ = std::move(writes_.front().buffer);
        writes_.pop_front();
        action = kWrite;
      }
    }
    if (action == kWrite) StartWrite(&current_write_);
    if (action == kFinish) Finish(status);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finishing_) {
        finishing_ = true;
        finish_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
      }
    }
    flush();
  }

  void finish(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      finish_status_ = std::move(status);
      writes_.clear();
    }
    flush();
  }

  void OnDone() override {
    server_->remove(this);
    {
      absl::MutexLock lock(&mu_);
      if (!node_.id().empty()) log::info("proxy %s disconnected", node_.id());
    }
    unref();
  }

  AdsServer* const server_;
  std::atomic<int> refs_{1};  // gRPC's, until OnDone; publish() holds one while it flushes
  const std::string peer_;
  const absl::Time connected_;
  grpc::ByteBuffer request_;  // owned by the one outstanding read

  mutable absl::Mutex mu_;
  discovery::v1::Node node_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  std::array<TypeState, config::kKindCount> types_ ABSL_GUARDED_BY(mu_);
  struct QueuedWrite {
    config::Kind kind;
    grpc::ByteBuffer buffer;
  };
  std::deque<QueuedWrite> writes_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer current_write_;  // owned by the one outstanding write
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

AdsServer::AdsServer(Metrics* metrics) : metrics_(metrics) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AdsServer::StreamResources(
    grpc::CallbackServerContext* context) {
  absl::MutexLock lock(&mu_);
  auto* stream = new AdsStream(this, context, snapshot_);
  streams_.insert(stream);
  metrics_->connected_proxies.Set(static_cast<double>(streams_.size()));
  return stream;
}

void AdsServer::remove(AdsStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
  metrics_->connected_proxies.Set(static_cast<double>(streams_.size()));
}

void AdsServer::publish(std::shared_ptr<const Snapshot> snapshot) {
  std::vector<AdsStream*> streams;
  {
    absl::MutexLock lock(&mu_);
    snapshot_ = snapshot;
    for (AdsStream* stream : streams_) {
      stream->onSnapshot(snapshot);
      stream->ref();
      streams.push_back(stream);
    }
  }
  // Writes start outside the server's lock: gRPC may run a reactor's callbacks inline.
  for (AdsStream* stream : streams) {
    stream->flush();
    stream->unref();
  }
}

std::vector<admin::v1::ProxyStatus> AdsServer::status() const {
  absl::MutexLock lock(&mu_);
  std::vector<admin::v1::ProxyStatus> out;
  for (const AdsStream* stream : streams_) {
    admin::v1::ProxyStatus s = stream->status();
    if (!s.node_id().empty()) out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.node_group(), a.node_id()) < std::tie(b.node_group(), b.node_id());
  });
  return out;
}

}  // namespace sluice::cp
