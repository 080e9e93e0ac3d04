// libFuzzer target for the HTTP/1.1 codec (//proxy/http:codec). Every input goes through the
// request head parser (then its chunked body, if any), the response head parser, the chunked
// decoder on its own and path normalization, under the default limits and under small ones.
// Besides crashes and sanitizer reports, it aborts when an invariant breaks: views outside the
// input, counts over limits, an unexpected status, results that depend on how the bytes were
// split, or a normalized path that normalizes to something else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "proxy/http/chunked.h"
#include "proxy/http/codec.h"

namespace sluice::http {
namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

bool inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;  // an empty view may point anywhere
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

Limits smallLimits() {
  Limits l;
  l.max_head_bytes = 300;
  l.max_headers = 6;
  l.max_request_line = 60;
  l.max_chunk_line = 12;
  l.max_trailer_bytes = 40;
  return l;
}

// A cheap position in [0, n] derived from the input, for split points.
size_t pick(std::string_view data, size_t salt, size_t n) {
  uint64_t h = 1469598103934665603ull ^ salt;
  for (size_t i = 0; i < data.size() && i < 64; ++i)
    h = (h ^ static_cast<uint8_t>(data[i])) * 1099511628211ull;
  return n == 0 ? 0 : static_cast<size_t>(h % (n + 1));
}

void checkNormalizedPath(std::string_view path) {
  check(!path.empty() && path[0] == '/', "normalized path starts with '/'");
  check(path.find("//") == std::string_view::npos, "normalized path has no '//'");
  check(path.find("/./") == std::string_view::npos && path.find("/../") == std::string_view::npos,
        "normalized path has no dot segments");
  check(!path.ends_with("/.") && !path.ends_with("/.."),
        "normalized path has no final dot segment");
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') continue;
    check(i + 2 < path.size(), "escape is complete");
    for (char c : path.substr(i + 1, 2)) {
      check((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'), "escape is upper-case hex");
    }
  }
  char again[kPathCapacity];
  size_t len = 0;
  check(normalizePath(path, again, sizeof(again), &len), "normalized path normalizes");
  check(std::string_view(again, len) == path, "normalization is idempotent");
}

void checkFields(std::span<const Header> headers, std::string_view head) {
  for (const Header& h : headers) {
    check(!h.name.empty() && inside(h.name, head) && inside(h.value, head), "fields in head");
    for (char c : h.name) check(c > ' ' && c != ':' && c < 0x7f, "field name is a token");
    for (char c : h.value) check(c == '\t' || static_cast<uint8_t>(c) >= 0x20, "no CTL in value");
    if (!h.value.empty()) {
      check(h.value.front() != ' ' && h.value.front() != '\t' && h.value.back() != ' ' &&
                h.value.back() != '\t',
            "value trimmed");
    }
  }
}

// findHeadEnd over the bytes in two reads must agree with one read.
void checkHeadEndSplit(std::string_view data, const Limits& limits) {
  HeadScan whole_scan;
  size_t whole_len = 0;
  Error whole_err;
  const ParseStatus whole = findHeadEnd(data, limits, &whole_scan, &whole_len, &whole_err);

  const size_t split = pick(data, 1, data.size());
  HeadScan scan;
  size_t len = 0;
  Error err;
  ParseStatus split_status = findHeadEnd(data.substr(0, split), limits, &scan, &len, &err);
  if (split_status == ParseStatus::kIncomplete) {
    split_status = findHeadEnd(data, limits, &scan, &len, &err);
  }
  check(split_status == whole, "findHeadEnd status independent of split");
  if (whole == ParseStatus::kDone) check(len == whole_len, "head length independent of split");
  if (whole == ParseStatus::kError) check(err.status == whole_err.status, "same error status");
  if (whole == ParseStatus::kIncomplete) {
    const std::string_view window = data.substr(0, std::min(data.size(), limits.max_head_bytes));
    check(window.find("\r\n\r\n") == std::string_view::npos, "incomplete means no blank line");
  }
}

// Decodes `body` in pieces of the given size (0: all at once); returns the status and fills
// the totals.
ParseStatus decodeChunked(std::string_view body, const Limits& limits, size_t piece,
                          size_t* consumed, uint64_t* data_hash, size_t* data_len,
                          const char** reason) {
  ChunkedDecoder decoder(limits);
  *consumed = 0;
  *data_hash = 1469598103934665603ull;
  *data_len = 0;
  ParseStatus status = ParseStatus::kIncomplete;
  size_t offset = 0;
  while (offset < body.size() && status == ParseStatus::kIncomplete) {
    std::string_view in = body.substr(offset, piece == 0 ? body.size() : piece);
    while (!in.empty() && status == ParseStatus::kIncomplete) {
      Error err;
      const ChunkedDecoder::Result r = decoder.decode(in, &err);
      check(r.consumed <= in.size(), "chunked consumed within input");
      check(r.data.size() <= r.consumed, "chunk data within consumed");
      check(r.data.empty() || r.data.data() == in.data() + r.consumed - r.data.size(),
            "chunk data at the end of consumed");
      status = r.status;
      if (status == ParseStatus::kError) {
        check(err.status == 400 && err.reason != nullptr && err.reason[0] != '\0',
              "chunked error is 400 with a reason");
        *reason = err.reason;
        break;
      }
      check(r.consumed > 0 || status == ParseStatus::kDone, "chunked decoder makes progress");
      for (char c : r.data) *data_hash = (*data_hash ^ static_cast<uint8_t>(c)) * 1099511628211ull;
      *data_len += r.data.size();
      *consumed += r.consumed;
      offset += r.consumed;
      in.remove_prefix(r.consumed);
    }
  }
  if (status != ParseStatus::kError) {
    check(decoder.bodyBytes() == *data_len, "bodyBytes counts the data");
    check(decoder.done() == (status == ParseStatus::kDone), "done() agrees");
  }
  // The end is final: an error repeats, a finished body takes nothing more.
  Error err;
  const ChunkedDecoder::Result after = decoder.decode(body, &err);
  if (status == ParseStatus::kError) {
    check(after.status == ParseStatus::kError && err.reason == *reason, "errors are sticky");
  } else if (status == ParseStatus::kDone) {
    check(after.status == ParseStatus::kDone && after.consumed == 0, "done consumes nothing");
  }
  // And reset() gives a decoder that behaves like a new one.
  decoder.reset();
  const ChunkedDecoder::Result fresh = decoder.decode(body, &err);
  ChunkedDecoder other(limits);
  const ChunkedDecoder::Result expected = other.decode(body, &err);
  check(fresh.status == expected.status && fresh.consumed == expected.consumed &&
            fresh.data.size() == expected.data.size(),
        "reset() starts over");
  return status;
}

void checkChunked(std::string_view body, const Limits& limits) {
  size_t consumed[3];
  uint64_t hash[3];
  size_t len[3];
  const char* reason[3] = {nullptr, nullptr, nullptr};
  const size_t pieces[3] = {0, 1, 1 + pick(body, 2, 16)};
  ParseStatus status[3];
  for (int i = 0; i < 3; ++i) {
    status[i] = decodeChunked(body, limits, pieces[i], &consumed[i], &hash[i], &len[i], &reason[i]);
  }
  for (int i = 1; i < 3; ++i) {
    check(status[i] == status[0], "chunked status independent of split");
    if (status[0] == ParseStatus::kError) {
      check(std::string_view(reason[i]) == reason[0], "chunked error independent of split");
    } else {
      check(consumed[i] == consumed[0] && hash[i] == hash[0] && len[i] == len[0],
            "chunked data independent of split");
    }
  }
}

void checkRequest(std::string_view data, const Limits& limits) {
  static RequestHead head;
  Error err;
  const ParseStatus status = parseRequestHead(data, limits, &head, &err);
  checkHeadEndSplit(data, limits);
  if (status == ParseStatus::kError) {
    const int s = err.status;
    check(s == 400 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505,
          "request error status");
    check(err.reason != nullptr && err.reason[0] != '\0', "request error reason");
    return;
  }
  if (status == ParseStatus::kIncomplete) return;

  check(head.head_len <= data.size() && head.head_len <= limits.max_head_bytes, "head_len");
  const std::string_view bytes = data.substr(0, head.head_len);
  check(bytes.ends_with("\r\n\r\n"), "head ends with a blank line");
  check(bytes.find("\r\n") <= limits.max_request_line, "request line within limit");
  check(head.header_count <= std::min(limits.max_headers, kHeaderCapacity), "header count");
  check(head.connection_token_count <= kConnectionTokenCapacity, "connection token count");
  check(head.version_minor <= 1, "version");
  for (std::string_view v : {head.method, head.target, head.scheme, head.raw_path, head.query,
                             head.host, head.upgrade}) {
    check(inside(v, bytes), "view inside the head");
  }
  for (size_t i = 0; i < head.connection_token_count; ++i) {
    check(inside(head.connection_tokens[i], bytes), "connection token inside the head");
  }
  checkFields(head.headerList(), bytes);
  check(!head.method.empty() && head.method_kind != Method::kConnect, "method");
  check(head.version_minor == 0 || !head.host.empty(), "HTTP/1.1 has a host");
  check(!(head.chunked && head.content_length.has_value()), "never both CL and TE");
  check(!head.chunked || head.version_minor == 1, "chunked only on HTTP/1.1");
  bool close = false, keep_alive = false;
  for (size_t i = 0; i < head.connection_token_count; ++i) {
    close = close || equalsIgnoreCase(head.connection_tokens[i], "close");
    keep_alive = keep_alive || equalsIgnoreCase(head.connection_tokens[i], "keep-alive");
  }
  check(close == head.connection_close, "close option");
  check(head.keep_alive == (!close && (head.version_minor == 1 || keep_alive)), "keep-alive rule");
  if (head.target_form == TargetForm::kAsterisk) {
    check(head.path == "*" && head.method_kind == Method::kOptions, "asterisk form");
  } else {
    const std::string_view buf(head.path_buf, kPathCapacity);
    check(inside(head.path, buf), "path inside path_buf");
    checkNormalizedPath(head.path);
  }

  // The head alone parses the same way.
  static RequestHead again;
  Error again_err;
  check(parseRequestHead(bytes, limits, &again, &again_err) == ParseStatus::kDone &&
            again.header_count == head.header_count && again.path == head.path &&
            again.host == head.host && again.chunked == head.chunked &&
            again.content_length == head.content_length,
        "head parses the same without what follows");

  const BodyKind kind = bodyKind(head);
  check((kind == BodyKind::kChunked) == head.chunked &&
            (kind == BodyKind::kContentLength) == head.content_length.has_value(),
        "request body kind");
  const Header* host = head.find("HOST");
  check(host == nullptr ? head.version_minor == 0 : host->value == head.host, "find(host)");
  if (head.chunked) checkChunked(data.substr(head.head_len), limits);
}

void checkResponse(std::string_view data, const Limits& limits) {
  static ResponseHead head;
  Error err;
  const ParseStatus status = parseResponseHead(data, limits, &head, &err);
  if (status == ParseStatus::kError) {
    check(err.status == 502 && err.reason != nullptr && err.reason[0] != '\0', "response error");
    return;
  }
  if (status == ParseStatus::kIncomplete) return;
  const std::string_view bytes = data.substr(0, head.head_len);
  check(head.head_len <= data.size() && bytes.ends_with("\r\n\r\n"), "response head_len");
  check(head.status >= 100 && head.status <= 599, "status code");
  check(inside(head.reason, bytes) && inside(head.upgrade, bytes), "reason inside the head");
  check(head.header_count <= std::min(limits.max_headers, kHeaderCapacity), "header count");
  checkFields(head.headerList(), bytes);
  check(!(head.chunked && head.content_length.has_value()), "never both CL and TE");
  const BodyKind head_kind = bodyKind(Method::kHead, head);
  check(head_kind == BodyKind::kNone, "no body after HEAD");
  const BodyKind kind = bodyKind(Method::kGet, head);
  if (kind == BodyKind::kChunked) checkChunked(data.substr(head.head_len), limits);
}

// A chunk encoded with encodeChunkHeader decodes to its data.
void checkEncode(std::string_view data) {
  size_t n = 0;
  for (size_t i = 0; i < data.size() && i < sizeof(size_t); ++i) {
    n = (n << 8) | static_cast<uint8_t>(data[i]);
  }
  n = n == 0 ? 1 : n;
  char header[kMaxChunkHeaderBytes];
  const size_t len = encodeChunkHeader(n, header);
  check(len >= 3 && len <= kMaxChunkHeaderBytes, "chunk header length");
  ChunkedDecoder decoder;
  Error err;
  const ChunkedDecoder::Result r = decoder.decode(std::string_view(header, len), &err);
  check(r.status == ParseStatus::kIncomplete && r.consumed == len, "chunk header decodes");
  const std::string_view payload = data.substr(0, std::min(n, data.size()));
  const ChunkedDecoder::Result d = decoder.decode(payload, &err);
  check(d.data.size() == payload.size() && d.consumed == payload.size(), "chunk data decodes");
}

void checkPath(std::string_view data) {
  char out[512];
  size_t len = 0;
  const std::string_view path = data.substr(0, std::min<size_t>(data.size(), sizeof(out)));
  if (!normalizePath(path, out, sizeof(out), &len)) return;
  check(len <= path.size(), "normalizing never lengthens");
  checkNormalizedPath(std::string_view(out, len));
}

}  // namespace
}  // namespace sluice::http

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace sluice::http;
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  for (const Limits& limits : {Limits(), smallLimits()}) {
    checkRequest(data, limits);
    checkResponse(data, limits);
    checkChunked(data, limits);
  }
  checkPath(data);
  checkEncode(data);
  return 0;
}
