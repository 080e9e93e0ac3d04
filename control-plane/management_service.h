#pragma once

#include <string>

#include "control-plane/ads_server.h"
#include "control-plane/config_store.h"
#include "control-plane/metrics.h"
#include "sluice/admin/v1/management.grpc.pb.h"

namespace sluice::cp {

// The management API sluicectl talks to. When `token` is set, every call must carry
// "authorization: Bearer <token>".
class ManagementService final : public admin::v1::Management::Service {
 public:
  ManagementService(ConfigStore* store, const AdsServer* ads, Metrics* metrics, std::string token);

  grpc::Status Validate(grpc::ServerContext* context, const admin::v1::ValidateRequest* request,
                        admin::v1::ValidateResponse* response) override;
  grpc::Status Apply(grpc::ServerContext* context, const admin::v1::ApplyRequest* request,
                     admin::v1::ApplyResponse* response) override;
  grpc::Status Status(grpc::ServerContext* context, const admin::v1::StatusRequest* request,
                      admin::v1::StatusResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const admin::v1::GetRequest* request,
                   admin::v1::GetResponse* response) override;
  grpc::Status History(grpc::ServerContext* context, const admin::v1::HistoryRequest* request,
                       admin::v1::HistoryResponse* response) override;

 private:
  // Checks the token and counts the call; a non-OK status ends the call.
  grpc::Status admit(grpc::ServerContext* context, const std::string& method);
  void count(const std::string& method, const std::string& result);

  ConfigStore* const store_;
  const AdsServer* const ads_;
  Metrics* const metrics_;
  const std::string token_;
};

}  // namespace sluice::cp
