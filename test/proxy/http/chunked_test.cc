#include "proxy/http/chunked.h"

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::http {
namespace {

struct Decoded {
  ParseStatus status = ParseStatus::kIncomplete;
  int error_status = 0;
  std::string data;         // de-chunked
  std::string passthrough;  // the bytes up to every `consumed`, i.e. what is forwarded verbatim
  size_t consumed = 0;      // bytes of the input that belong to the body
};

// Feeds `input` to a decoder in the given pieces, as a proxy would, checking the Result
// contract on every call.
Decoded feed(const std::vector<std::string_view>& pieces, const Limits& limits = Limits()) {
  ChunkedDecoder decoder(limits);
  Decoded out;
  for (std::string_view in : pieces) {
    while (!in.empty() && out.status == ParseStatus::kIncomplete) {
      Error err;
      const ChunkedDecoder::Result r = decoder.decode(in, &err);
      EXPECT_LE(r.consumed, in.size());
      EXPECT_LE(r.data.size(), r.consumed);
      if (!r.data.empty()) {
        // The data is the last data.size() bytes of the consumed ones.
        EXPECT_EQ(r.data.data(), in.data() + r.consumed - r.data.size());
      }
      if (r.status == ParseStatus::kError) {
        out.status = r.status;
        out.error_status = err.status;
        EXPECT_STRNE(err.reason, "");
        return out;
      }
      // Progress: a call that is not finished consumes something.
      EXPECT_TRUE(r.consumed > 0 || r.status == ParseStatus::kDone);
      out.data.append(r.data);
      out.passthrough.append(in.substr(0, r.consumed));
      out.consumed += r.consumed;
      out.status = r.status;
      in.remove_prefix(r.consumed);
    }
  }
  EXPECT_EQ(decoder.done(), out.status == ParseStatus::kDone);
  EXPECT_EQ(decoder.bodyBytes(), out.data.size());
  return out;
}

Decoded feedWhole(std::string_view input, const Limits& limits = Limits()) {
  return feed({input}, limits);
}

std::vector<std::string_view> bytes(std::string_view input) {
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < input.size(); ++i) pieces.push_back(input.substr(i, 1));
  return pieces;
}

constexpr std::string_view kBody =
    "5\r\nhello\r\n"
    "1;name=value;quoted=\"a b\"\r\n,\r\n"
    "00006\r\n world\r\n"
    "A\r\n0123456789\r\n"
    "0\r\n"
    "X-Checksum: abc\r\n"
    "X-Empty:\r\n"
    "\r\n";

TEST(ChunkedDecoderTest, DecodesChunksExtensionsAndTrailers) {
  const std::string input = std::string(kBody) + "GET /next HTTP/1.1\r\n";
  const Decoded d = feedWhole(input);
  ASSERT_EQ(d.status, ParseStatus::kDone);
  EXPECT_EQ(d.data, "hello, world0123456789");
  EXPECT_EQ(d.consumed, kBody.size());  // the next request is left alone
  EXPECT_EQ(d.passthrough, kBody);
}

TEST(ChunkedDecoderTest, SameResultForEverySplit) {
  for (size_t split = 0; split <= kBody.size(); ++split) {
    const Decoded d = feed({kBody.substr(0, split), kBody.substr(split)});
    ASSERT_EQ(d.status, ParseStatus::kDone) << split;
    EXPECT_EQ(d.data, "hello, world0123456789") << split;
    EXPECT_EQ(d.passthrough, kBody) << split;
  }
}

TEST(ChunkedDecoderTest, ByteAtATime) {
  const Decoded d = feed(bytes(kBody));
  ASSERT_EQ(d.status, ParseStatus::kDone);
  EXPECT_EQ(d.data, "hello, world0123456789");
  EXPECT_EQ(d.consumed, kBody.size());
}

TEST(ChunkedDecoderTest, IncompleteUntilTheLastByte) {
  for (size_t n = 0; n < kBody.size(); ++n) {
    EXPECT_EQ(feedWhole(kBody.substr(0, n)).status, ParseStatus::kIncomplete) << n;
  }
}

TEST(ChunkedDecoderTest, ErrorsAtEverySplitAreTheSame) {
  const std::string_view bad[] = {
      "5\r\nhelloX\r\n0\r\n\r\n",
      "5\nhello\r\n0\r\n\r\n",
      "5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
      "FFFFFFFFFFFFFFFFF\r\n",
  };
  for (std::string_view input : bad) {
    for (size_t split = 0; split <= input.size(); ++split) {
      const Decoded d = feed({input.substr(0, split), input.substr(split)});
      EXPECT_EQ(d.status, ParseStatus::kError) << input << " split at " << split;
      EXPECT_EQ(d.error_status, 400);
    }
  }
}

TEST(ChunkedDecoderTest, SizeLimits) {
  // 16 hex digits fit 64 bits; 17 do not, even with leading zeros counted as digits only.
  ChunkedDecoder decoder;
  Error err;
  ChunkedDecoder::Result r = decoder.decode("FFFFFFFFFFFFFFFF\r\nab", &err);
  EXPECT_EQ(r.status, ParseStatus::kIncomplete);
  EXPECT_EQ(r.data, "ab");
  EXPECT_EQ(feedWhole("0000000000000000000000005\r\nhello\r\n0\r\n\r\n").data, "hello");
  EXPECT_EQ(feedWhole("10000000000000000\r\n").status, ParseStatus::kError);

  Limits limits;
  limits.max_chunk_line = 8;
  EXPECT_EQ(feedWhole("5;abcdef\r\nhello\r\n0\r\n\r\n", limits).status, ParseStatus::kDone);
  EXPECT_EQ(feedWhole("5;abcdefg\r\nhello\r\n0\r\n\r\n", limits).status, ParseStatus::kError);
  EXPECT_EQ(feedWhole("000000005\r\nhello\r\n0\r\n\r\n", limits).status, ParseStatus::kError);

  limits = Limits();
  limits.max_trailer_bytes = 12;  // "X-A: 1234\r\n" (11) + "\r\n" (2) = 13
  EXPECT_EQ(feedWhole("0\r\nX-A: 123\r\n\r\n", limits).status, ParseStatus::kDone);
  EXPECT_EQ(feedWhole("0\r\nX-A: 1234\r\n\r\n", limits).status, ParseStatus::kError);
}

TEST(ChunkedDecoderTest, Rejects) {
  const std::string_view bad[] = {
      "\r\n",
      "0x5\r\nhello\r\n0\r\n\r\n",
      "-5\r\nhello\r\n0\r\n\r\n",
      "+5\r\n",
      " 5\r\n",
      "5 \r\n",
      "5\t;a\r\n",
      "5\r\r\n",
      "5;a\nhello",
      "5;a\x01\r\n",
      "5;a\x7f\r\n",
      "5\r\nhello\n",
      "5\r\nhello\r\r\n",
      "5\r\nhelloo\r\n",
      "0\r\n\n",
      "0\r\n\r\r",
      "0\r\nX\r\n\r\n",
      "0\r\n: a\r\n\r\n",
      "0\r\nX : a\r\n\r\n",
      "0\r\nX\t: a\r\n\r\n",
      "0\r\nX: a\r\n b\r\n\r\n",
      "0\r\n b: a\r\n\r\n",
      "0\r\nX: a\x01\r\n\r\n",
      "0\r\nX: a\n\r\n",
      "0\r\nX: a\rb\r\n\r\n",
      "0\r\ncontent-length: 1\r\n\r\n",
      "0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "0\r\nHOST: a\r\n\r\n",
      "0\r\nConnection: close\r\n\r\n",
      "0\r\nTrailer: x\r\n\r\n",
      "0\r\nTE: trailers\r\n\r\n",
      "0\r\nUpgrade: h2c\r\n\r\n",
  };
  for (std::string_view input : bad) {
    const Decoded d = feedWhole(input);
    EXPECT_EQ(d.status, ParseStatus::kError) << input;
    EXPECT_EQ(d.error_status, 400) << input;
  }
}

TEST(ChunkedDecoderTest, TrailerNamesOnlyMatchWhole) {
  EXPECT_EQ(feedWhole("0\r\nContent-Length-X: 1\r\nX-Host: a\r\nTransfer-Encoding-Long-Name: a\r\n"
                      "Hos: b\r\n\r\n")
                .status,
            ParseStatus::kDone);
}

TEST(ChunkedDecoderTest, ErrorsAreStickyAndDoneConsumesNothing) {
  ChunkedDecoder decoder;
  Error err;
  ChunkedDecoder::Result r = decoder.decode("5\r\nhelloX", &err);
  EXPECT_EQ(r.status, ParseStatus::kIncomplete);
  EXPECT_EQ(r.data, "hello");
  r = decoder.decode("X", &err);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.consumed, 0u);
  Error again;
  r = decoder.decode("\r\n0\r\n\r\n", &again);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(again.status, 400);
  EXPECT_STREQ(again.reason, err.reason);

  decoder.reset();
  r = decoder.decode("0\r\n\r\nGET", &err);
  ASSERT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.consumed, 5u);
  r = decoder.decode("GET", &err);
  EXPECT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(decoder.bodyBytes(), 0u);
}

TEST(ChunkedDecoderTest, ErrorConsumedPointsAtTheBadByte) {
  ChunkedDecoder decoder;
  Error err;
  const ChunkedDecoder::Result r = decoder.decode("12\r\nabcdefghijklmnopqr\n", &err);
  ASSERT_EQ(r.status, ParseStatus::kIncomplete);
  EXPECT_EQ(r.data, "abcdefghijklmnopqr");
  const ChunkedDecoder::Result e = decoder.decode("\n", &err);
  EXPECT_EQ(e.status, ParseStatus::kError);
  EXPECT_EQ(e.consumed, 0u);
}

TEST(EncodeChunkHeaderTest, WritesHexSizeLines) {
  char buf[kMaxChunkHeaderBytes];
  const std::pair<size_t, std::string_view> cases[] = {
      {1, "1\r\n"},
      {15, "f\r\n"},
      {16, "10\r\n"},
      {0x1a2b, "1a2b\r\n"},
      {SIZE_MAX, "ffffffffffffffff\r\n"},
  };
  for (const auto& [n, expected] : cases) {
    const size_t len = encodeChunkHeader(n, buf);
    EXPECT_EQ(std::string_view(buf, len), expected);
  }
}

TEST(EncodeChunkHeaderTest, RoundTripsThroughTheDecoder) {
  std::string body;
  std::string expected;
  char buf[kMaxChunkHeaderBytes];
  for (size_t n : {1, 7, 16, 255, 256, 4096}) {
    const std::string data(n, static_cast<char>('a' + n % 26));
    body.append(buf, encodeChunkHeader(n, buf));
    body += data + "\r\n";
    expected += data;
  }
  body += kLastChunk;
  const Decoded d = feedWhole(body);
  ASSERT_EQ(d.status, ParseStatus::kDone);
  EXPECT_EQ(d.data, expected);
  EXPECT_EQ(d.consumed, body.size());
}

}  // namespace
}  // namespace sluice::http
