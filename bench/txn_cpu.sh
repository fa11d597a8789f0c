#!/usr/bin/env bash
# Broker CPU of idempotent produce vs transactions of 100 batches (librdkafka via
# gregor-bench), R alternating rounds of N records of SIZE bytes, a fresh broker per
# run; prints each run and the medians. Needs a quiet machine: the CPU totals are
# read from /proc at 10 ms resolution, so keep N large enough for >= 1 s per run.
#   N=5000000 R=3 bench/txn_cpu.sh;  SIZE=1024 N=1500000 R=3 bench/txn_cpu.sh
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
G=${GREGOR:-$ROOT/target/release/gregor}
B=$ROOT/bench/target/release/gregor-bench
N=${N:-5000000}; R=${R:-3}
OUT=${BENCH_OUT:-$ROOT/bench/results/txn-cpu}; rm -rf "$OUT"; mkdir -p "$OUT"
for round in $(seq 1 $R); do
for mode in idem txn; do
  D=$OUT/data; rm -rf $D; mkdir -p $D
  $G server --override listeners=PLAINTEXT://127.0.0.1:0 --override log.dirs=$D --override num.partitions=1 > $OUT/broker.log 2>&1 &
  BP=$!
  for i in $(seq 1 100); do grep -q 'listening on' $OUT/broker.log && break; sleep 0.1; done
  PORT=$(grep -m1 -o '127.0.0.1:[0-9]*' $OUT/broker.log | cut -d: -f2)
  if [[ $mode == idem ]]; then extra=(--idempotent true); else extra=(--txn-batches 100); fi
  $B produce --bootstrap 127.0.0.1:$PORT --topic bench --records $N --size ${SIZE:-100} --acks all --partitions 1 --linger-ms 5 --batch-size 4194304 --batch-records 100 "${extra[@]}" --max-seconds 120 --broker-pid $BP --label $mode-$round --out $OUT/results.jsonl > $OUT/bench.log 2>&1
  kill -TERM $BP; wait $BP
done
done
rm -rf $OUT/data
python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows=[json.loads(l) for l in open(sys.argv[1])]
for r in rows: print(r['label'], f"{r['rec_s']:,.0f} rec/s", f"broker CPU {r['broker_cpu_s']:.2f} s", f"{r['broker_cpu_s']/r['records']*1e6:.3f} us/rec", "load", r.get('loadavg_1m'))
import statistics
for m in ('idem','txn'):
    v=[r['broker_cpu_s'] for r in rows if r['label'].startswith(m)]
    print(m, 'median broker CPU s', statistics.median(v))
PY
