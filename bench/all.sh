#!/usr/bin/env bash
# Issue 15's measurements, printed as one table: one row per target of the issue, each ratio
# against a baseline measured in the same run, the two commands' runs alternating so that both
# see the same machine load. Columns: the measure, its baseline (median), the measure's median,
# min and max over RUNS runs, ratio = median / baseline, the target and pass/fail.
#
#   bench/all.sh                      # 200,000 students (and 1,000,000), RUNS=5, 30 nights
#   QUICK=1 bench/all.sh              # 20,000 students (and 100,000), RUNS=3: a fast try
#   STUDENTS=200000 NIGHT_STUDENTS=20000 NIGHTS=30 RUNS=5 DATA=/work/benchdata bench/all.sh
#
# Rows (units in brackets):
#   check apple / loop       `check` of the Apple district / parse_only (csv ByteRecord loop
#                            over the same files) [s]
#   check oneroster / loop   the same for the OneRoster 1.1 district [s]
#   peak mem apple / bundle  peak RSS of `check` / the bundle's size on disk [MiB]
#   peak mem oneroster       the same for OneRoster [MiB]
#   check BIG / check N      `check` of a district of BIG (5N) students / of N students [s]
#   first ingest / check     `ingest` into an empty store / `check` of the same bundle [s]
#   ingest 1% / check        `ingest` of the 1%-changed copy into a store holding the district /
#                            `check` of the district [s]
#   bytes written 1%         bytes of record values (segment bases and runs) the 1% batch wrote
#                            / the bytes the source's records take after it (`show`'s "disk:")
#   store / CSV, first       the store (state_dir/db, du) after the first ingest / the CSVs [MiB]
#   store / CSV, NIGHTS      the store after the first ingest and NIGHTS nightly batches of
#                            NIGHT_STUDENTS students, each changing 1% of the previous night's
#                            rows (bench/data.sh `night`), ingested in one process as the daemon
#                            does (examples/nights) / the last night's CSVs [MiB] (one run)
# A few details follow the table: the baselines' runs, CPU seconds (user+sys, all threads) of
# check against the loop's (steadier than wall time when the machine is shared), pages per
# table, db growth in bytes, per-night figures.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${QUICK:-0}" = 1 ]; then STUDENTS=${STUDENTS:-20000}; RUNS=${RUNS:-3}; else
  STUDENTS=${STUDENTS:-200000}; RUNS=${RUNS:-5}; fi
BIG=${BIG:-$((STUDENTS * 5))}
NIGHTS=${NIGHTS:-30}
NIGHT_STUDENTS=${NIGHT_STUDENTS:-$STUDENTS}
source bench/lib.sh
source bench/data.sh
build --example parse_only --example nights
NIGHTS_BIN=$TARGET_DIR/release/examples/nights
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bench_config "$WORK"
say() { echo "all.sh: $*" >&2; }
# run CMD... -> "seconds rss_kib cpu_seconds"; stops the benchmark when CMD does not exit 0
run() {
  local s m rc c
  read -r s m rc c < <(tm "$@")
  [ "$rc" = 0 ] || { say "exit $rc from: $*"; exit 1; }
  echo "$s $m $c"
}
ingest() { run "$BIN" ingest -q "$1" --source bench --config "$WORK/c.toml"; }
last_batch() { "$BIN" history --source bench --config "$WORK/c.toml" | awk 'NR==2{print $1}'; }
# per table of batch $1: "table:pages_written" (`show`)
table_pages() {
  "$BIN" show "$1" --config "$WORK/c.toml" |
    awk '$2 == "before" {for (i = 3; i < NF; i++) if ($i == "pages") printf "%s:%s ", $1, $(i+1)}'
}
# pages the source's last batch wrote, summed over its tables (`show`'s "pages" column)
last_pages() {
  "$BIN" show "$(last_batch)" --config "$WORK/c.toml" |
    awk '{for (i = 1; i < NF; i++) if ($i == "pages") s += $(i+1)} END{print s+0}'
}
# "written stored": record bytes the source's last batch wrote to disk, and what the source's
# records take after it (`show`'s "disk:" line)
last_disk() {
  "$BIN" show "$(last_batch)" --config "$WORK/c.toml" |
    awk '$1 == "disk:" {w = $3; s = $(NF-1)} END{print w+0, s+0}'
}
db_kib() { kib "$WORK/state/db"; }
db_bytes() { du -sb "$WORK/state/db" | cut -f1; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f\n", k/1024}'; }
# collect NAME VALUE: appends VALUE to the list NAME (a file in $WORK)
collect() { echo "$2" >>"$WORK/$1"; }
st() { stats <"$WORK/$1"; }
ROWS=()
# row MEASURE BASELINE MEDIAN MIN MAX TARGET (pass when MEDIAN/BASELINE <= TARGET)
row() {
  local r; r=$(ratio "$3" "$2")
  ROWS+=("$(awk -v m="$1" -v b="$2" -v med="$3" -v lo="$4" -v hi="$5" -v r="$r" -v tg="$6" '
    function n(x) { return (x == int(x)) ? sprintf("%d", x) : sprintf("%.3f", x) }
    BEGIN{ printf "%-40s %10s %10s %10s %10s %7.2f %7s %5s", m, n(b), n(med), n(lo), n(hi), r, "<=" tg,
      (r <= tg) ? "pass" : "FAIL" }')")
}
DETAILS=()
detail() { DETAILS+=("$*"); }
detail_st() { # label list
  local m lo hi; read -r m lo hi < <(st "$2"); detail "$(printf '%-52s median %s  min %s  max %s  (%s)' "$1" "$m" "$lo" "$hi" "$(paste -sd' ' "$WORK/$2")")"
}

A=$(district apple "$STUDENTS"); O=$(district oneroster "$STUDENTS"); L=$(district apple "$BIG")
v1_v2 "$STUDENTS"
[ "$V1" = "$A" ]
say "$STUDENTS students: apple $(mib "$(kib "$A")") MiB, oneroster $(mib "$(kib "$O")") MiB; $BIG: $(mib "$(kib "$L")") MiB; RUNS=$RUNS"

# 1. check against the ByteRecord loop, both formats, and peak memory
for i in $(seq "$RUNS"); do
  say "check vs loop, run $i/$RUNS"
  for f in apple oneroster; do
    if [ $f = apple ]; then d=$A; else d=$O; fi
    read -r s _ c < <(run "$BASE" "$d"); collect "loop-$f" "$s"; collect "loop-cpu-$f" "$c"
    read -r s m c < <(run "$BIN" check -q "$d" --out "$WORK/chk"); collect "check-$f" "$s"
    collect "rss-$f" "$(mib "$m")"; collect "check-cpu-$f" "$c"
  done
done
for f in apple oneroster; do
  read -r bm _ < <(st "loop-$f"); read -r m lo hi < <(st "check-$f")
  row "check $f / ByteRecord loop [s]" "$bm" "$m" "$lo" "$hi" 6
  detail_st "ByteRecord loop, $f [s]" "loop-$f"
  read -r lc _ < <(st "loop-cpu-$f")
  detail_st "check $f CPU user+sys [s] (the loop's: $lc)" "check-cpu-$f"
done
for f in apple oneroster; do
  if [ $f = apple ]; then d=$A; else d=$O; fi
  read -r m lo hi < <(st "rss-$f")
  row "peak mem check $f / bundle [MiB]" "$(mib "$(kib "$d")")" "$m" "$lo" "$hi" 2.5
done

# 2. growth with the district's size
for i in $(seq "$RUNS"); do
  say "check $STUDENTS vs $BIG, run $i/$RUNS"
  read -r s _ < <(run "$BIN" check -q "$A" --out "$WORK/chk"); collect "small" "$s"
  read -r s m _ < <(run "$BIN" check -q "$L" --out "$WORK/chk"); collect "big" "$s"; collect "rss-big" "$(mib "$m")"
done
read -r bm _ < <(st small); read -r m lo hi < <(st big)
row "check $BIG / check $STUDENTS [s]" "$bm" "$m" "$lo" "$hi" 5.2
detail_st "check apple $STUDENTS, beside $BIG [s]" small
detail_st "peak mem check apple $BIG [MiB] (bundle $(mib "$(kib "$L")"))" rss-big

# 3. ingest: first into an empty store, then the 1% copy
for i in $(seq "$RUNS"); do
  say "ingest, run $i/$RUNS"
  read -r s _ < <(run "$BIN" check -q "$V1" --out "$WORK/chk"); collect "ichk" "$s"
  rm -rf "$WORK/state"
  read -r s _ < <(ingest "$V1"); collect "first" "$s"
  collect "pages-all" "$(last_pages)"; collect "db-first" "$(mib "$(db_kib)")"
  b0=$(db_bytes)
  read -r s _ < <(ingest "$V2"); collect "pct" "$s"
  collect "pages-pct" "$(last_pages)"; collect "db-growth" "$(( $(db_bytes) - b0 ))"
  read -r w sb < <(last_disk); collect "bytes-pct" "$w"; collect "bytes-stored" "$sb"
  read -r s m _ < <(run "$BIN" export --source bench --config "$WORK/c.toml" --out "$WORK/exp")
  collect "export" "$s"; collect "export-rss" "$(mib "$m")"; rm -rf "$WORK/exp"
done
read -r bm _ < <(st ichk)
read -r m lo hi < <(st first); row "first ingest / check [s]" "$bm" "$m" "$lo" "$hi" 1.5
read -r m lo hi < <(st pct); row "ingest 1% changed / check [s]" "$bm" "$m" "$lo" "$hi" 1.3
read -r bp _ < <(st pages-all); read -r m lo hi < <(st pages-pct)
row "bytes written 1% / bytes stored" "$(st bytes-stored | cut -d' ' -f1)" $(st bytes-pct) 0.10
detail "logical pages written by the 1% batch / the store's: median $m of $bp"
csv=$(mib "$(kib "$V1")")
read -r m lo hi < <(st db-first); row "store first ingest / CSV [MiB]" "$csv" "$m" "$lo" "$hi" 1.0
detail_st "check apple $STUDENTS, beside ingest [s]" ichk
detail "pages per table, first batch (= the store's pages): $(table_pages 1)"
detail "pages per table written by the 1% batch:             $(table_pages 2)"
detail_st "sled db growth by the 1% batch [bytes]" db-growth
read -r m _ < <(st export)
detail_st "export, own format, after the 1% batch [s] ($(ratio "$m" "$bm")x check)" export
detail_st "peak mem of that export [MiB]" export-rss
detail "rows changed in the 1% copy: $(for x in "$V1"/*.csv; do diff "$x" "$V2/$(basename "$x")" | grep -c '^>' || true; done | awk '{s+=$1} END{print s}')"

# 4. a month of nights. As the daemon runs them: one process, the store open throughout
# (examples/nights). Then as `rosterdrop ingest` runs them, a process a night: sled 0.34 leaves
# blob files behind, which such a process gives back by compacting the store once it has grown
# to 2.5 times its records (docs/ARCHITECTURE.md); its row is the store after the last night, with
# the least and the most it took after any night.
if [ "$NIGHTS" -gt 0 ]; then
  N1=$(district apple "$NIGHT_STUDENTS")
  for k in $(seq "$NIGHTS"); do say "making night $k/$NIGHTS"; night "$NIGHT_STUDENTS" "$k" >/dev/null; done
  rm -rf "$WORK/state"
  say "nights in one process"
  # lines: night, seconds, "s", "written/stored", share, "stored", MiB, "MiB", "disk", MiB, "MiB"
  "$NIGHTS_BIN" "$WORK/state" "$N1" $(for k in $(seq "$NIGHTS"); do night "$NIGHT_STUDENTS" "$k"; done) |
    tail -n +2 >"$WORK/nights-one"
  awk '{print $2}' "$WORK/nights-one" >"$WORK/night-s"
  awk '{print $5}' "$WORK/nights-one" >"$WORK/night-share"
  awk '{print $10}' "$WORK/nights-one" >"$WORK/night-db"
  m=$(tail -1 "$WORK/night-db")
  row "store $NIGHTS nights ($NIGHT_STUDENTS) / CSV [MiB]" "$(mib "$(kib "$(night "$NIGHT_STUDENTS" "$NIGHTS")")")" "$m" "$m" "$m" 1.5
  detail_st "nightly ingest, $NIGHT_STUDENTS students [s]" night-s
  detail_st "bytes written / bytes stored, per night" night-share
  detail "store after each night [MiB]: $(paste -sd' ' "$WORK/night-db")"
  rm -rf "$WORK/state"
  ingest "$N1" >/dev/null
  for k in $(seq "$NIGHTS"); do
    say "night $k/$NIGHTS, a process each"
    ingest "$(night "$NIGHT_STUDENTS" "$k")" >/dev/null
    collect "night-db-cli" "$(mib "$(db_kib)")"
  done
  read -r lo hi < <(sort -n "$WORK/night-db-cli" | awk 'NR==1{lo=$1} {hi=$1} END{print lo, hi}')
  row "store $NIGHTS nights, a process each / CSV" "$(mib "$(kib "$(night "$NIGHT_STUDENTS" "$NIGHTS")")")" "$(tail -1 "$WORK/night-db-cli")" "$lo" "$hi" 1.5
  detail "the same nights, a process each (rosterdrop ingest), store after each [MiB]: $(paste -sd' ' "$WORK/night-db-cli")"
fi

printf '%-40s %10s %10s %10s %10s %7s %7s %5s\n' measure baseline median min max ratio target pass
printf '%s\n' "${ROWS[@]}"
echo
echo "details:"
printf '  %s\n' "${DETAILS[@]}"
