"""The listener opens while the logs load (issue 13), seen from confluent-kafka.

A restart holds its log load on a test-only gate (the file named by
GREGOR_TEST_LOG_LOAD_GATE must exist before any log loads), so the test acts
while the broker is loading without racing it: the listener is open, /readyz
says "loading logs: 0 of N", Metadata answers (the partitions without a
leader, as during an election), and a producer and a group consumer started
then are held off with retriable errors. Once the gate opens, every record is
delivered once, and the consumer resumes at the offsets its group committed
before the restart (never reset, never a stale answer from a coordinator
whose partition had not loaded).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from compat_util import ck_admin, ck_create_topic, wait_until
from test_metrics import HTTP, HTTP_RE, get

GATE_ENV = "GREGOR_TEST_LOG_LOAD_GATE"
PARTITIONS = 4
PER_ROUND = 25  # records per partition and round
COMMITTED = 10  # the group's committed offset in every partition
GROUP = "loading-group"
TIMEOUT = 60.0

pytestmark = [pytest.mark.timeout(240), pytest.mark.broker_overrides(HTTP)]


class Round:
    """One round of records (PER_ROUND per partition) queued on a producer; the
    caller decides when to wait for the deliveries."""

    def __init__(self, bootstrap: str, topic: str, rnd: int):
        self.errors: list = []
        self.delivered = 0
        self.prod = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                              "enable.idempotence": True, "linger.ms": 5,
                              "message.timeout.ms": int(TIMEOUT * 1000 * 2)})
        for p in range(PARTITIONS):
            for i in range(PER_ROUND):
                self.prod.produce(topic, value=f"{rnd}/{p}/{i}".encode(), partition=p,
                                  on_delivery=self._on_delivery)

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.delivered += 1

    def wait(self) -> None:
        assert self.prod.flush(TIMEOUT) == 0, "records left undelivered"
        assert not self.errors, self.errors[:5]
        assert self.delivered == PARTITIONS * PER_ROUND


def http_addr(broker) -> str:
    """The HTTP listener of the running incarnation (its line is printed right
    after the Kafka listener's, which `start` waited for)."""
    def found():
        for line in reversed(broker.stdout_lines):
            m = HTTP_RE.match(line)
            if m:
                return m.group(1)
            if line.startswith("gregor: listening on"):
                return None  # this incarnation's HTTP line is not there yet
        return None
    return wait_until(found, TIMEOUT, "the `gregor: http listening on` line", interval=0.01)


def commit(bootstrap: str, topic: str) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, COMMITTED) for p in range(PARTITIONS)],
                 asynchronous=False)
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=TIMEOUT)
        assert [tp.offset for tp in got] == [COMMITTED] * PARTITIONS
    finally:
        c.close()


@pytest.mark.parametrize("stop", ["sigterm", "kill9"])
def test_clients_retry_while_logs_load(broker, topic, tmp_path, monkeypatch, stop):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    Round(broker.bootstrap, topic, 0).wait()
    commit(broker.bootstrap, topic)

    if stop == "kill9":
        broker.kill9()  # the restart recovers the active segments
    else:
        broker.stop()
    gate = tmp_path / "release-log-load"
    monkeypatch.setenv(GATE_ENV, str(gate))
    broker.start()  # returns on the listening line: the load is held
    try:
        held_while_loading(broker, topic, gate)
    finally:
        gate.touch()  # a failure must not leave the load (and the stop) waiting


def held_while_loading(broker, topic, gate) -> None:
    addr = http_addr(broker)

    status, _, text = get(addr, "/readyz")
    assert status == 503, text
    # Every partition log found on disk, none loaded: the topic's and the
    # offsets topic's (created by the commit).
    assert text.startswith("not ready: loading logs: 0 of "), text
    assert int(text.split(" of ")[1]) >= PARTITIONS + 1, text
    status, _, text = get(addr, "/healthz")
    assert status == 200, text

    # Metadata answers: the topic is there, its partitions have no leader yet.
    md = ck_admin(broker.bootstrap).list_topics(topic, timeout=TIMEOUT)
    parts = md.topics[topic].partitions
    assert sorted(parts) == list(range(PARTITIONS))
    assert all(p.leader == -1 for p in parts.values()), {i: p.leader for i, p in parts.items()}

    # Issued while loading: held off, nothing fails.
    rnd = Round(broker.bootstrap, topic, 1)
    cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": GROUP,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "fetch.wait.max.ms": 50, "session.timeout.ms": 10000})
    cons.subscribe([topic])
    got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    errors = []

    def take(timeout: float) -> None:
        for m in cons.consume(num_messages=1000, timeout=timeout):
            if m.error() is not None:
                errors.append(m.error())
                continue
            got[m.partition()].append((m.offset(), m.value()))

    # The consumer's group requests reach the coordinator, which answers
    # COORDINATOR_LOAD_IN_PROGRESS while its partition is held: polled until
    # the broker has counted one (the gate holds until then, so no race).
    def load_in_progress_answered() -> bool:
        rnd.prod.poll(0.1)
        take(0.2)
        status, _, text = get(addr, "/metrics")
        assert status == 200, text
        return any(line.startswith("kafka_network_requestmetrics_errors_total")
                   and 'error="COORDINATOR_LOAD_IN_PROGRESS"' in line
                   for line in text.splitlines())
    wait_until(load_in_progress_answered, TIMEOUT,
               "a group request answered COORDINATOR_LOAD_IN_PROGRESS", interval=0.05)
    assert rnd.delivered == 0 and not rnd.errors, (rnd.delivered, rnd.errors[:5])
    assert all(not v for v in got.values()), "a record was served while loading"
    status, _, text = get(addr, "/readyz")
    assert status == 503 and "loading logs: 0 of " in text, text

    gate.touch()
    rnd.wait()
    want = {p: [(o, f"{o // PER_ROUND}/{p}/{o % PER_ROUND}".encode())
                for o in range(COMMITTED, 2 * PER_ROUND)] for p in range(PARTITIONS)}
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(len(got[p]) < len(want[p]) for p in got):
            assert time.monotonic() < deadline, {p: len(v) for p, v in got.items()}
            take(1.0)
    finally:
        cons.close()
    # From the committed offsets on, each record once: never reset to the
    # start or the end.
    assert got == want, {p: got[p][:3] for p in got}
    fatal = [e for e in errors if e.fatal()]
    assert not fatal, fatal

    wait_until(lambda: get(addr, "/readyz")[0] == 200, TIMEOUT, "/readyz to say ready")
