#!/usr/bin/env bash
# Benchmark of the daemon, end to end: the time from OpenSSH `sftp` finishing an upload of a
# zipped bundle to the admins' email being written (file transport, state/outbox/*.eml).
# Each run starts a fresh daemon on an empty state directory, uploads the district (first
# batch: every record added), then the copy with 1% of rows changed (a nightly delta).
# Baseline: `rosterdrop ingest` of the same bundles in the same run (the pipeline alone, no
# SFTP, intake, spool, archive or mail), so the ratio is the daemon's own overhead.
#
#   bench/daemon.sh                       # 20,000 and 200,000 students, 3 runs each
#   SIZES=20000 RUNS=5 bench/daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SIZES=${SIZES:-"20000 200000"}
DATA=${DATA:-bench/data}
source bench/daemon-env.sh
# Uploads $1 as $2; prints seconds from the end of the upload to the n-th ($3) email.
upload_to_mail() {
  upload "$1" "$2"
  local s; s=$(date +%s.%N)
  until [ "$(find "$WORK/state/outbox" -name '*.eml' 2>/dev/null | wc -l)" -ge "$3" ]; do sleep 0.01; done
  echo "$(date +%s.%N) - $s" | bc
}

printf '%-9s %-24s %9s %9s %8s\n' students batch daemon_s ingest_s ratio
for STUDENTS in $SIZES; do
  v1_v2 "$STUDENTS"
  zipdir "$V1" "$WORK/v1.zip"; zipdir "$V2" "$WORK/v2.zip"
  first=(); delta=(); i1=(); i2=()
  for _ in $(seq "$RUNS"); do
    start_daemon
    first+=("$(upload_to_mail "$WORK/v1.zip" v1.zip 1)")
    delta+=("$(upload_to_mail "$WORK/v2.zip" v2.zip 2)")
    stop_daemon
    # Baseline: the pipeline alone on the same zips.
    rm -rf "$WORK/state"
    i1+=("$(t "$BIN" ingest -q "$WORK/v1.zip" --source bench --config "$WORK/c.toml")")
    i2+=("$(t "$BIN" ingest -q "$WORK/v2.zip" --source bench --config "$WORK/c.toml")")
  done
  f=$(printf '%s\n' "${first[@]}" | median); d=$(printf '%s\n' "${delta[@]}" | median)
  a=$(printf '%s\n' "${i1[@]}" | median); b=$(printf '%s\n' "${i2[@]}" | median)
  printf '%-9s %-24s %9.2f %9.2f %8.2f\n' "$STUDENTS" "first upload" "$f" "$a" "$(echo "$f/$a" | bc -l)"
  printf '%-9s %-24s %9.2f %9.2f %8.2f\n' "$STUDENTS" "nightly, 1% changed" "$d" "$b" "$(echo "$d/$b" | bc -l)"
done
