#!/usr/bin/env bash
# Build the libFuzzer targets (every cpp/fuzz/fuzz_*.cpp) with clang under ASan + UBSan and run
# each for FUZZ_SECONDS (default 60), seeded from tests/golden (and cpp/fuzz/seeds when present).
# The core is compiled once into build/fuzz/obj (FUZZ_JOBS compilers at a time, default 2; only
# sources whose dependencies changed are recompiled), then linked into each target. A crash
# stops the run with the fuzzer's report and leaves its input in build/fuzz/<target>/ (crash-*):
# turn it into a regression test. Prints each target's build and run time.
# Usage: cpp/fuzz/run.sh [target...]     (make fuzz installs clang first when it is missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-2}"
cxx="${FUZZ_CXX:-clang++}"
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found: run 'make fuzz' (installs clang), or apt-get install -y clang libclang-rt-14-dev" >&2
  exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for source in cpp/fuzz/fuzz_*.cpp; do targets+=("$(basename "${source%.cpp}")"); done
fi
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=undefined -ffp-contract=off -Icpp/include -Icpp/src)
obj=build/fuzz/obj
mkdir -p "$obj"

# An object is stale when missing or older than any file its .d lists (the source included).
stale() {
  local o="$1" d="${1%.o}.d"
  [ -f "$o" ] && [ -f "$d" ] || return 0
  local f
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do
    [ "$f" -nt "$o" ] && return 0
  done
  return 1
}
compile() {  # compile SOURCE OBJECT (run by xargs: the flags come in as one string)
  # shellcheck disable=SC2086
  "$FUZZ_CXX_RESOLVED" $FUZZ_FLAGS -fsanitize=fuzzer-no-link -MMD -MF "${2%.o}.d" -c "$1" -o "$2"
}

SECONDS=0
# gemm_avx2.cpp needs -mavx2 (its kernels are not built here: the generic ones are fuzzed).
objects=()
pending=()
for source in $(find cpp/src -name '*.cpp' -not -name gemm_avx2.cpp | sort); do
  o="$obj/$(basename "${source%.cpp}").o"
  objects+=("$o")
  if stale "$o"; then pending+=("$source" "$o"); fi
done
if [ ${#pending[@]} -gt 0 ]; then
  echo "fuzz: compiling $((${#pending[@]} / 2)) core sources with $cxx ($jobs at a time)"
  export -f compile
  export FUZZ_CXX_RESOLVED="$cxx" FUZZ_FLAGS="${flags[*]}"
  printf '%s\n' "${pending[@]}" | xargs -P "$jobs" -n 2 bash -c 'compile "$0" "$1"'
fi
echo "fuzz: core objects ready after ${SECONDS} s"

seeds=()
for dir in tests/golden cpp/fuzz/seeds; do
  [ -d "$dir" ] && seeds+=("$PWD/$dir")
done
for target in "${targets[@]}"; do
  out="build/fuzz/$target"
  mkdir -p "$out/corpus"
  start=$SECONDS
  "$cxx" "${flags[@]}" -fsanitize=fuzzer "cpp/fuzz/$target.cpp" "${objects[@]}" -lz -o "$out/$target"
  built=$((SECONDS - start))
  if ! (cd "$out" && ASAN_OPTIONS=halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        ./"$target" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 corpus "${seeds[@]}" >log.txt 2>&1); then
    tail -n 80 "$out/log.txt"
    echo "fuzz: $target FAILED (log: $out/log.txt, input: $out/crash-*)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log.txt" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz: $target ok: built in ${built} s, ${runs} runs in ${seconds} s, corpus $(ls "$out/corpus" | wc -l) inputs"
done
echo "fuzz: ${#targets[@]} targets done after ${SECONDS} s"
