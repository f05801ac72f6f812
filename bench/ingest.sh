#!/usr/bin/env bash
# Benchmark of `rosterdrop ingest` on the synthetic district: first ingest, re-ingest of the
# same bundle, and ingest of a copy with 1% of rows changed, each against `check` of the same
# bundle in the same run. Prints medians of RUNS runs, the records each batch wrote (from
# `history`), and the store's size on disk against the CSVs'.
#
#   bench/ingest.sh                     # 200,000 students
#   STUDENTS=20000 RUNS=5 bench/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
STUDENTS=${STUDENTS:-200000}
source bench/lib.sh
source bench/data.sh
build
# Sets V1 (the district) and V2 (1% of rows changed).
v1_v2 "$STUDENTS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bench_config "$WORK"
last_written() { "$BIN" history --source bench --config "$WORK/c.toml" | awk 'NR==2{print $8+$9+$10, $7}'; }

check_t=$(for _ in $(seq "$RUNS"); do t "$BIN" check -q "$V1" --out "$WORK/chk"; done | median)
first=(); same=(); pct=()
for _ in $(seq "$RUNS"); do
  rm -rf "$WORK/state"
  first+=("$(t "$BIN" ingest -q "$V1" --source bench --config "$WORK/c.toml")")
  first_w=$(last_written)
  same+=("$(t "$BIN" ingest -q "$V1" --source bench --config "$WORK/c.toml")")
  same_w=$(last_written)
  pct+=("$(t "$BIN" ingest -q "$V2" --source bench --config "$WORK/c.toml")")
  pct_w=$(last_written)
done
# The same roster in other bytes (CRLF): compared record by record, not by hash.
mkdir -p "$WORK/crlf"; for f in "$V1"/*.csv; do sed 's/$/\r/' "$f" > "$WORK/crlf/$(basename "$f")"; done
"$BIN" ingest -q "$V1" --source bench --config "$WORK/c.toml" >/dev/null 2>&1 || true
crlf_t=$(t "$BIN" ingest -q "$WORK/crlf" --source bench --config "$WORK/c.toml"); crlf_w=$(last_written)
f=$(printf '%s\n' "${first[@]}" | median); s=$(printf '%s\n' "${same[@]}" | median); p=$(printf '%s\n' "${pct[@]}" | median)
changed=$(for x in "$V1"/*.csv; do cmp -l "$x" "$V2/$(basename "$x")" >/dev/null 2>&1; diff "$x" "$V2/$(basename "$x")" | grep -c '^>' || true; done | paste -sd+ | bc)
csv_kb=$(kib "$V1"); db_kb=$(kib "$WORK/state/db")
echo "district: $STUDENTS students, $(cat "$V1"/*.csv | wc -l) CSV lines, ${csv_kb} KiB"
printf '%-28s %8s %8s %22s\n' step median_s x_check "records written (state)"
printf '%-28s %8.2f %8s\n' "check" "$check_t" "1.00"
printf '%-28s %8.2f %8.2f %22s\n' "first ingest" "$f" "$(echo "$f/$check_t" | bc -l)" "$first_w"
printf '%-28s %8.2f %8.2f %22s\n' "re-ingest, same bytes" "$s" "$(echo "$s/$check_t" | bc -l)" "$same_w"
printf '%-28s %8.2f %8.2f %22s\n' "re-ingest, CRLF copy" "$crlf_t" "$(echo "$crlf_t/$check_t" | bc -l)" "$crlf_w"
printf '%-28s %8.2f %8.2f %22s\n' "ingest with 1% changed" "$p" "$(echo "$p/$check_t" | bc -l)" "$pct_w"
echo "rows changed in the 1% copy: $changed"
echo "store on disk: ${db_kb} KiB = $(echo "scale=2; $db_kb/$csv_kb" | bc)x the CSVs"
