#!/usr/bin/env bash
# Single-partition consume throughput with kcat (librdkafka) as the consumer,
# for machines without bench/target/release/gregor-bench: starts BINARY fresh
# on its own log dir, produces RECORDS records of SIZE bytes to one partition
# with the binary's own producer-perf-test (acks=1), then times one kcat
# consumer reading them back from the beginning (page cache), and the
# broker's CPU (utime+stime from /proc) over the consume.
#
#   bench/consume_kcat.sh BINARY [LABEL]
#       RECORDS (default 3000000) SIZE (100) PARTITIONS (1)
#       GREGOR_FETCH_SENDFILE=0 to read records into memory instead of sendfile
#       PERF_OUT=file.data to record a perf profile of the broker during the consume
#       IDLE_FETCH_SECONDS=N: instead, a kcat consumer at the log end with
#         fetch.wait.max.ms=0 for N seconds: every fetch comes back empty at
#         once, so the broker's CPU per Fetch request is the fixed cost of one
#
# Prints one line: label, records/s, MB/s, broker CPU seconds per million records,
# Fetch requests served (from /metrics) and broker CPU per Fetch request.
set -euo pipefail
source "$(dirname "$0")/listener.sh"
BIN=$1 LABEL=${2:-consume}
RECORDS=${RECORDS:-3000000} SIZE=${SIZE:-100} PARTITIONS=${PARTITIONS:-1}
WORK=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null && wait "${pid:-}" 2>/dev/null; rm -rf "$WORK"' EXIT
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" server --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$WORK/data" \
  --override "num.partitions=$PARTITIONS" --override "http.listeners=http://127.0.0.1:$http_port" \
  >"$WORK/broker.log" 2>&1 &
pid=$!
wait_for_listener "$WORK/broker.log"
"$BIN" producer-perf-test --bootstrap-server "127.0.0.1:$port" --topic bench --num-records "$RECORDS" \
  --record-size "$SIZE" --throughput -1 --producer-props acks=1 linger.ms=5 >"$WORK/produce.log" 2>&1
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
fetches() {
  curl -s "http://127.0.0.1:$http_port/metrics" |
    awk '/^kafka_network_requestmetrics_requests_total\{request="Fetch"\}/ {print $2; found=1} END {if (!found) print 0}'
}
f0=$(fetches)
tck=$(getconf CLK_TCK)
c0=$(cpu)
if [[ -n ${PERF_OUT:-} ]]; then
  perf record -F 1999 -g -p "$pid" -o "$PERF_OUT" 2>/dev/null &
  perf_pid=$!
  sleep 0.5
fi
t0=$(date +%s.%N)
if [[ -n ${IDLE_FETCH_SECONDS:-} ]]; then
  timeout "$IDLE_FETCH_SECONDS" kcat -C -b "127.0.0.1:$port" -t bench -o end -q -f '\n' \
    -X fetch.wait.max.ms=0 >/dev/null || true
  RECORDS=0
else
  kcat -C -b "127.0.0.1:$port" -t bench -o beginning -c "$RECORDS" -q -f '\n' >/dev/null
fi
t1=$(date +%s.%N)
c1=$(cpu)
f1=$(fetches)
if [[ -n ${PERF_OUT:-} ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
python3 - "$LABEL" "$RECORDS" "$SIZE" "$t0" "$t1" "$c0" "$c1" "$tck" "$f0" "$f1" <<'PY'
import sys
label, n, size, t0, t1, c0, c1, tck, f0, f1 = sys.argv[1:]
n, size = int(n), int(size)
secs = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck)
fetches = int(float(f1)) - int(float(f0))
per_fetch = f"{cpu / fetches * 1e6:.1f} us CPU/fetch" if fetches else "-"
if n:
    print(f"{label:<28} {n / secs:>12,.0f} rec/s {n * size / secs / 1e6:>8.1f} MB/s  "
          f"{cpu / (n / 1e6):.3f} s/M rec (broker CPU {cpu:.2f} s over {secs:.2f} s); "
          f"{fetches} fetches, {per_fetch}")
else:
    print(f"{label:<28} {fetches / secs:>10,.0f} empty fetches/s; broker CPU {cpu:.2f} s over "
          f"{secs:.2f} s; {per_fetch}")
PY
