# Sourced by the bench scripts: makes (once) the synthetic district of $STUDENTS students in
# $V1 and a copy with 1% of rows changed in $V2, under $DATA, with $BIN.
V1="$DATA/apple-$STUDENTS"
V2="$DATA/apple-$STUDENTS-1pct"
[ -f "$V1/.done" ] || { rm -rf "$V1"; "$BIN" synth --format apple --students "$STUDENTS" --error-every 200 "$V1"; touch "$V1/.done"; }
if [ ! -f "$V2/.done" ]; then
  rm -rf "$V2"; mkdir -p "$V2"
  # Every 100th data row of every file changes one non-key field (references stay valid).
  for f in "$V1"/*.csv; do
    awk -F, -v OFS=, -v name="$(basename "$f")" 'NR>1 && NR%100==0 {
        if (name=="students.csv") $6 = ($6==12 ? 1 : $6+1)
        else if (name=="staff.csv") $7 = $7 "x"
        else if (name=="courses.csv") $3 = $3 " (revised)"
        else if (name=="classes.csv") $2 = $2 "b"
        else if (name=="locations.csv") $2 = $2 " Campus"
        else if (name=="rosters.csv") $3 = ($3=="S0000000" ? "S0000001" : "S0000000")
      } {print}' "$f" > "$V2/$(basename "$f")"
  done
  touch "$V2/.done"
fi
