#!/usr/bin/env bash
# Fuzzes every decoder of an on-disk type (fuzz/fuzz_targets/*.rs) for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 20 s, every target)
#
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags
# (-Zsanitizer=address, sanitizer coverage). Builds optimized with debug assertions and
# overflow checks, writes seeds made by the crate's own encoders (fuzz/examples/gen_seeds.rs)
# into fuzz/corpus/<target>/, then runs each target for the given time with a 512 MiB RSS
# limit and a 256 MiB limit on any single allocation (so an allocation sized by a length
# field fails the run). Exits non-zero when any target crashes, leaks past the limits or
# hangs; the input is kept in fuzz/artifacts/<target>/ and printed in hex.
#
# Environment: FUZZ_SANITIZER (address, the default, or none: without a sanitizer libFuzzer
# cannot enforce the allocation limit), FUZZ_TIMEOUT (seconds one input may take, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=${1:-20}
shift || true
case $secs in '' | *[!0-9]*)
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
  ;;
esac
sanitizer=${FUZZ_SANITIZER:-address}
per_input_timeout=${FUZZ_TIMEOUT:-10}

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
export CARGO_TERM_COLOR=never
# The fuzz crate is its own workspace with its own target directory.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET
target_dir="$root/fuzz/target"

started=$(date +%s)
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
cargo fuzz --version

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== build (sanitizer: $sanitizer)"
export RUSTC_BOOTSTRAP=1
build_start=$(date +%s)
cargo fuzz build -O --debug-assertions --sanitizer "$sanitizer" --target-dir "$target_dir"
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$target_dir/$host/release"

echo "== seeds"
cargo run --quiet --manifest-path fuzz/Cargo.toml --target-dir "$target_dir" \
  --example gen_seeds -- fuzz/corpus
built=$(date +%s)
echo "build and seeds: $((built - build_start)) s"

failed=0
summary=()
for t in "${targets[@]}"; do
  echo "== fuzz $t (${secs} s)"
  corpus="fuzz/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  log="$artifacts/fuzz.log"
  mkdir -p "$corpus" "$artifacts"
  rm -f "$log"
  touch "$artifacts/.run-start"
  t0=$(date +%s)
  rc=0
  "$bin_dir/$t" "$corpus" \
    -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=256 \
    -timeout="$per_input_timeout" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - t0))
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs="?"
  corpus_size=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    line="fuzz $t: $execs executions in $elapsed s, no crash (corpus $corpus_size inputs)"
  else
    failed=1
    # The crash, leak, timeout or out-of-memory input this run kept.
    mapfile -t inputs < <(find "$artifacts" -maxdepth 1 -type f -newer "$artifacts/.run-start" \
      ! -name fuzz.log ! -name .run-start)
    line="fuzz $t: FAILED (exit $rc) after $execs executions in $elapsed s; log $log"
    echo "---- $t: what failed (full output in $log)"
    grep -E -A1 'panicked at' "$log" | head -n 6 || true
    grep -E 'ERROR: |^SUMMARY' "$log" | head -n 4 || true
    # Stack frames in this repository's code (the decoder and the target).
    grep -E '^ +#[0-9]+ ' "$log" | grep -F -e "$root/src/" -e "$root/fuzz/fuzz_targets/" | sed 's/ 0x[0-9a-f]* in / /' | head -n 12 || true
    for f in "${inputs[@]}"; do
      echo "---- $t: input $f ($(wc -c <"$f") bytes), hex:"
      od -An -v -tx1 "$f" | tr -d ' \n' | fold -w 128
      echo
    done
  fi
  echo "$line"
  summary+=("$line")
done

echo "== summary (sanitizer: $sanitizer, $secs s per target, total $(($(date +%s) - started)) s)"
printf '%s\n' "${summary[@]}"
exit "$failed"
