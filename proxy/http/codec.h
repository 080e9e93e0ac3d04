#pragma once

// Sluice's strict HTTP/1.1 codec: message heads (requests from clients, responses from
// upstreams), request-target path normalization and chunked body framing.
//
// How the connection manager uses it:
//   1. Read into an evbuffer; pull up the unparsed bytes and call findHeadEnd() with a HeadScan
//      kept across reads (each call scans only new bytes) until it says kDone or kError.
//   2. parseRequestHead() on the contiguous head. Every view in RequestHead points into those
//      bytes (or into RequestHead::path_buf), so they stay valid while the buffer is not drained.
//   3. The body is framed by bodyKind(): Content-Length bytes, or ChunkedDecoder (chunked.h).
//   4. Upstream responses go through parseResponseHead() and bodyKind(method, response).
//
// Strict by design: anything that two HTTP implementations could frame or route differently is
// an error. Bare LF, obs-fold, whitespace before a colon, CL+TE, conflicting Content-Lengths,
// codings other than exactly "chunked", a leading empty line before the request line: all
// rejected. Errors carry the status to answer; the connection must be closed after answering.
//
// Nothing here allocates or throws: results are views into the caller's bytes and fixed arrays
// in reusable structs.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace sluice::http {

// Capacities of the fixed arrays below. A Limits value above its capacity acts as the capacity.
inline constexpr size_t kHeaderCapacity = 128;
inline constexpr size_t kPathCapacity = 8 * 1024;  // normalized path; a longer path is 414
inline constexpr size_t kConnectionTokenCapacity = 16;

// What normalizePath() does with an encoded slash or backslash (%2F, %5C, in any case): an
// upstream that decodes it sees two segments where routing and access rules saw one.
enum class EscapedSlashes : uint8_t {
  kReject,       // the request is answered 400 (the default)
  kKeepEncoded,  // kept encoded, upper-cased: "/a%2fb" is the one segment "a%2Fb"
};

struct Limits {
  size_t max_head_bytes = 60 * 1024;    // start line + fields + the blank line, CRLFs included
  size_t max_headers = 100;             // field lines of a head (trailers: max_trailer_bytes)
  size_t max_request_line = 8 * 1024;   // request line (or status line) without its CRLF
  size_t max_chunk_line = 1024;         // chunk size + extensions without CRLF
  size_t max_trailer_bytes = 8 * 1024;  // the trailer section of a chunked body, CRLFs included
  // Not a size, but a per-listener parser rule that travels with the limits into the parser.
  EscapedSlashes escaped_slashes = EscapedSlashes::kReject;
};

enum class ParseStatus { kIncomplete, kDone, kError };

// Why parsing failed: the status to answer and a short static reason for logs (never freed,
// never allocated). Request errors are 400, 414, 417, 431, 501 or 505; response errors (the
// upstream broke the protocol) are 502.
struct Error {
  int status = 0;
  const char* reason = "";
};

struct Header {
  std::string_view name;   // as received (compare case-insensitively)
  std::string_view value;  // leading and trailing SP/HTAB removed
};

enum class Method : uint8_t {
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kConnect,
  kOptions,
  kTrace,
  kPatch,
  kOther,  // any other token: extension methods are forwarded
};

enum class TargetForm : uint8_t {
  kOrigin,    // "/path?query"
  kAbsolute,  // "http://host/path?query": host must equal the Host header (see parseRequestHead)
  kAsterisk,  // "*", OPTIONS only; path is "*"
};

// How a message body is delimited.
enum class BodyKind : uint8_t {
  kNone,           // no body bytes follow the head
  kContentLength,  // exactly content_length bytes (possibly 0)
  kChunked,        // ChunkedDecoder frames it
  kUntilClose,     // responses only: the body ends when the upstream closes (not reusable)
};

bool equalsIgnoreCase(std::string_view a, std::string_view b);

// A parsed request head. Reuse one object per stream (parse calls reset() first); it is large
// (~13 KiB) so pool them per worker rather than embedding one in every idle connection. Not
// copyable: `path` may point into `path_buf`.
struct RequestHead {
  RequestHead() = default;
  RequestHead(const RequestHead&) = delete;
  RequestHead& operator=(const RequestHead&) = delete;

  void reset();

  size_t head_len = 0;  // bytes of the head, through the blank line; the body starts here

  std::string_view method;
  Method method_kind = Method::kOther;
  std::string_view target;  // as received
  TargetForm target_form = TargetForm::kOrigin;
  std::string_view scheme;    // absolute-form only: "http" or "https" (any case)
  std::string_view raw_path;  // as received, before '?'; for logs only, never for decisions
  // THE path: routing, auth and forwarding all use this, never raw_path. Dot segments removed,
  // slashes merged, unreserved escapes decoded, other escapes upper-cased (normalizePath()).
  std::string_view path;
  std::string_view query;     // after '?', verbatim (characters checked, escapes not)
  bool has_query = false;     // a '?' was present, even with an empty query
  uint8_t version_minor = 1;  // HTTP/1.<version_minor>: 0 or 1

  Header headers[kHeaderCapacity];
  size_t header_count = 0;

  // Derived from the fields. When forwarding, regenerate the framing headers (Content-Length,
  // Transfer-Encoding) and the hop-by-hop ones (Connection and the options it names) from these
  // instead of copying them.
  std::string_view host;  // the Host header (for absolute-form: equal to the target's authority)
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;  // HTTP/1.1: unless "Connection: close"; 1.0: only with "keep-alive"
  bool expect_continue = false;  // "Expect: 100-continue" on HTTP/1.1
  bool connection_close = false;
  bool connection_upgrade = false;
  std::string_view upgrade;  // the Upgrade header if Connection names "upgrade", else empty
  std::string_view connection_tokens[kConnectionTokenCapacity];  // every Connection option
  size_t connection_token_count = 0;

  char path_buf[kPathCapacity];

  std::span<const Header> headerList() const { return {headers, header_count}; }
  // The first header called `name` (case-insensitive), or nullptr.
  const Header* find(std::string_view name) const;
};

struct ResponseHead {
  void reset();

  size_t head_len = 0;
  uint8_t version_minor = 1;
  int status = 0;  // 100..599
  std::string_view reason;

  Header headers[kHeaderCapacity];
  size_t header_count = 0;

  std::optional<uint64_t> content_length;
  bool chunked = false;
  // From the Connection header and version only: a kUntilClose body also ends the connection.
  bool keep_alive = true;
  bool connection_close = false;
  bool connection_upgrade = false;
  std::string_view upgrade;
  std::string_view connection_tokens[kConnectionTokenCapacity];
  size_t connection_token_count = 0;

  std::span<const Header> headerList() const { return {headers, header_count}; }
  const Header* find(std::string_view name) const;
};

// Progress of findHeadEnd() over one growing buffer. Value-initialize (or reset()) per head.
struct HeadScan {
  void reset() { *this = HeadScan(); }
  size_t scanned = 0;     // bytes already examined
  size_t line_start = 0;  // offset of the line being scanned
};

// Finds the end of a head ("\r\n\r\n") in `data`, which holds the bytes received so far for this
// head: each call passes the same bytes plus any new ones, and `scan` resumes where the previous
// call stopped, so a head arriving a byte at a time costs O(n) in total. Returns:
//   kDone: the head is data[0, *head_len) (the blank line included); bytes after it are body or
//          the next pipelined request.
//   kIncomplete: read more and call again.
//   kError: *err says why: 400 for a bare LF (or a CRLF before the request line), 414 once the
//          request line exceeds max_request_line (even before it ends), 431 once max_head_bytes
//          are buffered without the end of the head.
ParseStatus findHeadEnd(std::string_view data, const Limits& limits, HeadScan* scan,
                        size_t* head_len, Error* err);

// Parses the request head at the start of `data` (bytes after the head are ignored; if the head
// is not complete yet the result is kIncomplete). Fills *out on kDone, *err on kError.
//
// Request line: `method SP target SP HTTP/1.x` with single spaces; method a token; version
// exactly HTTP/1.0 or HTTP/1.1 (HTTP/<digit>[.<digit>] otherwise is 505, anything else 400).
// Targets: origin-form; absolute-form with scheme http or https (no userinfo), whose authority
// must equal the Host header (case-insensitive) so that no two parts of the proxy can disagree
// on the host; "*" for OPTIONS only. CONNECT is 501 (Sluice is not a forward proxy); other
// authority-form targets are 400. Path characters are RFC 3986 pchar and '/' only (no '\', '"',
// '<', '{', ...); the query may hold any VCHAR except '#'; non-ASCII bytes are rejected.
//
// Fields: token names right before the colon, values without CTLs other than HTAB, no obs-fold,
// at most min(max_headers, kHeaderCapacity) (else 431). Host: exactly one on HTTP/1.1, at most
// one on HTTP/1.0, a DNS name / IPv4 / [IPv6] with an optional port. Content-Length: digits
// only, fitting 64 bits; repeated only with byte-identical values. Transfer-Encoding: exactly
// "chunked" (any case, possibly split over several lines); never with Content-Length, never on
// HTTP/1.0 (400); chunked twice or not last is 400, an unknown coding 501, a known coding before
// chunked ("gzip, chunked") 501, a known coding without chunked 400. Expect: only
// "100-continue" (417 otherwise; ignored on HTTP/1.0). Connection: a list of tokens.
ParseStatus parseRequestHead(std::string_view data, const Limits& limits, RequestHead* out,
                             Error* err);

// Parses an upstream's response head: `HTTP/1.x SP 3DIGIT SP reason` (a missing reason with its
// space is accepted), then fields under the request rules (no Host rule). Any error has status
// 502. Content-Length with Transfer-Encoding, or any coding but chunked, is an error too.
ParseStatus parseResponseHead(std::string_view data, const Limits& limits, ResponseHead* out,
                              Error* err);

// How the request body is framed: kChunked, kContentLength, or kNone (neither header).
BodyKind bodyKind(const RequestHead& request);

// How a response body is framed (RFC 9112 6.3): none for HEAD requests and 1xx/204/304
// responses, whatever their headers say; else chunked, Content-Length, or until close.
BodyKind bodyKind(Method request_method, const ResponseHead& response);

// Normalizes an origin-form path (starting with '/', without query) into out[0, *out_len):
//   1. %XX escapes: must be two hex digits; unreserved characters are decoded (%41 -> A, %2E ->
//      .), all others stay encoded with upper-case hex (%3a -> %3A). An encoded slash or
//      backslash (%2F, %5C) is rejected, or with kKeepEncoded kept as one ("a%2Fb" is one
//      segment); an encoded control character (%00-%1F, %7F) is always rejected: an upstream
//      that decodes it may cut the path at a NUL or split a header at a CR LF;
//   2. empty segments are dropped ("//" -> "/");
//   3. "." and ".." segments are removed (RFC 3986 5.2.4), after the decoding of step 1, so
//      "/a/%2e%2E/admin" is "/admin".
// A ".." that would climb above the root is rejected rather than clamped: only a broken or
// hostile client sends one, and refusing it leaves no doubt about what an upstream would see.
// A raw backslash is not pchar and is rejected, never read as a separator (some servers treat
// it as one, others as a character: any choice would disagree with some upstream).
// Returns false (answer 400) for those, for a bad escape, for a character outside pchar / '/',
// or when `cap` is too small (the output is never longer than `path`). Idempotent.
bool normalizePath(std::string_view path, char* out, size_t cap, size_t* out_len,
                   EscapedSlashes escaped_slashes = EscapedSlashes::kReject);

}  // namespace sluice::http
