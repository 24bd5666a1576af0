#!/usr/bin/env bash
# snapkeep against restic over one S3 server (s3s-fs on 127.0.0.1, plain HTTP), same tree,
# same machine, one run: first snapshot, no-change snapshot right after, restore on the same
# host (cache warm), restore and verify --read-data with an empty cache (another host), each
# the median of RUNS. snapkeep's request counts come from --show-requests (the last run's).
# Usage: scripts/bench-s3.sh [TREE] [RUNS]     (default /usr/share/doc, 3)
# Needs s3s-fs (cargo install s3s-fs), restic (Debian package) and GNU time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tree=${1:-/usr/share/doc}
runs=${2:-3}
work=$(mktemp -d /tmp/snapkeep-bench-s3.XXXXXX)
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/s3/bench"
s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret "$work/s3" \
  >"$work/s3s.log" 2>&1 &
s3pid=$!
trap 'kill $s3pid 2>/dev/null; rm -rf "$work"' EXIT
bin="$here/target/release/snapkeep"
(cd "$here" && cargo build --release --quiet)
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=bench \
  AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
export RESTIC_PASSWORD=bench SNAPKEEP_PASSWORD=bench
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port" && break; sleep 0.1; done

files=$(find "$tree" -type f | wc -l)
dirs=$(find "$tree" -type d | wc -l)
bytes=$(du -sb --apparent-size "$tree" | cut -f1)
echo "tree: $tree ($files files, $dirs directories, $((bytes >> 20)) MiB), commit $(cd "$here" && git rev-parse --short HEAD), $(nproc) cores, $runs runs"
# Seconds a command took (a failure is said on stderr, with the command's own output).
t() {
  if ! /usr/bin/time -o "$work/time" -f "%e" "$@" >"$work/out" 2>&1; then
    echo "failed: $*" >&2; tail -n 5 "$work/out" >&2
  fi
  tail -n 1 "$work/time"
}
# Time of a snapkeep command, its request report kept in $work/req.
ts() {
  if ! /usr/bin/time -o "$work/time" -f "%e" "$@" --show-requests >/dev/null 2>"$work/req"; then
    echo "failed: $*" >&2; tail -n 5 "$work/req" >&2
  fi
  tail -n 1 "$work/time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
reqs() {
  python3 -c 'import json,sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["requests"]
print("total", r["total"], " ".join(f"{k}={v}" for k, v in r["by_kind"].items() if v))' "$work/req"
}

declare -A sk rs skreq
for i in $(seq "$runs"); do
  # snapkeep: a repository and cache of its own per run.
  repo="s3://bench/sk-$i"
  cache="$work/sk-cache-$i"
  "$bin" --repo "$repo" --cache-dir "$cache" -q init >/dev/null
  sk[first]+="$(ts "$bin" --repo "$repo" --cache-dir "$cache" -q snapshot "$tree") "
  sk[nochange]+="$(ts "$bin" --repo "$repo" --cache-dir "$cache" -q snapshot "$tree") "
  skreq[nochange]=$(reqs)
  sk[restore_warm]+="$(ts "$bin" --repo "$repo" --cache-dir "$cache" -q restore latest "$work/out-sk-$i") "
  skreq[restore_warm]=$(reqs)
  rm -rf "$work/out-sk-$i"
  sk[restore_cold]+="$(ts "$bin" --repo "$repo" --cache-dir "$work/sk-cold-$i" -q restore latest "$work/out-sk-$i") "
  skreq[restore_cold]=$(reqs)
  rm -rf "$work/out-sk-$i" "$work/sk-cold-$i"
  sk[verify_cold]+="$(ts "$bin" --repo "$repo" --cache-dir "$work/sk-cold-$i" -q verify --read-data) "
  skreq[verify_cold]=$(reqs)
  rm -rf "$work/sk-cold-$i"

  # restic 0.14: same server, its own prefix and cache.
  rrepo="s3:http://127.0.0.1:$port/bench/rs-$i"
  rcache="$work/rs-cache-$i"
  restic -r "$rrepo" --cache-dir "$rcache" -q init >/dev/null
  rs[first]+="$(t restic -r "$rrepo" --cache-dir "$rcache" -q backup "$tree") "
  rs[nochange]+="$(t restic -r "$rrepo" --cache-dir "$rcache" -q backup "$tree") "
  rs[restore_warm]+="$(t restic -r "$rrepo" --cache-dir "$rcache" -q restore latest --target "$work/out-rs-$i") "
  rm -rf "$work/out-rs-$i"
  rs[restore_cold]+="$(t restic -r "$rrepo" --cache-dir "$work/rs-cold-$i" -q restore latest --target "$work/out-rs-$i") "
  rm -rf "$work/out-rs-$i" "$work/rs-cold-$i"
  rs[verify_cold]+="$(t restic -r "$rrepo" --cache-dir "$work/rs-cold-$i" -q check --read-data) "
  rm -rf "$work/rs-cold-$i"
done

printf '%-28s %10s %10s  %s\n' step snapkeep restic "snapkeep requests (last run)"
for step in first nochange restore_warm restore_cold verify_cold; do
  a=$(tr ' ' '\n' <<<"${sk[$step]}" | grep . | median)
  b=$(tr ' ' '\n' <<<"${rs[$step]}" | grep . | median)
  printf '%-28s %9ss %9ss  %s\n' "$step" "$a" "$b" "${skreq[$step]:-}"
done
