#!/usr/bin/env bash
# Benchmark of `rosterdrop check` against a parse-only baseline (csv ByteRecord over the same
# files), on synthetic districts. Prints medians of RUNS runs, the ratio check/parse-only, peak
# memory against the bundle's size on disk, and how time grows with the district's size.
#
#   bench/check.sh                 # 200,000-student district, Apple and OneRoster, + scaling
#   RUNS=7 SCALES="50000 200000 1000000" bench/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
SCALES=${SCALES:-"50000 100000 200000 400000 1000000"}
source bench/lib.sh
source bench/data.sh
build --example parse_only

# median wall seconds and max RSS (KiB) of a command over RUNS runs
measure() {
  local times=() rss=0 t m
  for _ in $(seq "$RUNS"); do
    read -r t m _ < <(tm "$@")
    times+=("$t"); [ "$m" -gt "$rss" ] && rss=$m
  done
  echo "$(printf '%s\n' "${times[@]}" | median) $rss"
}

printf '%-10s %9s %9s %10s %10s %7s %10s %9s %7s\n' format students bundleMB parse_s check_s ratio peakMB peak/size rows
run_one() {
  local fmt=$1 n=$2 d; d=$(district "$fmt" "$n")
  local size_kb; size_kb=$(kib "$d")
  local rows; rows=$(cat "$d"/*.csv | wc -l)
  read -r pt _ < <(measure "$BASE" "$d")
  read -r ct crss < <(measure "$BIN" check -q "$d" --out "/tmp/rd-bench-out-$fmt")
  awk -v f="$fmt" -v n="$n" -v s="$size_kb" -v p="$pt" -v c="$ct" -v m="$crss" -v r="$rows" 'BEGIN{
    printf "%-10s %9d %9.1f %10.3f %10.3f %7.2f %10.1f %9.2f %7d\n", f, n, s/1024, p, c, c/p, m/1024, m/s, r }'
}
for fmt in apple oneroster; do run_one "$fmt" 200000; done
echo
echo "scaling (apple):"
for n in $SCALES; do run_one apple "$n"; done
