#!/usr/bin/env bash
# Consume throughput of one broker binary with the sendfile fetch path off
# (GREGOR_FETCH_SENDFILE=0: records read into memory, one vectored write) and
# on, alternating, for 100 B and 1 KiB records over 1 and 100 partitions.
# Each run starts the broker fresh (own log dir), produces the records
# (acks=1), then one consumer (assign from the beginning, librdkafka) reads
# them back from the page cache.
#
#   bench/consume_ab.sh BINARY      (ROUNDS=2, RECORDS_100=3000000, RECORDS_1K=1000000)
#
# Needs bench/target/release/gregor-bench (bench/run.sh builds it). Prints one
# line per run: label, records/s, MB/s, broker CPU seconds per million records.
set -euo pipefail
source "$(dirname "$0")/listener.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$ROOT/bench/target/release/gregor-bench}
BIN=$1
ROUNDS=${ROUNDS:-2} RECORDS_100=${RECORDS_100:-3000000} RECORDS_1K=${RECORDS_1K:-1000000}
WORK=$(mktemp -d)
OUT=$WORK/results.jsonl
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for ((round = 1; round <= ROUNDS; round++)); do
  for size in 100 1024; do
    records=$RECORDS_100; [[ $size == 1024 ]] && records=$RECORDS_1K
    for parts in 1 100; do
      for sendfile in 0 1; do
        dir=$WORK/data; rm -rf "$dir"; mkdir -p "$dir"
        GREGOR_FETCH_SENDFILE=$sendfile "$BIN" server --override listeners=PLAINTEXT://127.0.0.1:0 \
          --override "log.dirs=$dir" --override "num.partitions=$parts" >"$WORK/broker.log" 2>&1 &
        pid=$!
        wait_for_listener "$WORK/broker.log"
        label="consume-${size}B-${parts}p-sendfile${sendfile}-r$round"
        "$BENCH" produce --bootstrap "127.0.0.1:$port" --topic bench --records "$records" --size "$size" \
          --acks 1 --partitions "$parts" --compression none --max-seconds 180 --broker-pid "$pid" \
          --label "produce-$label" --out "$WORK/produce.jsonl" >/dev/null 2>&1
        "$BENCH" consume --bootstrap "127.0.0.1:$port" --topic bench --records "$records" --size "$size" \
          --partitions "$parts" --max-seconds 180 --broker-pid "$pid" --label "$label" \
          --out "$OUT" >/dev/null 2>&1
        kill "$pid"; wait "$pid" || true
      done
    done
  done
done
python3 - "$OUT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{r['label']:<34} {r['rec_s']:>12,.0f} rec/s {r.get('mb_s', 0):>8.1f} MB/s  "
          f"{r['broker_cpu_s_per_m']:.3f} s/M rec")
PY
