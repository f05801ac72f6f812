#!/usr/bin/env bash
# The daemon's memory over a night of batches: its resident size (VmRSS) when idle after
# start, after each of several batches of a district of $STUDENTS students (first upload,
# 1% delta, the first again, ...), and its peak (VmHWM). Issue 12 asks that memory be bounded
# by the bundle being processed and that the resident size return near the idle size after a
# batch; the idle size measured in the same run is the baseline.
#
#   bench/rss.sh                          # 200,000 students, 6 batches
#   STUDENTS=20000 BATCHES=4 bench/rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STUDENTS=${STUDENTS:-200000}
BATCHES=${BATCHES:-6}
DATA=${DATA:-bench/data}
cargo build --release --quiet --bin rosterdrop
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/rosterdrop}
WORK=$(mktemp -d)
DAEMON=
trap '[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null; rm -rf "$WORK"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$WORK/key"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/c.toml" <<TOML
state_dir = "$WORK/state"
[sftp]
listen = "127.0.0.1:$PORT"
[sources.bench]
admins = ["admin@bench.example"]
guard.max_delete_percent = 100.0
TOML
zipdir() { python3 - "$1" "$2" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for n in sorted(os.listdir(src)):
        if n.endswith(".csv"):
            z.write(os.path.join(src, n), n)
PY
}
source bench/data.sh
zipdir "$V1" "$WORK/v1.zip"; zipdir "$V2" "$WORK/v2.zip"
"$BIN" --config "$WORK/c.toml" account add bench --source bench >/dev/null
"$BIN" --config "$WORK/c.toml" account key add bench "$WORK/key.pub" >/dev/null
"$BIN" --config "$WORK/c.toml" serve 2>"$WORK/daemon.log" >/dev/null &
DAEMON=$!
until grep -q "daemon ready" "$WORK/daemon.log" 2>/dev/null; do sleep 0.05; done
mib() { awk -v k="$1:" '$1==k {printf "%.1f", $2/1024}' "/proc/$DAEMON/status"; }
sleep 1
idle=$(mib VmRSS)
printf '%-28s %10s\n' "moment" "RSS_MiB"
printf '%-28s %10s\n' "idle after start" "$idle"
worst=0
for n in $(seq "$BATCHES"); do
  if [ $((n % 2)) = 1 ]; then z=v1.zip; else z=v2.zip; fi
  sftp -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -i "$WORK/key" -P "$PORT" -b - bench@127.0.0.1 <<<"put $WORK/$z n$n-$z" >/dev/null
  until [ "$(find "$WORK/state/outbox" -name '*.eml' | wc -l)" -ge "$n" ]; do sleep 0.05; done
  sleep 1
  r=$(mib VmRSS)
  printf '%-28s %10s\n' "after batch $n ($z)" "$r"
  worst=$(echo "if ($r > $worst) $r else $worst" | bc)
done
printf '%-28s %10s\n' "peak during the run (VmHWM)" "$(mib VmHWM)"
printf 'largest after-batch RSS / idle: %.2f\n' "$(echo "$worst / $idle" | bc -l)"
kill -TERM "$DAEMON"; wait "$DAEMON" || true; DAEMON=
