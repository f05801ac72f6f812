#!/usr/bin/env bash
# SFTP throughput of rosterdrop against OpenSSH's own sftp-server, on loopback.
#
#   bench/sftp-throughput.sh            # 1 GiB upload per cipher, 50 concurrent sessions, idle RSS
#   SIZE_MIB=256 bench/sftp-throughput.sh
#
# Uploads one file with OpenSSH's `sftp` to rosterdrop (release build) and to an sshd this script
# starts on a loopback port with its own config and keys (Subsystem = /usr/lib/openssh/sftp-server),
# with aes128-gcm and chacha20-poly1305, and prints MB/s and the ratio rosterdrop/OpenSSH.
# OpenSSH's sftp-server does not fsync; the like-for-like rosterdrop run uses fsync_uploads = false,
# and one more run shows the cost of the default fsync_uploads = true.
# Then: 50 concurrent uploading sessions must all complete, and memory per idle session
# (RSS delta / sessions) is measured. Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
SESSIONS=${SESSIONS:-50}
source bench/lib.sh
BIN=${ROSTERDROP_BIN:-$BIN}
CIPHERS=(aes128-gcm@openssh.com chacha20-poly1305@openssh.com)

if [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/lib/openssh/sftp-server ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssh-server
fi
if [ -z "${ROSTERDROP_BIN:-}" ]; then
  cargo build --release --quiet
fi

# Both servers write to the same file system. /dev/shm (when it has room) keeps disk writeback,
# which is shared with whatever else the machine does, out of a protocol-and-crypto comparison.
BASE=${BENCH_DIR:-}
if [ -z "$BASE" ]; then
  BASE=/tmp
  if [ -d /dev/shm ] && [ "$(df -k --output=avail /dev/shm | tail -1)" -gt $((SIZE_MIB * 1024 * 4)) ]; then BASE=/dev/shm; fi
fi
REPEAT=${REPEAT:-3}
WORK=$(mktemp -d "$BASE/rosterdrop-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$WORK/sshd.pid" ]; then kill "$(cat "$WORK/sshd.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK" "${DISK:-}"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
mbps() { python3 -c "import sys; b,t0,t1=map(float,sys.argv[1:]); print(f'{b/1e6/(t1-t0):.1f}')" "$@"; }

ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"
echo "creating a ${SIZE_MIB} MiB test file"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/payload.bin"
SIZE=$(stat -c %s "$WORK/payload.bin")
head -c $((4 * 1024 * 1024)) /dev/urandom > "$WORK/small.bin"

# --- rosterdrop (two instances: fsync off / on) ---
start_rosterdrop() { # name fsync [state-dir] -> sets RD_PORT, RD_PID, RD_STATE
  local name=$1 fsync=$2
  RD_PORT=$(free_port)
  RD_STATE="${3:-$WORK/$name}"
  mkdir -p "$RD_STATE"
  cat > "$WORK/$name.toml" <<EOF
state_dir = "$RD_STATE"
[api]
enabled = false
[sftp]
listen = "127.0.0.1:$RD_PORT"
fsync_uploads = $fsync
max_file_size = $((SIZE * 2))
quota_bytes = $((SIZE * 4))
quota_files = 10000
max_sessions_per_account = $((SESSIONS * 2))
max_connections_per_host = $((SESSIONS * 2))
[sftp.defender]
enabled = false
[sources.bench]
EOF
  "$BIN" --config "$WORK/$name.toml" account add bench --source bench > /dev/null
  "$BIN" --config "$WORK/$name.toml" account key add bench "$WORK/client_key.pub" > /dev/null
  RUST_LOG=info NO_COLOR=1 "$BIN" --config "$WORK/$name.toml" serve 2> "$WORK/$name.log" &
  RD_PID=$!
  PIDS+=("$RD_PID")
  for _ in $(seq 1 200); do grep -q listening "$WORK/$name.log" 2>/dev/null && break; sleep 0.05; done
}
start_rosterdrop rd false
RD_FAST_PORT=$RD_PORT RD_FAST_PID=$RD_PID RD_FAST_STATE=$RD_STATE
# fsync only means something on a disk: this instance's state is under /var/tmp.
DISK=$(mktemp -d /var/tmp/rosterdrop-bench-disk.XXXXXX)
start_rosterdrop rdsync true "$DISK"
RD_SYNC_PORT=$RD_PORT

# --- OpenSSH sshd with its own sftp-server ---
OS_PORT=$(free_port)
mkdir -p /run/sshd "$WORK/openssh-dest"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd_host_key"
cp "$WORK/client_key.pub" "$WORK/authorized_keys"
cat > "$WORK/sshd_config" <<EOF
Port $OS_PORT
ListenAddress 127.0.0.1
HostKey $WORK/sshd_host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
/usr/sbin/sshd -f "$WORK/sshd_config" -E "$WORK/sshd.log"
for _ in $(seq 1 100); do [ -f "$WORK/sshd.pid" ] && break; sleep 0.05; done

SFTP_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$WORK/client_key")

upload() { # port user cipher remote-path -> prints MB/s
  local port=$1 user=$2 cipher=$3 dest=$4 t0 t1
  t0=$(now)
  echo "put $WORK/payload.bin $dest" | timeout 600 sftp "${SFTP_OPTS[@]}" -o "Ciphers=$cipher" -P "$port" -b - "$user@127.0.0.1" > /dev/null
  t1=$(now)
  mbps "$SIZE" "$t0" "$t1"
}

ME=$(id -un)
echo
echo "== upload of $SIZE_MIB MiB with OpenSSH sftp $(ssh -V 2>&1 | cut -d, -f1) on loopback, into $BASE, median of $REPEAT =="
printf '%-34s %-32s %10s   %s\n' cipher server MB/s runs
declare -A RATIO
for c in "${CIPHERS[@]}"; do
  os_runs=(); rd_runs=()
  for _ in $(seq 1 "$REPEAT"); do
    rm -f "$WORK/openssh-dest/payload.bin"
    os_runs+=("$(upload "$OS_PORT" "$ME" "$c" "$WORK/openssh-dest/payload.bin")")
    [ "$(stat -c %s "$WORK/openssh-dest/payload.bin")" = "$SIZE" ] || { echo "openssh upload incomplete"; exit 1; }
    rm -f "$WORK/openssh-dest/payload.bin"
    rd_runs+=("$(upload "$RD_FAST_PORT" bench "$c" payload.bin)")
    [ "$(stat -c %s "$RD_FAST_STATE/drop/bench/payload.bin")" = "$SIZE" ] || { echo "rosterdrop upload incomplete"; exit 1; }
    rm -f "$RD_FAST_STATE/drop/bench/payload.bin"
  done
  os=$(printf '%s\n' "${os_runs[@]}" | median); rd=$(printf '%s\n' "${rd_runs[@]}" | median)
  printf '%-34s %-32s %10s   %s\n' "$c" openssh "$os" "${os_runs[*]}"
  printf '%-34s %-32s %10s   %s\n' "$c" "rosterdrop" "$rd" "${rd_runs[*]}"
  RATIO[$c]=$(python3 -c "print(f'{$rd/$os:.2f}')")
done
rds=$(upload "$RD_SYNC_PORT" bench aes128-gcm@openssh.com payload.bin)
printf '%-34s %-32s %10s   (1 run, state on disk)\n' "aes128-gcm@openssh.com" "rosterdrop fsync_uploads=true" "$rds"
rm -f "$DISK/drop/bench/payload.bin"
for c in "${CIPHERS[@]}"; do
  echo "ratio rosterdrop/openssh $c: ${RATIO[$c]}"
done

echo
echo "== $SESSIONS concurrent uploading sessions (4 MiB each) =="
cpids=()
t0=$(now)
for i in $(seq 1 "$SESSIONS"); do
  echo "put $WORK/small.bin c$i.bin" | timeout 300 sftp "${SFTP_OPTS[@]}" -P "$RD_FAST_PORT" -b - bench@127.0.0.1 > /dev/null 2>&1 &
  cpids+=($!)
done
ok=0
for p in "${cpids[@]}"; do if wait "$p"; then ok=$((ok + 1)); fi; done
t1=$(now)
files=$(find "$RD_FAST_STATE/drop/bench" -maxdepth 1 -name 'c*.bin' -size 4096k | wc -l)
echo "clients succeeded: $ok/$SESSIONS, complete files: $files/$SESSIONS, wall time $(python3 -c "print(f'{$t1-$t0:.1f}')") s"

echo
echo "== memory per idle session ($SESSIONS sessions) =="
rss() { awk '/VmRSS/ {print $2}' "/proc/$RD_FAST_PID/status"; }
before=$(rss)
logins0=$(grep -c "SFTP login" "$WORK/rd.log" || true)
ipids=()
for i in $(seq 1 "$SESSIONS"); do
  (sleep 25 | timeout 60 sftp "${SFTP_OPTS[@]}" -P "$RD_FAST_PORT" bench@127.0.0.1 > /dev/null 2>&1) &
  ipids+=($!)
done
for _ in $(seq 1 300); do
  n=$(( $(grep -c "SFTP login" "$WORK/rd.log" || true) - logins0 ))
  [ "$n" -ge "$SESSIONS" ] && break
  sleep 0.1
done
sleep 2
after=$(rss)
echo "logged in: $n, RSS before ${before} KiB, with idle sessions ${after} KiB, per session $(( (after - before) / SESSIONS )) KiB"
for p in "${ipids[@]}"; do kill "$p" 2>/dev/null || true; done
