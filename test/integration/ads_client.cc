#include "test/integration/ads_client.h"

namespace sluice::testing {

using discovery::v1::DiscoveryRequest;
using discovery::v1::DiscoveryResponse;

AdsClient::AdsClient(const std::string& address, const std::string& node_id,
                     const std::string& group)
    : node_id_(node_id), group_(group) {
  channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  stub_ = discovery::v1::AggregatedDiscoveryService::NewStub(channel_);
  stream_ = stub_->StreamResources(&context_);
  reader_ = std::thread([this] { readLoop(); });
}

AdsClient::~AdsClient() {
  context_.TryCancel();
  if (reader_.joinable()) reader_.join();
  if (!finished_) stream_->Finish();
}

void AdsClient::readLoop() {
  DiscoveryResponse response;
  while (stream_->Read(&response)) {
    absl::MutexLock lock(&mu_);
    responses_.push_back(response);
  }
  absl::MutexLock lock(&mu_);
  ended_ = true;
}

bool AdsClient::send(const DiscoveryRequest& request) { return stream_->Write(request); }

bool AdsClient::subscribe(const std::string& type_url, const std::string& version_info) {
  DiscoveryRequest request;
  if (!node_sent_) {
    request.mutable_node()->set_id(node_id_);
    request.mutable_node()->set_group(group_);
    request.mutable_node()->set_user_agent("ads-test-client");
    node_sent_ = true;
  }
  request.set_type_url(type_url);
  request.set_version_info(version_info);
  return send(request);
}

bool AdsClient::ack(const DiscoveryResponse& response) {
  DiscoveryRequest request;
  request.set_type_url(response.type_url());
  request.set_version_info(response.version_info());
  request.set_response_nonce(response.nonce());
  return send(request);
}

bool AdsClient::nack(const DiscoveryResponse& response, const std::string& last_good_version,
                     const std::string& message) {
  DiscoveryRequest request;
  request.set_type_url(response.type_url());
  request.set_version_info(last_good_version);
  request.set_response_nonce(response.nonce());
  request.mutable_error_detail()->set_code(3);
  request.mutable_error_detail()->set_message(message);
  return send(request);
}

std::optional<DiscoveryResponse> AdsClient::next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &AdsClient::readyLocked), timeout);
  if (responses_.empty()) return std::nullopt;
  DiscoveryResponse r = std::move(responses_.front());
  responses_.pop_front();
  return r;
}

bool AdsClient::readyLocked() const { return !responses_.empty() || ended_; }

bool AdsClient::ended() {
  absl::MutexLock lock(&mu_);
  return ended_;
}

grpc::Status AdsClient::finish() {
  stream_->WritesDone();
  if (reader_.joinable()) reader_.join();
  status_ = stream_->Finish();
  finished_ = true;
  return status_;
}

}  // namespace sluice::testing
