#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "control-plane/metrics.h"
#include "control-plane/snapshot.h"
#include "sluice/admin/v1/management.pb.h"
#include "sluice/discovery/v1/ads.grpc.pb.h"

namespace sluice::cp {

class AdsStream;

// The aggregated discovery service, state of the world. Each stream is a reactor driven by gRPC's
// callback API; responses are the snapshot's pre-serialized bytes plus the stream's nonce.
class AdsServer final
    : public discovery::v1::AggregatedDiscoveryService::WithRawCallbackMethod_StreamResources<
          discovery::v1::AggregatedDiscoveryService::Service> {
 public:
  explicit AdsServer(Metrics* metrics);

  // Makes `snapshot` current and sends every subscribed stream what changed for its group.
  void publish(std::shared_ptr<const Snapshot> snapshot);

  // One entry per connected stream, for Status.
  std::vector<admin::v1::ProxyStatus> status() const;

 private:
  friend class AdsStream;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamResources(
      grpc::CallbackServerContext* context) override;
  void remove(AdsStream* stream);

  Metrics* const metrics_;
  // Nonces are unique across all streams, so an answer meant for a response on an earlier
  // stream can never match one on a later stream.
  std::atomic<uint64_t> nonces_{0};
  mutable absl::Mutex mu_;  // taken before any stream's own lock
  std::shared_ptr<const Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  std::set<AdsStream*> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::cp
