#!/usr/bin/env bash
# Runs two third-party clients' own broker test suites against a release `gregor`:
#   * librdkafka's broker integration tests (tests/test-runner, broker tests only:
#     -L: no local/mock tests; -K skips known-issue tests, -E sockem tests; full mode,
#     or quick mode -Q with RDK_QUICK=1, which skips the SUB_TEST()s marked slow),
#     scenario "default" on a broker with num.partitions=4, and scenario
#     "noautocreate" on a second broker with auto.create.topics.enable=false
#     (librdkafka's tests/scenarios/*.json), TEST_KAFKA_VERSION=4.1.0;
#   * kafka-python's integration suite (pytest test/integration) with
#     KAFKA_URI=kafka://127.0.0.1:PORT, KAFKA_VERSION=4.0.0, on a broker started with
#     the checkout's servers/<KAFKA_VERSION>/resources/kafka.properties (node.id=0).
# Not part of scripts/test.sh. Prints pass/fail/skip counts per suite and every
# failing test with its first failure message; exits 1 if any test failed.
#
# Usage:
#   scripts/run-client-suites.sh [--build] [--only librdkafka|kafka-python] \
#       [LIBRDKAFKA_SRC [KAFKA_PYTHON_SRC]] [-- PYTEST_ARGS...]
# or with the environment: LIBRDKAFKA_SRC=... KAFKA_PYTHON_SRC=... scripts/run-client-suites.sh
#   LIBRDKAFKA_SRC    librdkafka checkout (v2.15.0 tested); built here with
#                     ./configure --disable-gssapi --disable-curl && make libs && make -C tests build
#                     (needs gcc, g++, make, libssl-dev, zlib1g-dev, libzstd-dev, rapidjson-dev)
#   KAFKA_PYTHON_SRC  dpkp/kafka-python checkout (2.3.2 tested)
#   A suite whose checkout is not given is skipped.
# Other settings (environment):
#   GREGOR_BIN        broker binary (default target/release/gregor; --build, or a missing
#                     binary, runs `nice cargo build --release -p gregor-cli` first)
#   GREGOR_REV        what GREGOR_BIN was built from, for the summary (default: HEAD for
#                     target/release/gregor)
#   SUITES_WORK       logs, broker data, results (default /tmp/suites/run; emptied at start)
#   SUITES_VENV       Python venv for kafka-python's tests (default /tmp/suites/kp-venv;
#                     created and filled from PyPI when missing)
#   RDK_TESTS         only these librdkafka test numbers, e.g. "0001 0045"
#   RDK_TEST_TIMEOUT  seconds one librdkafka test number may take (default 1800; 0113 needs ~11 min)
#   RDK_QUICK=1       run librdkafka's tests with -Q (quick mode, as its `make broker` does)
#   KP_PYTEST_ARGS    extra pytest arguments (split on spaces), e.g. "-x --lf"; arguments
#                     after `--` on the command line also go to pytest: -- -k "admin or consumer"
#   KP_TIMEOUT        seconds for the whole kafka-python run (default 2400)
#
# Example, with work trees of confluentinc/librdkafka at tag v2.15.0 and dpkp/kafka-python
# at tag 2.3.2 (e.g. `git archive v2.15.0 | tar -x -C /tmp/suites/librdkafka`):
#   cargo build --release -p gregor-cli
#   scripts/run-client-suites.sh /tmp/suites/librdkafka /tmp/suites/kafka-python
# A full run takes about 38 minutes on 2 cores (librdkafka ~37, 0113 alone ~10; kafka-python ~30 s).
#
# Each librdkafka test number runs in its own test-runner process (a test that times
# out makes test-runner SIGKILL itself, which would lose the rest of a shared run).
# librdkafka tests that call Kafka's tools (kafka-topics.sh, kafka-acls.sh) find
# them through KAFKA_PATH=scripts/client-suites/kafka, stand-ins that forward to
# `gregor topics` / `gregor configs`; kafka-acls.sh fails (no ACLs yet). The same
# directory is kafka-python's KAFKA_ROOT. Each broker gets a fresh server.properties
# and data dir under SUITES_WORK; kafka-python's config names a controller quorum, so its
# dirs are first formatted with `gregor storage format -t ID -c FILE` (as its fixture does
# with kafka-storage.sh). A broker config key that gregor refuses at start is dropped
# (the broker is restarted without it) and reported.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$REPO/scripts/client-suites/suites.py"
SHIM="$REPO/scripts/client-suites/kafka"

BUILD=0
ONLY=""
KP_ARGS=()
POS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build) BUILD=1 ;;
        --only) ONLY="$2"; shift ;;
        -h|--help) sed -n '2,54p' "$0"; exit 0 ;;
        --) shift; KP_ARGS=("$@"); break ;;
        *) POS+=("$1") ;;
    esac
    shift
done
LIBRDKAFKA_SRC="${POS[0]:-${LIBRDKAFKA_SRC:-}}"
KAFKA_PYTHON_SRC="${POS[1]:-${KAFKA_PYTHON_SRC:-}}"
[[ "$ONLY" == "kafka-python" ]] && LIBRDKAFKA_SRC=""
[[ "$ONLY" == "librdkafka" ]] && KAFKA_PYTHON_SRC=""
if [[ -z "$LIBRDKAFKA_SRC" && -z "$KAFKA_PYTHON_SRC" ]]; then
    echo "usage: $0 [--build] [--only SUITE] LIBRDKAFKA_SRC [KAFKA_PYTHON_SRC] (or set the env vars; --help)" >&2
    exit 2
fi
[[ -n "$LIBRDKAFKA_SRC" ]] && LIBRDKAFKA_SRC="$(cd "$LIBRDKAFKA_SRC" && pwd)"
[[ -n "$KAFKA_PYTHON_SRC" ]] && KAFKA_PYTHON_SRC="$(cd "$KAFKA_PYTHON_SRC" && pwd)"

WORK="${SUITES_WORK:-/tmp/suites/run}"
VENV="${SUITES_VENV:-/tmp/suites/kp-venv}"
RDK_KAFKA_VERSION=4.1.0
KP_KAFKA_VERSION=4.0.0
START=$SECONDS

say() { echo "[suites +$((SECONDS - START))s] $*"; }
die() { echo "[suites] error: $*" >&2; exit 2; }

if [[ -d "$WORK" && -n "$(ls -A "$WORK")" && ! -e "$WORK/.client-suites" ]]; then
    die "$WORK is not empty and was not made by this script: set SUITES_WORK to a new directory"
fi
rm -rf "$WORK" && mkdir -p "$WORK" && touch "$WORK/.client-suites" || die "cannot create $WORK"

# ---- gregor binary
export GREGOR_BIN="${GREGOR_BIN:-$REPO/target/release/gregor}"
if [[ $BUILD == 1 || ! -x "$GREGOR_BIN" ]]; then
    say "building gregor: cargo build --release -p gregor-cli"
    (cd "$REPO" && nice -n 10 cargo build --release -p gregor-cli) || die "cargo build failed"
    GREGOR_BIN="$REPO/target/release/gregor"
fi
[[ -x "$GREGOR_BIN" ]] || die "no gregor binary at $GREGOR_BIN"
GREGOR_BIN="$(cd "$(dirname "$GREGOR_BIN")" && pwd)/$(basename "$GREGOR_BIN")"  # the tests run elsewhere
if [[ -z "${GREGOR_REV:-}" && "$GREGOR_BIN" != "$REPO/target/release/gregor" ]]; then
    GREGOR_REV="(revision not known: set GREGOR_REV)"
elif [[ -z "${GREGOR_REV:-}" ]]; then  # what the in-tree binary was built from, for the summary
    GREGOR_REV="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    git -C "$REPO" diff --quiet HEAD -- crates 2>/dev/null || GREGOR_REV="$GREGOR_REV + uncommitted changes"
fi

# ---- brokers
BROKER_PIDS=()
DROPPED_KEYS=()
stop_brokers() {
    local pid
    for pid in "${BROKER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${BROKER_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null
    done
    BROKER_PIDS=()
}
trap stop_brokers EXIT
trap 'stop_brokers; exit 130' INT TERM

# start_broker NAME KEY=VALUE... : writes the settings to $WORK/NAME/server.properties
# (log.dirs=$WORK/NAME/data unless given), formats the dirs first when the settings name
# a controller quorum (as Kafka 4 requires: `gregor storage format`), starts
# `gregor server --config FILE` and sets BROKER_PORT from its "listening on" line.
# A key gregor refuses as unknown is dropped and the start retried.
start_broker() {
    local name="$1"; shift
    local dir="$WORK/$name" props=("$@") try kv pid deadline key
    for try in $(seq 10); do
        rm -rf "$dir" && mkdir -p "$dir/data"
        printf '%s\n' "${props[@]}" >"$dir/server.properties"
        grep -q '^log\.dirs=' "$dir/server.properties" || echo "log.dirs=$dir/data" >>"$dir/server.properties"
        if grep -qE '^controller\.quorum\.(voters|bootstrap\.servers)=' "$dir/server.properties" \
            && "$GREGOR_BIN" storage --help >/dev/null 2>&1; then
            "$GREGOR_BIN" storage format -t "$("$GREGOR_BIN" storage random-uuid)" \
                -c "$dir/server.properties" >"$dir/format.log" 2>&1 || true  # a refused key shows below
        fi
        "$GREGOR_BIN" server --config "$dir/server.properties" >"$dir/stdout" 2>"$dir/stderr" &
        pid=$!
        deadline=$((SECONDS + 30))
        BROKER_PORT=""
        while (( SECONDS < deadline )); do
            BROKER_PORT="$(sed -n 's/^gregor: listening on PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/stdout" 2>/dev/null | head -1)"
            [[ -n "$BROKER_PORT" ]] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if [[ -n "$BROKER_PORT" ]]; then
            BROKER_PIDS+=("$pid")
            say "broker $name: 127.0.0.1:$BROKER_PORT (pid $pid, $dir/server.properties, log $dir/stderr)"
            return 0
        fi
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        key="$(grep -o "unknown configuration '[^']*'" "$dir/stderr" | head -1 | cut -d"'" -f2)"
        if [[ -z "$key" ]]; then
            cat "$dir/format.log" "$dir/stderr" >&2 2>/dev/null
            die "broker $name did not start within 30 s"
        fi
        DROPPED_KEYS+=("$key ($name)")
        say "broker $name refused '$key' as unknown: dropping it and retrying"
        local kept=()
        for kv in "${props[@]}"; do [[ "${kv%%=*}" == "$key" ]] || kept+=("$kv"); done
        props=("${kept[@]}")
    done
    die "broker $name: too many refused keys"
}

RESULTS=()   # "suite-label|tsv"

# ---- librdkafka
run_librdkafka() {
    local src="$LIBRDKAFKA_SRC" t="$LIBRDKAFKA_SRC/tests"
    [[ -f "$t/test.c" ]] || die "$src is not a librdkafka checkout (no tests/test.c)"
    local ver
    ver="$(sed -n 's/^#define RD_KAFKA_VERSION *0x\(..\)\(..\)\(..\)...*/\1 \2 \3/p' "$src/src/rdkafka.h" | { read -r a b c; printf 'v%d.%d.%d' "0x$a" "0x$b" "0x$c"; })"
    say "librdkafka $ver: building (log $WORK/librdkafka-build.log)"
    pkg-config --exists libzstd 2>/dev/null || say "warning: libzstd-dev missing: librdkafka builds without zstd (apt-get install libzstd-dev)"
    [[ -f /usr/include/rapidjson/document.h ]] || say "warning: rapidjson-dev missing: tests 0053, 0098, 0101, 0110 skip themselves (apt-get install rapidjson-dev, then rerun ./configure)"
    (
        cd "$src" || exit 1
        [[ -f Makefile.config ]] || ./configure --disable-gssapi --disable-curl || exit 1
        nice -n 10 make -j"$(nproc)" libs && nice -n 10 make -j"$(nproc)" -C tests build
    ) >"$WORK/librdkafka-build.log" 2>&1 || { tail -20 "$WORK/librdkafka-build.log"; die "librdkafka build failed"; }

    local scenario port nums num conf logdir quick=""
    [[ "${RDK_QUICK:-0}" == 1 ]] && quick=-Q
    for scenario in default noautocreate; do
        nums="$(python3 "$HELPER" rdk-tests "$t/test.c" "$scenario")"
        if [[ -n "${RDK_TESTS:-}" ]]; then
            nums="$(for num in $nums; do [[ " $RDK_TESTS " == *" $num "* ]] && echo "$num"; done)"
        fi
        [[ -n "$nums" ]] || continue
        if [[ $scenario == default ]]; then
            start_broker rdk-default listeners=PLAINTEXT://127.0.0.1:0 num.partitions=4 auto.create.topics.enable=true || return
        else
            start_broker rdk-noautocreate listeners=PLAINTEXT://127.0.0.1:0 num.partitions=4 auto.create.topics.enable=false || return
        fi
        port=$BROKER_PORT
        logdir="$WORK/librdkafka/$scenario"; mkdir -p "$logdir"
        conf="$logdir/test.conf"
        # as librdkafka's trivup harness writes it (tests/LibrdkafkaTestApp.py)
        printf '%s\n' "broker.address.family=v4" "test.timeout.multiplier=2" \
            "bootstrap.servers=127.0.0.1:$port" "security.protocol=PLAINTEXT" >"$conf"
        say "librdkafka scenario $scenario: $(echo $nums | wc -w) test numbers against 127.0.0.1:$port"
        for num in $nums; do
            local t0=$SECONDS attempt
            for attempt in 1 2; do  # a second try only if something outside sent SIGTERM (exit 143)
                # (braces + 2>/dev/null: no "Aborted" job notice from bash when test-runner aborts)
                { ( cd "$t" && env TESTS="$num" TEST_SCENARIO="$scenario" RDKAFKA_TEST_CONF="$conf" \
                    TEST_KAFKA_VERSION="$RDK_KAFKA_VERSION" KAFKA_PATH="$SHIM" \
                    BROKERS="127.0.0.1:$port" BROKER_ADDRESS_1="PLAINTEXT://127.0.0.1:$port" \
                    RDKAFKA_GITVER="$ver" LD_LIBRARY_PATH="../src:../src-cpp" \
                    timeout -k 10 "${RDK_TEST_TIMEOUT:-1800}" ./test-runner -p1 -K -L -E $quick ) \
                    >"$logdir/$num.log" 2>&1; } 2>/dev/null
                echo $? >"$logdir/$num.rc"
                [[ "$(cat "$logdir/$num.rc")" == 143 && $attempt == 1 ]] || break
                echo "  $num: terminated from outside (SIGTERM), running it again"
            done
            echo "  $num: exit $(cat "$logdir/$num.rc") in $((SECONDS - t0))s"
        done
        python3 "$HELPER" rdk-results "$t/test.c" "$scenario" "$logdir" "$logdir/results.tsv"
        if [[ -n "${RDK_TESTS:-}" ]]; then  # keep only the selected numbers
            grep -E "^($(echo $nums | tr ' ' '|'))_" "$logdir/results.tsv" >"$logdir/r.tmp"; mv "$logdir/r.tmp" "$logdir/results.tsv"
        fi
        RESULTS+=("librdkafka $ver, scenario $scenario (TEST_KAFKA_VERSION=$RDK_KAFKA_VERSION${quick:+, quick mode})|$logdir/results.tsv")
        stop_brokers
    done
}

# ---- kafka-python
run_kafka_python() {
    local src="$KAFKA_PYTHON_SRC"
    [[ -d "$src/test/integration" ]] || die "$src is not a kafka-python checkout (no test/integration)"
    local ver
    ver="$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$src/kafka/version.py")"
    if [[ ! -x "$VENV/bin/pytest" ]]; then
        say "creating $VENV (pytest and kafka-python's test extras from PyPI)"
        python3 -m venv "$VENV" && "$VENV/bin/pip" install -q pytest pytest-mock pytest-timeout \
            lz4 python-snappy zstandard crc32c xxhash || die "venv setup failed"
    fi
    local template="$src/servers/$KP_KAFKA_VERSION/resources/kafka.properties"
    [[ -f "$template" ]] || template="$src/servers/resources/default/kafka.properties"
    local cport props=()
    cport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    mapfile -t props < <(python3 "$HELPER" kp-render "$template" "$WORK/kafka-python-broker" "$cport")
    start_broker kafka-python-broker "${props[@]}" || return
    local port=$BROKER_PORT logdir="$WORK/kafka-python"
    mkdir -p "$logdir"
    say "kafka-python $ver: pytest test/integration against 127.0.0.1:$port (log $logdir/pytest.log)"
    # shellcheck disable=SC2086
    ( cd "$src" && env KAFKA_URI="kafka://127.0.0.1:$port" KAFKA_VERSION="$KP_KAFKA_VERSION" \
        KAFKA_ROOT="$SHIM" PYTHONPATH="$src" \
        timeout -k 10 "${KP_TIMEOUT:-2400}" "$VENV/bin/pytest" -p no:cacheprovider -o log_level=INFO \
        --junitxml="$logdir/junit.xml" -rfEs test/integration ${KP_PYTEST_ARGS:-} "${KP_ARGS[@]}" ) >"$logdir/pytest.log" 2>&1
    echo $? >"$logdir/rc"
    tail -1 "$logdir/pytest.log"
    if [[ -f "$logdir/junit.xml" ]]; then
        python3 "$HELPER" kp-results "$logdir/junit.xml" "$logdir/results.tsv"
    else
        printf 'pytest\tFAILED\tno junit report (exit %s); see %s\n' "$(cat "$logdir/rc")" "$logdir/pytest.log" >"$logdir/results.tsv"
    fi
    RESULTS+=("kafka-python $ver, test/integration (KAFKA_VERSION=$KP_KAFKA_VERSION)|$logdir/results.tsv")
    stop_brokers
}

[[ -n "$LIBRDKAFKA_SRC" ]] && run_librdkafka
[[ -n "$KAFKA_PYTHON_SRC" ]] && run_kafka_python

# ---- summary
tp=0; tf=0; ts=0
{
    echo
    echo "==== third-party suites against gregor $GREGOR_REV ($GREGOR_BIN), $((SECONDS - START))s"
    for r in "${RESULTS[@]}"; do
        label="${r%%|*}"; tsv="${r#*|}"
        read -r p f s < <(python3 "$HELPER" summary "$tsv")
        tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
        echo "$label: $p passed, $f failed, $s skipped"
        awk -F'\t' '$2 == "FAILED" { r = $3; if (length(r) > 160) r = substr(r, 1, 160) "..."; print "  FAILED " $1 ": " r }' "$tsv"
    done
    if [[ ${#DROPPED_KEYS[@]} -gt 0 ]]; then
        echo "broker config keys refused at start (dropped): ${DROPPED_KEYS[*]}"
    fi
    echo "suites: $tp passed, $tf failed, $ts skipped"
} >"$WORK/summary.txt"
cat "$WORK/summary.txt"
echo "(summary in $WORK/summary.txt; per-test logs under $WORK)"
[[ $tf -eq 0 ]]
