#!/usr/bin/env bash
# A/B benchmark of `rosterdrop ingest`: two builds on the same synthetic Apple district, their
# runs alternating (so both see the same machine load). Each run of a build ingests the district
# into an empty store (first ingest), then the copy with 1% of rows changed (bench/data.sh);
# `check` of the district runs beside them as the baseline the issue's ratios use. Prints the
# median, min and max wall seconds and the median CPU seconds (user+sys) of each, the ratio
# new/old, and each build's ingest / check.
#
#   bench/ingest-ab.sh OLD_BINARY [NEW_BINARY]     # NEW defaults to ${CARGO_TARGET_DIR:-target}/release/rosterdrop
#   RUNS=7 STUDENTS=20000 bench/ingest-ab.sh /tmp/rosterdrop-old
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/ingest-ab.sh OLD_BINARY [NEW_BINARY]}
RUNS=${RUNS:-5}
STUDENTS=${STUDENTS:-200000}
source bench/lib.sh
build
NEW=${2:-$BIN}
BIN=$NEW # the district is made (once) by the new build
source bench/data.sh
v1_v2 "$STUDENTS"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
bench_config "$OUT"
# one run, appended to $OUT/<name>: "wall cpu"; stops the benchmark when it does not exit 0
once() {
  local name=$1 s m rc c
  shift
  read -r s m rc c < <(tm "$@")
  [ "$rc" = 0 ] || { echo "ingest-ab.sh: exit $rc from: $*" >&2; exit 1; }
  echo "$s $c" >>"$OUT/$name"
}
for _ in $(seq "$RUNS"); do
  for side in old new; do
    bin=$OLD
    [ "$side" = new ] && bin=$NEW
    rm -rf "$OUT/state"
    once "$side-first" "$bin" ingest -q "$V1" --source bench --config "$OUT/c.toml"
    once "$side-1pct" "$bin" ingest -q "$V2" --source bench --config "$OUT/c.toml"
    once "$side-check" "$bin" check -q "$V1" --out "$OUT/report"
  done
done
printf '%-12s | %-20s %6s | %-20s %6s | %7s | %9s %9s\n' \
  step "old med (min-max)" cpu "new med (min-max)" cpu new/old "old/check" "new/check"
read -r ocm _ < <(cut -d' ' -f1 "$OUT/old-check" | stats)
read -r ncm _ < <(cut -d' ' -f1 "$OUT/new-check" | stats)
for step in first 1pct check; do
  read -r om omin omax < <(cut -d' ' -f1 "$OUT/old-$step" | stats)
  read -r nm nmin nmax < <(cut -d' ' -f1 "$OUT/new-$step" | stats)
  oc=$(cut -d' ' -f2 "$OUT/old-$step" | median)
  nc=$(cut -d' ' -f2 "$OUT/new-$step" | median)
  awk -v s="$step" -v om="$om" -v omin="$omin" -v omax="$omax" -v oc="$oc" \
      -v nm="$nm" -v nmin="$nmin" -v nmax="$nmax" -v nc="$nc" -v ocm="$ocm" -v ncm="$ncm" 'BEGIN{
    printf "%-12s | %5.3f (%5.3f-%5.3f) %6.2f | %5.3f (%5.3f-%5.3f) %6.2f | %7.2f | %9.2f %9.2f\n",
      s, om, omin, omax, oc, nm, nmin, nmax, nc, nm/om, om/ocm, nm/ncm }'
done
