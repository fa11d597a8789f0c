#!/usr/bin/env bash
# Alternating A/B of two broker binaries on the cases the targets judge most
# often: 100 B acks=1 produce to one partition, then consuming it. Each round
# starts each binary fresh (own log dir), produces, consumes, stops it; the
# rounds alternate so a busy machine hurts both sides alike.
#
#   bench/ab.sh BEFORE_BINARY AFTER_BINARY      (ROUNDS=3, RECORDS=3000000)
#
# Needs bench/target/release/gregor-bench (bench/run.sh builds it). Prints one
# line per run: label, records/s, broker CPU seconds per million records.
set -euo pipefail
source "$(dirname "$0")/listener.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench/target/release/gregor-bench
BEFORE=$1 AFTER=$2
ROUNDS=${ROUNDS:-3} RECORDS=${RECORDS:-3000000}
WORK=$(mktemp -d)
OUT=$WORK/results.jsonl
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for ((round = 1; round <= ROUNDS; round++)); do
  for which in before after; do
    bin=$BEFORE; [[ $which == after ]] && bin=$AFTER
    dir=$WORK/data-$which; rm -rf "$dir"; mkdir -p "$dir"
    "$bin" server --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$dir" \
      --override num.partitions=1 >"$WORK/broker.log" 2>&1 &
    pid=$!
    wait_for_listener "$WORK/broker.log"
    "$BENCH" produce --bootstrap "127.0.0.1:$port" --topic bench --records "$RECORDS" --size 100 \
      --acks 1 --partitions 1 --compression none --max-seconds 120 --broker-pid "$pid" \
      --label "produce-$which-$round" --out "$OUT" >/dev/null 2>&1
    "$BENCH" consume --bootstrap "127.0.0.1:$port" --topic bench --records "$RECORDS" --size 100 \
      --partitions 1 --max-seconds 120 --broker-pid "$pid" --label "consume-$which-$round" \
      --out "$OUT" >/dev/null 2>&1
    kill "$pid"; wait "$pid" || true
  done
done
python3 - "$OUT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{r['label']:<20} {r['rec_s']:>12,.0f} rec/s  {r['broker_cpu_s_per_m']:.3f} s/M rec")
PY
