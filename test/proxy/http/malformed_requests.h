#pragma once

// Malformed and smuggling-shaped requests, as raw bytes, with the status Sluice must answer.
// The codec test runs each through the codec; the proxy's integration test sends each on a
// socket. Every entry is decidable without waiting for EOF (the error shows in the bytes given),
// and the answer is always followed by closing the connection. The "chunk_" and "trailer_"
// entries have a valid head (POST / to example.com): their error is in the chunked body, so a
// proxy only sees it once the request is routed and its body read.
#include <cstddef>
#include <string_view>

namespace sluice::http::test {

struct MalformedRequest {
  const char* name;
  std::string_view raw;
  int status;
};

namespace detail {

template <size_t N>
struct Bytes {
  char data[N];
  constexpr std::string_view view() const { return {data, N}; }
};

// prefix + kCount copies of unit + suffix, built at compile time.
template <size_t kCount, size_t P, size_t U, size_t S>
constexpr Bytes<(P - 1) + (U - 1) * kCount + (S - 1)> repeat(const char (&prefix)[P],
                                                             const char (&unit)[U],
                                                             const char (&suffix)[S]) {
  Bytes<(P - 1) + (U - 1) * kCount + (S - 1)> out{};
  size_t n = 0;
  for (size_t i = 0; i + 1 < P; ++i) out.data[n++] = prefix[i];
  for (size_t c = 0; c < kCount; ++c) {
    for (size_t i = 0; i + 1 < U; ++i) out.data[n++] = unit[i];
  }
  for (size_t i = 0; i + 1 < S; ++i) out.data[n++] = suffix[i];
  return out;
}

// A literal's bytes, NULs included (a plain literal would stop at the first NUL).
template <size_t N>
constexpr std::string_view bytes(const char (&s)[N]) {
  return {s, N - 1};
}

// A 9000-byte path: the request line exceeds the default 8 KiB.
inline constexpr auto kLongRequestLine =
    repeat<9000>("GET /", "a", " HTTP/1.1\r\nHost: example.com\r\n\r\n");
// Host plus 100 more fields: 101 > the default 100.
inline constexpr auto kTooManyHeaders =
    repeat<100>("GET / HTTP/1.1\r\nHost: example.com\r\n", "X-Filler: v\r\n", "\r\n");
// 61 KiB of fields in a complete head: over the default 60 KiB.
inline constexpr auto kHugeHeaders =
    repeat<61 * 1024>("GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: ", "a", "\r\n\r\n");
// 61 KiB of a head that never ends: 431 before the end arrives.
inline constexpr auto kEndlessHead =
    repeat<61 * 1024 / 16>("GET / HTTP/1.1\r\nHost: example.com\r\n", "X-Filler: 12345\r\n", "");

}  // namespace detail

#define SLUICE_REQ_(head) "POST / HTTP/1.1\r\nHost: example.com\r\n" head
#define SLUICE_CHUNKED_(body) SLUICE_REQ_("Transfer-Encoding: chunked\r\n\r\n") body

inline constexpr MalformedRequest kMalformedRequests[] = {
    // Framing: Content-Length and Transfer-Encoding.
    {"cl_and_te", SLUICE_REQ_("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     400},
    {"te_chunked_and_cl_0", SLUICE_REQ_("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
     400},
    {"te_space_before_colon", SLUICE_REQ_("Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), 400},
    {"te_tab_before_colon", SLUICE_REQ_("Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"), 400},
    {"te_xchunked", SLUICE_REQ_("Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"), 501},
    {"te_chunked_identity", SLUICE_REQ_("Transfer-Encoding: chunked, identity\r\n\r\n"), 400},
    {"te_chunked_twice", SLUICE_REQ_("Transfer-Encoding: chunked, chunked\r\n\r\n"), 400},
    {"te_chunked_twice_two_lines",
     SLUICE_REQ_("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"te_chunked_then_gzip_two_lines",
     SLUICE_REQ_("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 400},
    {"te_gzip_only", SLUICE_REQ_("Transfer-Encoding: gzip\r\n\r\n"), 400},
    {"te_gzip_chunked", SLUICE_REQ_("Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501},
    {"te_identity", SLUICE_REQ_("Transfer-Encoding: identity\r\n\r\n"), 501},
    {"te_with_parameter", SLUICE_REQ_("Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"), 400},
    {"te_empty", SLUICE_REQ_("Transfer-Encoding: \r\n\r\n"), 400},
    {"te_empty_list_element", SLUICE_REQ_("Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n"), 400},
    {"te_vertical_tab",
     SLUICE_REQ_("Transfer-Encoding:\x0b"
                 "chunked\r\n\r\n0\r\n\r\n"),
     400},
    {"te_in_http10",
     "POST / HTTP/1.0\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
    {"cl_duplicate_5_and_6", SLUICE_REQ_("Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
     400},
    {"cl_duplicate_5_and_05", SLUICE_REQ_("Content-Length: 5\r\nContent-Length: 05\r\n\r\nhello"),
     400},
    {"cl_list", SLUICE_REQ_("Content-Length: 5, 5\r\n\r\nhello"), 400},
    {"cl_plus_sign", SLUICE_REQ_("Content-Length: +5\r\n\r\nhello"), 400},
    {"cl_minus_sign", SLUICE_REQ_("Content-Length: -1\r\n\r\n"), 400},
    {"cl_space_inside", SLUICE_REQ_("Content-Length: 1 0\r\n\r\n0123456789"), 400},
    {"cl_hex", SLUICE_REQ_("Content-Length: 0x5\r\n\r\nhello"), 400},
    {"cl_empty", SLUICE_REQ_("Content-Length: \r\n\r\n"), 400},
    {"cl_overflow", SLUICE_REQ_("Content-Length: 18446744073709551616\r\n\r\n"), 400},
    // Line structure and field syntax.
    {"bare_lf_request_line", "GET / HTTP/1.1\nHost: example.com\r\n\r\n", 400},
    {"bare_lf_everywhere", "GET / HTTP/1.1\nHost: example.com\n\n", 400},
    {"bare_lf_end_of_head", "GET / HTTP/1.1\r\nHost: example.com\r\n\n", 400},
    {"bare_cr_in_value", "GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\rb\r\n\r\n", 400},
    {"nul_in_value", detail::bytes("GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\0b\r\n\r\n"),
     400},
    {"nul_in_name", detail::bytes("GET / HTTP/1.1\r\nHost: example.com\r\nX\0A: b\r\n\r\n"), 400},
    {"del_in_value", "GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\x7f\r\n\r\n", 400},
    {"obs_fold", "GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\r\n b\r\n\r\n", 400},
    {"obs_fold_tab", "GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\r\n\tb\r\n\r\n", 400},
    {"whitespace_before_first_field", "GET / HTTP/1.1\r\n Host: example.com\r\n\r\n", 400},
    {"space_before_colon", "GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", 400},
    {"empty_field_name", "GET / HTTP/1.1\r\nHost: example.com\r\n: x\r\n\r\n", 400},
    {"field_without_colon", "GET / HTTP/1.1\r\nHost: example.com\r\nX-A\r\n\r\n", 400},
    {"invalid_char_in_name", "GET / HTTP/1.1\r\nHost: example.com\r\nX(A): b\r\n\r\n", 400},
    {"leading_empty_line", "\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    // Host.
    {"missing_host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400},
    {"two_hosts", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", 400},
    {"host_list", "GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", 400},
    {"host_userinfo", "GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400},
    {"host_empty", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400},
    {"host_bad_port", "GET / HTTP/1.1\r\nHost: example.com:99999\r\n\r\n", 400},
    // Request line.
    {"invalid_method_chars", "G(T / HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"empty_method", " / HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"lowercase_http_version", "GET / http/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"http_1_2", "GET / HTTP/1.2\r\nHost: example.com\r\n\r\n", 505},
    {"http_2", "GET / HTTP/2\r\nHost: example.com\r\n\r\n", 505},
    {"http_2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
    {"http_0_9_version", "GET / HTTP/0.9\r\nHost: example.com\r\n\r\n", 505},
    {"version_two_digit_minor", "GET / HTTP/1.10\r\nHost: example.com\r\n\r\n", 400},
    {"http_0_9_style", "GET /\r\n\r\n", 400},
    {"trailing_space_in_request_line", "GET / HTTP/1.1 \r\nHost: example.com\r\n\r\n", 400},
    {"double_space_after_method", "GET  / HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"tab_separator", "GET\t/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"space_in_target", "GET /a b HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"ctl_in_target", "GET /a\x01 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"fragment_in_target", "GET /a#b HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"backslash_in_path", "GET /a\\..\\admin HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"non_ascii_in_path", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"path_above_root", "GET /../etc/passwd HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"encoded_dots_above_root", "GET /a/%2e%2E/%2E./x HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"bad_percent_escape", "GET /a%zz HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"truncated_percent_escape", "GET /a%4 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"asterisk_without_options", "GET * HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"authority_form_get", "GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501},
    {"absolute_uri_host_mismatch",
     "GET http://internal.example/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
    {"absolute_uri_userinfo", "GET http://u@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
     400},
    {"absolute_uri_other_scheme", "GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
     400},
    {"absolute_uri_no_host_header", "GET http://example.com/ HTTP/1.1\r\n\r\n", 400},
    // Other fields with framing or routing meaning.
    {"unknown_expectation", SLUICE_REQ_("Expect: 200-ok\r\nContent-Length: 0\r\n\r\n"), 417},
    {"malformed_connection", "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close,\r\n\r\n",
     400},
    {"two_upgrade_headers",
     "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: upgrade\r\nUpgrade: a\r\nUpgrade: "
     "b\r\n\r\n",
     400},
    // Limits.
    {"request_line_too_long", detail::kLongRequestLine.view(), 414},
    {"too_many_headers", detail::kTooManyHeaders.view(), 431},
    {"headers_61_kib", detail::kHugeHeaders.view(), 431},
    {"endless_head_61_kib", detail::kEndlessHead.view(), 431},
    // Chunked bodies (the head is valid).
    {"chunk_size_overflow", SLUICE_CHUNKED_("FFFFFFFFFFFFFFFFF\r\n"), 400},
    {"chunk_size_0x_prefix", SLUICE_CHUNKED_("0x5\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_size_negative", SLUICE_CHUNKED_("-5\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_size_plus", SLUICE_CHUNKED_("+5\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_size_leading_space", SLUICE_CHUNKED_(" 5\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_size_trailing_space", SLUICE_CHUNKED_("5 \r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_size_empty", SLUICE_CHUNKED_("\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_missing_crlf_after_data", SLUICE_CHUNKED_("5\r\nhelloX\r\n0\r\n\r\n"), 400},
    {"chunk_data_longer_than_size", SLUICE_CHUNKED_("3\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_lf_only_terminators", SLUICE_CHUNKED_("5\nhello\n0\n\n"), 400},
    {"chunk_lf_only_after_data", SLUICE_CHUNKED_("5\r\nhello\n0\r\n\r\n"), 400},
    {"chunk_extension_bare_lf", SLUICE_CHUNKED_("5;a\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_extension_ctl", SLUICE_CHUNKED_("5;a\x01\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk_last_lf_only", SLUICE_CHUNKED_("0\r\n\n"), 400},
    {"trailer_content_length", SLUICE_CHUNKED_("0\r\nContent-Length: 5\r\n\r\nhello"), 400},
    {"trailer_transfer_encoding", SLUICE_CHUNKED_("0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"trailer_obs_fold", SLUICE_CHUNKED_("0\r\nX-A: a\r\n b\r\n\r\n"), 400},
    {"trailer_space_before_colon", SLUICE_CHUNKED_("0\r\nX-A : a\r\n\r\n"), 400},
};

#undef SLUICE_CHUNKED_
#undef SLUICE_REQ_

}  // namespace sluice::http::test
