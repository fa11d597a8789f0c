#!/usr/bin/env bash
# Gregor benchmark suite: produce/consume throughput, produce latency, and
# this machine's limits, against a release build on loopback.
#
#   bench/run.sh            full suite (about 5-8 minutes after the builds)
#   QUICK=1 bench/run.sh    smaller runs, for checking that the suite works
#
# Environment:
#   BENCH_WORK   directory for broker log dirs and the dd test file
#                (default bench/results/work; the disk limit is measured there,
#                so keep it on the filesystem you care about)
#   BENCH_OUT    results directory (default bench/results/<timestamp>)
#   REPEAT       runs of the target cases (default 3; the median is judged)
#   TARGETS_ONLY=1  only the runs the targets judge (1 partition, 100 B acks=1,
#                1 KiB, 100 B consume; no latency), about 3 minutes
#   SKIP_BUILD=1 use the existing target/release/gregor and bench binary
#   GREGOR       broker binary to measure (default target/release/gregor)
#   TXN_ONLY=1   only the transaction runs (idempotent vs transactional
#                produce of the same batches, 100 B and 1 KiB, transactions of
#                10, 100 and 1,000 batches; read_committed vs read_uncommitted
#                consume), about 4 minutes
#
# Output: $BENCH_OUT/results.jsonl (one JSON object per run),
# $BENCH_OUT/report.md (the tables for docs/PERFORMANCE.md), broker logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
REPEAT=${REPEAT:-3}
TARGETS_ONLY=${TARGETS_ONLY:-0}
OUT=${BENCH_OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
WORK=${BENCH_WORK:-$ROOT/bench/results/work}
mkdir -p "$OUT" "$WORK"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

GREGOR=${GREGOR:-$ROOT/target/release/gregor}
BENCH=$ROOT/bench/target/release/gregor-bench

if [[ $QUICK == 1 ]]; then
  N_SMALL=300000; N_LARGE=100000; DD_MB=256; LOOP_BYTES=$((1 << 30)); LAT_SECS=3; MAX_SECS=10
else
  N_SMALL=3000000; N_LARGE=1000000; DD_MB=2048; LOOP_BYTES=$((8 << 30)); LAT_SECS=10; MAX_SECS=20
fi

log() { printf '\n== %s\n' "$*" >&2; }

# --- build -------------------------------------------------------------------
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  for tool in gcc make; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required to build librdkafka (apt-get install build-essential)" >&2; exit 1; }
  done
  log "building gregor (release)"
  cargo build --release -p gregor-cli
  log "building the load generator (bench/, librdkafka bundled)"
  (cd bench && cargo build --release)
fi
[[ -x $GREGOR && -x $BENCH ]] || { echo "bench: missing $GREGOR or $BENCH" >&2; exit 1; }

# --- broker lifecycle ----------------------------------------------------------
BROKER_PID=
PORT=
start_broker() { # start_broker LOGDIR PARTITIONS NAME
  local dir=$1 parts=$2 name=$3 line
  mkdir -p "$dir"
  "$GREGOR" server \
    --override listeners=PLAINTEXT://127.0.0.1:0 \
    --override "log.dirs=$dir" \
    --override "num.partitions=$parts" \
    >"$OUT/broker-$name.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 300); do
    line=$(grep -m1 'gregor: listening on' "$OUT/broker-$name.log" || true)
    if [[ -n $line ]]; then
      PORT=${line##*:}
      sleep 1 # settle, then sample idle RSS
      "$BENCH" idle --broker-pid "$BROKER_PID" --label "$name" --out "$RESULTS" >/dev/null
      return 0
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: broker did not start; log:" >&2
  cat "$OUT/broker-$name.log" >&2
  exit 1
}
stop_broker() {
  if [[ -n $BROKER_PID ]]; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
  fi
}
trap stop_broker EXIT

# --- machine -------------------------------------------------------------------
{
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(free -h | awk '/^Mem:/{print $2}')"
  echo "kernel: $(uname -r)"
  echo "filesystem of $WORK: $(df -hT "$WORK" | awk 'NR==2{print $1" "$2" "$3}')"
  echo "broker binary: $GREGOR"
  echo "gregor commit (work tree): $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' (crates/ modified)')"
} | tee "$OUT/machine.txt"

# --- transactions --------------------------------------------------------------
# The same batches (batch.num.messages=$TXN_BATCH records, acks=all) sent by an
# idempotent producer and by a transactional one committing every K batches;
# broker CPU per record is the comparison. Then both isolation levels consume
# the transactional topic.
TXN_BATCH=100
txn_run() { # txn_run SIZE MODE(idempotent|K) RECORDS
  local size=$1 mode=$2 n=$3 name dir
  name="t-${size}B-${mode}"
  dir=$WORK/$name
  rm -rf "$dir"
  log "produce ${size} B, ${mode} (batches of $TXN_BATCH records, $n records)"
  start_broker "$dir" 1 "$name"
  local extra=(--idempotent true)
  [[ $mode == idempotent ]] || extra=(--txn-batches "$mode")
  "$BENCH" produce --bootstrap "127.0.0.1:$PORT" --topic bench --records "$n" --size "$size" \
    --acks all --partitions 1 --linger-ms 5 --batch-size 4194304 --batch-records "$TXN_BATCH" \
    "${extra[@]}" --max-seconds 120 --broker-pid "$BROKER_PID" --label "$name" --out "$RESULTS"
  if [[ $mode != idempotent ]]; then
    for iso in read_uncommitted read_committed; do
      "$BENCH" consume --bootstrap "127.0.0.1:$PORT" --topic bench --records "$n" --size "$size" \
        --partitions 1 --max-seconds 60 --rdkafka "isolation.level=$iso" --broker-pid "$BROKER_PID" \
        --label "c-$name-$iso" --out "$RESULTS"
    done
  fi
  stop_broker
  rm -rf "$dir"
}
if [[ ${TXN_ONLY:-0} == 1 ]]; then
  for size in 100 1024; do
    n=1000000; [[ $size == 1024 ]] && n=300000
    [[ $QUICK == 1 ]] && n=$((n / 10))
    txn_run "$size" idempotent "$n"
    for k in 10 100 1000; do txn_run "$size" "$k" "$n"; done
  done
  python3 - "$RESULTS" <<'PY' | tee "$OUT/report.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = {}
print("| run | records/s | MB/s | broker CPU µs/record | vs idempotent | commit p50 / p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    if r.get("kind") != "produce":
        continue
    cpu = r.get("broker_cpu_s", 0) / max(r["records"], 1) * 1e6
    key = r["size"]
    if r.get("mode") == "idempotent":
        base[key] = cpu
    rel = f"{cpu / base[key]:.2f}x" if key in base and r.get("mode") != "idempotent" else "-"
    commit = f"{r['commit_p50_ms']:.1f} / {r['commit_p99_ms']:.1f}" if "commit_p50_ms" in r else "-"
    print(f"| {r['label']} | {r['rec_s']:,.0f} | {r['mb_s']:.1f} | {cpu:.2f} | {rel} | {commit} |")
print()
print("| consume | records/s | MB/s | broker CPU µs/record |")
print("|---|---:|---:|---:|")
for r in rows:
    if r.get("kind") == "consume":
        cpu = r.get("broker_cpu_s", 0) / max(r["records"], 1) * 1e6
        print(f"| {r['label']} | {r['rec_s']:,.0f} | {r['mb_s']:.1f} | {cpu:.2f} |")
PY
  echo "results: $OUT"
  exit 0
fi

# --- limits --------------------------------------------------------------------
dd_limit() { # dd_limit NAME METHOD DD-FLAGS...
  local name=$1 method=$2; shift 2
  local f=$WORK/dd.test out bytes secs
  out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$DD_MB" "$@" 2>&1 | tail -1)
  rm -f "$f"
  # "2147483648 bytes (2.1 GB, 2.0 GiB) copied, 3.21 s, 669 MB/s"
  bytes=$(awk '{print $1}' <<<"$out")
  secs=$(sed -E 's/.*copied, ([0-9.]+) s.*/\1/' <<<"$out")
  "$BENCH" disk --name "$name" --method "$method" --bytes "$bytes" --seconds "$secs" --out "$RESULTS"
}
log "disk write limit (dd, ${DD_MB} MiB)"
dd_limit disk_write "dd bs=1M count=$DD_MB conv=fdatasync" conv=fdatasync
dd_limit disk_write_direct "dd bs=1M count=$DD_MB oflag=direct" oflag=direct
log "loopback TCP limit"
"$BENCH" loopback --bytes "$LOOP_BYTES" --out "$RESULTS"

# --- produce -------------------------------------------------------------------
produce_run() { # produce_run SIZE ACKS PARTITIONS RECORDS KEEP [COMPRESSION]
  local size=$1 acks=$2 parts=$3 n=$4 keep=$5 comp=${6:-none}
  local name="p-${size}B-acks${acks}-${parts}p-${comp}"
  local dir=$WORK/$name
  rm -rf "$dir"
  log "produce ${size} B acks=$acks partitions=$parts compression=$comp ($n records)"
  start_broker "$dir" "$parts" "$name"
  "$BENCH" produce --bootstrap "127.0.0.1:$PORT" --topic bench --records "$n" --size "$size" \
    --acks "$acks" --partitions "$parts" --compression "$comp" --max-seconds "$MAX_SECS" \
    --broker-pid "$BROKER_PID" --label "$name" --out "$RESULTS"
  stop_broker
  [[ $keep == keep ]] || rm -rf "$dir"
}
# The machine is shared: the runs the targets judge are repeated ($REPEAT
# times) and judged by their median.
for size in 100 1024; do
  n=$N_SMALL; [[ $size == 1024 ]] && n=$N_LARGE
  for acks in 1 all; do
    for parts in 1 8; do
      if [[ $TARGETS_ONLY == 1 ]] && [[ $parts == 8 || ( $size == 100 && $acks == all ) ]]; then continue; fi
      if [[ $parts == 1 && ( $acks == 1 || $size == 1024 ) ]]; then
        for ((r = 1; r < REPEAT; r++)); do produce_run "$size" "$acks" "$parts" "$n" drop; done
      fi
      keep=drop; [[ $acks == 1 && $parts == 1 ]] && keep=keep
      produce_run "$size" "$acks" "$parts" "$n" "$keep"
    done
  done
done
[[ $TARGETS_ONLY == 1 ]] || produce_run 100 1 1 "$N_SMALL" drop lz4

# --- consume (from the page cache) ---------------------------------------------
consume_run() { # consume_run SIZE RECORDS
  local size=$1 n=$2
  local dir=$WORK/p-${size}B-acks1-1p-none name=c-${size}B-1p
  log "consume ${size} B, 1 partition ($n records, page cache)"
  cat "$dir"/*/* >/dev/null 2>&1 || true # make sure the segments are cached
  for ((r = 0; r < REPEAT; r++)); do
    start_broker "$dir" 1 "$name"
    "$BENCH" consume --bootstrap "127.0.0.1:$PORT" --topic bench --records "$n" --size "$size" \
      --partitions 1 --max-seconds "$MAX_SECS" --broker-pid "$BROKER_PID" --label "$name" --out "$RESULTS"
    stop_broker
  done
  rm -rf "$dir"
}
consume_run 100 "$N_SMALL"
if [[ $TARGETS_ONLY == 1 ]]; then rm -rf "$WORK/p-1024B-acks1-1p-none"; else consume_run 1024 "$N_LARGE"; fi

# --- latency at a fixed rate -----------------------------------------------------
latency_run() { # latency_run ACKS LINGER RATE
  local acks=$1 linger=$2 rate=$3 name="l-acks$1-linger$2-$3"
  local dir=$WORK/$name
  rm -rf "$dir"
  log "latency 100 B acks=$acks linger.ms=$linger at $rate rec/s for ${LAT_SECS}s"
  start_broker "$dir" 1 "$name"
  "$BENCH" latency --bootstrap "127.0.0.1:$PORT" --topic bench-latency --rate "$rate" --seconds "$LAT_SECS" \
    --size 100 --acks "$acks" --linger-ms "$linger" --broker-pid "$BROKER_PID" --label "$name" --out "$RESULTS"
  stop_broker
  rm -rf "$dir"
}
if [[ $TARGETS_ONLY != 1 ]]; then
  latency_run 1 5 50000
  latency_run all 5 50000
  latency_run 1 0 10000
fi

# --- report ----------------------------------------------------------------------
"$BENCH" report --results "$RESULTS" | tee "$OUT/report.md"
echo
echo "results: $OUT"
