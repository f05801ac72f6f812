#!/usr/bin/env bash
# Benchmark of the OneRoster REST provider on a synthetic district (issue 16, item 7):
#   1. a full pull of users and enrollments with limit=10000 (records per second), against the
#      baseline of `rosterdrop export` of the same roster to CSV in the same run (the store's
#      own way out, no HTTP, no JSON);
#   2. single-object GETs (`/users/{id}`, random ids) at 50 concurrent connections with wrk:
#      p50 and p99, against the baseline of the unauthenticated discovery document (the HTTP
#      stack's floor: no token, no lookup, no rendering) at the same concurrency;
#   3. the daemon's resident memory at rest (served roster built) and its peak during the pull.
#
#   bench/api.sh                          # 200,000 students, 3 runs
#   STUDENTS=20000 RUNS=1 bench/api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
STUDENTS=${STUDENTS:-200000}
RUNS=${RUNS:-3}
CONC=${CONC:-50}
DURATION=${DURATION:-10}
build
command -v wrk >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -qq wrk >/dev/null
}
WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
cat > "$WORK/c.toml" <<TOML
state_dir = "$WORK/state"
[api]
listen = "127.0.0.1:$PORT"
rate_limit_per_sec = 1000000
rate_burst = 1000000
[sftp]
listen = "127.0.0.1:$(free_port)"
[sources.bench]
format = "oneroster"
guard.max_delete_percent = 100.0
TOML
"$BIN" synth --format oneroster --students "$STUDENTS" "$WORK/district" >/dev/null
"$BIN" --config "$WORK/c.toml" ingest -q "$WORK/district" --source bench
CRED=$("$BIN" --config "$WORK/c.toml" api-client add bench --source bench)
ID=$(echo "$CRED" | awk -F': *' '$1 == "client id" {print $2; exit}')
SECRET=$(echo "$CRED" | awk -F': *' '$1 == "secret" {print $2; exit}')
URL="http://127.0.0.1:$PORT"
V12="$URL/ims/oneroster/rostering/v1p2"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
"$BIN" --config "$WORK/c.toml" serve >"$WORK/serve.log" 2>&1 &
PID=$!
TOKEN=
until TOKEN=$(curl -sf -u "$ID:$SECRET" -d grant_type=client_credentials "$URL/oauth/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null); do sleep 0.2; done
# The served roster is built once the daemon starts: wait until the API shows every user.
until [ "$(curl -s -o /dev/null -D - -H "Authorization: Bearer $TOKEN" "$V12/users?limit=1" \
  | awk 'tolower($1)=="x-total-count:" {print $2+0}')" -gt 0 ] 2>/dev/null; do sleep 0.5; done
sleep 1
IDLE=$(rss_kib)

total_of() { # collection -> X-Total-Count
  curl -s -o /dev/null -D - -H "Authorization: Bearer $TOKEN" "$V12/$1?limit=1" \
    | awk 'tolower($1)=="x-total-count:" {print $2+0}'
}
pull() { # collection -> records pulled: every page of 10000, in order, on one kept-alive
  # connection as a consumer pages (bodies read whole, not parsed: the provider is measured)
  local coll=$1 n urls=() off
  n=$(total_of "$coll")
  for ((off = 0; off < n; off += 10000)); do
    urls+=(-o /dev/null "$V12/$coll?limit=10000&offset=$off")
  done
  curl -s -f -H "Authorization: Bearer $TOKEN" "${urls[@]}"
  echo "$n"
}
pull_s=(); export_s=(); peak=$IDLE; records=0
( while kill -0 "$PID" 2>/dev/null; do rss_kib; sleep 0.05; done ) >"$WORK/rss" &
SAMPLER=$!
for _ in $(seq "$RUNS"); do
  s=$(date +%s.%N)
  records=$(( $(pull users) + $(pull enrollments) ))
  pull_s+=("$(echo "$(date +%s.%N) - $s" | bc)")
done
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true
peak=$(sort -n "$WORK/rss" | tail -1)
# Baseline, after the pulls (an export's own memory must not count as the pull's): the same
# roster written out by the store; the daemon holds the store, so the export goes through its
# admin socket, as an admin's would.
for _ in $(seq "$RUNS"); do
  rm -rf "$WORK/export"
  export_s+=("$(t "$BIN" --config "$WORK/c.toml" export --source bench --out "$WORK/export")")
done
read -r pm pmin pmax <<<"$(printf '%s\n' "${pull_s[@]}" | stats)"
read -r em emin emax <<<"$(printf '%s\n' "${export_s[@]}" | stats)"

# Single-object GETs at $CONC connections, random users.
cut -d, -f1 "$WORK/district/users.csv" | tail -n +2 | shuf -n 20000 --random-source=<(yes) >"$WORK/user-ids"
cat >"$WORK/one.lua" <<LUA
local ids = {}
for l in io.lines("$WORK/user-ids") do ids[#ids + 1] = l end
request = function()
  return wrk.format("GET", "/ims/oneroster/rostering/v1p2/users/" .. ids[math.random(#ids)])
end
LUA
lat() { # wrk output -> "p50_ms p99_ms requests_per_s"
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)} $1=="Requests/sec:" {rps=$2}
    END {printf "%.2f %.2f %.0f\n", p50, p99, rps}'
}
read -r op50 op99 orps <<<"$(wrk -t2 -c"$CONC" -d"${DURATION}s" --latency -s "$WORK/one.lua" \
  -H "Authorization: Bearer $TOKEN" "$URL" | lat)"
read -r bp50 bp99 brps <<<"$(wrk -t2 -c"$CONC" -d"${DURATION}s" --latency \
  "$V12/discovery/onerosterv1p2rostersservice_openapi3_v1p0.json" | lat)"

printf '\nOneRoster REST API, %s students, %s runs (median, min, max), this machine\n' "$STUDENTS" "$RUNS"
printf '%-44s %10s %10s %10s %10s\n' measure median min max baseline
printf '%-44s %10s %10s %10s %10s\n' "full pull users+enrollments, s" "$pm" "$pmin" "$pmax" "$em (export)"
printf '%-44s %10s\n' "records pulled" "$records"
printf '%-44s %10s\n' "records per second (median)" "$(awk -v n="$records" -v s="$pm" 'BEGIN{printf "%.0f", n/s}')"
printf '%-44s %10s\n' "pull / export" "$(ratio "$pm" "$em")"
printf '%-44s %10s %10s %10s\n' "single GET /users/{id} at $CONC: p50 ms, p99 ms, req/s" "$op50" "$op99" "$orps"
printf '%-44s %10s %10s %10s\n' "baseline discovery GET: p50 ms, p99 ms, req/s" "$bp50" "$bp99" "$brps"
printf '%-44s %10s\n' "daemon RSS at rest, MiB" "$((IDLE / 1024))"
printf '%-44s %10s\n' "daemon RSS peak during the pull, MiB" "$((peak / 1024))"
printf '%-44s %10s\n' "peak / rest" "$(ratio "$peak" "$IDLE")"
