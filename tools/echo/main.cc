// sluice-echo: the demo and test upstream. Prints "listening on ADDRESS" once it accepts
// connections; exits 0 on SIGTERM or SIGINT. See README.md for what it answers.
#include <signal.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/flags/flags.h"
#include "common/log/log.h"
#include "tools/echo/server.h"

ABSL_FLAG(std::string, listen, "",
          "Address to serve, IP:PORT or [IPv6]:PORT; port 0 picks a free one (required).");
ABSL_FLAG(std::string, name, "",
          "Value of the x-echo-name response header (default: the bound address).");
ABSL_FLAG(int, status, 200, "Response status unless x-echo-status says otherwise (200..599).");
ABSL_FLAG(std::string, body, "", "A fixed response body instead of the echo of the request.");
ABSL_FLAG(absl::Duration, delay, absl::ZeroDuration(),
          "Delay before each response unless x-echo-delay-ms says otherwise, e.g. 250ms.");
ABSL_FLAG(int, threads, 1, "Event loops, each with its own SO_REUSEPORT socket (1..64).");
ABSL_FLAG(std::string, tls_cert, "", "Serve HTTPS with this PEM certificate chain file.");
ABSL_FLAG(std::string, tls_key, "", "The PEM private key file of --tls-cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "Require client certificates signed by this PEM CA file (with --tls-cert).");

namespace sluice::echo {
namespace {

int fail(const std::string& message) {
  log::error("%s", message);
  return 2;
}

int run(int argc, char** argv) {
  std::vector<std::string> args = flags::parse(
      argc, argv,
      "an HTTP/1.1 upstream that echoes requests, for demos and tests.\n"
      "usage: sluice-echo --listen 127.0.0.1:8081 [--name NAME] [--status 200] [--body TEXT]\n"
      "                   [--delay 0ms] [--threads 1] [--tls-cert F --tls-key F "
      "[--tls-client-ca F]]");
  log::setComponent("sluice-echo");
  if (!args.empty()) return fail(absl::StrCat("unexpected argument '", args[0], "'"));
  Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.name = absl::GetFlag(FLAGS_name);
  options.status = absl::GetFlag(FLAGS_status);
  options.body = absl::GetFlag(FLAGS_body);
  options.delay = absl::GetFlag(FLAGS_delay);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (options.listen.empty()) return fail("--listen is required");
  if (options.status < 200 || options.status > 599) return fail("--status must be 200..599");
  if (options.delay < absl::ZeroDuration()) return fail("--delay must not be negative");
  if (options.threads < 1 || options.threads > 64) return fail("--threads must be 1..64");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return fail("--tls-cert and --tls-key go together");
  }
  if (!options.tls_client_ca.empty() && options.tls_cert.empty()) {
    return fail("--tls-client-ca needs --tls-cert");
  }

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client that goes away mid-response must not kill the server.
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<Server>> server = Server::start(options);
  if (!server.ok()) return fail(std::string(server.status().message()));
  std::printf("listening on %s\n", (*server)->address().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  (*server)->stop();
  return 0;
}

}  // namespace
}  // namespace sluice::echo

int main(int argc, char** argv) { return sluice::echo::run(argc, argv); }
