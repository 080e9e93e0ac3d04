#include "control-plane/management_service.h"

#include "absl/strings/str_cat.h"
#include "common/config/redact.h"
#include "common/token/token.h"
#include "google/protobuf/util/time_util.h"

namespace sluice::cp {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp toProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

void addDiagnostics(const config::Diagnostics& in,
                    google::protobuf::RepeatedPtrField<admin::v1::Diagnostic>* out) {
  for (const config::Diagnostic& d : in) {
    admin::v1::Diagnostic* p = out->Add();
    p->set_file(d.file);
    p->set_line(d.line);
    p->set_kind(d.kind);
    p->set_resource(d.resource);
    p->set_field(d.field);
    p->set_message(d.message);
  }
}

std::vector<config::SourceFile> toFiles(
    const google::protobuf::RepeatedPtrField<admin::v1::ConfigFile>& files) {
  std::vector<config::SourceFile> out;
  for (const auto& f : files) out.push_back({f.name(), f.content()});
  return out;
}

const std::string& resourceName(const config::v1::ClusterLoadAssignment& a) {
  return a.cluster_name();
}
template <class T>
const std::string& resourceName(const T& r) {
  return r.name();
}

template <class T, class Set>
void addResources(const std::vector<config::Sourced<T>>& items, const std::string& group,
                  const std::string& name, admin::v1::GetResponse* response, Set set) {
  for (const auto& item : items) {
    if (!group.empty() && !servedTo(item.origin.node_groups, group)) continue;
    if (!name.empty() && resourceName(item.resource) != name) continue;
    admin::v1::Resource* r = response->add_resources();
    set(r, item.resource);
    for (const std::string& g : item.origin.node_groups) r->add_node_groups(g);
    r->set_file(item.origin.file);
  }
}

}  // namespace

ManagementService::ManagementService(ConfigStore* store, const AdsServer* ads, Metrics* metrics,
                                     std::string token)
    : store_(store), ads_(ads), metrics_(metrics), token_(std::move(token)) {}

void ManagementService::count(const std::string& method, const std::string& result) {
  metrics_->management(method, result).Increment();
}

grpc::Status ManagementService::admit(grpc::ServerContext* context, const std::string& method) {
  if (token_.empty()) return grpc::Status::OK;
  auto it = context->client_metadata().find("authorization");
  if (it == context->client_metadata().end() ||
      !token::bearerMatches(absl::string_view(it->second.data(), it->second.size()), token_)) {
    count(method, "unauthenticated");
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        "this control plane requires a token (sluicectl --token-file, --token or SLUICE_TOKEN)");
  }
  return grpc::Status::OK;
}

grpc::Status ManagementService::Validate(grpc::ServerContext* context,
                                         const admin::v1::ValidateRequest* request,
                                         admin::v1::ValidateResponse* response) {
  if (auto s = admit(context, "Validate"); !s.ok()) return s;
  config::Diagnostics errors = store_->validate(toFiles(request->files()), request->standalone());
  response->set_valid(errors.empty());
  addDiagnostics(errors, response->mutable_errors());
  count("Validate", errors.empty() ? "ok" : "rejected");
  return grpc::Status::OK;
}

grpc::Status ManagementService::Apply(grpc::ServerContext* context,
                                      const admin::v1::ApplyRequest* request,
                                      admin::v1::ApplyResponse* response) {
  if (auto s = admit(context, "Apply"); !s.ok()) return s;
  if (request->files().empty()) {
    count("Apply", "rejected");
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no files to apply");
  }
  ConfigStore::ApplyResult result = store_->apply(toFiles(request->files()), request->dry_run());
  response->set_applied(result.errors.empty() && !request->dry_run());
  addDiagnostics(result.errors, response->mutable_errors());
  response->set_version(result.version);
  for (const std::string& w : result.written) response->add_written(w);
  count("Apply", result.errors.empty() ? "ok" : "rejected");
  return grpc::Status::OK;
}

grpc::Status ManagementService::Status(grpc::ServerContext* context,
                                       const admin::v1::StatusRequest*,
                                       admin::v1::StatusResponse* response) {
  if (auto s = admit(context, "Status"); !s.ok()) return s;
  ConfigStore::State state = store_->state();
  admin::v1::ConfigStatus* c = response->mutable_config();
  c->set_config_dir(store_->dir());
  if (state.snapshot != nullptr) {
    c->set_version(state.snapshot->version());
    *c->mutable_published() = toProto(state.snapshot->published());
    const config::ConfigSet& set = state.snapshot->config();
    c->set_listeners(set.listeners.size());
    c->set_route_configs(set.route_configs.size());
    c->set_clusters(set.clusters.size());
    c->set_endpoint_assignments(set.assignments.size());
    c->set_consumers(set.consumers.size());
  }
  addDiagnostics(state.errors, c->mutable_errors());
  if (!state.errors.empty()) *c->mutable_error_time() = toProto(state.error_time);
  for (auto& p : ads_->status()) *response->add_proxies() = std::move(p);
  count("Status", "ok");
  return grpc::Status::OK;
}

grpc::Status ManagementService::Get(grpc::ServerContext* context,
                                    const admin::v1::GetRequest* request,
                                    admin::v1::GetResponse* response) {
  if (auto s = admit(context, "Get"); !s.ok()) return s;
  std::shared_ptr<const Snapshot> snapshot = store_->current();
  if (snapshot == nullptr) {
    count("Get", "error");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "no valid config has been loaded yet; see sluicectl status");
  }
  response->set_version(snapshot->version());
  const config::ConfigSet& set = snapshot->config();
  const std::string& group = request->node_group();
  const std::string& name = request->name();
  using Kind = admin::v1::GetRequest;
  auto want = [&](Kind::Kind k) { return request->kind() == Kind::ALL || request->kind() == k; };
  if (want(Kind::LISTENERS)) {
    addResources(set.listeners, group, name, response,
                 [](admin::v1::Resource* r, const auto& v) { *r->mutable_listener() = v; });
  }
  if (want(Kind::ROUTE_CONFIGURATIONS)) {
    addResources(
        set.route_configs, group, name, response,
        [](admin::v1::Resource* r, const auto& v) { *r->mutable_route_configuration() = v; });
  }
  if (want(Kind::CLUSTERS)) {
    addResources(set.clusters, group, name, response,
                 [](admin::v1::Resource* r, const auto& v) { *r->mutable_cluster() = v; });
  }
  if (want(Kind::CLUSTER_LOAD_ASSIGNMENTS)) {
    addResources(set.assignments, group, name, response, [](admin::v1::Resource* r, const auto& v) {
      *r->mutable_cluster_load_assignment() = v;
    });
  }
  if (want(Kind::CONSUMERS)) {
    addResources(set.consumers, group, name, response,
                 [](admin::v1::Resource* r, const auto& v) { *r->mutable_consumer() = v; });
  }
  // Listeners (private keys), routes (inline key sets) and consumers carry secrets.
  for (admin::v1::Resource& r : *response->mutable_resources()) config::redactSecrets(&r);
  count("Get", "ok");
  return grpc::Status::OK;
}

grpc::Status ManagementService::History(grpc::ServerContext* context,
                                        const admin::v1::HistoryRequest*,
                                        admin::v1::HistoryResponse* response) {
  if (auto s = admit(context, "History"); !s.ok()) return s;
  for (const auto& snapshot : store_->history()) {
    admin::v1::HistoryEntry* e = response->add_entries();
    e->set_version(snapshot->version());
    *e->mutable_published() = toProto(snapshot->published());
    for (const auto& f : snapshot->files()) e->add_files(f.name);
    e->set_resources(static_cast<int>(snapshot->config().size()));
  }
  count("History", "ok");
  return grpc::Status::OK;
}

}  // namespace sluice::cp
