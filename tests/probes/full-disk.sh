#!/usr/bin/env bash
# ENOSPC probe for rosterdrop's store: can a commit be left TORN (partly applied) when the
# disk fills up in the middle of it?  Black box: only the CLI is used. Needs root (it mounts
# tmpfs file systems); not part of `cargo test`. See docs/ARCHITECTURE.md, "The disk".
#
#   tests/probes/full-disk.sh BIN [RUNS]      # RUNS default 24; 50,000 students by default
#
# Environment (all optional):
#   STUDENTS=50000   district size; V1 and its 1% copy V2 are made once under $DATA with
#                    bench/data.sh (`BIN synth` + awk), read-only use of that file
#   ROOT=/tmp/enospc-probe   where data, mounts and results go
#   DATA=$ROOT/data
#   V1=DIR V2=DIR    use these bundles instead (e.g. bench/data/apple-200000{,-1pct})
#   F_LIST="a b .."  explicit free-space values in bytes instead of the calibrated sweep
#   F_LO F_HI        sweep range in bytes (default: calibrated, see below)
#   CAL_RUNS=3       calibration ingests
#   TIMEOUT=3        seconds after which an ingest that uses no more CPU is called hung and
#                    SIGKILLed (one that still uses CPU gets up to 4x TIMEOUT)
#   ON_HANG=kill     kill: SIGKILL the hung ingest while the disk is still full (= a crash);
#                    free: remove the filler first, wait TIMEOUT more seconds, then SIGKILL
#   KEEP=0           1: keep each run's store as it was right after the failed ingest
#                    ($OUT/run-K/state.tar)
#
# Calibration (with BIN, on tmpfs): ingest V1, then ingest V2 while sampling the free space;
# R = bytes batch 2's reports take, P = median over CAL_RUNS of the peak use of ingest V2. The
# sweep is RUNS values of F evenly from F_LO=R to F_HI=P: below about R the reports fail (the
# commit is never reached); just under P the disk fills inside sled's commit.
#
# Per run K: fresh tmpfs at $ROOT/mnt-K; ingest V1 (must succeed); fallocate a
# filler so that exactly F bytes stay free; ingest V2; remove the filler; read the store back
# (history, then export, both reopen it) and classify:
#   CLEAN-OLD   export == ref1 and batch 2 not `applied`
#   CLEAN-NEW   export == ref2 and batch 2 `applied`
#   TORN        anything else: export equals neither, or history disagrees with the export,
#               or batch 1 is no longer `applied`
#   UNOPENABLE  history or export fails (message recorded)
# then ingest V2 once more on the freed disk. recovery: ok = it succeeds, its batch is applied or
# unchanged, and the export == ref2; else BAD(...) says what was wrong.
# Columns: F; ingest2 = rcN or HANG>kill; phase = where the first error was met, from the
# ingest's stderr (reports: the report files; sled: the store; reports+sled: both);
# class; batch2 = batch 2's state in history after reopening; recovery; first error line.
# Exit status: 0 if no run was TORN or UNOPENABLE, 1 otherwise, 2 on a setup error.
set -uo pipefail

BIN=${1:?usage: run.sh BIN [RUNS]}
RUNS=${2:-24}
BIN=$(realpath "$BIN")
ROOT=${ROOT:-/tmp/enospc-probe}
STUDENTS=${STUDENTS:-50000}
DATA=${DATA:-$ROOT/data}
TIMEOUT=${TIMEOUT:-3}
ON_HANG=${ON_HANG:-kill}
KEEP=${KEEP:-0}
CAL_RUNS=${CAL_RUNS:-3}
OUT=$ROOT/out/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
MOUNTED=()
CHILD=

cleanup() {
  local m
  [ -n "$CHILD" ] && kill -KILL "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
  for m in "${MOUNTED[@]}"; do
    if mountpoint -q "$m"; then umount "$m" 2>/dev/null || umount -l "$m"; fi
    rmdir "$m" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 2; }

# ---- data ----------------------------------------------------------------------------------
if [ -n "${V1:-}" ] && [ -n "${V2:-}" ]; then
  STUDENTS="(given)"
else
  BENCH_DATA_SH=${BENCH_DATA_SH:-$(dirname "$(realpath "$0")")/../../bench/data.sh}
  [ -r "$BENCH_DATA_SH" ] || die "cannot read $BENCH_DATA_SH"
  # shellcheck source=/dev/null
  source "$BENCH_DATA_SH"      # district / change_rows / v1_v2; they write only under $DATA
  v1_v2 "$STUDENTS" >/dev/null || die "could not generate the data"
fi
[ -f "$V1/.done" ] && [ -f "$V2/.done" ] || die "data incomplete: $V1 $V2"

conf() {  # conf STATE_DIR FILE
  cat >"$2" <<TOML
state_dir = "$1"
[sources.bench]
guard.max_delete_percent = 100.0
TOML
}
# norm SRC DST: each CSV with its header first and its data rows sorted (byte order)
norm() {
  local f; rm -rf "$2"; mkdir -p "$2"
  for f in "$1"/*.csv; do
    { head -n1 "$f"; tail -n +2 "$f" | LC_ALL=C sort -S 256M; } >"$2/$(basename "$f")"
  done
}
# export_norm CONF DST: export + normalize; on failure prints the export's output
export_norm() {
  local tmp=$2.raw
  rm -rf "$tmp" "$2"
  "$BIN" export --source bench --out "$tmp" --config "$1" >"$2.log" 2>&1 || { cat "$2.log"; return 1; }
  norm "$tmp" "$2"; rm -rf "$tmp"
}
state_of() { awk -v n="$2" '$1==n{print $7; f=1} END{if(!f)print "-"}' "$1"; }  # history file, batch
same() { diff -rq "$1" "$2" >/dev/null 2>&1; }
ndiff() { diff -r "$1" "$2" 2>/dev/null | grep -c '^[<>]'; }  # lines that differ
files_off() { diff -rq "$1" "$2" 2>/dev/null | awk '{print $2}' | xargs -r -n1 basename | sed 's/\.csv$//' | paste -sd, -; }

# ---- 1. reference on the normal disk ------------------------------------------------------
REF=$OUT/ref; mkdir -p "$REF"
conf "$REF/state" "$REF/c.toml"
"$BIN" ingest -q "$V1" --source bench --config "$REF/c.toml" >"$REF/i1.log" 2>&1 || die "reference ingest V1 failed: $(head -3 "$REF/i1.log")"
export_norm "$REF/c.toml" "$REF/ref1" >/dev/null || die "reference export 1 failed"
export_norm "$REF/c.toml" "$REF/ref1b" >/dev/null || die "reference export 1b failed"
same "$REF/ref1" "$REF/ref1b" || die "export is not deterministic (ref1 vs ref1b)"
"$BIN" ingest -q "$V2" --source bench --config "$REF/c.toml" >"$REF/i2.log" 2>&1 || die "reference ingest V2 failed: $(head -3 "$REF/i2.log")"
export_norm "$REF/c.toml" "$REF/ref2" >/dev/null || die "reference export 2 failed"
export_norm "$REF/c.toml" "$REF/ref2b" >/dev/null || die "reference export 2b failed"
same "$REF/ref2" "$REF/ref2b" || die "export is not deterministic (ref2 vs ref2b)"
same "$REF/ref1" "$REF/ref2" && die "ref1 == ref2: V2 changes nothing?"
"$BIN" history --source bench --config "$REF/c.toml" >"$REF/history.txt" 2>&1
[ "$(state_of "$REF/history.txt" 2)" = applied ] || die "reference batch 2 not applied"
rm -rf "$REF/ref1b" "$REF/ref2b" "$REF/state"
say "bundles: V1=$V1  V2=$V2 (ref1 and ref2 differ in $(ndiff "$REF/ref1" "$REF/ref2") lines; export deterministic)"

BUNDLE=$(du -sb "$V1" | awk '{print $1}')
SIZE=$((BUNDLE * 12)); [ "$SIZE" -lt $((64 << 20)) ] && SIZE=$((64 << 20))
mount_fresh() {  # mount_fresh DIR
  mkdir -p "$1"
  mountpoint -q "$1" && umount "$1"
  mount -t tmpfs -o size="$SIZE" tmpfs "$1" || die "mount tmpfs $1 failed"
  MOUNTED+=("$1")
}
unmount() { umount "$1" 2>/dev/null || umount -l "$1"; rmdir "$1" 2>/dev/null; }
avail() { df -B1 --output=avail "$1" | tail -1 | tr -d ' '; }

# ---- calibration ----------------------------------------------------------------------------
# peak_use MNT CMD...: runs CMD, prints "peak_bytes_used exit_status" (free space sampled in a loop)
peak_use() {
  python3 - "$@" <<'PY'
import os, subprocess, sys
mnt, cmd = sys.argv[1], sys.argv[2:]
def avail():
    s = os.statvfs(mnt); return s.f_bavail * s.f_frsize
a0 = lo = avail()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while p.poll() is None:
    lo = min(lo, avail())
lo = min(lo, avail())
print(a0 - lo, p.returncode)
PY
}
command -v python3 >/dev/null || die "python3 is needed for the calibration (or give F_LIST / F_LO and F_HI)"
if [ -z "${F_LIST:-}" ] && { [ -z "${F_LO:-}" ] || [ -z "${F_HI:-}" ]; }; then
  CAL=$ROOT/mnt-cal; peaks=(); R=
  for ((c = 1; c <= CAL_RUNS; c++)); do
    mount_fresh "$CAL"
    conf "$CAL/state" "$OUT/c-cal.toml"
    "$BIN" ingest -q "$V1" --source bench --config "$OUT/c-cal.toml" >/dev/null 2>&1 || die "calibration ingest V1 failed"
    read -r peak rc < <(peak_use "$CAL" "$BIN" ingest -q "$V2" --source bench --config "$OUT/c-cal.toml")
    [ "$rc" = 0 ] || die "calibration ingest V2 failed ($rc)"
    peaks+=("$peak")
    R=$(du -sB1 "$CAL/state/reports/bench/2" | awk '{print $1}')
    unmount "$CAL"
  done
  P=$(printf '%s\n' "${peaks[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  F_LO=${F_LO:-$R}
  F_HI=${F_HI:-$P}
  say "calibration (tmpfs $((SIZE >> 20)) MiB): batch 2's reports take R=$R bytes; ingest V2's peak use: ${peaks[*]} -> P=$P"
fi
if [ -n "${F_LIST:-}" ]; then
  read -r -a FS <<<"$F_LIST"
else
  FS=()
  for ((k = 0; k < RUNS; k++)); do
    if [ "$RUNS" -eq 1 ]; then FS+=("$F_LO"); else FS+=($((F_LO + (F_HI - F_LO) * k / (RUNS - 1)))); fi
  done
  say "sweep: $RUNS runs, F from $F_LO to $F_HI bytes free"
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }

# ---- 2. the runs ----------------------------------------------------------------------------
HDR=$(printf '%-3s %9s %-9s %-12s %-10s %-8s %-22s %s' run F ingest2 phase class batch2 recovery "first error line | detail")
echo "$HDR"; echo "$HDR" >"$OUT/results.txt"
declare -A COUNT=()
k=0
for F in "${FS[@]}"; do
  k=$((k + 1))
  R_=$OUT/run-$k; mkdir -p "$R_"
  M=$ROOT/mnt-$k
  mount_fresh "$M"
  C=$R_/c.toml; conf "$M/state" "$C"
  if ! "$BIN" ingest -q "$V1" --source bench --config "$C" >"$R_/i1.log" 2>&1; then
    line=$(printf '%-3s %9s SETUP-FAILED: ingest V1: %s' "$k" "$F" "$(head -1 "$R_/i1.log")")
    echo "$line"; echo "$line" >>"$OUT/results.txt"
    COUNT[SETUP-FAILED]=$((${COUNT[SETUP-FAILED]:-0} + 1)); unmount "$M"; continue
  fi
  A=$(avail "$M")
  [ $((A - F)) -gt 0 ] && fallocate -l $((A - F)) "$M/filler"
  FREE=$(avail "$M")

  # ingest V2 on the nearly full disk, in the background so that a hang can be handled
  "$BIN" ingest -q "$V2" --source bench --config "$C" >"$R_/i2.out" 2>"$R_/i2.err" &
  CHILD=$!
  hung=0; t=0; last=-1
  while kill -0 "$CHILD" 2>/dev/null; do
    sleep 0.1; t=$((t + 1))
    if [ $((t % (TIMEOUT * 10))) -eq 0 ]; then
      now=$(cpu_ticks "$CHILD")
      # no CPU used for the last TIMEOUT seconds, or 4x TIMEOUT in all: hung
      if [ "$now" = "$last" ] || [ "$t" -ge $((TIMEOUT * 40)) ]; then hung=1; break; fi
      last=$now
    elif [ "$t" -eq 5 ]; then last=$(cpu_ticks "$CHILD"); fi
  done
  if [ "$hung" = 1 ] && [ "$ON_HANG" = free ]; then
    rm -f "$M/filler"; t=0
    while kill -0 "$CHILD" 2>/dev/null && [ "$t" -lt $((TIMEOUT * 10)) ]; do sleep 0.1; t=$((t + 1)); done
  fi
  if [ "$hung" = 1 ]; then
    kill -0 "$CHILD" 2>/dev/null && kill -KILL "$CHILD" 2>/dev/null
  fi
  { wait "$CHILD"; rc=$?; } 2>/dev/null
  CHILD=
  if [ "$hung" = 1 ]; then
    if [ "$rc" = 137 ]; then st="HANG>kill"; else st="HANG>rc$rc"; fi
  else st="rc$rc"; fi
  rep=0; sl=0
  grep -q -e 'ZipWriter' -e 'reports/bench/2' "$R_/i2.err" && rep=1
  grep -q 'sled' "$R_/i2.err" && sl=1
  case "$rc$rep$sl" in
    0??) phase=- ;; *11) phase=reports+sled ;; *10) phase=reports ;; *01) phase=sled ;;
    *) phase=other ;;
  esac
  # the first error line: rosterdrop's own message if there is one, else the first line of
  # stderr; without log timestamps, the mount path, or "(os error 28)"
  err=$(sed -E 's/\}\)([0-9]{4}-)/})\n\1/' "$R_/i2.err" | grep -m1 -o 'rosterdrop: .*')
  [ -n "$err" ] || err=$(sed -E 's/\}\)([0-9]{4}-)/})\n\1/' "$R_/i2.err" | grep -m1 -v '^[[:space:]]*$')
  err=$(printf '%s' "$err" | sed -E "s/^[0-9T:.-]+Z +//; s#$M/##g; s/ \(os error 28\)//" | cut -c1-110)
  [ -n "$err" ] || err="(no stderr)"
  {
    echo "F=$F free_after_fill=$FREE ingest2_rc=$rc hung=$hung"
    du -sb "$M/state/reports/bench/2" "$M/state/db" 2>/dev/null
  } >"$R_/meta"
  [ "$KEEP" = 1 ] && tar -C "$M" -cf "$R_/state.tar" state 2>/dev/null
  rm -f "$M/filler"

  # read the store back
  detail=""; b2="?"
  if ! "$BIN" history --source bench --config "$C" >"$R_/history.txt" 2>&1 ||
     ! grep -qE '^ *1 ' "$R_/history.txt"; then
    class=UNOPENABLE; detail="history: $(grep -m1 -vE '^[[:space:]]*$|WARN' "$R_/history.txt" | cut -c1-120)"
  elif ! msg=$(export_norm "$C" "$R_/export"); then
    class=UNOPENABLE; b2=$(state_of "$R_/history.txt" 2)
    detail="export: $(printf '%s' "$msg" | grep -m1 -vE '^$|WARN' | cut -c1-120)"
  else
    b1=$(state_of "$R_/history.txt" 1)
    b2=$(state_of "$R_/history.txt" 2)
    "$BIN" show 2 --config "$C" >"$R_/show2.txt" 2>&1
    if same "$R_/export" "$REF/ref1"; then eq=ref1
    elif same "$R_/export" "$REF/ref2"; then eq=ref2
    else eq=neither; fi
    if [ "$b1" != applied ]; then class=TORN; detail="batch 1 is now '$b1'"
    elif [ "$eq" = ref1 ] && [ "$b2" != applied ]; then class=CLEAN-OLD
    elif [ "$eq" = ref2 ] && [ "$b2" = applied ]; then class=CLEAN-NEW
    elif [ "$eq" = neither ]; then
      class=TORN
      detail="export = neither: $(ndiff "$R_/export" "$REF/ref1") lines off ref1, $(ndiff "$R_/export" "$REF/ref2") off ref2 (ref1~ref2: $(ndiff "$REF/ref1" "$REF/ref2")); tables off ref1: $(files_off "$R_/export" "$REF/ref1")"
    else
      class=TORN; detail="export == $eq but batch 2 is '$b2'"
    fi
    [ "$rc" = 0 ] && [ "$class" = CLEAN-OLD ] && detail="ingest exited 0 but batch 2 is not applied"
    [ "$rc" != 0 ] && [ "$class" = CLEAN-NEW ] && detail="ingest failed but batch 2 is applied"
  fi

  # recovery: ingest V2 again on the freed disk
  if "$BIN" ingest -q "$V2" --source bench --config "$C" >"$R_/i3.log" 2>&1; then
    "$BIN" history --source bench --config "$C" >"$R_/history-rec.txt" 2>&1
    lastst=$(awk 'NR==2{print $7}' "$R_/history-rec.txt")
    if ! msg=$(export_norm "$C" "$R_/export-rec"); then
      rec="BAD(export fails)"
    elif same "$R_/export-rec" "$REF/ref2"; then
      case $lastst in applied | unchanged) rec=ok ;; *) rec="BAD(batch $lastst)" ;; esac
    else
      rec="BAD($lastst,$(ndiff "$R_/export-rec" "$REF/ref2")-off-ref2)"
    fi
  else
    rec="BAD(ingest rc=$?)"
  fi

  [ -n "$detail" ] && err="$err | $detail"
  line=$(printf '%-3s %9s %-9s %-12s %-10s %-8s %-22s %s' "$k" "$F" "$st" "$phase" "$class" "$b2" "$rec" "$err")
  echo "$line"; echo "$line" >>"$OUT/results.txt"
  # keep the exports only of runs worth a look
  [ "$class" = TORN ] || [ "$class" = UNOPENABLE ] || rm -rf "$R_/export"
  [ "$rec" = ok ] && rm -rf "$R_/export-rec"
  COUNT[$class]=$((${COUNT[$class]:-0} + 1))
  [ "$rec" = ok ] || COUNT[RECOVERY-BAD]=$((${COUNT[RECOVERY-BAD]:-0} + 1))
  [ "$hung" = 1 ] && COUNT[HUNG]=$((${COUNT[HUNG]:-0} + 1))
  unmount "$M"
done

# ---- 3. summary -----------------------------------------------------------------------------
{
  echo "summary: $k runs; BIN=$BIN; students=$STUDENTS; ON_HANG=$ON_HANG; details in $OUT"
  for c in CLEAN-OLD CLEAN-NEW TORN UNOPENABLE SETUP-FAILED; do printf '  %-13s %3d\n' "$c" "${COUNT[$c]:-0}"; done
  printf '  %-13s %3d   (ingest of V2 hung on the full disk and was SIGKILLed)\n' HUNG "${COUNT[HUNG]:-0}"
  printf '  %-13s %3d   (ingest V2 again on the freed disk did not give ref2)\n' RECOVERY-BAD "${COUNT[RECOVERY-BAD]:-0}"
} | tee -a "$OUT/results.txt"
[ "${COUNT[TORN]:-0}" -eq 0 ] && [ "${COUNT[UNOPENABLE]:-0}" -eq 0 ]
