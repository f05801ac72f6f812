#!/usr/bin/env bash
# The in-process benchmarks of benches/rosterdrop.rs (criterion): each step against a baseline
# measured in the same run, printed as one table of medians and ratios at the end.
#
#   bench/micro.sh                                  # 20,000 students
#   ROSTERDROP_BENCH_STUDENTS=200000 bench/micro.sh
#   bench/micro.sh ingest                           # one group (criterion's filter)
#
# Rows: parse (check and its reports / the csv ByteRecord loop), ingest (first ingest and the
# 1% ingest / check), export (own-format export of the stored district / the CSVs read and
# written by the csv crate), rest (the REST provider's served roster rebuilt from the store / that export). Criterion's
# full results are under ${CARGO_TARGET_DIR:-target}/criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --bench rosterdrop -- "$@"
