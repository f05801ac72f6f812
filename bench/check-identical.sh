#!/usr/bin/env bash
# Compares the outputs of two `rosterdrop check` binaries, file by file: patch-summary.csv,
# summary.txt, every file of modified/, the exit status, and the contents of modified.zip
# (entry names, order and bytes, read back with python's zipfile); the zip files' own bytes are
# compared too and reported, but a difference there alone is not a failure (ZIP_BYTES=1 makes
# it one).
#
# Bundles: every sample in sample-csv/ (with and without sample.toml's `maple-valley` source,
# whose filters drop rows), each sample zipped, and synthetic districts made by the OLD binary
# (`synth --format apple|oneroster --students N --error-every E`), plus any directories given in
# EXTRA (space-separated, such as /work/benchdata/apple-200000).
#
#   bench/check-identical.sh OLD_BINARY NEW_BINARY
#   STUDENTS="2000 20000" ERRORS="200 7" EXTRA="/work/benchdata/apple-200000" bench/check-identical.sh A B
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/check-identical.sh OLD_BINARY NEW_BINARY}
NEW=${2:?usage: bench/check-identical.sh OLD_BINARY NEW_BINARY}
STUDENTS=${STUDENTS:-"1000 20000"}
ERRORS=${ERRORS:-"200 0 3"}
EXTRA=${EXTRA:-}
ZIP_BYTES=${ZIP_BYTES:-0}
WORK=$(mktemp -d /tmp/check-identical.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

bundles=()
for d in sample-csv/*/; do bundles+=("${d%/}"); done
mkdir -p "$WORK/zips"
for d in sample-csv/*/; do
  n=$(basename "$d")
  (cd "$d" && zip -qr "$WORK/zips/$n.zip" .)
  bundles+=("$WORK/zips/$n.zip")
done
for fmt in apple oneroster; do
  for n in $STUDENTS; do
    for e in $ERRORS; do
      d="$WORK/synth-$fmt-$n-$e"
      "$OLD" synth --format "$fmt" --students "$n" --error-every "$e" "$d" >/dev/null
      bundles+=("$d")
    done
  done
done
for d in $EXTRA; do bundles+=("$d"); done

# zip_contents ZIP -> one line per entry: name, size and sha256 of its inflated bytes
zip_contents() {
  python3 - "$1" <<'PY'
import hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        data = z.read(i)
        print(i.filename, len(data), hashlib.sha256(data).hexdigest())
PY
}

fail=0; runs=0; zipdiff=0
run() { # run BIN OUT BUNDLE [ARGS] -> exit status in OUT.rc
  local bin=$1 out=$2 b=$3; shift 3
  rm -rf "$out"
  local rc=0
  "$bin" check -q "$b" --out "$out" "$@" >"$out.stdout" 2>"$out.stderr" || rc=$?
  echo "$rc" >"$out.rc"
}
for b in "${bundles[@]}"; do
  for cfg in none maple; do
    args=()
    if [ "$cfg" = maple ]; then
      case "$b" in sample-csv/*|*/zips/*) ;; *) continue ;; esac
      args=(--config sample-csv/sample.toml --source maple-valley)
    fi
    runs=$((runs + 1))
    run "$OLD" "$WORK/old" "$b" "${args[@]}"
    run "$NEW" "$WORK/new" "$b" "${args[@]}"
    what="$b ($cfg)"
    bad=()
    cmp -s "$WORK/old.rc" "$WORK/new.rc" || bad+=("exit status $(cat "$WORK/old.rc") vs $(cat "$WORK/new.rc")")
    for f in patch-summary.csv summary.txt; do
      if [ -e "$WORK/old/$f" ] || [ -e "$WORK/new/$f" ]; then
        cmp -s "$WORK/old/$f" "$WORK/new/$f" || bad+=("$f")
      fi
    done
    if [ -d "$WORK/old/modified" ] || [ -d "$WORK/new/modified" ]; then
      diff -r "$WORK/old/modified" "$WORK/new/modified" >/dev/null 2>&1 || bad+=("modified/")
    fi
    if [ -e "$WORK/old/modified.zip" ] || [ -e "$WORK/new/modified.zip" ]; then
      if [ -e "$WORK/old/modified.zip" ] && [ -e "$WORK/new/modified.zip" ]; then
        [ "$(zip_contents "$WORK/old/modified.zip")" = "$(zip_contents "$WORK/new/modified.zip")" ] ||
          bad+=("modified.zip contents")
        if ! cmp -s "$WORK/old/modified.zip" "$WORK/new/modified.zip"; then
          zipdiff=$((zipdiff + 1))
          [ "$ZIP_BYTES" = 1 ] && bad+=("modified.zip bytes")
        fi
      else
        bad+=("modified.zip present in one only")
      fi
    fi
    if [ ${#bad[@]} -gt 0 ]; then
      fail=$((fail + 1))
      echo "DIFFERENT: $what: ${bad[*]}"
    else
      echo "same:      $what (exit $(cat "$WORK/old.rc"))"
    fi
  done
done
echo "check-identical: $runs runs, $fail different, modified.zip bytes differed in $zipdiff"
[ "$fail" = 0 ]
