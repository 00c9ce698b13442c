#!/usr/bin/env bash
# Build the libFuzzer targets of the file format with clang (ASan + UBSan) and run each for
# FUZZ_SECONDS (default 60), seeded from tests/golden. A crash leaves its input in
# build/fuzz/<target>/ (crash-*): turn it into a regression test. Usage: cpp/fuzz/run.sh [target...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${FUZZ_SECONDS:-60}"
if ! command -v clang++ >/dev/null; then
  echo "clang++ not found: apt-get install -y clang libclang-rt-14-dev" >&2
  exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_dictionary_load fuzz_collection_decode fuzz_item_decode fuzz_round_trip
           fuzz_c_encode_buffer fuzz_search)
fi
sources=$(ls cpp/src/*.cpp | grep -v gemm_avx2.cpp)
mkdir -p build/fuzz
for target in "${targets[@]}"; do
  out="build/fuzz/$target"
  mkdir -p "$out/corpus"
  clang++ -std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -ffp-contract=off -Icpp/include $sources \
    "cpp/fuzz/$target.cpp" -lz -o "$out/$target"
  seeds=(tests/golden cpp/fuzz/seeds)
  (cd "$out" && UBSAN_OPTIONS=halt_on_error=1 ./"$target" -max_total_time="$seconds" \
     -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 corpus "${seeds[@]/#/../../../}" \
     2>&1 | tail -n 12)
done
