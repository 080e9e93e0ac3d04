// Microbenchmarks of the HTTP/1.1 codec: what the connection manager does per request (find
// the end of the head, parse it with the path normalized) and per chunked body.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>

#include "proxy/http/chunked.h"
#include "proxy/http/codec.h"

namespace sluice::http {
namespace {

// A typical browser navigation, about 400 bytes.
constexpr std::string_view kBrowserRequest =
    "GET /products/shoes/running.html?size=42&color=blue HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=4f6a1c2e9b; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "\r\n";

// An API call with 12 fields and a JSON body.
constexpr std::string_view kApiRequest =
    "POST /api/v2/orders/12345/items?expand=price HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 48\r\n"
    "Accept: application/json\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl\r\n"
    "User-Agent: orders-client/3.4.1\r\n"
    "X-Request-Id: 7b2c9e4a-1f3d-4c5b-8a6e-0d9f2b1c3e4f\r\n"
    "X-Forwarded-For: 203.0.113.7\r\n"
    "X-Forwarded-Proto: https\r\n"
    "Accept-Encoding: gzip\r\n"
    "Connection: keep-alive\r\n"
    "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
    "\r\n"
    "{\"sku\":\"RUN-42-BLUE\",\"quantity\":2,\"gift\":false}";

void parseLoop(benchmark::State& state, std::string_view request) {
  auto head = std::make_unique<RequestHead>();
  const Limits limits;
  for (auto _ : state) {
    HeadScan scan;
    size_t head_len = 0;
    Error err;
    if (findHeadEnd(request, limits, &scan, &head_len, &err) != ParseStatus::kDone ||
        parseRequestHead(request.substr(0, head_len), limits, head.get(), &err) !=
            ParseStatus::kDone) {
      state.SkipWithError("request did not parse");
      break;
    }
    benchmark::DoNotOptimize(head->path.data());
    benchmark::DoNotOptimize(head->header_count);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * request.size()));
  state.counters["bytes"] = static_cast<double>(request.size());
}

void BM_BrowserRequest(benchmark::State& state) { parseLoop(state, kBrowserRequest); }
BENCHMARK(BM_BrowserRequest);

void BM_ApiRequest12Headers(benchmark::State& state) { parseLoop(state, kApiRequest); }
BENCHMARK(BM_ApiRequest12Headers);

// The same head arriving one byte at a time: the scan resumes instead of starting over.
void BM_BrowserRequestByteAtATime(benchmark::State& state) {
  const Limits limits;
  for (auto _ : state) {
    HeadScan scan;
    size_t head_len = 0;
    Error err;
    for (size_t n = 1; n <= kBrowserRequest.size(); ++n) {
      if (findHeadEnd(kBrowserRequest.substr(0, n), limits, &scan, &head_len, &err) !=
          ParseStatus::kIncomplete) {
        break;
      }
    }
    benchmark::DoNotOptimize(head_len);
  }
}
BENCHMARK(BM_BrowserRequestByteAtATime);

void BM_NormalizePath(benchmark::State& state) {
  constexpr std::string_view kPath = "/api/v2/./orders//12345/../12346/items/%7Euser/%3a";
  char out[128];
  for (auto _ : state) {
    size_t len = 0;
    benchmark::DoNotOptimize(normalizePath(kPath, out, sizeof(out), &len));
    benchmark::DoNotOptimize(len);
  }
}
BENCHMARK(BM_NormalizePath);

// A 64 KiB body in 4 KiB chunks, validated for verbatim forwarding.
void BM_ChunkedBody64K(benchmark::State& state) {
  std::string body;
  char header[kMaxChunkHeaderBytes];
  for (int i = 0; i < 16; ++i) {
    body.append(header, encodeChunkHeader(4096, header));
    body.append(4096, 'x');
    body += "\r\n";
  }
  body += kLastChunk;
  ChunkedDecoder decoder;
  for (auto _ : state) {
    decoder.reset();
    std::string_view in = body;
    Error err;
    while (!in.empty()) {
      const ChunkedDecoder::Result r = decoder.decode(in, &err);
      benchmark::DoNotOptimize(r.data.data());
      in.remove_prefix(r.consumed);
      if (r.status != ParseStatus::kIncomplete) break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_ChunkedBody64K);

}  // namespace
}  // namespace sluice::http
