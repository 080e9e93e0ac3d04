// sluice-cp: watches a config directory and serves it to proxies over ADS, with a management API
// for sluicectl and Prometheus metrics.
#include <signal.h>

#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/flags/flags.h"
#include "common/log/log.h"
#include "common/token/token.h"
#include "control-plane/ads_server.h"
#include "control-plane/config_store.h"
#include "control-plane/management_service.h"
#include "control-plane/metrics.h"
#include "control-plane/watcher.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/exposer.h"

ABSL_FLAG(std::string, config_dir, "", "Directory of *.yaml config files to serve (required).");
ABSL_FLAG(std::string, xds_listen, "127.0.0.1:18000",
          "Address for the proxies' ADS streams (use 0.0.0.0:18000 to serve other hosts).");
ABSL_FLAG(std::string, mgmt_listen, "127.0.0.1:18001",
          "Address of the management API (sluicectl). An address other than loopback needs "
          "--token-file.");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:18002", "Address serving /metrics.");
ABSL_FLAG(std::string, token_file, "",
          "File holding a token the management API requires (\"authorization: Bearer <token>\").");
ABSL_FLAG(absl::Duration, debounce, absl::Milliseconds(200),
          "How long the directory must be quiet before a change is loaded.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error.");

namespace sluice::cp {
namespace {

int fail(const std::string& message) {
  log::error("%s", message);
  return 2;
}

std::unique_ptr<grpc::Server> startServer(const std::string& address, grpc::Service* service,
                                          const char* what) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(service);
  // Config bundles are larger than gRPC's 4 MiB default.
  builder.SetMaxReceiveMessageSize(64 << 20);
  auto server = builder.BuildAndStart();
  if (server != nullptr) log::info("%s listening on %s", what, address);
  return server;
}

int run(int argc, char** argv) {
  std::vector<std::string> args = flags::parse(
      argc, argv,
      "serves a config directory to sluice proxies.\n"
      "usage: sluice-cp --config-dir DIR [--xds-listen ADDR] [--mgmt-listen ADDR] ...");
  if (!args.empty()) return fail(absl::StrCat("unexpected argument '", args[0], "'"));
  log::setComponent("sluice-cp");
  log::Level level;
  if (!log::parseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return fail("--log-level must be debug, info, warn or error");
  }
  log::setLevel(level);
  const std::string dir = absl::GetFlag(FLAGS_config_dir);
  if (dir.empty()) return fail("--config-dir is required");
  std::string token;
  if (const std::string file = absl::GetFlag(FLAGS_token_file); !file.empty()) {
    absl::StatusOr<std::string> read = token::readFile(file, "--token-file");
    if (!read.ok()) return fail(std::string(read.status().message()));
    token = *std::move(read);
  }
  const std::string mgmt = absl::GetFlag(FLAGS_mgmt_listen);
  if (token.empty() && !token::isLoopback(mgmt)) {
    return fail(absl::StrCat("refusing to serve the management API on ", mgmt,
                             " without a token: anyone who can reach it could apply config to "
                             "every proxy; give --token-file, or bind 127.0.0.1"));
  }

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Metrics metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(absl::GetFlag(FLAGS_admin_listen));
  } catch (const std::exception& e) {
    return fail(absl::StrCat("cannot serve metrics on ", absl::GetFlag(FLAGS_admin_listen), ": ",
                             e.what()));
  }
  exposer->RegisterCollectable(metrics.registry());

  ConfigStore store(dir, &metrics);
  AdsServer ads(&metrics);
  store.onPublish([&ads](std::shared_ptr<const Snapshot> s) { ads.publish(std::move(s)); });
  store.reload();

  ManagementService management(&store, &ads, &metrics, token);
  auto ads_server = startServer(absl::GetFlag(FLAGS_xds_listen), &ads, "ADS");
  if (ads_server == nullptr) {
    return fail(absl::StrCat("cannot listen on --xds-listen ", absl::GetFlag(FLAGS_xds_listen)));
  }
  auto mgmt_server = startServer(mgmt, &management, "management API");
  if (mgmt_server == nullptr) return fail(absl::StrCat("cannot listen on --mgmt-listen ", mgmt));
  log::info("metrics on http://%s/metrics", absl::GetFlag(FLAGS_admin_listen));

  {
    DirectoryWatcher watcher(dir, absl::GetFlag(FLAGS_debounce), [&store] { store.reload(); });
    int sig = 0;
    sigwait(&signals, &sig);
    log::info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  }
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  mgmt_server->Shutdown(deadline);
  ads_server->Shutdown(deadline);
  return 0;
}

}  // namespace
}  // namespace sluice::cp

int main(int argc, char** argv) { return sluice::cp::run(argc, argv); }
