#!/usr/bin/env bash
# The cluster fault suite's long mode: seeded random schedules of faults against
# a fresh 3-node Gregor cluster per run, every invariant checked after each run.
# NOT part of CI (./scripts/test.sh runs the short set,
# tests/compat/test_cluster_faults.py); run it by hand, as root:
#
#   scripts/fault-suite.sh [--runs N=100] [--seed S] [--faults a,b,...] [--no-netns] [--keep DIR] [-v]
#
# Each run draws 1-3 faults from its seed (run i uses seed S+i, so any run can
# be replayed alone with --runs 1 --seed S+i): leader-kill9, follower-kill9,
# controller-kill9, leader-sigstop, partition (a node's veth down; each node runs
# in its own network namespace, which needs root), restart-all, rolling-restart,
# on victims drawn from the seed. Opt-in with --faults: majority-sigstop (every
# node but one leader frozen for 75 s, longer than the producer's
# message.timeout.ms: no quorum, a stuck high watermark, producer epoch bumps). The workload is an idempotent acks=all
# producer on an RF 3, min.insync.replicas=2, 3-partition topic, beside a
# transactional producer on a second such topic (txns= on each run's line:
# transactions committed / aborted / of unknown outcome, as the client saw
# them; judged under read_committed after the run). One line per
# run (seed, faults, acked count, stall = the longest any partition went without
# an acknowledgement during a fault and its heal, each check's result), then a
# summary; exits 1 if any run violated an invariant (or a liveness check: the
# workload resumes, fenced leaders are replaced, every ISR is full again). A failed run's node dirs
# (logs, stderr per incarnation) and evidence.txt are kept under
# $TMPDIR/gregor-fault-suite-<first seed>/seed-<seed> (or --keep DIR).
#
# About 30-60 s per run on 2 cores with a debug build: 100 runs take 1-2 hours.
# Binary: $GREGOR_BIN, else target/debug/gregor (under $CARGO_TARGET_DIR if
# set), built with `cargo build -p gregor-cli` when missing. Every wait in a run
# is bounded; namespaces, links and processes are removed after each run, and
# leftovers of a killed suite (names gf<hex>*) on the next start.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$REPO/.test-deps/venv/bin/python"
[[ -x "$PY" ]] || { echo "fault-suite.sh: $PY missing; run scripts/install-test-deps.sh" >&2; exit 2; }

if [[ -z "${GREGOR_BIN:-}" ]]; then
    GREGOR_BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/gregor"
    if [[ ! -x "$GREGOR_BIN" ]]; then
        echo "fault-suite.sh: building $GREGOR_BIN" >&2
        (cd "$REPO" && cargo build -p gregor-cli)
    fi
fi
export GREGOR_BIN

exec "$PY" "$REPO/tests/compat/fault_util.py" "$@"
