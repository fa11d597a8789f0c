"""Restart with thousands of partitions (issue 13), seen from confluent-kafka: every
partition readable and writable after a SIGTERM restart and after a kill -9, and a clean
start opening no segment file (idle partitions hold no descriptor). A clean stop leaves one
clean-shutdown marker in the log dir (none per partition) and the start removes it, so a
kill -9 after a clean start recovers from the recovery points.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from compat_util import ck_admin
from test_lazy_segments import fds_under

TOPICS = 20
PER_TOPIC = 100  # 2,000 partitions
DEADLINE_S = 240.0
LOG_DIR_MARKER = ".gregor_cleanshutdown"
PARTITION_MARKER = ".clean_shutdown"


def per_partition_markers(log_dir) -> int:
    """Partition logs with a marker of their own (the metadata log, a single log closed
    on its own, keeps its per-log marker)."""
    return sum(1 for d in log_dir.iterdir()
               if d.name != "__cluster_metadata-0" and (d / PARTITION_MARKER).exists())


def topic_names(tag: str) -> list[str]:
    return [f"{tag}-{i:02d}" for i in range(TOPICS)]


def create(bootstrap: str, topics: list[str]) -> None:
    admin = ck_admin(bootstrap)
    for i in range(0, len(topics), 5):
        fs = admin.create_topics([NewTopic(t, PER_TOPIC, 1) for t in topics[i:i + 5]],
                                 operation_timeout=120)
        for f in fs.values():
            f.result(timeout=DEADLINE_S)


def produce_round(bootstrap: str, topics: list[str], rnd: int) -> None:
    """One record per partition, value "<topic>/<partition>/<round>"; all delivered."""
    errors = []
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                     "enable.idempotence": True, "message.timeout.ms": int(DEADLINE_S * 1000)})
    for t in topics:
        for p in range(PER_TOPIC):
            prod.produce(t, value=f"{t}/{p}/{rnd}".encode(), partition=p,
                         on_delivery=lambda err, msg: err and errors.append(err))
            prod.poll(0)
    assert prod.flush(DEADLINE_S) == 0
    assert not errors, errors[:5]


def read_everything(bootstrap: str, topics: list[str], rounds: int) -> None:
    """Reads every partition from offset 0 and checks it holds exactly rounds 0..rounds-1."""
    want = {(t, p): [f"{t}/{p}/{r}".encode() for r in range(rounds)]
            for t in topics for p in range(PER_TOPIC)}
    got: dict[tuple[str, int], list[bytes]] = {k: [] for k in want}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "restart-check",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in want])
    n, total = 0, len(want) * rounds
    deadline = time.monotonic() + DEADLINE_S
    try:
        while n < total:
            assert time.monotonic() < deadline, f"read {n} of {total} records"
            for m in c.consume(num_messages=10_000, timeout=1.0):
                if m.error() is not None:
                    continue
                got[(m.topic(), m.partition())].append(m.value())
                n += 1
    finally:
        c.close()
    bad = [(k, got[k]) for k in want if got[k] != want[k]]
    assert not bad, bad[:5]


def test_thousands_of_partitions_survive_sigterm_and_kill9_restarts(broker):
    topics = topic_names("rs")
    create(broker.bootstrap, topics)
    produce_round(broker.bootstrap, topics, 0)

    # A stop syncs the log dir's filesystem (syncfs), so it waits for every
    # dirty page on it, other processes' too: under parallel builds a stop of
    # 2,000 freshly written partitions was seen over 15 s. Exiting 0 is what is
    # checked here; the time goes to bench/restart_scale.py.
    broker.stop_timeout = 120.0
    broker.stop()  # SIGTERM, must exit 0 within the stop timeout
    # One marker for the log dir listing every partition, none per partition.
    listed = (broker.log_dir / LOG_DIR_MARKER).read_text().splitlines()[1:]
    assert {line.split()[0] for line in listed} >= {f"{t}-{p}" for t in topics
                                                     for p in range(PER_TOPIC)}
    assert per_partition_markers(broker.log_dir) == 0
    broker.start()
    assert not (broker.log_dir / LOG_DIR_MARKER).exists(), "the start removes the marker"
    # A clean start opens no segment: the partitions' directories hold no descriptor.
    assert fds_under(broker.proc.pid, broker.log_dir / f"{topics[0]}-0") == 0
    read_everything(broker.bootstrap, topics, 1)
    produce_round(broker.bootstrap, topics, 1)
    read_everything(broker.bootstrap, topics, 2)

    broker.kill9()  # after a clean start: no marker, so recovery from the recovery points
    assert not (broker.log_dir / LOG_DIR_MARKER).exists()
    broker.restart()
    read_everything(broker.bootstrap, topics, 2)
    produce_round(broker.bootstrap, topics, 2)
    broker.restart()
    read_everything(broker.bootstrap, topics, 3)
