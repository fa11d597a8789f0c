#!/usr/bin/env bash
# Profiles the broker with `perf record` during the 100 B acks=1 one-partition
# produce run and during the consume of that data, and writes the top frames.
#
#   bench/profile.sh              (after bench/run.sh has built both binaries)
#
# Needs perf (Debian: apt-get install linux-perf). The release profile keeps
# debug info (debug = 1), so DWARF unwinding gives usable call chains without
# frame pointers.
#
# Environment: PROFILE_OUT (default bench/results/profile-<timestamp>),
# RECORDS (default 5000000), PERF_FREQ (default 3999 Hz),
# CALL_GRAPH (default dwarf,16384; "fp" for frame pointers).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${PROFILE_OUT:-$ROOT/bench/results/profile-$(date +%Y%m%d-%H%M%S)}
RECORDS=${RECORDS:-5000000}
FREQ=${PERF_FREQ:-3999}
CALL_GRAPH=${CALL_GRAPH:-dwarf,16384}
GREGOR=${GREGOR:-$ROOT/target/release/gregor}
BENCH=$ROOT/bench/target/release/gregor-bench
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "profile: perf not found (apt-get install linux-perf)" >&2; exit 1; }
[[ -x $GREGOR && -x $BENCH ]] || { echo "profile: build first (bench/run.sh or cargo build --release)" >&2; exit 1; }

DIR=$OUT/log
rm -rf "$DIR"
mkdir -p "$DIR"
BROKER_PID=
start_broker() {
  "$GREGOR" server --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$DIR" \
    --override num.partitions=1 >"$OUT/broker-$1.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 300); do
    line=$(grep -m1 'gregor: listening on' "$OUT/broker-$1.log" || true)
    [[ -n $line ]] && { PORT=${line##*:}; return 0; }
    sleep 0.1
  done
  echo "profile: broker did not start" >&2; exit 1
}
stop_broker() {
  if [[ -n $BROKER_PID ]]; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
  fi
}
trap stop_broker EXIT

profile() { # profile NAME -- bench args...
  local name=$1; shift
  perf record -F "$FREQ" --call-graph "$CALL_GRAPH" -p "$BROKER_PID" -o "$OUT/$name.perf.data" 2>"$OUT/$name.perf.log" &
  local perf_pid=$!
  sleep 0.5
  "$BENCH" "$@" --bootstrap "127.0.0.1:$PORT" --broker-pid "$BROKER_PID" --out "$OUT/results.jsonl"
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  # Self time by symbol, and by shared object; then inclusive (children) time.
  perf report -i "$OUT/$name.perf.data" --no-children --sort symbol --stdio -g none --percent-limit 0.5 \
    2>/dev/null >"$OUT/$name.self.txt"
  perf report -i "$OUT/$name.perf.data" --no-children --sort dso --stdio -g none \
    2>/dev/null >"$OUT/$name.dso.txt"
  perf report -i "$OUT/$name.perf.data" --children --sort symbol --stdio -g none --percent-limit 2 \
    2>/dev/null >"$OUT/$name.children.txt"
  echo "--- $name: top self frames"
  grep -v '^#' "$OUT/$name.self.txt" | grep -v '^$' | head -25
}

start_broker produce
profile produce-100B-acks1 produce --topic bench --records "$RECORDS" --size 100 --acks 1 --partitions 1 --label profile-produce
stop_broker
cat "$DIR"/*/* >/dev/null 2>&1 || true
start_broker consume
profile consume-100B consume --topic bench --records "$RECORDS" --size 100 --partitions 1 --label profile-consume
stop_broker
echo "profile output: $OUT"
