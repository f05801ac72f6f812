# shellcheck shell=bash
# Sourced by every bench script (after `cd` to the repository root): the release binary's
# paths and the helpers they share, so that none is written twice.
#
#   TARGET_DIR      ${CARGO_TARGET_DIR:-target}, made absolute
#   BIN             $TARGET_DIR/release/rosterdrop
#   BASE            $TARGET_DIR/release/examples/parse_only (the csv ByteRecord loop)
#   build [ARGS]    cargo build --release --quiet --bin rosterdrop ARGS (skipped with NO_BUILD=1)
#   median          numbers on stdin, one a line -> their median
#   stats           numbers on stdin, one a line -> "median min max"
#   t CMD...        wall seconds of CMD (output discarded, failure ignored)
#   tm CMD...       "wall_seconds max_rss_kib exit_status cpu_seconds" of CMD (output
#                   discarded; cpu = user + system time of all its threads)
#   ratio A B       A/B with 2 decimals
#   kib PATH...     KiB the paths take on disk (du -sk, .done markers left out)
# shellcheck disable=SC2034 # used by the scripts that source this file
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")
BIN=$TARGET_DIR/release/rosterdrop
BASE=$TARGET_DIR/release/examples/parse_only
# shellcheck disable=SC2120 # the arguments are optional
build() {
  [ "${NO_BUILD:-0}" = 1 ] || cargo build --release --quiet --bin rosterdrop "$@"
}
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
stats() {
  sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m, a[1], a[NR]}'
}
t() {
  local s e
  s=$EPOCHREALTIME; "$@" >/dev/null 2>&1 || true; e=$EPOCHREALTIME
  awk -v s="$s" -v e="$e" 'BEGIN{printf "%.4f\n", e-s}'
}
tm() {
  command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
  local s e rc=0 out rss user sys
  s=$EPOCHREALTIME
  # GNU time writes "Command exited with non-zero status N" before the format on failure: the
  # last line is the format either way.
  out=$({ /usr/bin/time -f '%M %U %S' -o /dev/fd/3 "$@" >/dev/null 2>&1; } 3>&1) || rc=$?
  e=$EPOCHREALTIME
  read -r rss user sys <<<"${out##*$'\n'}"
  awk -v s="$s" -v e="$e" -v m="$rss" -v rc="$rc" -v u="$user" -v y="$sys" \
    'BEGIN{printf "%.4f %d %d %.2f\n", e-s, m, rc, u+y}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f\n", (b > 0) ? a/b : 0}'; }
kib() { du -sk --exclude=.done "$@" | awk '{s+=$1} END{print s}'; }
# Writes $1/c.toml: a state directory $1/state and the source `bench`, its deletion guard off
# (the benchmarks replace whole rosters on purpose).
bench_config() {
  cat >"$1/c.toml" <<TOML
state_dir = "$1/state"
[sources.bench]
guard.max_delete_percent = 100.0
TOML
}
