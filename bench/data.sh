# shellcheck shell=bash
# Sourced by the bench scripts (after bench/lib.sh): synthetic districts under $DATA, each made
# once (a `.done` marker says it is whole) with $BIN.
#
#   district FORMAT N        -> prints the folder of an N-student district (apple|oneroster)
#   change_rows SRC DST SEED    writes DST: SRC's Apple CSVs with 1% of each file's data rows
#                               changed in one non-key field (references stay valid). SEED 0
#                               changes every 100th row; any other SEED picks rows at random
#                               with that seed, so each seed changes different rows.
#   v1_v2 N                  sets V1 (the N-student Apple district) and V2 (V1 with SEED 0)
#   night N K                -> prints night K (1, 2, ...) of N students: night K-1 (night 0
#                               is V1) with 1% changed by SEED K, like a nightly SIS export
DATA=${DATA:-bench/data}
ERROR_EVERY=${ERROR_EVERY:-200}
district() {
  local d="$DATA/$1-$2"
  if [ ! -f "$d/.done" ]; then
    rm -rf "$d"; mkdir -p "$DATA"
    "$BIN" synth --format "$1" --students "$2" --error-every "$ERROR_EVERY" "$d" >&2
    touch "$d/.done"
  fi
  echo "$d"
}
change_rows() {
  local src=$1 dst=$2 seed=$3 f
  rm -rf "$dst"; mkdir -p "$dst"
  for f in "$src"/*.csv; do
    awk -F, -v OFS=, -v name="$(basename "$f")" -v seed="$seed" '
      BEGIN { if (seed != 0) srand(seed) }
      NR>1 && (seed == 0 ? NR%100==0 : rand() < 0.01) {
        if (name=="students.csv") $6 = ($6==12 ? 1 : $6+1)
        else if (name=="staff.csv") $7 = $7 "x"
        else if (name=="courses.csv") $3 = $3 " (revised)"
        else if (name=="classes.csv") $2 = $2 "b"
        else if (name=="locations.csv") $2 = $2 " Campus"
        else if (name=="rosters.csv") $3 = ($3=="S0000000" ? "S0000001" : "S0000000")
      } {print}' "$f" > "$dst/$(basename "$f")"
  done
  touch "$dst/.done"
}
v1_v2() {
  V1=$(district apple "$1")
  V2="$DATA/apple-$1-1pct"
  [ -f "$V2/.done" ] || change_rows "$V1" "$V2" 0
}
night() {
  local n=$1 k=$2 prev d="$DATA/apple-$1-night-$2"
  if [ ! -f "$d/.done" ]; then
    if [ "$k" = 1 ]; then prev=$(district apple "$n"); else prev=$(night "$n" $((k - 1))); fi
    change_rows "$prev" "$d" "$k"
  fi
  echo "$d"
}
