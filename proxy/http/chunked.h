#pragma once

// Chunked transfer coding (RFC 9112 7.1): an incremental validating decoder and the encoder's
// one helper. Part of //proxy/http:codec.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/http/codec.h"

namespace sluice::http {

// Validates a chunked body as it arrives, in spans of any size down to single bytes, and tells
// the caller which input bytes are chunk data. The proxy can then forward the validated bytes
// verbatim (everything up to `consumed`) or de-chunk (only `data`). Typical loop:
//
//   while (!in.empty()) {
//     ChunkedDecoder::Result r = decoder.decode(in, &err);
//     if (r.status == ParseStatus::kError) { answer err.status (requests) or 502; close; }
//     use(in.substr(0, r.consumed)) or use(r.data);
//     in.remove_prefix(r.consumed);
//     if (r.status == ParseStatus::kDone) break;  // what remains is the next message
//   }
//
// Strict: a size is 1+ hex digits (no sign, "0x", or whitespace) that fits 64 bits, followed
// by ';' extensions or CRLF; the size line is at most max_chunk_line bytes; data must be
// followed by CRLF; every line ends in CRLF (a bare LF is an error). Trailer fields are checked
// like header fields (token name right before ':', no CTLs, no obs-fold), bounded by
// max_trailer_bytes, and may not be framing or routing fields (Content-Length,
// Transfer-Encoding, Host, Connection, Upgrade, TE, Trailer), so a recipient that merges
// trailers into headers learns nothing new about framing. Errors have status 400; a response
// body's error is an upstream protocol error for the caller to turn into 502 or a reset.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(const Limits& limits = Limits());

  // Ready for the next body (same limits).
  void reset();

  struct Result {
    ParseStatus status;  // kIncomplete: body continues; kDone: it ended; kError: see *err
    // Input bytes this call used, framing and data. On kError: the bytes before the bad one.
    size_t consumed;
    // The chunk data among them: always their last data.size() bytes (at most one run per call,
    // so a call stops right after data when more framing follows).
    std::string_view data;
  };

  // Feeds the next bytes of the body. After kDone the decoder consumes nothing (reset() for
  // the next body); after kError it repeats the error.
  Result decode(std::string_view input, Error* err);

  bool done() const { return state_ == State::kDone; }
  // Chunk data bytes decoded so far (for body size limits and stats).
  uint64_t bodyBytes() const { return body_bytes_; }

 private:
  enum class State : uint8_t {
    kSizeStart,     // first hex digit of a chunk size
    kSize,          // more hex digits, ';' or CR
    kExtension,     // chunk extensions up to CR
    kSizeLf,        // LF ending the size line
    kData,          // `remaining_` data bytes
    kDataCr,        // CR after data
    kDataLf,        // LF after data
    kTrailerStart,  // a trailer field name, or CR ending the body
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kFinalLf,  // LF of the last CRLF
    kDone,
    kError,
  };

  // Records an error; returns the result to hand back.
  Result fail(size_t consumed, const char* reason, Error* err);
  bool forbiddenTrailer() const;

  size_t max_chunk_line_;
  size_t max_trailer_bytes_;
  State state_ = State::kSizeStart;
  uint64_t remaining_ = 0;  // chunk size while reading it, then data bytes still to come
  size_t line_bytes_ = 0;   // of the current size line
  size_t trailer_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  // The lower-cased start of the trailer name being read, enough to recognize forbidden ones.
  static constexpr size_t kNamePrefix = 18;
  char name_[kNamePrefix] = {};
  size_t name_len_ = 0;
  Error error_;
};

// The longest chunk header: 16 hex digits and CRLF.
inline constexpr size_t kMaxChunkHeaderBytes = 18;
// The last chunk and an empty trailer section.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Writes the size line of an n-byte chunk ("1a2b\r\n", lower-case hex without leading zeros)
// into buf, which must hold kMaxChunkHeaderBytes; returns its length. n must be > 0 (a zero
// size ends the body: use kLastChunk).
size_t encodeChunkHeader(size_t n, char* buf);

}  // namespace sluice::http
