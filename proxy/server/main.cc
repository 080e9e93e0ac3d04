// sluice: the data-plane proxy. Configured live over ADS from sluice-cp (--xds), or from a
// directory of YAML (--config-dir) with the same loader and validator.
#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/flags/flags.h"
#include "common/log/log.h"
#include "common/token/token.h"
#include "proxy/server/buffer_memory.h"
#include "proxy/server/server.h"

ABSL_FLAG(std::string, xds, "", "Control plane ADS address, e.g. 127.0.0.1:18000.");
ABSL_FLAG(std::string, node_id, "", "This proxy's unique id (default: host name and pid).");
ABSL_FLAG(std::string, node_group, "default", "Node group whose config this proxy serves.");
ABSL_FLAG(std::string, config_dir, "",
          "Serve this directory of YAML instead of a control plane (SIGHUP reloads it).");
ABSL_FLAG(int, workers, 0, "Worker threads (0: one per core).");
ABSL_FLAG(std::string, admin, "127.0.0.1:9901",
          "Admin endpoint (/ready /metrics /config_dump /clusters). An address other than "
          "loopback needs --admin-token-file.");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding a token the admin endpoint then requires on every path but /ready "
          "(\"authorization: Bearer <token>\").");
ABSL_FLAG(uint64_t, overload_max_heap_mb, 0,
          "Past this much heap in use (MiB), shed new requests with 503 and stop accepting "
          "until it is below 90% of it (0: off).");
ABSL_FLAG(absl::Duration, drain_timeout, absl::ZeroDuration(),
          "Longest graceful drain on SIGTERM (0: the listeners' drain timeouts, default 30s).");
ABSL_FLAG(std::string, dns_hosts_file, "",
          "A hosts file (as /etc/hosts) consulted before DNS for STRICT_DNS clusters' names.");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(5),
          "How often certificate files are checked for changes (0: never).");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error.");

namespace {

int fail(const std::string& message) {
  sluice::log::error("%s", message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using sluice::log::Level;
  // Before anything touches libevent: its buffers come from per-thread free lists.
  sluice::server::buffer_memory::install();
  std::vector<std::string> args = sluice::flags::parse(
      argc, argv,
      "the Sluice proxy.\n"
      "usage: sluice --xds HOST:PORT --node-id ID --node-group GROUP [--workers N] [--admin ADDR]\n"
      "       sluice --config-dir DIR [--workers N] [--admin ADDR]\n"
      "       [--admin-token-file FILE] [--overload-max-heap-mb MIB]");
  sluice::log::setComponent("sluice");
  if (!args.empty()) return fail(absl::StrCat("unexpected argument '", args[0], "'"));
  Level level;
  if (!sluice::log::parseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return fail("--log-level must be debug, info, warn or error");
  }
  sluice::log::setLevel(level);
  sluice::server::Options options;
  options.xds = absl::GetFlag(FLAGS_xds);
  options.config_dir = absl::GetFlag(FLAGS_config_dir);
  options.node_group = absl::GetFlag(FLAGS_node_group);
  options.node_id = absl::GetFlag(FLAGS_node_id);
  options.workers = absl::GetFlag(FLAGS_workers);
  options.admin = absl::GetFlag(FLAGS_admin);
  options.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  options.dns_hosts_file = absl::GetFlag(FLAGS_dns_hosts_file);
  options.tls_reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  if (options.xds.empty() == options.config_dir.empty()) {
    return fail("give exactly one of --xds (a control plane) or --config-dir (local YAML)");
  }
  if (options.workers < 0 || options.workers > 256) return fail("--workers must be 0-256");
  if (const std::string file = absl::GetFlag(FLAGS_admin_token_file); !file.empty()) {
    absl::StatusOr<std::string> token = sluice::token::readFile(file, "--admin-token-file");
    if (!token.ok()) return fail(std::string(token.status().message()));
    options.admin_token = *std::move(token);
  }
  if (options.admin_token.empty() && !sluice::token::isLoopback(options.admin)) {
    return fail(absl::StrCat("refusing to serve the admin endpoint on ", options.admin,
                             " without a token: it shows the config and cluster state to anyone "
                             "who can reach it; give --admin-token-file, or bind 127.0.0.1"));
  }
  const uint64_t heap_mb = absl::GetFlag(FLAGS_overload_max_heap_mb);
  if (heap_mb > (uint64_t{1} << 30)) return fail("--overload-max-heap-mb is too large");
  options.overload_max_heap_bytes = heap_mb << 20;
  if (options.tls_reload_interval < absl::ZeroDuration()) {
    return fail("--tls-reload-interval must not be negative");
  }
  if (options.node_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    options.node_id = absl::StrCat(host, "-", getpid());
  }
  sluice::server::Server server(std::move(options));
  return server.run();
}
