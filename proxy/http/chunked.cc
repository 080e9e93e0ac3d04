#include "proxy/http/chunked.h"

#include <algorithm>

#include "proxy/http/chars.h"

namespace sluice::http {

ChunkedDecoder::ChunkedDecoder(const Limits& limits)
    : max_chunk_line_(limits.max_chunk_line), max_trailer_bytes_(limits.max_trailer_bytes) {}

void ChunkedDecoder::reset() {
  state_ = State::kSizeStart;
  remaining_ = 0;
  line_bytes_ = 0;
  trailer_bytes_ = 0;
  body_bytes_ = 0;
  name_len_ = 0;
  error_ = Error();
}

ChunkedDecoder::Result ChunkedDecoder::fail(size_t consumed, const char* reason, Error* err) {
  state_ = State::kError;
  error_ = Error{400, reason};
  *err = error_;
  return Result{ParseStatus::kError, consumed, {}};
}

bool ChunkedDecoder::forbiddenTrailer() const {
  if (name_len_ > kNamePrefix) return false;
  const std::string_view name(name_, name_len_);
  return name == "content-length" || name == "transfer-encoding" || name == "host" ||
         name == "connection" || name == "upgrade" || name == "te" || name == "trailer";
}

ChunkedDecoder::Result ChunkedDecoder::decode(std::string_view input, Error* err) {
  if (state_ == State::kError) {
    *err = error_;
    return Result{ParseStatus::kError, 0, {}};
  }
  size_t i = 0;
  while (i < input.size()) {
    if (state_ == State::kDone) break;
    if (state_ == State::kData) {
      const size_t n = static_cast<size_t>(
          std::min<uint64_t>(remaining_, static_cast<uint64_t>(input.size() - i)));
      const std::string_view data = input.substr(i, n);
      remaining_ -= n;
      body_bytes_ += n;
      if (remaining_ == 0) state_ = State::kDataCr;
      return Result{ParseStatus::kIncomplete, i + n, data};
    }
    const char c = input[i];
    switch (state_) {
      case State::kSizeStart:
      case State::kSize: {
        const int digit = chars::hexValue(c);
        if (digit >= 0) {
          if (state_ == State::kSizeStart) {
            remaining_ = 0;
            line_bytes_ = 0;
            state_ = State::kSize;
          }
          if (remaining_ > (UINT64_MAX >> 4)) return fail(i, "chunk size overflows", err);
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(digit);
        } else if (state_ == State::kSizeStart) {
          return fail(i, "invalid chunk size", err);
        } else if (c == ';') {
          state_ = State::kExtension;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else {
          return fail(i, "invalid chunk size", err);
        }
        if (c != '\r' && ++line_bytes_ > max_chunk_line_) {
          return fail(i, "chunk size line too long", err);
        }
        break;
      }
      case State::kExtension:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (!chars::is(c, chars::kFieldValue)) {
          return fail(i, "invalid character in chunk extension", err);
        } else if (++line_bytes_ > max_chunk_line_) {
          return fail(i, "chunk size line too long", err);
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return fail(i, "chunk size line without CRLF", err);
        if (remaining_ == 0) {
          state_ = State::kTrailerStart;
        } else {
          state_ = State::kData;
        }
        break;
      case State::kDataCr:
        if (c != '\r') return fail(i, "chunk data without CRLF", err);
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail(i, "chunk data without CRLF", err);
        state_ = State::kSizeStart;
        break;
      case State::kTrailerStart:
      case State::kTrailerName:
      case State::kTrailerValue:
      case State::kTrailerLf:
      case State::kFinalLf:
        if (++trailer_bytes_ > max_trailer_bytes_) return fail(i, "trailers too large", err);
        switch (state_) {
          case State::kTrailerStart:
            if (c == '\r') {
              state_ = State::kFinalLf;
            } else if (chars::is(c, chars::kToken)) {
              name_len_ = 0;
              name_[name_len_++] = chars::lower(c);
              state_ = State::kTrailerName;
            } else if (chars::isOws(c)) {
              return fail(i, "obs-fold in trailers", err);
            } else {
              return fail(i, "invalid trailer field name", err);
            }
            break;
          case State::kTrailerName:
            if (chars::is(c, chars::kToken)) {
              if (name_len_ < kNamePrefix) name_[name_len_] = chars::lower(c);
              if (name_len_ <= kNamePrefix) ++name_len_;
            } else if (c == ':') {
              if (forbiddenTrailer()) return fail(i, "framing field in trailers", err);
              state_ = State::kTrailerValue;
            } else {
              return fail(i, "invalid trailer field name", err);
            }
            break;
          case State::kTrailerValue:
            if (c == '\r') {
              state_ = State::kTrailerLf;
            } else if (!chars::is(c, chars::kFieldValue)) {
              return fail(i, "invalid character in trailer field", err);
            }
            break;
          case State::kTrailerLf:
            if (c != '\n') return fail(i, "trailer field without CRLF", err);
            state_ = State::kTrailerStart;
            break;
          default:  // kFinalLf
            if (c != '\n') return fail(i, "last chunk without CRLF", err);
            state_ = State::kDone;
            return Result{ParseStatus::kDone, i + 1, {}};
        }
        break;
      default:
        break;
    }
    ++i;
  }
  return Result{state_ == State::kDone ? ParseStatus::kDone : ParseStatus::kIncomplete, i, {}};
}

size_t encodeChunkHeader(size_t n, char* buf) {
  static constexpr char kHexDigits[] = "0123456789abcdef";
  char digits[16];
  size_t count = 0;
  do {
    digits[count++] = kHexDigits[n & 0xf];
    n >>= 4;
  } while (n != 0);
  for (size_t i = 0; i < count; ++i) buf[i] = digits[count - 1 - i];
  buf[count] = '\r';
  buf[count + 1] = '\n';
  return count + 2;
}

}  // namespace sluice::http
