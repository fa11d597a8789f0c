#!/usr/bin/env bash
# A local multi-node Gregor cluster: N combined (broker + controller) nodes in
# the background, each with its own log dir, for trying failover by hand.
#
#   scripts/cluster.sh start [N=3] [DIR=./gregor-cluster]   format (first time only), start, wait for a quorum leader and every broker
#   scripts/cluster.sh stop [DIR]                           SIGTERM every node, wait for exit
#   scripts/cluster.sh status [DIR]                         pids, ports, quorum leader
#   scripts/cluster.sh kill9 ID [DIR]                       SIGKILL node ID (a crash)
#   scripts/cluster.sh restart ID [DIR]                     SIGTERM node ID if running, start it again
#
# Ports: node i (1..N) serves clients on PLAINTEXT://127.0.0.1:$((9092 + i - 1))
# and Raft on CONTROLLER://127.0.0.1:$((9192 + i - 1)); move them with
# KAFKA_PORT_BASE / CONTROLLER_PORT_BASE (read at the first start and kept in
# DIR/cluster.env, as N is). Clients bootstrap from 127.0.0.1:9092,127.0.0.1:9093,...
#
# DIR layout: cluster.env (N, ports, cluster id); node<i>/server.properties,
# node<i>/data (log dir), node<i>/pid, node<i>/stdout.log (this incarnation's
# stdout: the "gregor: listening on" line), node<i>/gregor.log (stderr of every
# incarnation, appended).
#
# Binary: $GREGOR_BIN, else target/release/gregor (under $CARGO_TARGET_DIR if
# set), built with `cargo build --release -p gregor-cli` when missing.
# DIR may also come from $GREGOR_CLUSTER_DIR. Every wait is bounded
# (START_TIMEOUT=60 s for the listening lines, STOP_TIMEOUT=30 s per SIGTERM).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
START_TIMEOUT="${START_TIMEOUT:-60}"
STOP_TIMEOUT="${STOP_TIMEOUT:-30}"
DEFAULT_DIR="${GREGOR_CLUSTER_DIR:-./gregor-cluster}"

die() { echo "cluster.sh: $*" >&2; exit 1; }
usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

gregor_bin() {
    if [[ -n "${GREGOR_BIN:-}" ]]; then
        [[ -x "$GREGOR_BIN" ]] || die "GREGOR_BIN=$GREGOR_BIN is not an executable"
        echo "$GREGOR_BIN"; return
    fi
    local bin="${CARGO_TARGET_DIR:-$REPO/target}/release/gregor"
    if [[ ! -x "$bin" ]]; then
        echo "cluster.sh: $bin missing; cargo build --release -p gregor-cli" >&2
        (cd "$REPO" && cargo build --release -p gregor-cli >&2) || die "cargo build failed"
    fi
    echo "$bin"
}

load_env() {  # DIR
    [[ -f "$1/cluster.env" ]] || die "$1/cluster.env not found: no cluster started in $1"
    # shellcheck disable=SC1091
    source "$1/cluster.env"
}

kafka_port() { echo $((KAFKA_PORT_BASE + $1 - 1)); }
controller_port() { echo $((CONTROLLER_PORT_BASE + $1 - 1)); }

# The pid of node ID if that process is alive and is a gregor server (not a reused pid).
node_pid() {  # DIR ID
    local f="$1/node$2/pid" pid
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "server $1/node$2/server.properties" || return 1
    echo "$pid"
}

write_config() {  # DIR ID
    local dir="$1" i="$2" voters="" j
    for ((j = 1; j <= N; j++)); do
        voters+="${voters:+,}$j@127.0.0.1:$(controller_port "$j")"
    done
    mkdir -p "$dir/node$i"
    cat >"$dir/node$i/server.properties" <<EOF
node.id=$i
process.roles=broker,controller
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$i"),CONTROLLER://127.0.0.1:$(controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$i")
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.quorum.voters=$voters
log.dirs=$dir/node$i/data
EOF
}

spawn() {  # DIR ID
    local dir="$1" i="$2" bin
    bin="$(gregor_bin)"
    echo "==== $(date '+%F %T') starting node $i" >>"$dir/node$i/gregor.log"
    # setsid: the node outlives this shell and does not get its terminal's signals.
    setsid "$bin" server "$dir/node$i/server.properties" \
        </dev/null >"$dir/node$i/stdout.log" 2>>"$dir/node$i/gregor.log" &
    echo $! >"$dir/node$i/pid"
}

# Waits (bounded) until every listed node has printed its listening line.
wait_listening() {  # DIR ID...
    local dir="$1"; shift
    local deadline=$((SECONDS + START_TIMEOUT)) i pending
    while true; do
        pending=()
        for i in "$@"; do
            if grep -q "^gregor: listening on" "$dir/node$i/stdout.log" 2>/dev/null; then
                continue
            fi
            if ! node_pid "$dir" "$i" >/dev/null; then
                echo "cluster.sh: node $i exited before listening; last lines of $dir/node$i/gregor.log:" >&2
                tail -n 20 "$dir/node$i/gregor.log" >&2
                exit 1
            fi
            pending+=("$i")
        done
        ((${#pending[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            die "nodes ${pending[*]} did not print their listening line within ${START_TIMEOUT}s (see $dir/node*/gregor.log)"
        fi
        sleep 0.2
    done
}

# Waits (bounded) for a SIGTERMed node to exit; SIGKILL if it does not.
wait_exit() {  # DIR ID PID
    local dir="$1" i="$2" pid="$3" deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "node $i (pid $pid): no exit ${STOP_TIMEOUT}s after SIGTERM; SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$dir/node$i/pid"
    echo "node $i (pid $pid): stopped"
}

stop_node() {  # DIR ID
    local pid
    pid="$(node_pid "$1" "$2")" || { echo "node $2: not running"; return 0; }
    kill -TERM "$pid"
    wait_exit "$1" "$2" "$pid"
}

cmd_start() {
    local n="${1:-3}" dir="${2:-$DEFAULT_DIR}" bin i started=()
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number, got '$n'"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    bin="$(gregor_bin)"
    DIR_FOR_MSG="$dir"
    if [[ -f "$dir/cluster.env" ]]; then
        load_env "$dir"
        [[ "$N" == "$n" ]] || die "$dir holds a $N-node cluster; start it with N=$N or use another DIR"
    else
        N="$n"
        KAFKA_PORT_BASE="${KAFKA_PORT_BASE:-9092}"
        CONTROLLER_PORT_BASE="${CONTROLLER_PORT_BASE:-9192}"
        CLUSTER_ID="$("$bin" storage random-uuid)"
        printf 'N=%s\nKAFKA_PORT_BASE=%s\nCONTROLLER_PORT_BASE=%s\nCLUSTER_ID=%s\n' \
            "$N" "$KAFKA_PORT_BASE" "$CONTROLLER_PORT_BASE" "$CLUSTER_ID" >"$dir/cluster.env"
    fi
    for ((i = 1; i <= N; i++)); do
        write_config "$dir" "$i"
        if [[ ! -f "$dir/node$i/data/meta.properties" ]]; then
            "$bin" storage format -t "$CLUSTER_ID" -c "$dir/node$i/server.properties" >/dev/null \
                || die "formatting node $i failed"
        fi
    done
    # All at once: a node's listening line waits for the quorum to elect a leader.
    for ((i = 1; i <= N; i++)); do
        if node_pid "$dir" "$i" >/dev/null; then
            echo "node $i: already running"
        else
            spawn "$dir" "$i"
            started+=("$i")
        fi
    done
    ((${#started[@]} == 0)) || wait_listening "$dir" "${started[@]}"
    local boot=""
    for ((i = 1; i <= N; i++)); do boot+="${boot:+,}127.0.0.1:$(kafka_port "$i")"; done
    wait_quorum "$boot"
    wait_brokers "$boot" "$N"
    echo "cluster of $N nodes up in $dir; bootstrap: $boot"
}

# A node prints its listening line before the quorum has elected a leader;
# wait (bounded) until DescribeQuorum names one.
wait_quorum() {  # BOOTSTRAP
    local deadline=$((SECONDS + START_TIMEOUT)) bin out
    bin="$(gregor_bin)"
    while true; do
        if out="$(timeout 15 "$bin" metadata-quorum --bootstrap-server "$1" describe --status 2>&1)"; then
            echo "$out" | grep '^LeaderId:'
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "cluster.sh: no quorum leader within ${START_TIMEOUT}s: $out" >&2
            die "the nodes are still running (see $DIR_FOR_MSG/node*/gregor.log); stop them with: $0 stop $DIR_FOR_MSG"
        fi
        sleep 0.2
    done
}

# Then (bounded) until every node has registered as a live broker and every
# node knows it, so a replication-factor-N topic can be created at once
# (log-dirs asks the brokers DescribeCluster lists).
wait_brokers() {  # BOOTSTRAP N
    local deadline=$((SECONDS + START_TIMEOUT)) bin out n addr fewest
    bin="$(gregor_bin)"
    while true; do
        fewest="$2"
        for addr in ${1//,/ }; do
            out="$(timeout 15 "$bin" log-dirs --bootstrap-server "$addr" --describe 2>&1 || true)"
            n="$(grep -o '"broker":[0-9]*' <<<"$out" | sort -u | wc -l)"
            ((n < fewest)) && fewest="$n"
        done
        ((fewest >= $2)) && return 0
        if ((SECONDS >= deadline)); then
            echo "cluster.sh: a node lists $fewest of $2 brokers after ${START_TIMEOUT}s" >&2
            die "the nodes are still running (see $DIR_FOR_MSG/node*/gregor.log); stop them with: $0 stop $DIR_FOR_MSG"
        fi
        sleep 0.2
    done
}

cmd_stop() {
    local dir="${1:-$DEFAULT_DIR}" i pid ids=() pids=()
    load_env "$dir"
    dir="$(cd "$dir" && pwd)"
    # SIGTERM to all first so the controlled shutdowns overlap, then wait for each.
    for ((i = 1; i <= N; i++)); do
        if pid="$(node_pid "$dir" "$i")"; then
            kill -TERM "$pid"
            ids+=("$i")
            pids+=("$pid")
        fi
    done
    for i in "${!ids[@]}"; do wait_exit "$dir" "${ids[$i]}" "${pids[$i]}"; done
    echo "stopped ${#ids[@]} node(s)"
}

cmd_status() {
    local dir="${1:-$DEFAULT_DIR}" i pid any=""
    load_env "$dir"
    dir="$(cd "$dir" && pwd)"
    for ((i = 1; i <= N; i++)); do
        if pid="$(node_pid "$dir" "$i")"; then
            echo "node $i: running (pid $pid)  PLAINTEXT 127.0.0.1:$(kafka_port "$i")  CONTROLLER 127.0.0.1:$(controller_port "$i")"
            any="${any:+$any,}127.0.0.1:$(kafka_port "$i")"
        else
            echo "node $i: stopped           PLAINTEXT 127.0.0.1:$(kafka_port "$i")  CONTROLLER 127.0.0.1:$(controller_port "$i")"
        fi
    done
    if [[ -n "$any" ]]; then
        timeout 15 "$(gregor_bin)" metadata-quorum --bootstrap-server "$any" describe --status \
            || echo "(metadata-quorum describe failed)"
    fi
}

cmd_kill9() {
    local id="${1:?kill9 needs a node id}" dir="${2:-$DEFAULT_DIR}" pid
    load_env "$dir"
    dir="$(cd "$dir" && pwd)"
    pid="$(node_pid "$dir" "$id")" || die "node $id is not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done  # SIGKILL cannot be refused
    rm -f "$dir/node$id/pid"
    echo "node $id (pid $pid): killed"
}

cmd_restart() {
    local id="${1:?restart needs a node id}" dir="${2:-$DEFAULT_DIR}"
    load_env "$dir"
    dir="$(cd "$dir" && pwd)"
    ((id >= 1 && id <= N)) || die "no node $id in a $N-node cluster"
    stop_node "$dir" "$id"
    spawn "$dir" "$id"
    wait_listening "$dir" "$id"
    echo "node $id: listening on 127.0.0.1:$(kafka_port "$id")"
    DIR_FOR_MSG="$dir"
    wait_quorum "127.0.0.1:$(kafka_port "$id")"
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    kill9) shift; cmd_kill9 "$@" ;;
    restart) shift; cmd_restart "$@" ;;
    *) usage ;;
esac
