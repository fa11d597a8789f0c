#!/usr/bin/env bash
# Broker CPU and minor page faults over one produce run: starts BINARY fresh
# on its own log dir (one partition), produces RECORDS records of 100 B with
# gregor-bench's librdkafka producer (acks=1, linger.ms=5), and prints the
# rate, the broker's CPU seconds per million records and its minor faults
# (/proc/PID/stat) for the whole run. Extra KEY=VALUE arguments go to the
# broker's environment (e.g. GLIBC_TUNABLES=glibc.malloc.trim_threshold=1048576).
#
#   bench/produce_faults.sh LABEL BINARY [KEY=VALUE...]     (RECORDS=3000000)
#
# Needs bench/target/release/gregor-bench (bench/run.sh builds it).
set -euo pipefail
source "$(dirname "$0")/listener.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$ROOT/bench/target/release/gregor-bench}
LABEL=$1 BIN=$2
shift 2
RECORDS=${RECORDS:-3000000}
WORK=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
env "$@" "$BIN" server --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$WORK/data" \
  --override num.partitions=1 >"$WORK/broker.log" 2>&1 &
pid=$!
wait_for_listener "$WORK/broker.log"
"$BENCH" produce --bootstrap "127.0.0.1:$port" --topic bench --records "$RECORDS" --size 100 --acks 1 \
  --partitions 1 --compression none --max-seconds 120 --broker-pid "$pid" --label "$LABEL" \
  --out "$WORK/r.jsonl" >/dev/null 2>&1
minflt=$(awk '{print $10}' "/proc/$pid/stat")
python3 - "$WORK/r.jsonl" "$LABEL" "$minflt" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).readline())
print(f"{sys.argv[2]:<24} {r['rec_s']:>12,.0f} rec/s  {r['broker_cpu_s_per_m']:.3f} s/M rec  "
      f"{int(sys.argv[3]):>7} minor faults")
PY
