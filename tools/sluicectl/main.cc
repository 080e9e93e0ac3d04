// sluicectl: validate, apply and inspect Sluice config; see which proxy runs which version.
//
// Exit codes: 0 ok, 1 input rejected (invalid config), 2 usage or connection error.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config/config_set.h"
#include "common/config/loader.h"
#include "common/config/yaml_proto.h"
#include "common/token/token.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "sluice/admin/v1/management.grpc.pb.h"

namespace sluice::ctl {
namespace {

namespace admin = sluice::admin::v1;

constexpr int kOk = 0;
constexpr int kRejected = 1;
constexpr int kUsage = 2;

constexpr char kUsageText[] = R"(sluicectl: validate, apply and inspect Sluice config.

usage: sluicectl [global flags] COMMAND [args]

commands:
  validate PATH...               check config files or directories offline (no server needed)
  apply -f PATH [-f PATH...]     validate against the served directory, then write the files
        [--dry-run]              into it atomically; the control plane serves them at once
  status                         the served version, config errors, and per proxy and type the
                                 version and ACKED / NACKED / PENDING state with NACK reasons
  get KIND [NAME] [--group G]    served resources; KIND: listeners, routes, clusters, endpoints,
                                 consumers, all
  history                        the last published versions, newest first

global flags:
  --server ADDR     management API of sluice-cp (default $SLUICE_SERVER or 127.0.0.1:18001)
  --token-file FILE file holding the bearer token, when sluice-cp has --token-file
  --token TOKEN     the token itself (default $SLUICE_TOKEN); visible to other local users
                    in the process list, so prefer --token-file
  --timeout DUR     per call, e.g. 10s (default 10s)
  -o FORMAT         text (default), json, or yaml (get: re-appliable YAML)

exit codes: 0 ok, 1 input rejected, 2 usage or connection error
)";

struct Options {
  std::string server = "127.0.0.1:18001";
  std::string token;
  absl::Duration timeout = absl::Seconds(10);
  std::string output = "text";
  std::string command;
  std::vector<std::string> args;
  std::vector<std::string> files;  // apply -f
  std::string group;
  bool dry_run = false;
};

int usage(const std::string& problem) {
  std::cerr << "sluicectl: " << problem << "\n(run 'sluicectl --help' for usage)\n";
  return kUsage;
}

std::string toJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

std::string timeText(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  absl::Time t = absl::FromUnixSeconds(ts.seconds());
  absl::Duration age = absl::Now() - t;
  return absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()), " (",
                      absl::FormatDuration(absl::Trunc(age, absl::Seconds(1))), " ago)");
}

std::string diagnosticText(const admin::Diagnostic& d) {
  config::Diagnostic c{d.file(), d.line(), d.kind(), d.resource(), d.field(), d.message()};
  return c.toString();
}

// Prints rows as aligned columns.
void printTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

class Client {
 public:
  explicit Client(const Options& options) : options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);  // large configs: `get all` of thousands of routes
    channel_ = grpc::CreateCustomChannel(options.server, grpc::InsecureChannelCredentials(), args);
    stub_ = admin::Management::NewStub(channel_);
  }

  void prepare(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(options_.timeout));
    if (!options_.token.empty()) {
      context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
    }
  }

  // Reports a failed call; returns the exit code.
  int failed(const grpc::Status& status) const {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::cerr << "sluicectl: cannot reach sluice-cp at " << options_.server << ": "
                << status.error_message() << "\n";
      return kUsage;
    }
    std::cerr << "sluicectl: " << status.error_message() << "\n";
    return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? kRejected : kUsage;
  }

  admin::Management::Stub& stub() { return *stub_; }

 private:
  const Options& options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<admin::Management::Stub> stub_;
};

int cmdValidate(const Options& o) {
  if (o.args.empty()) return usage("validate needs a file or directory");
  config::Diagnostics errors;
  std::vector<config::SourceFile> files;
  for (const std::string& path : o.args) {
    auto read = config::readConfigPath(path, &errors);
    files.insert(files.end(), read.begin(), read.end());
  }
  config::LoadResult result = config::loadFiles(std::move(files));
  errors.insert(errors.end(), result.errors.begin(), result.errors.end());
  const config::ConfigSet& c = result.config;
  if (o.output == "json") {
    admin::ValidateResponse response;
    response.set_valid(errors.empty());
    for (const auto& e : errors) {
      admin::Diagnostic* d = response.add_errors();
      d->set_file(e.file);
      d->set_line(e.line);
      d->set_kind(e.kind);
      d->set_resource(e.resource);
      d->set_field(e.field);
      d->set_message(e.message);
    }
    std::cout << toJson(response);
  } else if (errors.empty()) {
    std::cout << "valid: " << result.files.size() << " files, " << c.listeners.size()
              << " listeners, " << c.route_configs.size() << " route configurations, "
              << c.clusters.size() << " clusters, " << c.assignments.size()
              << " endpoint assignments, " << c.consumers.size() << " consumers\n";
  } else {
    std::cout << config::formatDiagnostics(errors) << errors.size() << " problem"
              << (errors.size() == 1 ? "" : "s") << " found\n";
  }
  return errors.empty() ? kOk : kRejected;
}

std::string baseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int cmdApply(const Options& o, Client& client) {
  if (o.files.empty()) return usage("apply needs -f FILE or -f DIRECTORY");
  if (!o.args.empty()) return usage(absl::StrCat("unexpected argument '", o.args[0], "'"));
  admin::ApplyRequest request;
  request.set_dry_run(o.dry_run);
  config::Diagnostics read_errors;
  for (const std::string& path : o.files) {
    for (auto& f : config::readConfigPath(path, &read_errors)) {
      admin::ConfigFile* file = request.add_files();
      file->set_name(baseName(f.name));
      file->set_content(std::move(f.content));
    }
  }
  if (!read_errors.empty()) {
    std::cerr << config::formatDiagnostics(read_errors);
    return kRejected;
  }
  if (request.files().empty()) {
    std::cerr << "sluicectl: no *.yaml files found in " << absl::StrJoin(o.files, ", ") << "\n";
    return kRejected;
  }
  grpc::ClientContext context;
  client.prepare(&context);
  admin::ApplyResponse response;
  grpc::Status status = client.stub().Apply(&context, request, &response);
  if (!status.ok()) return client.failed(status);
  if (o.output == "json") {
    std::cout << toJson(response);
  } else if (!response.errors().empty()) {
    for (const auto& d : response.errors()) std::cout << diagnosticText(d) << "\n";
    std::cout << "rejected: " << response.errors_size() << " problem"
              << (response.errors_size() == 1 ? "" : "s") << "; nothing was written (serving "
              << response.version() << ")\n";
  } else if (o.dry_run) {
    std::cout << "valid: " << request.files_size() << " files would be applied (dry run)\n";
  } else if (response.written().empty()) {
    std::cout << "unchanged: version " << response.version() << "\n";
  } else {
    std::cout << "applied: version " << response.version() << " (wrote "
              << absl::StrJoin(response.written(), ", ") << ")\n";
  }
  return response.errors().empty() ? kOk : kRejected;
}

// Column name of a type URL in `status`.
std::string typeColumn(const std::string& type_url) {
  const config::KindInfo* info = config::findKindByTypeUrl(type_url);
  if (info == nullptr) return type_url;
  switch (info->kind) {
    case config::Kind::kListener:
      return "LISTENERS";
    case config::Kind::kRouteConfiguration:
      return "ROUTES";
    case config::Kind::kCluster:
      return "CLUSTERS";
    case config::Kind::kClusterLoadAssignment:
      return "ENDPOINTS";
    case config::Kind::kConsumer:
      return "CONSUMERS";
  }
  return type_url;
}

int cmdStatus(const Options& o, Client& client) {
  if (!o.args.empty()) return usage(absl::StrCat("unexpected argument '", o.args[0], "'"));
  grpc::ClientContext context;
  client.prepare(&context);
  admin::StatusResponse response;
  grpc::Status status = client.stub().Status(&context, admin::StatusRequest(), &response);
  if (!status.ok()) return client.failed(status);
  if (o.output == "json") {
    std::cout << toJson(response);
    return kOk;
  }
  const admin::ConfigStatus& c = response.config();
  std::cout << "config dir  " << c.config_dir() << "\n";
  std::cout << "version     " << (c.version().empty() ? "(none: no valid config yet)" : c.version())
            << "  published " << timeText(c.published()) << "\n";
  std::cout << "resources   " << c.listeners() << " listeners, " << c.route_configs()
            << " route configurations, " << c.clusters() << " clusters, "
            << c.endpoint_assignments() << " endpoint assignments, " << c.consumers()
            << " consumers\n";
  if (c.errors().empty()) {
    std::cout << "errors      none\n";
  } else {
    std::cout << "errors      " << c.errors_size() << " in the directory since "
              << timeText(c.error_time()) << "; still serving the version above:\n";
    for (const auto& d : c.errors()) std::cout << "  " << diagnosticText(d) << "\n";
  }
  std::cout << "\n";
  if (response.proxies().empty()) {
    std::cout << "no proxies connected\n";
    return kOk;
  }
  const std::vector<std::string> columns = {"LISTENERS", "ROUTES", "CLUSTERS", "ENDPOINTS",
                                            "CONSUMERS"};
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "GROUP", "LISTENERS", "ROUTES", "CLUSTERS", "ENDPOINTS", "CONSUMERS", "CONNECTED"}};
  std::vector<std::string> nacks;
  for (const auto& p : response.proxies()) {
    std::vector<std::string> row = {p.node_id(), p.node_group().empty() ? "-" : p.node_group()};
    std::map<std::string, std::string> cells;
    for (const auto& t : p.types()) {
      std::string state = admin::TypeStatus::State_Name(t.state());
      std::string version =
          t.state() == admin::TypeStatus::ACKED ? t.version_acked() : t.version_sent();
      cells[typeColumn(t.type_url())] = absl::StrCat(state, " ", version.substr(0, 8));
      if (t.state() == admin::TypeStatus::NACKED) {
        nacks.push_back(absl::StrCat(p.node_id(), " ", typeColumn(t.type_url()), " rejected ",
                                     t.version_sent(), " (running ",
                                     t.version_acked().empty() ? "nothing" : t.version_acked(),
                                     "): ", t.last_nack()));
      }
    }
    for (const std::string& col : columns) row.push_back(cells.count(col) ? cells[col] : "-");
    row.push_back(timeText(p.connected()));
    rows.push_back(std::move(row));
  }
  printTable(rows);
  if (!nacks.empty()) {
    std::cout << "\nNACKs:\n";
    for (const std::string& n : nacks) std::cout << "  " << n << "\n";
  }
  return kOk;
}

// KIND argument of `get` to the request's kind.
bool parseKind(const std::string& text, admin::GetRequest::Kind* kind) {
  static const std::map<std::string, admin::GetRequest::Kind> kKinds = {
      {"all", admin::GetRequest::ALL},
      {"listeners", admin::GetRequest::LISTENERS},
      {"listener", admin::GetRequest::LISTENERS},
      {"routes", admin::GetRequest::ROUTE_CONFIGURATIONS},
      {"route", admin::GetRequest::ROUTE_CONFIGURATIONS},
      {"routeconfigurations", admin::GetRequest::ROUTE_CONFIGURATIONS},
      {"clusters", admin::GetRequest::CLUSTERS},
      {"cluster", admin::GetRequest::CLUSTERS},
      {"endpoints", admin::GetRequest::CLUSTER_LOAD_ASSIGNMENTS},
      {"clusterloadassignments", admin::GetRequest::CLUSTER_LOAD_ASSIGNMENTS},
      {"consumers", admin::GetRequest::CONSUMERS},
      {"consumer", admin::GetRequest::CONSUMERS},
  };
  auto it = kKinds.find(absl::AsciiStrToLower(text));
  if (it == kKinds.end()) return false;
  *kind = it->second;
  return true;
}

std::string endpointsText(const google::protobuf::RepeatedPtrField<config::v1::Endpoint>& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps) {
    bool v6 = absl::StrContains(e.address(), ':');
    out.push_back(absl::StrCat(v6 ? "[" : "", e.address(), v6 ? "]" : "", ":", e.port()));
  }
  return out.empty() ? "-" : absl::StrJoin(out, ",");
}

int cmdGet(const Options& o, Client& client) {
  if (o.args.empty())
    return usage("get needs a kind: listeners, routes, clusters, endpoints, consumers or all");
  if (o.args.size() > 2) return usage(absl::StrCat("unexpected argument '", o.args[2], "'"));
  admin::GetRequest request;
  admin::GetRequest::Kind kind;
  if (!parseKind(o.args[0], &kind)) {
    return usage(absl::StrCat("unknown kind '", o.args[0],
                              "'; use listeners, routes, clusters, endpoints, consumers or all"));
  }
  request.set_kind(kind);
  if (o.args.size() == 2) request.set_name(o.args[1]);
  request.set_node_group(o.group);
  grpc::ClientContext context;
  client.prepare(&context);
  admin::GetResponse response;
  grpc::Status status = client.stub().Get(&context, request, &response);
  if (!status.ok()) return client.failed(status);
  if (o.output == "json") {
    std::cout << toJson(response);
    return kOk;
  }
  if (o.output == "yaml") {
    std::cout << "# sluice config version " << response.version() << "\n";
    for (const auto& r : response.resources()) {
      const google::protobuf::Message* m = nullptr;
      std::string kind_name;
      switch (r.resource_case()) {
        case admin::Resource::kListener:
          m = &r.listener();
          kind_name = "Listener";
          break;
        case admin::Resource::kRouteConfiguration:
          m = &r.route_configuration();
          kind_name = "RouteConfiguration";
          break;
        case admin::Resource::kCluster:
          m = &r.cluster();
          kind_name = "Cluster";
          break;
        case admin::Resource::kClusterLoadAssignment:
          m = &r.cluster_load_assignment();
          kind_name = "ClusterLoadAssignment";
          break;
        case admin::Resource::kConsumer:
          m = &r.consumer();
          kind_name = "Consumer";
          break;
        case admin::Resource::RESOURCE_NOT_SET:
          continue;
      }
      std::vector<std::string> groups(r.node_groups().begin(), r.node_groups().end());
      std::cout << "---\n" << config::protoToYaml(*m, kind_name, groups);
    }
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  auto groups = [](const admin::Resource& r) {
    return r.node_groups().empty() ? std::string("*") : absl::StrJoin(r.node_groups(), ",");
  };
  for (const auto& r : response.resources()) {
    switch (r.resource_case()) {
      case admin::Resource::kListener: {
        const auto& l = r.listener();
        rows.push_back({"Listener", l.name(),
                        absl::StrCat(l.address().empty() ? "0.0.0.0" : l.address(), ":", l.port()),
                        absl::StrCat("routes=", l.route_config()), groups(r), r.file()});
        break;
      }
      case admin::Resource::kRouteConfiguration: {
        const auto& rc = r.route_configuration();
        int routes = 0;
        for (const auto& vh : rc.virtual_hosts()) routes += vh.routes_size();
        rows.push_back({"RouteConfiguration", rc.name(),
                        absl::StrCat(rc.virtual_hosts_size(), " virtual hosts"),
                        absl::StrCat(routes, " routes"), groups(r), r.file()});
        break;
      }
      case admin::Resource::kCluster: {
        const auto& c = r.cluster();
        rows.push_back({"Cluster", c.name(),
                        absl::StrCat(config::v1::Cluster::DiscoveryType_Name(c.type()), " ",
                                     config::v1::Cluster::LbPolicy_Name(c.lb_policy())),
                        c.type() == config::v1::Cluster::EDS ? "endpoints from EDS"
                                                             : endpointsText(c.endpoints()),
                        groups(r), r.file()});
        break;
      }
      case admin::Resource::kClusterLoadAssignment: {
        const auto& a = r.cluster_load_assignment();
        rows.push_back({"ClusterLoadAssignment", a.cluster_name(),
                        absl::StrCat(a.endpoints_size(), " endpoints"),
                        endpointsText(a.endpoints()), groups(r), r.file()});
        break;
      }
      case admin::Resource::kConsumer: {
        const auto& c = r.consumer();
        std::vector<std::string> credentials;
        if (c.api_keys_size() > 0) {
          credentials.push_back(absl::StrCat(c.api_keys_size(), " api_keys"));
        }
        if (c.basic_auth_size() > 0) {
          credentials.push_back(absl::StrCat(c.basic_auth_size(), " basic_auth"));
        }
        if (c.hmac_keys_size() > 0) {
          credentials.push_back(absl::StrCat(c.hmac_keys_size(), " hmac_keys"));
        }
        if (c.jwt_subjects_size() > 0) {
          credentials.push_back(absl::StrCat(c.jwt_subjects_size(), " jwt_subjects"));
        }
        rows.push_back(
            {"Consumer", c.name(),
             c.groups().empty() ? "-" : absl::StrCat("groups=", absl::StrJoin(c.groups(), ",")),
             credentials.empty() ? "-" : absl::StrJoin(credentials, " "), groups(r), r.file()});
        break;
      }
      case admin::Resource::RESOURCE_NOT_SET:
        break;
    }
  }
  if (rows.empty()) {
    std::cout << "no matching resources (version " << response.version() << ")\n";
    return kOk;
  }
  rows.insert(rows.begin(), {"KIND", "NAME", "SUMMARY", "", "GROUPS", "FILE"});
  printTable(rows);
  return kOk;
}

int cmdHistory(const Options& o, Client& client) {
  grpc::ClientContext context;
  client.prepare(&context);
  admin::HistoryResponse response;
  grpc::Status status = client.stub().History(&context, admin::HistoryRequest(), &response);
  if (!status.ok()) return client.failed(status);
  if (o.output == "json") {
    std::cout << toJson(response);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows = {{"VERSION", "PUBLISHED", "RESOURCES", "FILES"}};
  for (const auto& e : response.entries()) {
    rows.push_back({e.version(), timeText(e.published()), absl::StrCat(e.resources()),
                    absl::StrJoin(e.files(), ",")});
  }
  printTable(rows);
  return kOk;
}

int run(int argc, char** argv) {
  Options o;
  if (const char* env = std::getenv("SLUICE_SERVER"); env != nullptr && *env) o.server = env;
  if (const char* env = std::getenv("SLUICE_TOKEN"); env != nullptr && *env) o.token = env;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      size_t eq = a.find('=');
      if (absl::StartsWith(a, "--") && eq != std::string::npos) {
        *out = a.substr(eq + 1);
        return true;
      }
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    auto is = [&](absl::string_view flag) {
      return a == flag || absl::StartsWith(a, absl::StrCat(flag, "="));
    };
    std::string v;
    if (a == "-h" || a == "--help" || a == "help") {
      std::cout << kUsageText;
      return kOk;
    } else if (is("--server")) {
      if (!value(&o.server)) return usage("--server needs an address");
    } else if (is("--token")) {
      if (!value(&o.token)) return usage("--token needs a value");
    } else if (is("--token-file")) {
      if (!value(&v)) return usage("--token-file needs a file");
      absl::StatusOr<std::string> token = token::readFile(v, "--token-file");
      if (!token.ok()) return usage(std::string(token.status().message()));
      o.token = *std::move(token);
    } else if (is("--timeout")) {
      if (!value(&v) || !absl::ParseDuration(v, &o.timeout) || o.timeout <= absl::ZeroDuration()) {
        return usage("--timeout needs a duration such as 10s");
      }
    } else if (a == "-o" || is("--output")) {
      if (!value(&o.output)) return usage("-o needs json, yaml or text");
    } else if (a == "-f" || is("--file")) {
      if (!value(&v)) return usage("-f needs a file or directory");
      o.files.push_back(v);
    } else if (is("--group")) {
      if (!value(&o.group)) return usage("--group needs a node group");
    } else if (a == "--dry-run") {
      o.dry_run = true;
    } else if (absl::StartsWith(a, "-") && a != "-") {
      return usage(absl::StrCat("unknown flag '", a, "'"));
    } else if (o.command.empty()) {
      o.command = a;
    } else {
      o.args.push_back(a);
    }
  }
  if (o.output != "text" && o.output != "json" && o.output != "yaml") {
    return usage(absl::StrCat("-o must be text, json or yaml, not '", o.output, "'"));
  }
  if (o.output == "yaml" && o.command != "get") return usage("-o yaml is for get");
  if (o.command.empty()) {
    std::cerr << kUsageText;
    return kUsage;
  }
  if (o.command == "validate") return cmdValidate(o);
  Client client(o);
  if (o.command == "apply") return cmdApply(o, client);
  if (o.command == "status") return cmdStatus(o, client);
  if (o.command == "get") return cmdGet(o, client);
  if (o.command == "history") return cmdHistory(o, client);
  return usage(absl::StrCat("unknown command '", o.command, "'"));
}

}  // namespace
}  // namespace sluice::ctl

int main(int argc, char** argv) { return sluice::ctl::run(argc, argv); }
