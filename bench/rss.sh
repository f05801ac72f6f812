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
source bench/daemon-env.sh
v1_v2 "$STUDENTS"
zipdir "$V1" "$WORK/v1.zip"; zipdir "$V2" "$WORK/v2.zip"
start_daemon
mib() { awk -v k="$1:" '$1==k {printf "%.1f", $2/1024}' "/proc/$DAEMON/status"; }
sleep 1
idle=$(mib VmRSS)
printf '%-28s %10s\n' "moment" "RSS_MiB"
printf '%-28s %10s\n' "idle after start" "$idle"
worst=0
for n in $(seq "$BATCHES"); do
  if [ $((n % 2)) = 1 ]; then z=v1.zip; else z=v2.zip; fi
  upload "$WORK/$z" "n$n-$z"
  until [ "$(find "$WORK/state/outbox" -name '*.eml' | wc -l)" -ge "$n" ]; do sleep 0.05; done
  sleep 1
  r=$(mib VmRSS)
  printf '%-28s %10s\n' "after batch $n ($z)" "$r"
  worst=$(echo "if ($r > $worst) $r else $worst" | bc)
done
printf '%-28s %10s\n' "peak during the run (VmHWM)" "$(mib VmHWM)"
printf 'largest after-batch RSS / idle: %.2f\n' "$(echo "$worst / $idle" | bc -l)"
stop_daemon
