#!/usr/bin/env bash
# Broker CPU per million records with glibc malloc's arena count varied
# (MALLOC_ARENA_MAX; "default" leaves it unset), one binary, variants
# alternated per round: 100 B records produced to one partition with the
# binary's producer-perf-test (acks=1), then consumed with kcat. Each run on
# a fresh broker and log dir. Not a test: note the machine's load (printed).
#
#   bench/arena_cpu_ab.sh BINARY ROUNDS VARIANT...   e.g. ... 3 default 1 2
#       RECORDS (default 2000000)
set -euo pipefail
source "$(dirname "$0")/listener.sh"
BIN=$1 ROUNDS=${2:-3}; shift 2
VARIANTS=${*:-default 1}
RECORDS=${RECORDS:-2000000}
tck=$(getconf CLK_TCK)
for ((r=1; r<=ROUNDS; r++)); do
  for v in $VARIANTS; do
    WORK=$(mktemp -d)
    if [[ $v == default ]]; then envs=(); else envs=(MALLOC_ARENA_MAX=$v); fi
    env "${envs[@]}" "$BIN" server --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$WORK/data" \
      --override num.partitions=1 >"$WORK/broker.log" 2>&1 &
    pid=$!
    wait_for_listener "$WORK/broker.log"
    cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
    c0=$(cpu); t0=$(date +%s.%N)
    "$BIN" producer-perf-test --bootstrap-server "127.0.0.1:$port" --topic bench --num-records "$RECORDS" \
      --record-size 100 --throughput -1 --producer-props acks=1 linger.ms=5 >"$WORK/produce.log" 2>&1
    c1=$(cpu); t1=$(date +%s.%N)
    kcat -C -b "127.0.0.1:$port" -t bench -o beginning -c "$RECORDS" -q -f '\n' >/dev/null
    c2=$(cpu); t2=$(date +%s.%N)
    rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    kill $pid; wait $pid || true
    python3 -c "
n=$RECORDS/1e6; tck=$tck
print(f'arena={\"$v\":8s} round $r  produce {($c1-$c0)/tck/n:.3f} s/M ({n/($t1-$t0)*1e6:,.0f} rec/s)  consume {($c2-$c1)/tck/n:.3f} s/M ({n/($t2-$t1)*1e6:,.0f} rec/s)  peak rss {$rss/1024:.0f} MiB  load {open(\"/proc/loadavg\").read().split()[0]}')"
    rm -rf "$WORK"
  done
done
