#pragma once

// A request for route matching tests: its headers answer only lower-case names, as RouteTable
// promises to ask for them.
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proxy/router/route_table.h"

namespace sluice::router::testing {

class FakeHeaders : public HeaderSource {
 public:
  FakeHeaders() = default;
  FakeHeaders(std::initializer_list<std::pair<std::string, std::string>> headers)
      : headers_(headers) {}

  void add(std::string name, std::string value) {
    headers_.emplace_back(std::move(name), std::move(value));
  }
  bool find(std::string_view name, std::string_view* value) const override {
    for (const auto& [n, v] : headers_) {
      if (n == name) {
        *value = v;
        return true;
      }
    }
    return false;
  }
  std::string describe() const {
    std::string out;
    for (const auto& [n, v] : headers_) absl::StrAppend(&out, n, ": ", v, "; ");
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> headers_;
};

struct Request {
  std::string method = "GET";
  std::string host = "example.com";
  std::string path = "/";
  std::string query;
  FakeHeaders headers;

  RequestView view() const { return {method, host, path, query, &headers}; }
  std::string describe() const {
    return absl::StrCat(method, " ", host, " '", path, "' ?", query, " [", headers.describe(), "]");
  }
};

}  // namespace sluice::router::testing
