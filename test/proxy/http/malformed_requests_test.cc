// Runs every entry of the malformed-request table through the codec the way the connection
// manager does (find the head, parse it, frame a chunked body), whole and split.
#include "test/proxy/http/malformed_requests.h"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "proxy/http/chunked.h"
#include "proxy/http/codec.h"

namespace sluice::http {
namespace {

using test::kMalformedRequests;
using test::MalformedRequest;

// The status the codec answers `raw` with when it arrives as raw[0, split) and then the rest
// (the body a byte at a time); 0 if the request is accepted, -1 if it is still incomplete.
int answer(std::string_view raw, size_t split) {
  Limits limits;
  HeadScan scan;
  size_t head_len = 0;
  Error err;
  ParseStatus status = findHeadEnd(raw.substr(0, split), limits, &scan, &head_len, &err);
  if (status == ParseStatus::kIncomplete) {
    status = findHeadEnd(raw, limits, &scan, &head_len, &err);
  }
  if (status == ParseStatus::kError) return err.status;
  if (status == ParseStatus::kIncomplete) return -1;

  auto head = std::make_unique<RequestHead>();
  status = parseRequestHead(raw.substr(0, head_len), limits, head.get(), &err);
  if (status != ParseStatus::kDone) return status == ParseStatus::kError ? err.status : -1;
  EXPECT_EQ(head->head_len, head_len);
  if (bodyKind(*head) != BodyKind::kChunked) return 0;

  ChunkedDecoder decoder(limits);
  std::string_view body = raw.substr(head_len);
  while (!body.empty()) {
    const ChunkedDecoder::Result r = decoder.decode(body.substr(0, 1), &err);
    if (r.status == ParseStatus::kError) return err.status;
    if (r.status == ParseStatus::kDone) return 0;
    body.remove_prefix(r.consumed);
  }
  return -1;
}

TEST(MalformedRequestsTest, TableIsLargeAndNamesAreUnique) {
  EXPECT_GE(std::size(kMalformedRequests), 40u);
  std::set<std::string_view> names;
  for (const MalformedRequest& m : kMalformedRequests) {
    EXPECT_TRUE(names.insert(m.name).second) << m.name;
    EXPECT_FALSE(m.raw.empty()) << m.name;
  }
}

TEST(MalformedRequestsTest, EachIsAnsweredWithItsStatus) {
  for (const MalformedRequest& m : kMalformedRequests) {
    EXPECT_EQ(answer(m.raw, m.raw.size()), m.status) << m.name;
  }
}

TEST(MalformedRequestsTest, SameAnswerWhateverTheSplit) {
  for (const MalformedRequest& m : kMalformedRequests) {
    // Every byte for the small ones; about 500 splits of the 60 KiB ones.
    const size_t step = std::max<size_t>(1, m.raw.size() / 500);
    for (size_t split = 0; split <= m.raw.size(); split += step) {
      ASSERT_EQ(answer(m.raw, split), m.status) << m.name << " split at " << split;
    }
  }
}

TEST(MalformedRequestsTest, ParseRequestHeadAloneAgrees) {
  // Without the separate findHeadEnd step, the head parser reaches the same verdict for every
  // entry whose problem is in the head.
  auto head = std::make_unique<RequestHead>();
  for (const MalformedRequest& m : kMalformedRequests) {
    Error err;
    const ParseStatus status = parseRequestHead(m.raw, Limits(), head.get(), &err);
    if (status == ParseStatus::kDone) {
      EXPECT_TRUE(head->chunked) << m.name << ": accepted, so the error must be in the body";
    } else {
      ASSERT_EQ(status, ParseStatus::kError) << m.name;
      EXPECT_EQ(err.status, m.status) << m.name;
    }
  }
}

}  // namespace
}  // namespace sluice::http
