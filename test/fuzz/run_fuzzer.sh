#!/bin/bash
# Builds a fuzz target with clang-14 and libFuzzer (outside Bazel, on the same system libraries)
# and runs it, starting from its corpus directory.
#
#   test/fuzz/run_fuzzer.sh [SECONDS] [-- LIBFUZZER_FLAGS...]
#
# SECONDS defaults to 60. Environment: TARGET (config_loader, http_parser, path_normalizer or
# jwt_parser; default config_loader), OUT (default /tmp/sluice-fuzz/$TARGET: binary, the growing
# working corpus, crash artifacts), JOBS (parallel fuzzing processes, default 1). The checked-in
# seed corpus is only read; add a crashing input to it by hand once the bug is fixed, so that the
# corpus test keeps it fixed.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
seconds=60
if [[ $# -gt 0 && $1 != -- ]]; then
  seconds=$1
  shift
fi
[[ ${1:-} == -- ]] && shift

target=${TARGET:-config_loader}
out=${OUT:-/tmp/sluice-fuzz/$target}
seeds=$root/test/fuzz/corpus/$target
mkdir -p "$out/corpus" "$out/artifacts"

case $target in
  config_loader)
    bazel build //api:config
    sources=(test/fuzz/config_loader_fuzz.cc common/config/*.cc
      bazel-bin/api/sluice/config/v1/*.pb.cc)
    libs=(-lyaml-cpp -lre2 -lprotobuf)
    ;;
  http_parser)
    sources=(test/fuzz/http_parser_fuzz.cc proxy/http/codec.cc proxy/http/chunked.cc)
    libs=()
    ;;
  path_normalizer)
    sources=(test/fuzz/path_normalizer_fuzz.cc proxy/http/codec.cc)
    libs=()
    ;;
  jwt_parser)
    sources=(test/fuzz/jwt_parser_fuzz.cc proxy/filters/jwt_authn/*.cc)
    libs=(-lprotobuf -lssl -lcrypto)
    ;;
  *)
    echo "unknown TARGET '$target'" >&2
    exit 2
    ;;
esac

# shellcheck disable=SC2207  # pkg-config output is a list of flags
absl=($(pkg-config --libs absl_strings absl_str_format absl_status absl_statusor absl_time \
  absl_hash absl_raw_hash_set))
echo "building $out/fuzzer"
clang++-14 -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address \
  -I"$root" -I"$root/bazel-bin/api" \
  "${sources[@]}" "${libs[@]}" "${absl[@]}" -pthread \
  -o "$out/fuzzer"

flags=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 -max_len=65536
  -print_final_stats=1 -artifact_prefix="$out/artifacts/")
# A dictionary next to the target, if there is one, steers mutations towards its grammar.
dict=$root/test/fuzz/$target.dict
[[ -f $dict ]] && flags+=(-dict="$dict")
jobs=${JOBS:-1}
# More than one job: libFuzzer runs them as subprocesses that log to fuzz-N.log in $out.
[[ $jobs -gt 1 ]] && flags+=(-jobs="$jobs" -workers="$jobs")
echo "fuzzing for ${seconds}s; working corpus $out/corpus, artifacts $out/artifacts"
cd "$out"
./fuzzer "${flags[@]}" "$@" corpus "$seeds"
