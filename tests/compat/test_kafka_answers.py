"""Places where Gregor must answer exactly as Kafka does, found by librdkafka's
own test suite (issue 8), checked with confluent-kafka:

- OffsetCommit for a topic or partition that does not exist fails those
  partitions with UNKNOWN_TOPIC_OR_PARTITION (librdkafka 0030
  do_nonexist_commit, 0081 AlterConsumerGroupOffsets), while the existing
  partitions of the same request are committed.
- A batch with some bad records (KIP-467) is refused as a whole, but the
  response lists the offending records, so the client fails those with
  INVALID_RECORD and the rest with "different record" (librdkafka 0011
  record_fail).
"""

from __future__ import annotations

import uuid

import pytest

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions

from compat_util import ck_admin, ck_create_topic


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False})


def test_commit_to_a_missing_topic_is_unknown_topic_or_partition(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    c = _consumer(broker.bootstrap, group)
    try:
        missing = f"missing-{uuid.uuid4().hex[:8]}"
        offsets = [TopicPartition(topic, 0, 5), TopicPartition(missing, 0, 7),
                   TopicPartition(topic, 9, 3)]  # partition 9 does not exist either
        try:
            result = c.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            # librdkafka raises with the first partition error when any failed.
            assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e
            result = None
        if result is not None:
            errors = {(tp.topic, tp.partition): tp.error for tp in result}
            assert errors[(topic, 0)] is None
            assert errors[(missing, 0)].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            assert errors[(topic, 9)].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        # The existing partition's offset was stored; nothing for the others.
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [tp.offset for tp in committed] == [5, -1001]

        # A commit naming only missing topics fails the same way.
        try:
            only = c.commit(offsets=[TopicPartition(missing, 0, 1)], asynchronous=False)
            assert only[0].error is not None and only[0].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e
    finally:
        c.close()

    # AdminClient.alter_consumer_group_offsets on a missing topic (0081).
    a = ck_admin(broker.bootstrap)
    fs = a.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(missing, 0, 1)])])
    try:
        res = fs[group].result(timeout=30)
        errs = [tp.error for tp in res.topic_partitions]
        assert errs and errs[0] is not None and errs[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, errs
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e


def test_keyless_records_in_a_compacted_batch_are_listed(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    # One batch of 100 records (linger long enough, flushed at the end);
    # every tenth record has no key.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5000,
                  "batch.num.messages": 1000, "acks": "all", "enable.idempotence": False,
                  "retries": 0})
    results: dict[int, KafkaError | None] = {}

    def on_delivery(i):
        return lambda err, _msg: results.__setitem__(i, err)

    for i in range(100):
        key = None if i % 10 == 3 else f"k{i}".encode()
        p.produce(topic, key=key, value=f"v{i}".encode(), partition=0, on_delivery=on_delivery(i))
    p.flush(30)
    assert len(results) == 100
    keyless = {i for i in range(100) if i % 10 == 3}
    for i, err in results.items():
        assert err is not None, f"record {i} was accepted"
        if i in keyless:
            assert err.code() == KafkaError.INVALID_RECORD, (i, err)
        else:
            assert err.code() == KafkaError._INVALID_DIFFERENT_RECORD, (i, err)
    # Nothing of the refused batch was written.
    c = _consumer(broker.bootstrap, f"w-{uuid.uuid4().hex[:8]}")
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    finally:
        c.close()


def test_kafka_python_delete_records_on_unknown_topics(broker, topic):
    """kafka-python's test_delete_records_with_errors: its admin client asks
    Metadata v8+ for the topics' authorized operations and decodes them, so an
    unknown topic must carry real operations (as Kafka's do), not the
    "omitted" value; the answer is then UNKNOWN_TOPIC_OR_PARTITION."""
    import pytest
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KpTopicPartition
    from kafka.errors import UnknownTopicOrPartitionError

    ck_create_topic(broker.bootstrap, topic, 3)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_records({KpTopicPartition("doesntexist", 0): -1})
        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_records({KpTopicPartition(topic, 9999): -1})
    finally:
        a.close()


def test_excessive_partition_counts_are_a_policy_violation(broker, topic):
    """Kafka's controller refuses a request for more than 10,000 partitions
    (MAX_PARTITIONS_PER_BATCH) with POLICY_VIOLATION before building any
    record; 2^31 - 1 partitions must not make the broker allocate them."""
    from confluent_kafka.admin import NewPartitions, NewTopic
    admin = ck_admin(broker.bootstrap)
    huge = f"{topic}-huge"
    # librdkafka checks up to 100,000 itself; kafka-python sends 2^31 - 1.
    [f] = admin.create_topics([NewTopic(huge, 100_000, 1)], request_timeout=30).values()
    with pytest.raises(KafkaException) as e:
        f.result()
    assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION, e.value
    assert "Excessively large number of partitions per request." in str(e.value)
    from kafka.admin import KafkaAdminClient, NewTopic as KpNewTopic
    from kafka.errors import PolicyViolationError
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        with pytest.raises(PolicyViolationError):
            kp.create_topics([KpNewTopic(huge, 2**31 - 1, 1)])
    finally:
        kp.close()
    # Two topics of 6,000 each: the request as a whole is too large.
    fs = admin.create_topics([NewTopic(f"{topic}-a", 6000, 1), NewTopic(f"{topic}-b", 6000, 1)],
                             request_timeout=30)
    for f in fs.values():
        with pytest.raises(KafkaException) as e:
            f.result()
        assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION, e.value
    ck_create_topic(broker.bootstrap, topic, 1)
    [f] = admin.create_partitions([NewPartitions(topic, 100_000)], request_timeout=30).values()
    with pytest.raises(KafkaException) as e:
        f.result()
    assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION, e.value
    assert huge not in admin.list_topics(timeout=10).topics
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 1


@pytest.mark.broker_overrides({"max.connections.per.ip": "3"})
def test_max_connections_per_ip(broker, topic):
    """Kafka's max.connections.per.ip: a connection past the limit is closed
    at once (before any request is read); closing one frees its slot, and
    clients keep working."""
    import socket
    import struct
    import time
    host, port = broker.bootstrap.split(":")

    def api_versions(s: socket.socket) -> bool:
        # ApiVersions v0, correlation id 7, client id "t"; True if answered.
        body = struct.pack(">hhih", 18, 0, 7, 1) + b"t"
        try:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(4)
            return len(head) == 4
        except OSError:
            return False

    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    try:
        assert all(api_versions(s) for s in held)
        extra = socket.create_connection((host, int(port)), timeout=10)
        # The broker closes it: EOF (or a reset) instead of an answer.
        assert not api_versions(extra)
        extra.close()
        held.pop().close()
        # The freed slot is taken back once the broker sees the close.
        deadline = time.monotonic() + 10
        while True:
            s = socket.create_connection((host, int(port)), timeout=10)
            if api_versions(s):
                held.append(s)
                break
            s.close()
            assert time.monotonic() < deadline, "the closed connection's slot never came back"
            time.sleep(0.05)
    finally:
        for s in held:
            s.close()
    # With the raw sockets closed, a real client gets its connections.
    ck_create_topic(broker.bootstrap, topic, 1)


@pytest.mark.broker_overrides({"connections.max.idle.ms": "1500"})
def test_idle_connections_are_closed(broker, topic):
    """Kafka's connections.max.idle.ms: a connection without a request for
    that long is closed by the broker; clients reconnect and keep working."""
    import socket
    import struct
    import time
    host, port = broker.bootstrap.split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    try:
        body = struct.pack(">hhih", 18, 0, 7, 1) + b"t"
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        assert len(s.recv(size, socket.MSG_WAITALL)) == size
        # Idle now: the broker closes it (EOF) well before the 30 s timeout.
        started = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - started >= 1.0
    finally:
        s.close()
    # A producer and a consumer across idle closes.
    ck_create_topic(broker.bootstrap, topic, 1)
    closed: list[str] = []
    p = Producer({"bootstrap.servers": broker.bootstrap,
                  "error_cb": lambda e: closed.append(e.str())})
    p.produce(topic, value=b"one")
    assert p.flush(30) == 0
    # librdkafka reports the broker's idle close as a transport error.
    deadline = time.monotonic() + 30
    while not closed and time.monotonic() < deadline:
        p.poll(0.2)
    assert closed, "the idle producer connection was never closed"
    p.produce(topic, value=b"two")
    assert p.flush(30) == 0
    c = _consumer(broker.bootstrap, f"g-{uuid.uuid4().hex[:8]}")
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [b"one", b"two"]


@pytest.mark.broker_overrides({"queued.max.request.bytes": "65536"})
def test_a_small_request_memory_pool_serves_every_request(broker, topic):
    """queued.max.request.bytes: requests wait for memory instead of failing;
    a request larger than the whole pool is still served (alone)."""
    import threading
    ck_create_topic(broker.bootstrap, topic, 3)
    errors: list[str] = []

    def produce(i: int) -> None:
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20,
                      "batch.size": 1 << 20, "compression.type": "none"})
        for n in range(200):
            p.produce(topic, value=bytes(4000), partition=n % 3,
                      on_delivery=lambda e, m: e and errors.append(str(e)))
        if p.flush(60) != 0:
            errors.append(f"producer {i}: not all delivered")

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors[:5]
    c = _consumer(broker.bootstrap, f"g-{uuid.uuid4().hex[:8]}")
    total = 0
    for part in range(3):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
        total += hi - lo
    c.close()
    assert total == 800
