"""Incremental fetch sessions (KIP-227, issue 13).

- On the wire (Fetch v7, hand-encoded): a full fetch at epoch 0 opens a
  session; incremental fetches answer only partitions with news; a wrong
  epoch is INVALID_FETCH_SESSION_EPOCH, an unknown id
  FETCH_SESSION_ID_NOT_FOUND; forgetting every partition closes the session.
- kafka-python (which runs KIP-227 sessions) consumes a many-partition topic
  through a session, while records keep arriving, and gets every record once,
  in order per partition.
"""

from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import Producer

from compat_util import ck_create_topic
from fault_util import RawConn, _str

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
