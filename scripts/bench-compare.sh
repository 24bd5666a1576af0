#!/usr/bin/env bash
# End-to-end figures for README: snapshot throughput against b3sum over the same files (page
# cache warm), compression off vs zstd:1, peak RSS, the growth of a no-change snapshot,
# restore and verify --read-data, then the same three steps encrypted against plain (the
# default AEGIS-256X4 repository against --encryption none; compression off and zstd:1;
# medians of 5, interleaved): the data path with a key that opens at once (Argon2id
# m=64KiB,t=1,p=1), and apart from it the constant cost of opening a key made with the
# default `--kdf auto`, which every command of an encrypted repository pays once.
# Usage: scripts/bench-compare.sh [DATASET_DIR] [SIZE_MIB]
# Needs b3sum and GNU time (Debian packages b3sum, time). Prints one line per measurement.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ds=${1:-/tmp/snapkeep-dataset}
size=${2:-1024}
work=$(mktemp -d /tmp/snapkeep-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bin="$here/target/release/snapkeep"
(cd "$here" && cargo build --release --quiet)
[ -d "$ds" ] || python3 "$here/scripts/gen-dataset.py" "$ds" "$size"
bytes=$(du -sb --apparent-size "$ds" | cut -f1)
# Page cache warm for the source, and no writeback of an earlier run still in flight.
warm() { find "$ds" -type f -print0 | xargs -0 cat >/dev/null; sync; }
t() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -n 1; }
mbps() { python3 -c "print(round($bytes/1e6/$1))"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "dataset: $ds ($((bytes >> 20)) MiB), commit $(cd "$here" && git rev-parse --short HEAD), $(nproc) cores"
warm
b3=$(for _ in 1 2 3; do t sh -c "find '$ds' -type f -print0 | xargs -0 b3sum --num-threads 2" | cut -d' ' -f1; done | median)
echo "b3sum --num-threads 2 (warm): ${b3}s, $(mbps "$b3") MB/s"
# The disk's durable write rate drifts on a shared machine: measure it right before each
# snapshot run (all source bytes into one file, then fsync) and report both.
for comp in off zstd:1; do
  secs=(); rss=(); disk=()
  for i in 1 2 3; do
    repo="$work/repo-$comp-$i"
    "$bin" --repo "$repo" -q init --encryption none --compression "$comp"
    warm
    read -r d _ < <(t sh -c "find '$ds' -type f -print0 | xargs -0 cat > '$work/disk-baseline' && sync '$work/disk-baseline'")
    rm -f "$work/disk-baseline"
    disk+=("$d")
    warm
    read -r s r < <(t "$bin" --repo "$repo" -q snapshot "$ds")
    secs+=("$s"); rss+=("$r")
  done
  s=$(printf '%s\n' "${secs[@]}" | median)
  d=$(printf '%s\n' "${disk[@]}" | median)
  r=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n 1)
  stored=$(du -sb "$work/repo-$comp-1" | cut -f1)
  echo "snapshot compression=$comp (warm): ${s}s, $(mbps "$s") MB/s, ratio to b3sum $(python3 -c "print(round($b3/$s, 2))"); disk baseline (cat + fsync of the same bytes) ${d}s, ratio $(python3 -c "print(round($d/$s, 2))"); peak RSS $((r / 1024)) MiB, repository $((stored >> 20)) MiB"
done
repo="$work/repo-zstd:1-1"
before=$(du -sb "$repo" | cut -f1)
warm
read -r s r < <(t "$bin" --repo "$repo" -q snapshot "$ds")
after=$(du -sb "$repo" | cut -f1)
echo "second snapshot, no change: ${s}s, peak RSS $((r / 1024)) MiB, repository grew $((after - before)) bytes"
warm
read -r s r < <(t "$bin" --repo "$repo" -q snapshot --force-read "$ds")
echo "second snapshot, no change, --force-read: ${s}s, peak RSS $((r / 1024)) MiB"
sync
read -r s r < <(t sh -c "'$bin' --repo '$repo' -q restore latest '$work/restored' && sync")
echo "restore (+ sync): ${s}s, $(mbps "$s") MB/s, peak RSS $((r / 1024)) MiB"
sync
read -r s r < <(t sh -c "cp -a '$ds' '$work/copied' && sync")
echo "cp -a of the source (+ sync): ${s}s, $(mbps "$s") MB/s"
sync
read -r s r < <(t "$bin" --repo "$repo" -q verify --read-data)
echo "verify --read-data: ${s}s, $(mbps "$s") MB/s (logical), peak RSS $((r / 1024)) MiB"

# Encrypted against plain: each step five times, the two kinds interleaved and their order
# alternated (the disk's writeback of one run must not always land on the same kind).
export SNAPKEEP_PASSWORD=snapkeep-bench
export XDG_STATE_HOME="$work/state"
SNAPKEEP_KDF=auto "$bin" --repo "$work/kdf" -q init >/dev/null
read -r s r < <(t "$bin" --repo "$work/kdf" -q list)
echo "encrypted: opening a key of the default --kdf auto (once per command): ${s}s, peak RSS $((r / 1024)) MiB"
rm -rf "$work/kdf"
export SNAPKEEP_KDF=m=64KiB,t=1,p=1
for comp in off zstd:1; do
  declare -A snap=() rest=() ver=() mem=()
  for i in 1 2 3 4 5; do
    if [ $((i % 2)) -eq 1 ]; then kinds="none aegis256x4-blake3"; else kinds="aegis256x4-blake3 none"; fi
    for enc in $kinds; do
      repo="$work/enc-$enc-$comp-$i"
      "$bin" --repo "$repo" -q init --encryption "$enc" --compression "$comp"
      warm
      read -r s r < <(t "$bin" --repo "$repo" -q snapshot "$ds")
      snap[$enc]+="$s "; mem[$enc]+="$r "
      sync
      read -r s r < <(t sh -c "'$bin' --repo '$repo' -q restore latest '$work/restored-enc' && sync")
      rest[$enc]+="$s "; mem[$enc]+="$r "
      read -r s r < <(t "$bin" --repo "$repo" -q verify --read-data)
      ver[$enc]+="$s "; mem[$enc]+="$r "
      rm -rf "$repo" "$work/restored-enc"
      sync
      sleep 1
    done
  done
  for step in snapshot restore verify; do
    case $step in
      snapshot) p=${snap[none]} e=${snap[aegis256x4-blake3]} ;;
      restore) p=${rest[none]} e=${rest[aegis256x4-blake3]} ;;
      verify) p=${ver[none]} e=${ver[aegis256x4-blake3]} ;;
    esac
    # shellcheck disable=SC2086
    pm=$(printf '%s\n' $p | median)
    # shellcheck disable=SC2086
    em=$(printf '%s\n' $e | median)
    echo "encrypted (data path) vs plain, $step (compression=$comp$([ "$step" = restore ] && echo ", + sync")): plain ${pm}s [$p], encrypted ${em}s [$e], ratio of medians $(python3 -c "print(round($em/$pm, 2))")"
  done
  # shellcheck disable=SC2086
  pr=$(printf '%s\n' ${mem[none]} | sort -n | tail -n 1)
  # shellcheck disable=SC2086
  er=$(printf '%s\n' ${mem[aegis256x4-blake3]} | sort -n | tail -n 1)
  echo "encrypted vs plain, peak RSS of the three steps (compression=$comp): plain $((pr / 1024)) MiB, encrypted $((er / 1024)) MiB"
  unset snap rest ver mem
done
