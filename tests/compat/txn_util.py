"""Shared helpers for the transaction tests (test_transactions*.py,
test_cluster_transactions.py): a transactional confluent-kafka producer, a reader
that reads every partition to its end under a given isolation level, the
kafka-transactions.sh-style CLI tables, the helper subprocesses
(txn_client_ck.py) and a raw FindCoordinator(TRANSACTION) to one named node.
"""

from __future__ import annotations

import json
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from compat_util import CK_GROUP, wait_until

COMPAT_DIR = Path(__file__).resolve().parent
HELPER = COMPAT_DIR / "txn_client_ck.py"
# librdkafka's error codes for "another producer with this transactional.id took over".
FENCED_CODES = None  # filled lazily (confluent_kafka import)


def fenced_codes() -> set[int]:
    from confluent_kafka import KafkaError
    return {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def txn_producer(bootstrap: str, txid: str, init_timeout: float = 30, **extra):
    """A transactional producer, init_transactions() done. Raises the client's error
    as is (today's broker without a transaction coordinator answers InitProducerId
    with TRANSACTIONAL_ID_AUTHORIZATION_FAILED: the test fails right here, naming it)."""
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txid, "linger.ms": 5,
            "socket.timeout.ms": 10000}
    conf.update(extra)
    p = Producer(conf)
    try:
        p.init_transactions(init_timeout)
    except BaseException:
        p = None  # the traceback keeps this frame: let the client go (it would reconnect forever)
        raise
    return p


@dataclass(frozen=True)
class TRec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple


@dataclass
class ReadResult:
    records: dict[int, list[TRec]]  # per partition, in offset order
    ends: dict[int, int]  # ListOffsets LATEST under this isolation level (read_committed: the LSO)
    low: dict[int, int]
    positions: dict[int, int]  # consumer position after reading everything

    def values(self, p: int | None = None) -> list[bytes]:
        ps = [p] if p is not None else sorted(self.records)
        return [r.value for q in ps for r in self.records[q]]

    def offsets(self, p: int) -> list[int]:
        return [r.offset for r in self.records[p]]


def read_to_end(bootstrap: str, topic: str, partitions: int, isolation: str, *, timeout: float = 30.0,
                group: str = CK_GROUP) -> ReadResult:
    """Reads every partition from the beginning with a confluent-kafka consumer
    (assign; isolation.level=`isolation`) until its position reaches the partition's
    end as ListOffsets answers under that isolation level (read_committed: the last
    stable offset) -- i.e. until librdkafka reports EOF there. Control records are
    never handed to the application; the position moves past them."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "enable.auto.offset.store": False, "auto.offset.reset": "error",
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000})
    try:
        def watermarks():
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                    for p in range(partitions)}
        marks = watermarks()
        ends = {p: hi for p, (_, hi) in marks.items()}
        got: dict[int, list[TRec]] = {p: [] for p in range(partitions)}
        eof: dict[int, int] = {}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while True:
            while any(eof.get(p, -1) < ends[p] for p in range(partitions)):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out after {timeout:.0f}s reading {topic} ({isolation}): EOF at {eof}, ends {ends}, "
                        f"records { {p: len(v) for p, v in got.items()} }")
                for m in c.consume(num_messages=1000, timeout=0.5):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            eof[m.partition()] = m.offset()
                            continue
                        if m.topic() != topic or (err.code() == KafkaError._TRANSPORT and not err.fatal()):
                            continue  # the background group coordinator lookup, or a reconnect
                        raise AssertionError(f"consume error on {m.topic()}[{m.partition()}] ({isolation}): {err}")
                    got[m.partition()].append(TRec(m.partition(), m.offset(), m.key(), m.value(),
                                                   tuple(m.headers() or ())))
            # The end may have moved while reading (e.g. a transaction ended): read on to the
            # new end, so `ends` always describes what was read.
            marks = watermarks()
            now = {p: hi for p, (_, hi) in marks.items()}
            if now == ends and all(eof.get(p, -1) == ends[p] for p in range(partitions)):
                break
            ends = {p: max(now[p], eof.get(p, -1)) for p in range(partitions)}
        low = {p: lo for p, (lo, _) in marks.items()}
        positions = {tp.partition: tp.offset for tp in
                     c.position([TopicPartition(topic, p) for p in range(partitions)])}
        return ReadResult(got, ends, low, positions)
    finally:
        c.close()


def produce_all(producer, topic: str, recs: list[tuple[int, bytes, bytes]], errors: list | None = None) -> None:
    """produce() (partition, key, value) tuples, polling when the queue is full."""
    def cb(err, msg):
        if err is not None and errors is not None:
            errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
    for p, k, v in recs:
        while True:
            try:
                producer.produce(topic, key=k, value=v, partition=p, on_delivery=cb)
                break
            except BufferError:
                producer.poll(0.05)


def plain_producer(bootstrap: str, **extra):
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "socket.timeout.ms": 10000}
    conf.update(extra)
    return Producer(conf)


# ---------------------------------------------------------------- the CLI
# `gregor transactions list` / `describe --transactional-id` print Kafka's
# kafka-transactions.sh tables (columns padded, tab-separated, like
# `describe-producers`). The column names are here so they are easy to adjust.
CLI_LIST_HEADERS = ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
CLI_DESCRIBE_HEADERS = ["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                        "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs",
                        "TopicPartitions"]
CLI_PRODUCERS_HEADERS = ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence",
                         "LastTimestamp", "CurrentTransactionStartOffset"]


def parse_table(out: str, headers: list[str]) -> list[dict[str, str]]:
    """A kafka-transactions.sh table: a header line, then one row per line; cells
    separated by tabs (padded with spaces). An empty last cell (e.g. no partitions)
    is allowed."""
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, f"no output (expected a table headed {headers})"
    head = [c.strip() for c in lines[0].split("\t")]
    while head and head[-1] == "":
        head.pop()
    assert head == headers, f"table header {head}, expected {headers}\noutput:\n{out}"
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("\t")]
        while len(cells) > len(headers) and cells[-1] == "":
            cells.pop()
        if len(cells) == len(headers) - 1:
            cells.append("")
        assert len(cells) == len(headers), f"row {cells} does not fit the header {headers}\noutput:\n{out}"
        rows.append(dict(zip(headers, cells)))
    return rows


def gregor_cli(*args: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess:
    from cluster_util import run_tool
    return run_tool(list(args), timeout=timeout, check=check)


# ---------------------------------------------------------------- helper processes
class Helper:
    """txn_client_ck.py in a subprocess; its JSON events are collected by a thread."""

    def __init__(self, *args: str):
        self.args = args
        self.proc = subprocess.Popen([sys.executable, str(HELPER), *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events: list[dict] = []
        self._q: queue.Queue = queue.Queue()
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                ev = {"event": "garbage", "line": raw.decode(errors="replace")}
            self.events.append(ev)
            self._q.put(ev)
        self._q.put(None)

    def _read_err(self):
        for raw in self.proc.stderr:
            self.stderr = (self.stderr + raw)[-20000:]

    def wait_event(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"helper {self.args[0]}: no {what} within {timeout:.0f}s\n{self.report()}")
            try:
                ev = self._q.get(timeout=remaining)
            except queue.Empty:
                continue
            if ev is None:
                self.proc.wait(timeout=10)
                raise AssertionError(f"helper {self.args[0]} exited (rc {self.proc.returncode}) before {what}\n"
                                     f"{self.report()}")
            if ev.get("event") == "failed":
                raise AssertionError(f"helper {self.args[0]} failed: {ev['error']}\n{self.report()}")
            if pred(ev):
                return ev

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"helper {self.args[0]} did not exit within {timeout:.0f}s\n{self.report()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill9()

    def report(self) -> str:
        return (f"events: {self.events[-30:]}\nstderr (tail):\n"
                f"{self.stderr.decode(errors='replace')[-5000:]}")


# ---------------------------------------------------------------- raw FindCoordinator
def find_txn_coordinator(host: str, port: int, txid: str, timeout: float = 5.0) -> tuple[int, int]:
    """FindCoordinator v1 (key_type 1 = TRANSACTION) asked of exactly this node:
    (error_code, node_id)."""
    from fault_util import RawConn, _str
    with RawConn(host, port, timeout) as conn:
        r = conn.request(10, 1, _str(txid) + struct.pack(">b", 1))
        r.take(">i")  # throttle
        err = r.take(">h")
        r.string()  # error message
        node = r.take(">i")
    return err, node


def wait_txn_coordinator(nodes, txid: str, timeout: float = 30.0) -> int:
    """The node every serving node names as `txid`'s transaction coordinator."""
    def agreed():
        named = set()
        for n in nodes:
            err, node = find_txn_coordinator("127.0.0.1", n.kafka_port, txid)
            if err != 0:
                return None
            named.add(node)
        return named.pop() if len(named) == 1 else None
    return wait_until(agreed, timeout, f"every node to name one transaction coordinator for {txid!r}")
