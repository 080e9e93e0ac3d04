// The route index: the same first match as trying every route in order (randomized against a
// linear reference, and edge cases on small and indexed hosts), and no allocation per request.
#include "proxy/router/route_table.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "test/proxy/router/fake_request.h"

// Counts every allocation in this test binary, to show that route() makes none.
namespace {
std::atomic<uint64_t> allocations{0};
}  // namespace

void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace sluice::router {
namespace {

namespace v1 = config::v1;

using testing::FakeHeaders;
using testing::Request;

// What the index must agree with: every route of the virtual host, in order.
const Route* linearReference(const RouteTable& table, const RequestView& request) {
  const VirtualHost* vh = table.findVirtualHost(request.host);
  if (vh == nullptr) return nullptr;
  for (const Route& r : vh->routes) {
    if (r.matches(request)) return &r;
  }
  return nullptr;
}

std::string nameOf(const Route* r) { return r == nullptr ? "<none>" : r->name; }

std::unique_ptr<RouteTable> compile(const v1::RouteConfiguration& config) {
  auto table = RouteTable::compile(config, [](const std::string&) { return 0; });
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : nullptr;
}

// Randomized differential test.

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[uniform(0, static_cast<int>(v.size()) - 1)];
  }

  // Segments that overlap as strings ("a", "api", "Api") and a two-byte UTF-8 one.
  std::string path() {
    static const std::vector<std::string> kSegments = {
        "a", "b", "api", "v1", "users", "A", "Api", "42", "\xc3\xa9", "x.php", ""};
    std::string p;
    for (int i = uniform(0, 3); i > 0; --i) absl::StrAppend(&p, "/", pick(kSegments));
    if (p.empty() || chance(0.3)) p += "/";
    return p;
  }

  std::string prefix() {
    if (chance(0.05)) return "";
    if (chance(0.1)) return "/";
    std::string p = path();
    // Cut inside a segment as often as not: prefixes are strings, not segments.
    if (chance(0.5)) p.resize(uniform(0, static_cast<int>(p.size())));
    return p;
  }

  std::string regex() {
    static const std::vector<std::string> kRegexes = {"/api/[0-9]+",
                                                      "/a.*",
                                                      ".*",
                                                      "/(a|b)/v1/?",
                                                      "/[a-z]+",
                                                      "/API/.*",
                                                      "(?i)/api(/.*)?",
                                                      "/users/[^/]+/?",
                                                      "/a|/b",
                                                      "^/v1$",
                                                      "/v[0-9]/.*",
                                                      "/\xc3\xa9.*",
                                                      "/.*\\.php",
                                                      "/[^a]*",
                                                      "/a/b/?",
                                                      "/.",
                                                      "(/[a-z0-9]+)+",
                                                      "/api/v1/users/?",
                                                      "/\\pL+/?",
                                                      ""};
    if (chance(0.6)) return pick(kRegexes);
    std::string p = RE2::QuoteMeta(path());
    switch (uniform(0, 2)) {
      case 0:
        return p + ".*";
      case 1:
        return p + "/?";
      default:
        return p;
    }
  }

  void conditions(v1::RouteMatch* m) {
    if (chance(0.2)) {
      for (const char* method : {"GET", "POST", "PUT"}) {
        if (chance(0.5)) m->add_methods(method);
      }
    }
    if (chance(0.2)) {
      v1::HeaderMatcher* h = m->add_headers();
      h->set_name(chance(0.5) ? "x-a" : "X-B");
      switch (uniform(0, 3)) {
        case 0:
          h->set_exact("1");
          break;
        case 1:
          h->set_prefix("1");
          break;
        case 2:
          h->set_present(chance(0.5));
          break;
        default:
          h->set_regex("[0-9]+");
          break;
      }
      h->set_invert(chance(0.2));
    }
    if (chance(0.15)) {
      v1::QueryParameterMatcher* q = m->add_query_parameters();
      q->set_name("q");
      switch (uniform(0, 2)) {
        case 0:
          q->set_exact(chance(0.5) ? "1" : "a b");
          break;
        case 1:
          q->set_present(chance(0.7));
          break;
        default:
          q->set_regex("[0-9]+");
          break;
      }
    }
  }

  // `n` routes named by position, each kind drawn with the host's own weights.
  void routes(v1::VirtualHost* vh, int n) {
    const int exacts = uniform(0, 4), prefixes = uniform(0, 4), regexes = uniform(0, 4);
    const int total = exacts + prefixes + regexes + 1;
    for (int i = 0; i < n; ++i) {
      v1::Route* r = vh->add_routes();
      r->set_name(absl::StrCat(vh->name(), "/r", i));
      r->mutable_route()->set_cluster("c");
      v1::RouteMatch* m = r->mutable_match();
      const int kind = uniform(0, total - 1);
      if (kind < exacts) {
        m->set_path(path());
      } else if (kind < exacts + prefixes) {
        m->set_prefix(prefix());
      } else if (kind < total - 1) {
        m->set_regex(regex());
      } else if (vh->routes_size() > 1 && chance(0.5)) {
        // A duplicate of an earlier route's path, often with other conditions.
        *m = vh->routes(uniform(0, vh->routes_size() - 2)).match();
        m->clear_methods();
        m->clear_headers();
        m->clear_query_parameters();
      } else {
        m->set_prefix("/");
      }
      if (chance(0.5)) conditions(m);
    }
  }

  v1::RouteConfiguration table() {
    v1::RouteConfiguration config;
    config.set_name("random");
    for (const char* domain : {"a.example.com", "*"}) {
      v1::VirtualHost* vh = config.add_virtual_hosts();
      vh->set_name(domain);
      vh->add_domains(domain);
      // Mostly around the linear threshold; some hosts with several runs of 64 regexes.
      const int size = chance(0.1)   ? uniform(200, 500)
                       : chance(0.5) ? uniform(0, 40)
                                     : uniform(20, 120);
      routes(vh, size);
    }
    return config;
  }

  Request request(const RouteTable& table) {
    Request r;
    r.method = pick(std::vector<std::string>{"GET", "POST", "PUT", "DELETE"});
    r.host = chance(0.5) ? "a.example.com" : "other.example.com";
    const VirtualHost* vh = table.findVirtualHost(r.host);
    const int source = uniform(0, 9);
    if (source < 4 && vh != nullptr && !vh->routes.empty()) {
      // Near a route's own path: itself, longer, shorter, another case or trailing slash.
      const Route& route = vh->routes[uniform(0, static_cast<int>(vh->routes.size()) - 1)];
      r.path = route.path_kind == Route::PathKind::kRegex ? path() : route.path;
      switch (uniform(0, 4)) {
        case 0:
          r.path += pick(std::vector<std::string>{"/", "a", "/x", "/42", "pi/v1"});
          break;
        case 1:
          if (!r.path.empty()) r.path.pop_back();
          break;
        case 2:
          for (char& c : r.path) c = chance(0.5) ? absl::ascii_toupper(c) : c;
          break;
        case 3:
          if (!r.path.empty() && r.path.back() == '/') {
            r.path.pop_back();
          } else {
            r.path += "/";
          }
          break;
        default:
          break;
      }
    } else if (source < 8) {
      r.path = path();
    } else {
      r.path = pick(std::vector<std::string>{"", "/", "//", "/api/12", "/API/x", "/x.php",
                                             "/\xc3\xa9/", "/v1", "/a/b", "/\xff"});
    }
    r.query = pick(std::vector<std::string>{"", "q=1", "q=a+b", "q=12&x=1", "x=1", "q"});
    if (chance(0.4)) r.headers.add("x-a", pick(std::vector<std::string>{"1", "12", "2"}));
    if (chance(0.3)) r.headers.add("x-b", "1");
    return r;
  }

 private:
  std::mt19937 rng_;
};

TEST(RouteIndexTest, SameRouteAsTheLinearReference) {
  int failures = 0, indexed_hosts = 0;
  std::map<std::string, int> outcomes;  // by the kind of the route chosen
  for (uint32_t seed = 1; seed <= 300 && failures < 10; ++seed) {
    Generator gen(seed);
    const v1::RouteConfiguration config = gen.table();
    auto table = compile(config);
    ASSERT_NE(table, nullptr) << "seed " << seed;
    for (const char* host : {"a.example.com", "other.example.com"}) {
      if (table->findVirtualHost(host)->index.indexed()) ++indexed_hosts;
    }
    for (int i = 0; i < 200 && failures < 10; ++i) {
      const Request request = gen.request(*table);
      const Route* want = linearReference(*table, request.view());
      const Route* got = table->route(request.view());
      if (got != want) {
        ++failures;
        ADD_FAILURE() << "seed " << seed << ", request " << request.describe() << ": got "
                      << nameOf(got) << ", want " << nameOf(want) << "\n"
                      << config.DebugString();
      }
      const char* kinds[] = {"exact", "prefix", "regex"};
      ++outcomes[want == nullptr ? "none" : kinds[static_cast<int>(want->path_kind)]];
    }
  }
  // The comparison means something only if both ways ran and every kind of route was chosen.
  EXPECT_GT(indexed_hosts, 200);
  EXPECT_LT(indexed_hosts, 550);
  for (const char* kind : {"exact", "prefix", "regex", "none"}) {
    EXPECT_GT(outcomes[kind], 1000) << kind;
  }
}

// Edge cases, each on a small host (scanned in order unless it has many routes) and on an indexed
// one: the routes under test come first, followed by routes no test request matches.

std::unique_ptr<RouteTable> table(const std::string& routes, int padding) {
  std::string text = absl::StrCat(R"(name: "t" virtual_hosts { name: "all" domains: "*" )", routes);
  for (int i = 0; i < padding; ++i) {
    absl::StrAppend(&text, R"( routes { name: "pad" match { path: "/padding/)", i,
                    R"(" } route { cluster: "c" } })");
  }
  text += " }";
  v1::RouteConfiguration config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  auto compiled = compile(config);
  if (compiled != nullptr && padding > 0) {
    EXPECT_TRUE(compiled->findVirtualHost("x")->index.indexed());
  }
  return compiled;
}

// The route chosen for `request`, after checking that the reference chooses the same.
std::string checkedRouteFor(const RouteTable& t, const Request& request) {
  const Route* got = t.route(request.view());
  EXPECT_EQ(got, linearReference(t, request.view())) << request.describe();
  return nameOf(got);
}

class RouteIndexEdgeTest : public ::testing::TestWithParam<int> {
 protected:
  static std::string routeFor(const RouteTable& t, const Request& request) {
    return checkedRouteFor(t, request);
  }
  static std::string routeFor(const RouteTable& t, std::string path) {
    Request request;
    request.path = std::move(path);
    return checkedRouteFor(t, request);
  }
};

INSTANTIATE_TEST_SUITE_P(LinearAndIndexed, RouteIndexEdgeTest, ::testing::Values(0, 40),
                         [](const auto& info) { return info.param == 0 ? "Linear" : "Indexed"; });

TEST_P(RouteIndexEdgeTest, EmptyPrefixMatchesEveryPath) {
  auto t = table(R"(
    routes { name: "api" match { path: "/api" } route { cluster: "c" } }
    routes { name: "empty" match { prefix: "" } route { cluster: "c" } }
    routes { name: "slash" match { prefix: "/" } route { cluster: "c" } })",
                 GetParam());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(routeFor(*t, "/api"), "api");
  EXPECT_EQ(routeFor(*t, "/api/"), "empty");
  EXPECT_EQ(routeFor(*t, "/"), "empty");
  EXPECT_EQ(routeFor(*t, ""), "empty");
  EXPECT_EQ(routeFor(*t, "/padding/1"), "empty");
}

TEST_P(RouteIndexEdgeTest, SlashPrefixDoesNotMatchTheEmptyPath) {
  auto t = table(R"(
    routes { name: "slash" match { prefix: "/" } route { cluster: "c" } }
    routes { name: "exact-empty" match { path: "" } route { cluster: "c" } })",
                 GetParam());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(routeFor(*t, "/"), "slash");
  EXPECT_EQ(routeFor(*t, "/x"), "slash");
  EXPECT_EQ(routeFor(*t, ""), "exact-empty");
}

TEST_P(RouteIndexEdgeTest, ExactAfterAMatchingPrefixIsShadowed) {
  auto t = table(R"(
    routes { name: "api-prefix" match { prefix: "/api/" } route { cluster: "c" } }
    routes { name: "users-exact" match { path: "/api/users" } route { cluster: "c" } }
    routes { name: "v2-exact" match { path: "/v2/users" } route { cluster: "c" } }
    routes { name: "v2-prefix" match { prefix: "/v2" } route { cluster: "c" } })",
                 GetParam());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(routeFor(*t, "/api/users"), "api-prefix");
  EXPECT_EQ(routeFor(*t, "/api"), "<none>");
  EXPECT_EQ(routeFor(*t, "/v2/users"), "v2-exact");
  EXPECT_EQ(routeFor(*t, "/v2/users/"), "v2-prefix");
  EXPECT_EQ(routeFor(*t, "/v2"), "v2-prefix");
}

TEST_P(RouteIndexEdgeTest, RegexBeforeAnExactRoute) {
  auto t = table(R"(
    routes { name: "regex" match { regex: "/users/[0-9]+" headers { name: "x-a" present: true } }
             route { cluster: "c" } }
    routes { name: "exact" match { path: "/users/42" } route { cluster: "c" } }
    routes { name: "late-regex" match { regex: "/users/.*" } route { cluster: "c" } })",
                 GetParam());
  ASSERT_NE(t, nullptr);
  Request with_header;
  with_header.path = "/users/42";
  with_header.headers.add("x-a", "1");
  EXPECT_EQ(routeFor(*t, with_header), "regex");
  EXPECT_EQ(routeFor(*t, "/users/42"), "exact");
  EXPECT_EQ(routeFor(*t, "/users/43"), "late-regex");
  with_header.path = "/users/43";
  EXPECT_EQ(routeFor(*t, with_header), "regex");
}

TEST_P(RouteIndexEdgeTest, ConditionsFailingOnTheEarliestCandidate) {
  auto t = table(R"(
    routes { name: "post-exact" match { path: "/a" methods: "POST" } route { cluster: "c" } }
    routes { name: "header-prefix" match { prefix: "/a" headers { name: "x-a" exact: "1" } }
             route { cluster: "c" } }
    routes { name: "query-exact" match { path: "/a" query_parameters { name: "q" present: true } }
             route { cluster: "c" } }
    routes { name: "exact" match { path: "/a" } route { cluster: "c" } }
    routes { name: "prefix" match { prefix: "/" } route { cluster: "c" } })",
                 GetParam());
  ASSERT_NE(t, nullptr);
  Request r;
  r.path = "/a";
  EXPECT_EQ(routeFor(*t, r), "exact");
  r.query = "q";
  EXPECT_EQ(routeFor(*t, r), "query-exact");
  r.headers.add("x-a", "1");
  EXPECT_EQ(routeFor(*t, r), "header-prefix");
  r.method = "POST";
  EXPECT_EQ(routeFor(*t, r), "post-exact");
  r.path = "/ab";
  EXPECT_EQ(routeFor(*t, r), "header-prefix");
  r.headers = {};
  EXPECT_EQ(routeFor(*t, r), "prefix");
}

TEST_P(RouteIndexEdgeTest, DuplicatePathsDifferByConditions) {
  auto t = table(R"(
    routes { name: "get" match { prefix: "/x" methods: "GET" } route { cluster: "c" } }
    routes { name: "put" match { prefix: "/x" methods: "PUT" } route { cluster: "c" } }
    routes { name: "any" match { prefix: "/x" } route { cluster: "c" } }
    routes { name: "never" match { prefix: "/x" } route { cluster: "c" } })",
                 GetParam());
  ASSERT_NE(t, nullptr);
  Request r;
  r.path = "/xy";
  EXPECT_EQ(routeFor(*t, r), "get");
  r.method = "PUT";
  EXPECT_EQ(routeFor(*t, r), "put");
  r.method = "DELETE";
  EXPECT_EQ(routeFor(*t, r), "any");
}

TEST_P(RouteIndexEdgeTest, NestedPrefixesInAnyOrder) {
  auto t = table(R"(
    routes { name: "long" match { prefix: "/api/v1/users" } route { cluster: "c" } }
    routes { name: "short" match { prefix: "/api" } route { cluster: "c" } }
    routes { name: "middle" match { prefix: "/api/v1/" } route { cluster: "c" } }
    routes { name: "case" match { prefix: "/API" } route { cluster: "c" } }
    routes { name: "utf8" match { prefix: "/\xc3\xa9" } route { cluster: "c" } }
    routes { name: "e" match { prefix: "/e" } route { cluster: "c" } })",
                 GetParam());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(routeFor(*t, "/api/v1/users/1"), "long");
  EXPECT_EQ(routeFor(*t, "/api/v1/user"), "short");
  EXPECT_EQ(routeFor(*t, "/api/v1/"), "short");
  EXPECT_EQ(routeFor(*t, "/ap"), "<none>");
  EXPECT_EQ(routeFor(*t, "/API/v1/users"), "case");
  EXPECT_EQ(routeFor(*t, "/Api"), "<none>");
  EXPECT_EQ(routeFor(*t, "/\xc3\xa9t\xc3\xa9"), "utf8");
  EXPECT_EQ(routeFor(*t, "/\xc3"), "<none>");
  EXPECT_EQ(routeFor(*t, "/e"), "e");
}

// More than one run of regexes (each run has an RE2::Set): a run whose set matches but whose
// routes' conditions fail passes the request on to later runs.
TEST(RouteIndexTest, ManyRegexes) {
  std::string routes;
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&routes, R"( routes { name: "re)", i, R"(" match { regex: "/s)", i,
                    R"(/[0-9]+" methods: "POST" } route { cluster: "c" } })");
  }
  absl::StrAppend(&routes, R"( routes { name: "any-digits" match { regex: "/s[0-9]+/[0-9]+" }
                               route { cluster: "c" } })");
  auto t = table(routes, 0);
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->findVirtualHost("x")->index.indexed());
  Request r;
  r.method = "POST";
  for (int i : {0, 63, 64, 130, 199}) {
    r.path = absl::StrCat("/s", i, "/7");
    EXPECT_EQ(checkedRouteFor(*t, r), absl::StrCat("re", i));
  }
  r.method = "GET";
  EXPECT_EQ(checkedRouteFor(*t, r), "any-digits");
  r.path = "/s7/x";
  EXPECT_EQ(checkedRouteFor(*t, r), "<none>");
}

// No allocation per request.

TEST(RouteIndexAllocationTest, RouteAllocatesNothing) {
  Generator gen(12345);
  std::vector<std::unique_ptr<RouteTable>> tables;
  std::vector<Request> requests;
  for (int i = 0; i < 20; ++i) {
    tables.push_back(compile(gen.table()));
    ASSERT_NE(tables.back(), nullptr);
    for (int j = 0; j < 50; ++j) requests.push_back(gen.request(*tables.back()));
  }
  // A first pass lets RE2 build the DFA states these paths need; those stay cached.
  int matched = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    matched += tables[i / 50]->route(requests[i].view()) != nullptr;
  }
  EXPECT_GT(matched, 100);
  const uint64_t before = allocations.load();
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < requests.size(); ++i) tables[i / 50]->route(requests[i].view());
  }
  EXPECT_EQ(allocations.load() - before, 0);
}

TEST(RouteIndexAllocationTest, TheCounterSeesAllocations) {
  const uint64_t before = allocations.load();
  auto p = std::make_unique<std::string>(100, 'x');
  EXPECT_GT(allocations.load() - before, 0);
}

}  // namespace
}  // namespace sluice::router
