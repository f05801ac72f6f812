#!/usr/bin/env bash
# A/B benchmark of `rosterdrop check`: two builds on the same synthetic districts, their runs
# alternating (so both see the same machine load), beside the parse-only floor (csv ByteRecord
# over the same files) measured in the same run. Prints, per district, the median, min and max
# wall seconds of each, the ratio new/old, each build's ratio to the floor, and peak memory; and
# says whether the two builds wrote byte-identical patch summaries and modified files.
#
#   bench/check-ab.sh OLD_BINARY [NEW_BINARY]      # NEW defaults to ${CARGO_TARGET_DIR:-target}/release/rosterdrop
#   RUNS=7 STUDENTS="200000" bench/check-ab.sh /tmp/rosterdrop-old
#
# Build OLD from an earlier commit, e.g.:
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release) &&
#   bench/check-ab.sh /tmp/old/target/release/rosterdrop
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/check-ab.sh OLD_BINARY [NEW_BINARY]}
RUNS=${RUNS:-5}
STUDENTS=${STUDENTS:-200000}
source bench/lib.sh
build --example parse_only
NEW=${2:-$BIN}
BIN=$NEW # districts are made (once) by the new build
source bench/data.sh
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# one run: wall seconds and max RSS in KiB
once() { tm "$@" | cut -d' ' -f1,2; }

printf '%-10s %8s | %-20s | %-20s | %-20s | %6s %6s %6s | %7s %7s | %s\n' \
  format students "floor med (min-max)" "old med (min-max)" "new med (min-max)" \
  new/old old/fl new/fl oldMB newMB outputs
for fmt in apple oneroster; do
  for n in $STUDENTS; do
    d=$(district "$fmt" "$n")
    : >"$OUT/f"; : >"$OUT/o"; : >"$OUT/n"; orss=0; nrss=0
    for _ in $(seq "$RUNS"); do
      read -r t _ < <(once "$BASE" "$d"); echo "$t" >>"$OUT/f"
      read -r t m < <(once "$OLD" check -q "$d" --out "$OUT/old"); echo "$t" >>"$OUT/o"
      [ "$m" -gt "$orss" ] && orss=$m
      read -r t m < <(once "$NEW" check -q "$d" --out "$OUT/new"); echo "$t" >>"$OUT/n"
      [ "$m" -gt "$nrss" ] && nrss=$m
    done
    same=identical
    cmp -s "$OUT/old/patch-summary.csv" "$OUT/new/patch-summary.csv" || same="patch-summary differs"
    diff -rq "$OUT/old/modified" "$OUT/new/modified" >/dev/null || same="$same; modified differs"
    read -r fm fmin fmax < <(stats <"$OUT/f")
    read -r om omin omax < <(stats <"$OUT/o")
    read -r nm nmin nmax < <(stats <"$OUT/n")
    awk -v f="$fmt" -v n="$n" -v fm="$fm" -v fmin="$fmin" -v fmax="$fmax" \
        -v om="$om" -v omin="$omin" -v omax="$omax" -v nm="$nm" -v nmin="$nmin" -v nmax="$nmax" \
        -v orss="$orss" -v nrss="$nrss" -v same="$same" 'BEGIN{
      printf "%-10s %8d | %5.3f (%5.3f-%5.3f) | %5.3f (%5.3f-%5.3f) | %5.3f (%5.3f-%5.3f) | %6.2f %6.1f %6.1f | %7.0f %7.0f | %s\n",
        f, n, fm, fmin, fmax, om, omin, omax, nm, nmin, nmax, nm/om, om/fm, nm/fm, orss/1024, nrss/1024, same }'
  done
done
