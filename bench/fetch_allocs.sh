#!/usr/bin/env bash
# Heap allocations per empty Fetch request, counted by heaptrack: a number
# that, unlike CPU time, does not depend on what else the machine runs.
# Starts BINARY under heaptrack on its own log dir, produces 1,000 records
# with the binary's own producer-perf-test, then (unless FETCH_SECONDS=0) runs a
# kcat consumer at the log end with fetch.wait.max.ms=0 for FETCH_SECONDS (default
# 4): every fetch comes back empty at once. Stops the broker with SIGTERM and
# prints heaptrack's allocation calls and the Fetch requests served.
#
#   bench/fetch_allocs.sh BINARY [LABEL]
#
# Allocations per Fetch = (calls with FETCH_SECONDS=N - calls with FETCH_SECONDS=0) /
# (fetches with N - fetches with 0): run it twice per binary.
set -euo pipefail
source "$(dirname "$0")/listener.sh"
BIN=$(readlink -f "$1") LABEL=${2:-fetch}
SECONDS_=${FETCH_SECONDS:-4}
WORK=$(mktemp -d)
trap 'kill "${bpid:-}" 2>/dev/null; wait "${hpid:-}" 2>/dev/null; rm -rf "$WORK"' EXIT
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
heaptrack -o "$WORK/ht" "$BIN" server --override listeners=PLAINTEXT://127.0.0.1:0 \
  --override "log.dirs=$WORK/data" --override "http.listeners=http://127.0.0.1:$http_port" \
  >"$WORK/broker.log" 2>&1 &
hpid=$!
wait_for_listener "$WORK/broker.log"
for child in $(pgrep -P "$hpid"); do
  [[ $(readlink -f "/proc/$child/exe") == "$BIN" ]] && bpid=$child
done
[[ -n ${bpid:-} ]] || { echo "broker process not found under heaptrack $hpid" >&2; exit 1; }
"$BIN" producer-perf-test --bootstrap-server "127.0.0.1:$port" --topic bench --num-records 1000 \
  --record-size 100 --throughput -1 --producer-props acks=1 >"$WORK/produce.log" 2>&1
fetches() {
  curl -s "http://127.0.0.1:$http_port/metrics" |
    awk '/^kafka_network_requestmetrics_requests_total\{request="Fetch"\}/ {print $2; found=1} END {if (!found) print 0}'
}
if (( SECONDS_ > 0 )); then
  timeout "$SECONDS_" kcat -C -b "127.0.0.1:$port" -t bench -o end -q -f '\n' \
    -X fetch.wait.max.ms=0 >/dev/null || true
fi
f=$(fetches)
kill -TERM "$bpid"
wait "$hpid" || true
calls=$(heaptrack_print -f "$WORK"/ht.*zst 2>/dev/null | awk '/^calls to allocation functions:/ {print $5}')
echo "$LABEL: seconds=$SECONDS_ fetches=${f%.*} allocation_calls=$calls"
