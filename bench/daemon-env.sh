# shellcheck shell=bash
# Sourced by the daemon benchmarks (daemon.sh, rss.sh): sources bench/lib.sh and
# bench/data.sh, builds the release binary into $BIN, makes a scratch folder $WORK (removed on exit, with any daemon still running), an SSH key,
# a free port and a configuration $WORK/c.toml with one source `bench`, and defines
# zipdir SRC OUT, start_daemon (fresh state, the `bench` account with the key; sets $DAEMON)
# and stop_daemon.
source bench/lib.sh
source bench/data.sh
build
WORK=$(mktemp -d)
DAEMON=
trap '[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null; rm -rf "$WORK"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$WORK/key"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/c.toml" <<TOML
state_dir = "$WORK/state"
[api]
enabled = false
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
start_daemon() {
  rm -rf "$WORK/state"
  "$BIN" --config "$WORK/c.toml" account add bench --source bench >/dev/null
  "$BIN" --config "$WORK/c.toml" account key add bench "$WORK/key.pub" >/dev/null
  "$BIN" --config "$WORK/c.toml" serve 2>"$WORK/daemon.log" >/dev/null &
  DAEMON=$!
  until grep -q "daemon ready" "$WORK/daemon.log" 2>/dev/null; do sleep 0.05; done
}
stop_daemon() { kill -TERM "$DAEMON"; wait "$DAEMON" || true; DAEMON=; }
# Uploads $1 as $2 over OpenSSH sftp with the bench key.
upload() {
  sftp -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -i "$WORK/key" -P "$PORT" -b - bench@127.0.0.1 <<<"put $1 $2" >/dev/null
}
