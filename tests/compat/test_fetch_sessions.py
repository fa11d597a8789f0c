"""Incremental fetch sessions (KIP-227, issue 13).

- On the wire (Fetch v7, hand-encoded): a full fetch at epoch 0 opens a
  session; incremental fetches answer only partitions with news; a wrong
  epoch is INVALID_FETCH_SESSION_EPOCH, an unknown id
  FETCH_SESSION_ID_NOT_FOUND; forgetting every partition closes the session.
- kafka-python (which runs KIP-227 sessions) consumes a many-partition topic
  through a session, while records keep arriving, and gets every record once,
  in order per partition.
- The Java consumer (sessions, java/JavaFetchSessionClient.java) and
  confluent-kafka (librdkafka fetches without sessions: the same guarantees
  checked on the sessionless path), each subscribed in a group while a
  producer writes to every partition: across CreatePartitions while
  consuming (new partitions join the session after a rebalance), and on a
  3-node cluster across leader moves (the leader of a partition killed, then
  restarted): every record read exactly once, in order per partition.
- The Rust consumer (`gregor console-consumer`, a session per broker) on a
  3-node cluster across a leader killed mid-way: every record once, in order.
"""

from __future__ import annotations

import struct
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from cluster_util import cluster_factory, wait_for  # noqa: F401 - fixture
from compat_util import ck_create_topic, compile_java
from fault_util import RawConn, _str

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaFetchSessionClient.java"

FETCH = 1
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


def _fetch_v7(session_id: int, epoch: int, topic: str, parts: dict[int, int],
              forget: list[int] | None = None) -> bytes:
    """A Fetch v7 body: `parts` maps partition -> fetch offset."""
    body = struct.pack(">iiiibii", -1, 0, 0, 1 << 20, 0, session_id, epoch)
    if parts:
        body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", len(parts))
        for p, off in parts.items():
            body += struct.pack(">iqqi", p, off, -1, 1 << 20)
    else:
        body += struct.pack(">i", 0)
    if forget:
        body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", len(forget))
        body += b"".join(struct.pack(">i", p) for p in forget)
    else:
        body += struct.pack(">i", 0)
    return body


def _answer(r) -> tuple[int, int, dict[int, tuple[int, int, int]]]:
    """(error, session id, {partition: (error, high watermark, record bytes)})."""
    r.take(">i")  # throttle
    err, sid = r.take(">h"), r.take(">i")
    out = {}
    for _ in range(r.take(">i")):
        r.string()
        for _ in range(r.take(">i")):
            p, perr, hw = r.take(">i"), r.take(">h"), r.take(">q")
            r.take(">q"), r.take(">q")  # last stable offset, log start offset
            n_aborted = r.take(">i")
            for _ in range(max(n_aborted, 0)):
                r.take(">q"), r.take(">q")
            size = r.take(">i")
            r.i += max(size, 0)
            out[p] = (perr, hw, max(size, 0))
    return err, sid, out


def _produce(bootstrap: str, topic: str, partitions: list[int]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for part in partitions:
        p.produce(topic, value=b"v", partition=part)
    assert p.flush(30) == 0


def test_incremental_fetch_session_on_the_wire(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 3)
    _produce(broker.bootstrap, topic, [0, 1])
    with RawConn("127.0.0.1", broker.port, timeout=10) as c:
        err, sid, parts = _answer(c.request(FETCH, 7, _fetch_v7(0, 0, topic, {0: 0, 1: 0, 2: 0})))
        assert err == 0 and sid > 0, (err, sid)
        assert sorted(parts) == [0, 1, 2]
        assert parts[0][2] > 0 and parts[1][2] > 0 and parts[2][2] == 0

        # Positions of 0 and 1 move on; nothing new anywhere: an empty answer.
        err, sid2, parts = _answer(c.request(FETCH, 7, _fetch_v7(sid, 1, topic, {0: 1, 1: 1})))
        assert (err, sid2, parts) == (0, sid, {})

        # A record in partition 2 only: only partition 2 is answered.
        _produce(broker.bootstrap, topic, [2])
        err, _, parts = _answer(c.request(FETCH, 7, _fetch_v7(sid, 2, topic, {})))
        assert err == 0 and sorted(parts) == [2] and parts[2][1] == 1 and parts[2][2] > 0

        # The same epoch again is refused; so is an unknown session.
        err, _, parts = _answer(c.request(FETCH, 7, _fetch_v7(sid, 2, topic, {})))
        assert (err, parts) == (INVALID_FETCH_SESSION_EPOCH, {})
        err, _, _ = _answer(c.request(FETCH, 7, _fetch_v7(sid + 1 if sid < 2**31 - 1 else 1, 1, topic, {})))
        assert err == FETCH_SESSION_ID_NOT_FOUND

        # Partition 2 read to its end; then partition 0 gets a record.
        err, _, parts = _answer(c.request(FETCH, 7, _fetch_v7(sid, 3, topic, {2: 1})))
        assert (err, parts) == (0, {})
        _produce(broker.bootstrap, topic, [0])
        err, _, parts = _answer(c.request(FETCH, 7, _fetch_v7(sid, 4, topic, {})))
        assert err == 0 and sorted(parts) == [0] and parts[0][1] == 2

        # Forgetting every partition closes the session: answered sessionless.
        err, sid3, parts = _answer(c.request(FETCH, 7, _fetch_v7(sid, 5, topic, {}, forget=[0, 1, 2])))
        assert (err, sid3) == (0, 0)
        err, _, _ = _answer(c.request(FETCH, 7, _fetch_v7(sid, 6, topic, {})))
        assert err == FETCH_SESSION_ID_NOT_FOUND


def test_kafka_python_consumes_through_a_fetch_session(broker, topic):
    from kafka import KafkaConsumer, TopicPartition

    partitions = 20
    ck_create_topic(broker.bootstrap, topic, partitions)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    sent: dict[int, list[bytes]] = {p: [] for p in range(partitions)}

    def produce_round(tag: int) -> None:
        for p in range(0, partitions, 3 if tag % 2 else 4):
            v = f"{tag}-{p}".encode()
            producer.produce(topic, value=v, partition=p)
            sent[p].append(v)
        assert producer.flush(30) == 0

    produce_round(0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=100,
                             consumer_timeout_ms=1000)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    sessions_seen: set[int] = set()
    deadline = time.monotonic() + 60
    rounds = 1
    try:
        while time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=200).items():
                got[tp.partition].extend(m.value for m in msgs)
            for h in consumer._fetcher._session_handlers.values():
                if h.next_metadata.session_id:
                    sessions_seen.add(h.next_metadata.session_id)
            if got == sent:
                if rounds == 5:
                    break
                produce_round(rounds)
                rounds += 1
        assert got == sent, {p: (len(got[p]), len(sent[p])) for p in range(partitions) if got[p] != sent[p]}
        assert rounds == 5
        # The consumer ran incremental fetches in a session the broker opened.
        assert sessions_seen, "kafka-python never got a fetch session"
    finally:
        consumer.close()


@pytest.mark.broker_overrides({"max.incremental.fetch.session.cache.slots": "0"})
def test_no_slots_means_no_sessions(broker, topic):
    """max.incremental.fetch.session.cache.slots=0: every fetch is full."""
    ck_create_topic(broker.bootstrap, topic, 1)
    with RawConn("127.0.0.1", broker.port, timeout=10) as c:
        err, sid, parts = _answer(c.request(FETCH, 7, _fetch_v7(0, 0, topic, {0: 0})))
        assert (err, sid, sorted(parts)) == (0, 0, [0])


# ------------------------------------------------- consumers across changes


class _Workload:
    """A producer writing 0, 1, 2, ... to every partition it knows and a group
    consumer checking each partition's values come once and in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()

    def _emit(self, line: str) -> None:
        with self.cond:
            self.lines.append(line)
            self.cond.notify_all()

    def seen(self) -> set[int]:
        with self.cond:
            return {int(line.split()[1]) for line in self.lines if line.startswith("SEEN ")}

    def read(self) -> int:
        with self.cond:
            counts = [int(line.split()[1]) for line in self.lines if line.startswith("READ ")]
        return max(counts, default=0)

    def wait(self, pred, what: str, timeout: float = 60) -> None:
        wait_for(pred, timeout, what, on_timeout=lambda: "\n".join(self.lines[-20:]))

    def wait_more(self, n: int, what: str) -> None:
        start = self.read()
        self.wait(lambda: self.read() >= start + n, what)


class _JavaWorkload(_Workload):
    def __init__(self, classpath: str, bootstrap: str, topic: str, group: str) -> None:
        super().__init__()
        cmd = ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classpath,
               "JavaFetchSessionClient", bootstrap, topic, group, "150"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self.pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, self._emit), daemon=True),
                      threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append),
                                       daemon=True)]
        for t in self.pumps:
            t.start()

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    def stop(self) -> None:
        try:
            self.proc.stdin.write("STOP\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for t in self.pumps:  # the last lines, up to the pipes' end
            t.join(timeout=10)
        result = [line for line in self.lines if line.startswith("RESULT")]
        assert code == 0 and result == ["RESULT ok"], (
            f"exit {code}\n" + "\n".join(self.lines[-30:]) + "\n" + "\n".join(self.stderr[-40:]))


class _CkWorkload(_Workload):
    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        super().__init__()
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.sent: dict[int, int] = defaultdict(int)
        self.got: dict[int, int] = defaultdict(int)
        self.bad: list[str] = []
        self.failed: list[str] = []
        self.stopping = threading.Event()
        self.produced = threading.Event()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._produce, daemon=True),
                        threading.Thread(target=self._consume, daemon=True)]
        for t in self.threads:
            t.start()

    def _produce(self) -> None:
        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                      "linger.ms": 5, "topic.metadata.refresh.interval.ms": 500})

        def cb(err, msg):
            if err is not None:
                self.failed.append(f"{msg.partition()}: {err}")

        n, refreshed = 0, 0.0
        while not self.stopping.is_set():
            if time.monotonic() - refreshed > 0.5:
                md = p.list_topics(self.topic, timeout=10).topics.get(self.topic)
                n = len(md.partitions) if md is not None and md.error is None else n
                refreshed = time.monotonic()
            for part in range(n):
                seq = self.sent[part]
                self.sent[part] = seq + 1
                p.produce(self.topic, str(seq).encode(), partition=part, on_delivery=cb)
            p.poll(0.02)
        remaining = p.flush(60)
        if remaining:
            self.failed.append(f"{remaining} records not delivered")
        self.produced.set()

    def _consume(self) -> None:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "topic.metadata.refresh.interval.ms": 500, "fetch.wait.max.ms": 100})
        c.subscribe([self.topic])
        total = 0
        deadline = time.monotonic() + 240
        try:
            while time.monotonic() < deadline:
                msgs = c.consume(num_messages=100, timeout=0.1)
                for m in msgs:
                    if m.error() is not None:
                        continue
                    part, got = m.partition(), int(m.value())
                    expected = self.got[part]
                    if expected == 0 and got == 0:
                        self._emit(f"SEEN {part}")
                    if got != expected:
                        self.bad.append(f"partition {part} offset {m.offset()}: {got}, expected {expected}")
                    self.got[part] = max(expected, got + 1)
                    total += 1
                    if total % 200 == 0:
                        self._emit(f"READ {total}")
                if msgs:
                    c.commit(asynchronous=False)
                if self.produced.is_set() and dict(self.got) == dict(self.sent):
                    break
        finally:
            c.close()
            self.done.set()

    def stop(self) -> None:
        self.stopping.set()
        assert self.produced.wait(90), "the producer did not finish"
        assert self.done.wait(120), "the consumer did not finish"
        assert not self.failed, self.failed[:5]
        assert not self.bad, self.bad[:5]
        assert dict(self.got) == dict(self.sent), (dict(self.sent), dict(self.got))


@pytest.fixture(scope="module")
def java_fetch_classes(java_classpath, tmp_path_factory) -> str:
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-fetch-classes"))


def _workload(kind: str, bootstrap: str, topic: str, request) -> _Workload:
    if kind == "java":
        return _JavaWorkload(request.getfixturevalue("java_fetch_classes"), bootstrap, topic,
                             f"{topic}-g")
    return _CkWorkload(bootstrap, topic, f"{topic}-g")


FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}


@pytest.mark.broker_overrides(FAST_GROUPS)
@pytest.mark.parametrize("kind", ["java", "confluent-kafka"])
def test_consumer_across_partition_additions(broker, topic, kind, request):
    ck_create_topic(broker.bootstrap, topic, 3)
    w = _workload(kind, broker.bootstrap, topic, request)
    try:
        w.wait(lambda: w.seen() >= {0, 1, 2} and w.read() >= 200, "every first partition read")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_partitions([NewPartitions(topic, 6)])[topic].result(timeout=30)
        w.wait(lambda: w.seen() >= set(range(6)), "the added partitions read")
        w.wait_more(200, "reading on after the addition")
    finally:
        w.stop()


@pytest.mark.parametrize("kind", ["java", "confluent-kafka"])
def test_consumer_across_leader_moves(cluster_factory, kind, request):  # noqa: F811
    c = cluster_factory(3, FAST_GROUPS)
    topic = f"moves-{kind}"
    c.create_topic(topic, partitions=6, rf=3)
    w = _workload(kind, c.bootstrap, topic, request)
    try:
        w.wait(lambda: w.seen() >= set(range(6)) and w.read() >= 200, "every partition read")
        leader = c.wait_for_leader(topic, 0)
        victim = c.node(leader)
        victim.kill9()
        c.wait_for_leader(topic, 0, not_in=(leader,))
        w.wait_more(200, "reading on from the new leaders")
        victim.restart()
        w.wait_more(200, "reading on with the old leader back")
    finally:
        w.stop()


def test_rust_consumer_across_a_leader_move(cluster_factory):  # noqa: F811
    """The Rust consumer (`gregor console-consumer`, a fetch session per broker)
    reads on from the new leader after the leader of a partition is killed:
    every record once, in order per partition."""
    from conftest import gregor_bin

    c = cluster_factory(3)
    topic, partitions = "moves-rust", 6

    def produce(tag: str, bootstrap: str) -> list[str]:
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
        values = [f"{tag}-{i % partitions}-{i // partitions}" for i in range(300)]
        for i, v in enumerate(values):
            p.produce(topic, v.encode(), partition=i % partitions)
        assert p.flush(60) == 0
        return values

    c.create_topic(topic, partitions=partitions, rf=3)
    sent = produce("a", c.bootstrap)
    proc = subprocess.Popen(
        [str(gregor_bin()), "console-consumer", "--bootstrap-server", c.bootstrap, "--topic", topic,
         "--from-beginning", "--max-messages", "600", "--consumer-property", "fetch.max.wait.ms=100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(line.rstrip("\n") for line in proc.stdout),
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(got) >= 300, 60, "the first 300 records read")
        leader = c.wait_for_leader(topic, 0)
        c.node(leader).kill9()
        c.wait_for_leader(topic, 0, not_in=(leader,))
        sent += produce("b", c.live_bootstrap())
        assert proc.wait(timeout=90) == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    per_partition = lambda values: {p: [v for v in values if v.split("-")[1] == str(p)]  # noqa: E731
                                    for p in range(partitions)}
    assert per_partition(got) == per_partition(sent)
