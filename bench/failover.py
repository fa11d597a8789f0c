"""Failover benchmark (not a test): a 3-node Gregor cluster on loopback,
driven with confluent-kafka (librdkafka).

Measures, each `--repeat` times (min / median / max):

1. produce stall after kill -9 of a partition leader: from the kill to the
   first acknowledgement (acks=all, idempotent) of a record sent after it;
2. the same after SIGTERM of the leader (a controlled shutdown);
3. after kill -9 of the active controller (the quorum's LeaderId): time until
   a CreateTopics (a new client per try, 2 s per try) succeeds again.

Then acks=all throughput with 100-byte records, RF 3 (min.insync.replicas=2)
against RF 1: as fast as the client can send for `--seconds` (records/s,
MB/s), and at a fixed `--rate` for `--seconds` (p50/p99 from produce() to the
delivery report, librdkafka's own per-message latency).

The killed node is restarted between repetitions and each repetition uses a
new topic, so every fault hits a full cluster. Every wait is bounded; a
repetition that does not recover in time is reported as a timeout.

    .test-deps/venv/bin/python bench/failover.py [--repeat 5] [--seconds 10] [--rate 5000]

Binary: $GREGOR_BIN, else target/release/gregor (built with
`cargo build --release -p gregor-cli` if missing; $CARGO_TARGET_DIR honoured).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "compat"))

from cluster_util import RDKAFKA_LOGGER, Cluster, SeqProducer, wait_for  # noqa: E402

RECOVERY_TIMEOUT_S = 60.0


def release_binary() -> Path:
    if os.environ.get("GREGOR_BIN"):
        return Path(os.environ["GREGOR_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "release" / "gregor"
    if not binary.exists():
        print(f"{binary} missing: cargo build --release -p gregor-cli", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "gregor-cli"], cwd=REPO, check=True)
    return binary


def fmt_stats(name: str, values: list[float | None], unit: str = "s") -> str:
    ok = [v for v in values if v is not None]
    timeouts = len(values) - len(ok)
    if not ok:
        return f"{name:<50} all {len(values)} timed out"
    s = (f"{name:<50} min {min(ok):7.3f}{unit}  median {statistics.median(ok):7.3f}{unit}  "
         f"max {max(ok):7.3f}{unit}  (n={len(ok)})")
    return s + (f"  + {timeouts} timed out (>{RECOVERY_TIMEOUT_S:.0f}s)" if timeouts else "")


def new_topic(cluster: Cluster, prefix: str, partitions: int = 1, rf: int = 3,
              assignment: list[list[int]] | None = None) -> str:
    """Creates a topic, retrying (bounded) while a just-restarted broker is listed
    in Metadata but not yet counted by the node that decides the placement."""
    deadline = time.monotonic() + 30
    while True:
        topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
        try:
            cluster.create_topic(topic, partitions, rf, {"min.insync.replicas": "2" if rf >= 3 else "1"},
                                 assignment=assignment)
            return topic
        except Exception as e:  # noqa: BLE001 - retried until the deadline, then raised
            if time.monotonic() > deadline or "INVALID_REPLICATION_FACTOR" not in str(e):
                raise
            time.sleep(0.2)


START_ATTEMPTS = 3


def start_cluster(work: Path, binary: Path, attempt_log: list[str]) -> Cluster:
    """A fresh 3-node cluster; a start that never elects a quorum leader (seen
    with gregor's Raft timers) is counted and retried with a new cluster."""
    for attempt in range(1, START_ATTEMPTS + 1):
        cluster = Cluster(work / f"cluster-{len(attempt_log) + 1}", 3, binary=binary)
        try:
            return cluster.start()
        except AssertionError as e:
            attempt_log.append(str(e).splitlines()[0])
            print(f"  cluster start failed ({attempt_log[-1]}); starting a new cluster", flush=True)
            cluster.stop(timeout=5)
    raise SystemExit(f"no cluster after {START_ATTEMPTS} starts: {attempt_log}")


def heal(cluster: Cluster) -> bool:
    """Restarts every node that is down and waits until all are registered brokers
    under one quorum leader. False if that does not happen in time."""
    try:
        for node in cluster.nodes:
            if not node.running():
                node.start()
        cluster.wait_ready(RECOVERY_TIMEOUT_S)
        return True
    except AssertionError as e:
        print(f"  the cluster did not heal: {str(e).splitlines()[0]}", flush=True)
        return False


def leader_stall(cluster: Cluster, fault: str) -> float | None:
    """One repetition of scenario 1 (fault="kill9") or 2 (fault="sigterm"). The
    leader is placed off the active controller (scenario 3 is that fault), by
    naming it first in an explicit replica assignment."""
    controller = cluster.active_controller(RECOVERY_TIMEOUT_S)
    leader = min(n.id for n in cluster.nodes if n.id != controller)
    order = [leader] + [n.id for n in cluster.nodes if n.id != leader]
    topic = new_topic(cluster, f"failover-{fault}", assignment=[order])
    if cluster.wait_for_leader(topic, 0) != leader:
        print(f"  {topic}[0] is not led by {leader}, the first of {order}", flush=True)
    producer = SeqProducer(cluster.bootstrap, topic, 1, rate=1000).start()
    try:
        producer.wait_acks(200, 30)
        t = time.monotonic()
        if fault == "kill9":
            cluster.node(leader).kill9()
        else:
            cluster.node(leader).terminate()
        try:
            producer.wait_acks(1, RECOVERY_TIMEOUT_S, sent_after=t)
        except AssertionError as e:
            print(f"  {fault} of leader {leader}: {str(e).splitlines()[0]}", flush=True)
            return None
        return producer.first_ack_sent_after(t).acked_at - t
    finally:
        producer.stop(flush_timeout=10)


def controller_stall(cluster: Cluster) -> float | None:
    """One repetition of scenario 3: kill -9 the active controller, then CreateTopics
    (a new name and client each try, 2 s per try, so the figure is good to ~2 s)
    until one succeeds."""
    from confluent_kafka.admin import AdminClient, NewTopic
    controller = wait_for(cluster.quorum_leader, RECOVERY_TIMEOUT_S, "a quorum leader")
    t = time.monotonic()
    cluster.node(controller).kill9()
    last = None
    while time.monotonic() - t < RECOVERY_TIMEOUT_S:
        name = f"failover-ctl-{uuid.uuid4().hex[:8]}"
        # A new client per try, as a tool run would be: a long-lived librdkafka admin client
        # was seen waiting for the dead controller for over a minute after a new one was elected.
        admin = AdminClient({"bootstrap.servers": cluster.live_bootstrap(), "logger": RDKAFKA_LOGGER})
        try:
            admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=2, request_timeout=2)[name].result(4)
            return time.monotonic() - t
        except Exception as e:  # noqa: BLE001 - no controller yet: try again
            last = e
            time.sleep(0.05)
    print(f"  kill -9 of controller {controller}: CreateTopics still failing after {RECOVERY_TIMEOUT_S:.0f}s "
          f"(last error: {last}; quorum leader now: {cluster.quorum_leader()})", flush=True)
    return None


def warm_up(p, topic: str) -> None:
    """Connections, metadata and producer id in place before the clock starts."""
    for i in range(300):
        p.produce(topic, b"warm-up", partition=i % 3)
    remaining = p.flush(30)
    assert remaining == 0, f"{remaining} warm-up records not delivered within 30 s"


def throughput(cluster: Cluster, rf: int, seconds: float) -> tuple[float, float]:
    """acks=all, as fast as the client sends; returns (records/s, MB/s) of acknowledged records."""
    from confluent_kafka import Producer
    topic = new_topic(cluster, f"tput-rf{rf}", partitions=3, rf=rf)
    acked = [0]

    def dr(err, _msg):
        if err is None:
            acked[0] += 1
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "batch.size": 65536, "on_delivery": dr, "logger": RDKAFKA_LOGGER})
    value = b"x" * 100
    warm_up(p, topic)
    acked[0] = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        for _ in range(1000):
            try:
                p.produce(topic, value)
            except BufferError:
                p.poll(0.005)
                break
        p.poll(0)
    p.flush(30)
    took = time.monotonic() - t0
    return acked[0] / took, acked[0] * 100 / took / 1e6


def latency(cluster: Cluster, rf: int, seconds: float, rate: float) -> tuple[float, float, int]:
    """acks=all at a fixed rate; returns (p50 ms, p99 ms, records)."""
    from confluent_kafka import Producer
    topic = new_topic(cluster, f"lat-rf{rf}", partitions=3, rf=rf)
    lat: list[float] = []

    def dr(err, msg):
        if err is None:
            lat.append(msg.latency())
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 1, "on_delivery": dr, "logger": RDKAFKA_LOGGER})
    value = b"x" * 100
    warm_up(p, topic)
    lat.clear()
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < seconds:
        due = int((time.monotonic() - t0) * rate)
        while sent < due:
            p.produce(topic, value)
            sent += 1
        p.poll(0.001)
    p.flush(30)
    lat.sort()
    if not lat:
        return float("nan"), float("nan"), 0
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
    return q(0.50), q(0.99), len(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each throughput/latency run")
    ap.add_argument("--rate", type=float, default=5000.0, help="records/s of the latency runs")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()

    # librdkafka's connection errors to killed nodes are expected here; keep the output to the numbers.
    logging.getLogger("rdkafka").setLevel(logging.CRITICAL)
    binary = release_binary()
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print(f"machine: {cores} cores ({usable} usable by this process), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; 3 nodes + the client share them")
    print(f"binary: {binary}", flush=True)

    failed_starts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gregor-failover-") as work:
        cluster = start_cluster(Path(work), binary, failed_starts)
        try:
            results: dict[str, list[float | None]] = {}
            for name, run in [
                ("kill -9 leader (not controller): produce stall", lambda c: leader_stall(c, "kill9")),
                ("SIGTERM leader (not controller): produce stall", lambda c: leader_stall(c, "sigterm")),
                ("kill -9 controller: CreateTopics stall", controller_stall),
            ]:
                results[name] = []
                for i in range(args.repeat):
                    v = run(cluster)
                    results[name].append(v)
                    print(f"  {name} #{i + 1}: {'timeout' if v is None else f'{v:.3f}s'}", flush=True)
                    if not heal(cluster):
                        for problem in cluster.stop(timeout=5):
                            print(f"  stop: {problem}")
                        cluster = start_cluster(Path(work), binary, failed_starts)
            print()
            print(f"cores: {cores}; cluster starts that never elected a quorum leader: {len(failed_starts)}")
            for name, values in results.items():
                print(fmt_stats(name, values))

            if not args.skip_throughput:
                print()
                print(f"acks=all, 100 B records, 3 partitions, idempotent producer (cores: {cores})")
                for rf in (3, 1):
                    rps, mbps = throughput(cluster, rf, args.seconds)
                    p50, p99, n = latency(cluster, rf, args.seconds, args.rate)
                    print(f"  RF {rf}: {rps:>10,.0f} records/s {mbps:7.2f} MB/s (max rate, {args.seconds:.0f}s); "
                          f"at {args.rate:,.0f} rec/s: p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({n} records)",
                          flush=True)
        finally:
            for problem in cluster.stop():
                print(f"teardown: {problem}")

if __name__ == "__main__":
    main()
