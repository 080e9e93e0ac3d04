#include "proxy/http/codec.h"

#include <algorithm>
#include <cstring>

#include "proxy/http/chars.h"

namespace sluice::http {
namespace {

ParseStatus fail(Error* err, int status, const char* reason) {
  err->status = status;
  err->reason = reason;
  return ParseStatus::kError;
}

// Whether `name` equals `lower_name` (already lower case) ignoring case.
bool nameIs(std::string_view name, std::string_view lower_name) {
  if (name.size() != lower_name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (chars::lower(name[i]) != lower_name[i]) return false;
  }
  return true;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && chars::isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && chars::isOws(s.back())) s.remove_suffix(1);
  return s;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!chars::is(c, chars::kToken)) return false;
  }
  return true;
}

// Calls fn(element) for each element of a comma-separated list, OWS trimmed. Returns false if
// fn does, or for an empty element (strict: "a,,b" and "" are malformed here).
template <typename Fn>
bool forEachListElement(std::string_view value, Fn fn) {
  while (true) {
    const size_t comma = value.find(',');
    const std::string_view element = trimOws(value.substr(0, comma));
    if (element.empty() || !fn(element)) return false;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

// Parses 1*DIGIT into a uint64_t; false for anything else or on overflow.
bool parseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// "HTTP/1.0" -> 0, "HTTP/1.1" -> 1. Other well-formed versions are 505, the rest 400.
ParseStatus parseVersion(std::string_view v, uint8_t* minor, Error* err) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (v.size() >= 6 && v.substr(0, 5) == "HTTP/") {
    const std::string_view n = v.substr(5);
    if (n == "1.1" || n == "1.0") {
      *minor = static_cast<uint8_t>(n[2] - '0');
      return ParseStatus::kDone;
    }
    if ((n.size() == 3 && digit(n[0]) && n[1] == '.' && digit(n[2])) ||
        (n.size() == 1 && digit(n[0]))) {
      return fail(err, 505, "unsupported HTTP version");
    }
  }
  return fail(err, 400, "malformed HTTP version");
}

Method classifyMethod(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::kGet;
      if (m == "PUT") return Method::kPut;
      break;
    case 4:
      if (m == "HEAD") return Method::kHead;
      if (m == "POST") return Method::kPost;
      break;
    case 5:
      if (m == "PATCH") return Method::kPatch;
      if (m == "TRACE") return Method::kTrace;
      break;
    case 6:
      if (m == "DELETE") return Method::kDelete;
      break;
    case 7:
      if (m == "OPTIONS") return Method::kOptions;
      if (m == "CONNECT") return Method::kConnect;
      break;
  }
  return Method::kOther;
}

// host = reg-name (unreserved characters, DNS style) / IPv4 / "[" IPv6 "]", then optionally
// ":" 1*5DIGIT <= 65535. Stricter than RFC 3986: no escapes, sub-delims, userinfo or empty port.
bool validHost(std::string_view h) {
  if (h.empty()) return false;
  size_t i = 0;
  if (h[0] == '[') {
    const size_t close = h.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (size_t j = 1; j < close; ++j) {
      if (!chars::is(h[j], chars::kHex) && h[j] != ':' && h[j] != '.') return false;
    }
    i = close + 1;
  } else {
    while (i < h.size() && chars::is(h[i], chars::kHostName)) ++i;
    if (i == 0) return false;
  }
  if (i == h.size()) return true;
  if (h[i] != ':') return false;
  const std::string_view port = h.substr(i + 1);
  uint64_t p = 0;
  return port.size() <= 5 && parseDecimal(port, &p) && p <= 65535;
}

// Everything the field lines of a head say, gathered before the message-level checks.
struct FieldFacts {
  int host_count = 0;
  std::string_view host;
  int cl_count = 0;
  std::string_view cl_value;  // the first Content-Length value
  bool cl_conflict = false;   // a later one differs
  bool has_te = false;
  int chunked_count = 0;
  bool chunked_last = false;  // the last coding seen so far is chunked
  bool te_unknown = false;
  bool te_other_known = false;
  bool te_malformed = false;
  int expect_count = 0;
  bool expect_continue_only = true;
  int upgrade_count = 0;
  std::string_view upgrade;
  bool connection_malformed = false;
  bool connection_too_many = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool connection_upgrade = false;
};

void noteTransferEncoding(std::string_view value, FieldFacts* f) {
  f->has_te = true;
  const bool ok = forEachListElement(value, [f](std::string_view coding) {
    if (!isToken(coding)) return false;  // parameters (";q=") are not allowed either
    if (nameIs(coding, "chunked")) {
      ++f->chunked_count;
      f->chunked_last = true;
      return true;
    }
    f->chunked_last = false;
    if (nameIs(coding, "gzip") || nameIs(coding, "deflate") || nameIs(coding, "compress") ||
        nameIs(coding, "x-gzip") || nameIs(coding, "x-compress")) {
      f->te_other_known = true;
    } else {
      f->te_unknown = true;
    }
    return true;
  });
  if (!ok) f->te_malformed = true;
}

template <size_t N>
void noteConnection(std::string_view value, FieldFacts* f, std::string_view (&tokens)[N],
                    size_t* token_count) {
  const bool ok = forEachListElement(value, [&](std::string_view option) {
    if (!isToken(option)) return false;
    if (*token_count == N) {
      f->connection_too_many = true;
      return false;
    }
    tokens[(*token_count)++] = option;
    if (nameIs(option, "close")) f->connection_close = true;
    if (nameIs(option, "keep-alive")) f->connection_keep_alive = true;
    if (nameIs(option, "upgrade")) f->connection_upgrade = true;
    return true;
  });
  if (!ok) f->connection_malformed = true;
}

// Parses the field lines of a head: `fields` is everything between the start line's CRLF and
// the blank line (each line CRLF-terminated; findHeadEnd() already ruled out bare LFs).
template <size_t N>
ParseStatus parseFields(std::string_view fields, const Limits& limits, Header* headers,
                        size_t* count, FieldFacts* f, std::string_view (&tokens)[N],
                        size_t* token_count, Error* err) {
  const size_t max_headers = std::min(limits.max_headers, kHeaderCapacity);
  while (!fields.empty()) {
    const size_t lf = fields.find('\n');
    // Only reachable for callers that skipped findHeadEnd(); keeps this function total.
    if (lf == std::string_view::npos || lf == 0 || fields[lf - 1] != '\r') {
      return fail(err, 400, "bare LF in head");
    }
    const std::string_view line = fields.substr(0, lf - 1);
    fields.remove_prefix(lf + 1);

    if (line.empty()) return fail(err, 400, "empty line in head");
    if (chars::isOws(line[0])) return fail(err, 400, "obs-fold or leading whitespace in field");
    size_t colon = 0;
    while (colon < line.size() && chars::is(line[colon], chars::kToken)) ++colon;
    if (colon == line.size()) return fail(err, 400, "field line without colon");
    if (line[colon] != ':') {
      if (chars::isOws(line[colon])) return fail(err, 400, "whitespace before colon");
      return fail(err, 400, "invalid character in field name");
    }
    if (colon == 0) return fail(err, 400, "empty field name");
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trimOws(line.substr(colon + 1));
    for (char c : value) {
      if (!chars::is(c, chars::kFieldValue)) return fail(err, 400, "invalid character in field");
    }
    if (*count == max_headers) return fail(err, 431, "too many header fields");
    headers[(*count)++] = Header{name, value};

    switch (name.size()) {
      case 4:
        if (nameIs(name, "host")) {
          ++f->host_count;
          f->host = value;
        }
        break;
      case 6:
        if (nameIs(name, "expect")) {
          ++f->expect_count;
          if (!nameIs(value, "100-continue")) f->expect_continue_only = false;
        }
        break;
      case 7:
        if (nameIs(name, "upgrade")) {
          ++f->upgrade_count;
          f->upgrade = value;
        }
        break;
      case 10:
        if (nameIs(name, "connection")) noteConnection(value, f, tokens, token_count);
        break;
      case 14:
        if (nameIs(name, "content-length")) {
          if (f->cl_count++ == 0) {
            f->cl_value = value;
          } else if (value != f->cl_value) {
            f->cl_conflict = true;
          }
        }
        break;
      case 17:
        if (nameIs(name, "transfer-encoding")) noteTransferEncoding(value, f);
        break;
    }
  }
  return ParseStatus::kDone;
}

// The framing rules shared by requests and responses (the caller maps statuses for responses).
ParseStatus checkFraming(const FieldFacts& f, uint8_t version_minor,
                         std::optional<uint64_t>* content_length, bool* chunked, Error* err) {
  if (f.has_te && f.cl_count > 0) {
    return fail(err, 400, "both Content-Length and Transfer-Encoding");
  }
  if (f.cl_count > 0) {
    if (f.cl_conflict) return fail(err, 400, "conflicting Content-Length values");
    uint64_t n = 0;
    if (!parseDecimal(f.cl_value, &n)) return fail(err, 400, "invalid Content-Length");
    *content_length = n;
  }
  if (f.has_te) {
    if (version_minor == 0) return fail(err, 400, "Transfer-Encoding in HTTP/1.0");
    if (f.te_malformed) return fail(err, 400, "malformed Transfer-Encoding");
    if (f.chunked_count > 1) return fail(err, 400, "chunked applied twice");
    if (f.chunked_count == 1 && !f.chunked_last) return fail(err, 400, "chunked is not last");
    if (f.te_unknown) return fail(err, 501, "unknown transfer coding");
    if (f.chunked_count == 0) return fail(err, 400, "final transfer coding is not chunked");
    if (f.te_other_known) return fail(err, 501, "transfer coding other than chunked");
    *chunked = true;
  }
  if (f.connection_too_many) return fail(err, 400, "too many Connection options");
  if (f.connection_malformed) return fail(err, 400, "malformed Connection header");
  if (f.upgrade_count > 1) return fail(err, 400, "more than one Upgrade header");
  return ParseStatus::kDone;
}

bool keepAlive(uint8_t version_minor, const FieldFacts& f) {
  if (f.connection_close) return false;
  return version_minor == 1 || f.connection_keep_alive;
}

// Splits the head into the start line and the field lines; false if not a CRLF-ended head.
bool splitHead(std::string_view head, std::string_view* start_line, std::string_view* fields) {
  const size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos || head.size() < eol + 4) return false;
  *start_line = head.substr(0, eol);
  *fields = head.substr(eol + 2, head.size() - eol - 4);
  return true;
}

// Fills the target facts of `out` (target_form, scheme, raw_path, path, query) and the
// authority of an absolute-form target.
// Why normalizePath() refused `path`, for the log (error path only: it scans again).
const char* pathError(std::string_view path, EscapedSlashes escaped_slashes) {
  for (size_t i = 0; i + 2 < path.size(); ++i) {
    if (path[i] != '%') continue;
    const int hi = chars::hexValue(path[i + 1]);
    const int lo = chars::hexValue(path[i + 2]);
    if (hi < 0 || lo < 0) break;
    const int c = hi * 16 + lo;
    if (c < 0x20 || c == 0x7f) return "encoded control character in path";
    if ((c == '/' || c == '\\') && escaped_slashes == EscapedSlashes::kReject) {
      return "encoded slash or backslash in path";
    }
  }
  return "invalid path";
}

ParseStatus parseTarget(std::string_view target, const Limits& limits, RequestHead* out,
                        std::string_view* authority, Error* err) {
  if (out->method_kind == Method::kConnect) return fail(err, 501, "CONNECT is not supported");
  std::string_view rest;
  if (target[0] == '/') {
    out->target_form = TargetForm::kOrigin;
    rest = target;
  } else if (target == "*") {
    if (out->method_kind != Method::kOptions) return fail(err, 400, "'*' target without OPTIONS");
    out->target_form = TargetForm::kAsterisk;
    out->raw_path = out->path = target;
    return ParseStatus::kDone;
  } else {
    const size_t sep = target.find("://");
    if (sep == std::string_view::npos) return fail(err, 400, "invalid request target");
    out->scheme = target.substr(0, sep);
    if (!nameIs(out->scheme, "http") && !nameIs(out->scheme, "https")) {
      return fail(err, 400, "absolute target scheme is not http(s)");
    }
    const std::string_view after = target.substr(sep + 3);
    const size_t end = after.find_first_of("/?");
    *authority = after.substr(0, end);
    if (!validHost(*authority)) return fail(err, 400, "invalid authority in request target");
    out->target_form = TargetForm::kAbsolute;
    rest = end == std::string_view::npos ? std::string_view() : after.substr(end);
  }

  const size_t q = rest.find('?');
  out->raw_path = rest.substr(0, q);
  if (q != std::string_view::npos) {
    out->has_query = true;
    out->query = rest.substr(q + 1);
    for (char c : out->query) {
      if (!chars::is(c, chars::kQuery)) return fail(err, 400, "invalid character in query");
    }
  }
  // An absolute-form target may have an empty path: it means "/".
  const std::string_view path = out->raw_path.empty() ? std::string_view("/") : out->raw_path;
  if (path.size() > kPathCapacity) return fail(err, 414, "path too long");
  size_t len = 0;
  if (!normalizePath(path, out->path_buf, kPathCapacity, &len, limits.escaped_slashes)) {
    return fail(err, 400, pathError(path, limits.escaped_slashes));
  }
  out->path = std::string_view(out->path_buf, len);
  return ParseStatus::kDone;
}

ParseStatus parseRequestLine(std::string_view line, const Limits& limits, RequestHead* out,
                             std::string_view* authority, Error* err) {
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return fail(err, 400, "malformed request line");
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return fail(err, 400, "malformed request line");
  out->method = line.substr(0, sp1);
  out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!isToken(out->method)) return fail(err, 400, "invalid method");
  out->method_kind = classifyMethod(out->method);
  // The version is checked before the target: another version's target grammar is unknown.
  if (parseVersion(version, &out->version_minor, err) != ParseStatus::kDone) {
    return ParseStatus::kError;
  }
  if (out->target.empty()) return fail(err, 400, "malformed request line");
  return parseTarget(out->target, limits, out, authority, err);
}

}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (chars::lower(a[i]) != chars::lower(b[i])) return false;
  }
  return true;
}

void RequestHead::reset() {
  head_len = 0;
  method = {};
  method_kind = Method::kOther;
  target = {};
  target_form = TargetForm::kOrigin;
  scheme = {};
  raw_path = {};
  path = {};
  query = {};
  has_query = false;
  version_minor = 1;
  header_count = 0;
  host = {};
  content_length.reset();
  chunked = false;
  keep_alive = true;
  expect_continue = false;
  connection_close = false;
  connection_upgrade = false;
  upgrade = {};
  connection_token_count = 0;
}

const Header* RequestHead::find(std::string_view name) const {
  for (size_t i = 0; i < header_count; ++i) {
    if (equalsIgnoreCase(headers[i].name, name)) return &headers[i];
  }
  return nullptr;
}

void ResponseHead::reset() {
  head_len = 0;
  version_minor = 1;
  status = 0;
  reason = {};
  header_count = 0;
  content_length.reset();
  chunked = false;
  keep_alive = true;
  connection_close = false;
  connection_upgrade = false;
  upgrade = {};
  connection_token_count = 0;
}

const Header* ResponseHead::find(std::string_view name) const {
  for (size_t i = 0; i < header_count; ++i) {
    if (equalsIgnoreCase(headers[i].name, name)) return &headers[i];
  }
  return nullptr;
}

ParseStatus findHeadEnd(std::string_view data, const Limits& limits, HeadScan* scan,
                        size_t* head_len, Error* err) {
  // Never look past max_head_bytes: a terminator beyond it would make the head too large anyway.
  const std::string_view view = data.substr(0, std::min(data.size(), limits.max_head_bytes));
  size_t pos = std::min(scan->scanned, view.size());
  while (pos < view.size()) {
    const void* hit = std::memchr(view.data() + pos, '\n', view.size() - pos);
    if (hit == nullptr) break;
    const size_t lf = static_cast<const char*>(hit) - view.data();
    const bool cr = lf > 0 && view[lf - 1] == '\r';
    // The length check comes first so that the verdict does not depend on how the bytes were
    // split across reads: an earlier call may already have seen the line grow too long.
    if (scan->line_start == 0 && lf - (cr ? 1 : 0) > limits.max_request_line) {
      return fail(err, 414, "request line too long");
    }
    // With cr, lf - 1 >= line_start: the byte before line_start is the previous line's LF.
    if (!cr) return fail(err, 400, "bare LF in head");
    const size_t line_len = lf - 1 - scan->line_start;
    if (scan->line_start == 0) {
      if (line_len == 0) return fail(err, 400, "empty line before request line");
    } else if (line_len == 0) {
      scan->scanned = lf + 1;
      *head_len = lf + 1;
      return ParseStatus::kDone;
    }
    scan->line_start = lf + 1;
    pos = lf + 1;
  }
  scan->scanned = view.size();
  if (scan->line_start == 0) {
    // The request line so far, not counting a CR that may be the start of its CRLF.
    size_t partial = view.size();
    if (partial > 0 && view[partial - 1] == '\r') --partial;
    if (partial > limits.max_request_line) return fail(err, 414, "request line too long");
  }
  if (data.size() >= limits.max_head_bytes) return fail(err, 431, "head too large");
  return ParseStatus::kIncomplete;
}

ParseStatus parseRequestHead(std::string_view data, const Limits& limits, RequestHead* out,
                             Error* err) {
  out->reset();
  HeadScan scan;
  size_t head_len = 0;
  const ParseStatus found = findHeadEnd(data, limits, &scan, &head_len, err);
  if (found != ParseStatus::kDone) return found;
  out->head_len = head_len;

  std::string_view line, fields;
  if (!splitHead(data.substr(0, head_len), &line, &fields)) {
    return fail(err, 400, "malformed head");
  }
  std::string_view authority;
  if (parseRequestLine(line, limits, out, &authority, err) != ParseStatus::kDone) {
    return ParseStatus::kError;
  }
  FieldFacts f;
  if (parseFields(fields, limits, out->headers, &out->header_count, &f, out->connection_tokens,
                  &out->connection_token_count, err) != ParseStatus::kDone) {
    return ParseStatus::kError;
  }

  if (f.host_count > 1) return fail(err, 400, "more than one Host header");
  if (f.host_count == 1) {
    if (!validHost(f.host)) return fail(err, 400, "invalid Host header");
    if (!authority.empty() && !equalsIgnoreCase(authority, f.host)) {
      return fail(err, 400, "Host header differs from the target's authority");
    }
    out->host = f.host;
  } else if (out->version_minor == 1) {
    return fail(err, 400, "missing Host header");
  } else {
    out->host = authority;
  }
  if (checkFraming(f, out->version_minor, &out->content_length, &out->chunked, err) !=
      ParseStatus::kDone) {
    return ParseStatus::kError;
  }
  if (f.expect_count > 0 && out->version_minor == 1) {
    if (f.expect_count > 1 || !f.expect_continue_only) {
      return fail(err, 417, "unsupported expectation");
    }
    out->expect_continue = true;
  }
  out->keep_alive = keepAlive(out->version_minor, f);
  out->connection_close = f.connection_close;
  out->connection_upgrade = f.connection_upgrade;
  if (f.connection_upgrade) out->upgrade = f.upgrade;
  return ParseStatus::kDone;
}

ParseStatus parseResponseHead(std::string_view data, const Limits& limits, ResponseHead* out,
                              Error* err) {
  out->reset();
  HeadScan scan;
  size_t head_len = 0;
  const ParseStatus found = findHeadEnd(data, limits, &scan, &head_len, err);
  if (found == ParseStatus::kIncomplete) return found;
  // Every upstream protocol error is answered with 502; the reason keeps the detail.
  auto bad = [err](const char* reason) { return fail(err, 502, reason); };
  if (found == ParseStatus::kError) return bad(err->reason);
  out->head_len = head_len;

  std::string_view line, fields;
  if (!splitHead(data.substr(0, head_len), &line, &fields)) return bad("malformed head");
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return bad("malformed status line");
  if (parseVersion(line.substr(0, sp), &out->version_minor, err) != ParseStatus::kDone) {
    return bad(err->reason);
  }
  const std::string_view rest = line.substr(sp + 1);
  if (rest.size() < 3 || rest[0] < '1' || rest[0] > '5' || rest[1] < '0' || rest[1] > '9' ||
      rest[2] < '0' || rest[2] > '9') {
    return bad("malformed status code");
  }
  out->status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
  if (rest.size() > 3) {
    if (rest[3] != ' ') return bad("malformed status line");
    out->reason = rest.substr(4);
    for (char c : out->reason) {
      if (!chars::is(c, chars::kFieldValue)) return bad("invalid character in reason phrase");
    }
  }
  FieldFacts f;
  if (parseFields(fields, limits, out->headers, &out->header_count, &f, out->connection_tokens,
                  &out->connection_token_count, err) != ParseStatus::kDone ||
      checkFraming(f, out->version_minor, &out->content_length, &out->chunked, err) !=
          ParseStatus::kDone) {
    return bad(err->reason);
  }
  out->keep_alive = keepAlive(out->version_minor, f);
  out->connection_close = f.connection_close;
  out->connection_upgrade = f.connection_upgrade;
  if (f.connection_upgrade) out->upgrade = f.upgrade;
  return ParseStatus::kDone;
}

BodyKind bodyKind(const RequestHead& request) {
  if (request.chunked) return BodyKind::kChunked;
  if (request.content_length.has_value()) return BodyKind::kContentLength;
  return BodyKind::kNone;
}

BodyKind bodyKind(Method request_method, const ResponseHead& response) {
  if (request_method == Method::kHead || response.status < 200 || response.status == 204 ||
      response.status == 304) {
    return BodyKind::kNone;
  }
  if (response.chunked) return BodyKind::kChunked;
  if (response.content_length.has_value()) return BodyKind::kContentLength;
  return BodyKind::kUntilClose;
}

bool normalizePath(std::string_view path, char* out, size_t cap, size_t* out_len,
                   EscapedSlashes escaped_slashes) {
  if (path.empty() || path[0] != '/' || cap == 0) return false;
  static constexpr char kHexDigits[] = "0123456789ABCDEF";
  size_t n = 0;
  out[n++] = '/';
  size_t i = 1;
  // One segment per iteration, decoded into out[seg, n); out[seg - 1] is always '/'.
  while (true) {
    const size_t seg = n;
    while (i < path.size() && path[i] != '/') {
      const char c = path[i];
      if (!chars::is(c, chars::kPath)) return false;
      if (c == '%') {
        if (i + 2 >= path.size()) return false;
        const int hi = chars::hexValue(path[i + 1]);
        const int lo = chars::hexValue(path[i + 2]);
        if (hi < 0 || lo < 0) return false;
        const int value = hi * 16 + lo;
        if (value < 0x20 || value == 0x7f) return false;
        if ((value == '/' || value == '\\') && escaped_slashes == EscapedSlashes::kReject) {
          return false;
        }
        const char decoded = static_cast<char>(value);
        if (chars::is(decoded, chars::kUnreserved)) {
          if (n == cap) return false;
          out[n++] = decoded;
        } else {
          if (cap - n < 3) return false;
          out[n++] = '%';
          out[n++] = kHexDigits[hi];
          out[n++] = kHexDigits[lo];
        }
        i += 3;
      } else {
        if (n == cap) return false;
        out[n++] = c;
        ++i;
      }
    }
    const std::string_view segment(out + seg, n - seg);
    const bool at_end = i >= path.size();
    if (segment == ".") {
      n = seg;
    } else if (segment == "..") {
      if (seg == 1) return false;  // above the root
      // Drop the previous segment: back to just after the '/' that precedes it.
      n = seg - 1;
      while (out[n - 1] != '/') --n;
    } else if (!segment.empty() && !at_end) {
      if (n == cap) return false;
      out[n++] = '/';
    }
    if (at_end) break;
    ++i;  // the '/' that ended the segment
  }
  *out_len = n;
  return true;
}

}  // namespace sluice::http
