#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "sluice/discovery/v1/ads.grpc.pb.h"

namespace sluice::testing {

// A test proxy's side of an ADS stream: sends requests, and queues responses read on a thread.
class AdsClient {
 public:
  AdsClient(const std::string& address, const std::string& node_id, const std::string& group);
  ~AdsClient();

  // First request for a type (version_info: what the client already runs, or "").
  bool subscribe(const std::string& type_url, const std::string& version_info = "");
  bool ack(const discovery::v1::DiscoveryResponse& response);
  bool nack(const discovery::v1::DiscoveryResponse& response, const std::string& last_good_version,
            const std::string& message);
  bool send(const discovery::v1::DiscoveryRequest& request);

  // The next response, or nullopt if none arrives within `timeout`.
  std::optional<discovery::v1::DiscoveryResponse> next(absl::Duration timeout);
  // Half-closes and returns the stream's final status.
  grpc::Status finish();
  // Whether the server ended the stream (reads failed).
  bool ended();

 private:
  void readLoop();
  bool readyLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  std::string node_id_;
  std::string group_;
  bool node_sent_ = false;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<discovery::v1::AggregatedDiscoveryService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<discovery::v1::DiscoveryRequest, discovery::v1::DiscoveryResponse>>
      stream_;
  absl::Mutex mu_;
  std::deque<discovery::v1::DiscoveryResponse> responses_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
  bool finished_ = false;
  grpc::Status status_;
};

}  // namespace sluice::testing
