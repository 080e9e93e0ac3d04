// Microbenchmarks of the route matcher: what a worker does per request (pick the virtual host by
// Host, then the first matching route), on tables of 20 and 10,000 routes, and what compiling a
// large table costs on the main thread.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/router/route_table.h"
#include "sluice/config/v1/route.pb.h"

namespace sluice::router {
namespace {

namespace v1 = config::v1;

class Headers : public HeaderSource {
 public:
  Headers(std::initializer_list<std::pair<std::string_view, std::string_view>> fields)
      : fields_(fields) {}
  bool find(std::string_view name, std::string_view* value) const override {
    for (const auto& [n, v] : fields_) {
      if (n == name) {
        *value = v;
        return true;
      }
    }
    return false;
  }

 private:
  std::vector<std::pair<std::string_view, std::string_view>> fields_;
};

std::unique_ptr<RouteTable> compileOrDie(const v1::RouteConfiguration& config) {
  auto table = RouteTable::compile(config, [](const std::string&) { return 0; });
  if (!table.ok()) {
    std::fprintf(stderr, "route table did not compile: %s\n",
                 std::string(table.status().message()).c_str());
    std::abort();
  }
  return *std::move(table);
}

v1::Route* addRoute(v1::VirtualHost* vh, std::string name) {
  v1::Route* r = vh->add_routes();
  r->set_name(std::move(name));
  r->mutable_route()->set_cluster("upstream");
  return r;
}

enum class Kind { kExact, kPrefix, kRegex };

std::string pathOf(Kind kind, int i) {
  switch (kind) {
    case Kind::kExact:
      return "/service" + std::to_string(i) + "/status";
    case Kind::kPrefix:
      return "/service" + std::to_string(i) + "/";
    case Kind::kRegex:
      return "/service" + std::to_string(i) + "/items/[0-9]+";
  }
  return {};
}

// One catch-all virtual host with `n` routes of one kind, followed by a prefix "/" route.
v1::RouteConfiguration uniformTable(Kind kind, int n) {
  v1::RouteConfiguration config;
  config.set_name("bench");
  v1::VirtualHost* vh = config.add_virtual_hosts();
  vh->set_name("any");
  vh->add_domains("*");
  for (int i = 0; i < n; ++i) {
    v1::RouteMatch* m = addRoute(vh, "r" + std::to_string(i))->mutable_match();
    switch (kind) {
      case Kind::kExact:
        m->set_path(pathOf(kind, i));
        break;
      case Kind::kPrefix:
        m->set_prefix(pathOf(kind, i));
        break;
      case Kind::kRegex:
        m->set_regex(pathOf(kind, i));
        break;
    }
  }
  addRoute(vh, "fallback")->mutable_match()->set_prefix("/");
  return config;
}

enum class Hit { kFirst, kLast, kNone };

// A request for the first or the last of `n` routes of a uniform table, or for none of them
// (it falls through to the "/" route after them all).
std::string requestPath(Kind kind, int i) {
  if (i < 0) return "/unknown/path/for/fallback";
  switch (kind) {
    case Kind::kExact:
      return pathOf(kind, i);
    case Kind::kPrefix:
      return pathOf(kind, i) + "orders/42";
    case Kind::kRegex:
      return "/service" + std::to_string(i) + "/items/12345";
  }
  return {};
}

void lookupLoop(benchmark::State& state, const RouteTable& table, const RequestView& request,
                std::string_view want) {
  const Route* r = table.route(request);
  if (r == nullptr || r->name != want) {
    state.SkipWithError("request matched the wrong route");
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.route(request));
  }
}

// Argument: the number of routes.
void BM_Uniform(benchmark::State& state, Kind kind, Hit hit) {
  const int n = static_cast<int>(state.range(0));
  const int target = hit == Hit::kFirst ? 0 : hit == Hit::kLast ? n - 1 : -1;
  auto table = compileOrDie(uniformTable(kind, n));
  const std::string path = requestPath(kind, target);
  const Headers headers{{"user-agent", "wrk"}};
  RequestView request{"GET", "api.example.com", path, "", &headers};
  lookupLoop(state, *table, request, target < 0 ? "fallback" : "r" + std::to_string(target));
}
BENCHMARK_CAPTURE(BM_Uniform, exact_first, Kind::kExact, Hit::kFirst)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, exact_last, Kind::kExact, Hit::kLast)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, exact_none, Kind::kExact, Hit::kNone)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, prefix_first, Kind::kPrefix, Hit::kFirst)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, prefix_last, Kind::kPrefix, Hit::kLast)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, prefix_none, Kind::kPrefix, Hit::kNone)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, regex_first, Kind::kRegex, Hit::kFirst)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, regex_last, Kind::kRegex, Hit::kLast)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Uniform, regex_none, Kind::kRegex, Hit::kNone)->Arg(20)->Arg(10'000);

// The 20-route table of the end-to-end feature-cost run (tools/bench/templates/sluice/
// routes20.yaml): exact paths, prefixes, regexes, a method and a header condition, then "/".
v1::RouteConfiguration mixedTable() {
  v1::RouteConfiguration config;
  config.set_name("bench");
  v1::VirtualHost* vh = config.add_virtual_hosts();
  vh->set_name("any");
  vh->add_domains("*");
  const char* exact[] = {"/healthz", "/login", "/logout", "/api/v1/status", "/favicon.ico"};
  for (const char* p : exact) addRoute(vh, p)->mutable_match()->set_path(p);
  const char* prefixes[] = {"/static/", "/assets/", "/api/v1/users/", "/api/v1/orders/",
                            "/api/v2/", "/admin/",  "/internal/"};
  for (const char* p : prefixes) addRoute(vh, p)->mutable_match()->set_prefix(p);
  const char* regexes[] = {"/api/v1/items/[0-9]+", "/api/v1/items/[0-9]+/reviews",
                           "/u/[a-z0-9_-]{3,32}", "/blog/[0-9]{4}/[0-9]{2}/[a-z0-9-]+",
                           "/.*\\.(php|asp|cgi)"};
  for (const char* p : regexes) addRoute(vh, p)->mutable_match()->set_regex(p);
  v1::RouteMatch* m = addRoute(vh, "upload")->mutable_match();
  m->set_prefix("/upload");
  m->add_methods("POST");
  m = addRoute(vh, "canary")->mutable_match();
  m->set_prefix("/");
  v1::HeaderMatcher* h = m->add_headers();
  h->set_name("x-canary");
  h->set_exact("1");
  addRoute(vh, "fallback")->mutable_match()->set_prefix("/");
  return config;
}

void BM_Mixed20(benchmark::State& state, std::string_view path, std::string_view want) {
  auto table = compileOrDie(mixedTable());
  const Headers headers{{"user-agent", "wrk"}, {"accept", "*/*"}};
  RequestView request{"GET", "127.0.0.1:8080", path, "", &headers};
  lookupLoop(state, *table, request, want);
}
BENCHMARK_CAPTURE(BM_Mixed20, exact_first, "/healthz", "/healthz");
BENCHMARK_CAPTURE(BM_Mixed20, prefix, "/api/v1/orders/42", "/api/v1/orders/");
BENCHMARK_CAPTURE(BM_Mixed20, regex, "/blog/2024/05/hello-world",
                  "/blog/[0-9]{4}/[0-9]{2}/[a-z0-9-]+");
BENCHMARK_CAPTURE(BM_Mixed20, fallback, "/12", "fallback");

// Virtual host selection among `n` exact domains, `n / 100` suffix wildcards and "*".
v1::RouteConfiguration hostTable(int n) {
  v1::RouteConfiguration config;
  config.set_name("bench");
  for (int i = 0; i < n; ++i) {
    v1::VirtualHost* vh = config.add_virtual_hosts();
    vh->set_name("h" + std::to_string(i));
    vh->add_domains("host" + std::to_string(i) + ".example.com");
    if (i % 100 == 0) vh->add_domains("*.zone" + std::to_string(i) + ".example.net");
    addRoute(vh, "h" + std::to_string(i))->mutable_match()->set_prefix("/");
  }
  v1::VirtualHost* any = config.add_virtual_hosts();
  any->set_name("any");
  any->add_domains("*");
  addRoute(any, "any")->mutable_match()->set_prefix("/");
  return config;
}

enum class HostKind { kExact, kExactWithPort, kWildcard, kAny };

// Argument: the number of virtual hosts.
void BM_Host(benchmark::State& state, HostKind kind) {
  const int n = static_cast<int>(state.range(0));
  auto table = compileOrDie(hostTable(n));
  const std::string middle = std::to_string(n / 2);
  std::string host;
  std::string want = "h" + middle;
  switch (kind) {
    case HostKind::kExact:
      host = "Host" + middle + ".Example.com";
      break;
    case HostKind::kExactWithPort:
      host = "host" + middle + ".example.com:8080";
      break;
    case HostKind::kWildcard:
      host = "api.zone0.example.net";
      want = "h0";
      break;
    case HostKind::kAny:
      host = "unknown.example.org";
      want = "any";
      break;
  }
  RequestView request{"GET", host, "/", "", nullptr};
  lookupLoop(state, *table, request, want);
}
BENCHMARK_CAPTURE(BM_Host, exact, HostKind::kExact)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Host, exact_with_port, HostKind::kExactWithPort)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Host, wildcard, HostKind::kWildcard)->Arg(20)->Arg(10'000);
BENCHMARK_CAPTURE(BM_Host, any, HostKind::kAny)->Arg(20)->Arg(10'000);

// Compiling a table on the main thread: what a config update with `n` routes (a third each
// exact, prefix and regex) costs before it is posted to the workers.
void BM_Compile(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  v1::RouteConfiguration config;
  config.set_name("bench");
  v1::VirtualHost* vh = config.add_virtual_hosts();
  vh->set_name("any");
  vh->add_domains("*");
  for (int i = 0; i < n; ++i) {
    v1::RouteMatch* m = addRoute(vh, "r" + std::to_string(i))->mutable_match();
    const Kind kind = static_cast<Kind>(i % 3);
    if (kind == Kind::kExact) m->set_path(pathOf(kind, i));
    if (kind == Kind::kPrefix) m->set_prefix(pathOf(kind, i));
    if (kind == Kind::kRegex) m->set_regex(pathOf(kind, i));
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(compileOrDie(config));
  }
  state.counters["routes"] = n;
}
BENCHMARK(BM_Compile)->Arg(20)->Arg(10'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::router
