"""confluent-kafka (Python binding of librdkafka, which it ships: see requirements.txt)."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewPartitions,
                                   NewTopic, OffsetSpec)

from compat_util import (CK_GROUP, CODECS, Rec, assert_create_times, assert_same_records, ck_admin,
                         ck_create_topic, consume_ck, counts, make_records, now_ms, wait_until)

PARTITIONS = 3


def produce_ck(bootstrap: str, topic: str, recs: list[Rec], **conf) -> list[tuple[int, int]]:
    """Produce with a confluent-kafka Producer; returns delivery (partition, offset) in
    delivery-report order and fails on any delivery error."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    delivered, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
        else:
            delivered.append((msg.partition(), msg.offset()))

    for r in recs:
        kw = {}
        if r.timestamp is not None:
            kw["timestamp"] = r.timestamp
        p.produce(topic, value=r.value, key=r.key, partition=r.partition,
                  headers=list(r.headers) if r.headers else None, on_delivery=on_delivery, **kw)
        p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} messages not delivered within 60s"
    assert not errors, f"delivery errors: {errors[:10]}"
    return delivered


def assert_delivered_offsets(delivered, recs, partitions):
    per_p: dict[int, list[int]] = {}
    for p, off in delivered:
        per_p.setdefault(p, []).append(off)
    for p, n in counts(recs, partitions).items():
        assert per_p.get(p, []) == list(range(n)), f"partition {p}: delivery offsets {per_p.get(p)}"


def source_of(entry) -> int:
    # ConfigEntry.source is an int from the C extension (a ConfigSource when built in Python).
    return entry.source.value if hasattr(entry.source, "value") else entry.source


# ---------------------------------------------------------------- admin
def test_admin_topic_lifecycle(broker, topic):
    a = ck_admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1,
                                   config={"retention.ms": "3600000"})], operation_timeout=30)
    fs[topic].result(timeout=30)

    # Metadata: 3 partitions, all led by node 1, replicas [1], isr [1].
    md = wait_until(lambda: (m := a.list_topics(timeout=10)).topics.get(topic) and m, 30, "topic in metadata")
    assert list(md.brokers) == [1], f"brokers {md.brokers}"
    assert (md.brokers[1].host, md.brokers[1].port) == ("127.0.0.1", broker.port)
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == list(range(PARTITIONS))
    for p in t.partitions.values():
        assert (p.leader, list(p.replicas), list(p.isrs), p.error) == (1, [1], [1], None), p

    # Creating it again: TOPIC_ALREADY_EXISTS.
    fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=30)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    # DescribeConfigs: the override with its source, and Kafka's defaults for the rest.
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = a.describe_configs([res])[res].result(timeout=30)
    assert cfg["retention.ms"].value == "3600000"
    assert source_of(cfg["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["segment.bytes"].value == "1073741824"
    assert cfg["max.message.bytes"].value == "1048588"
    assert source_of(cfg["cleanup.policy"]) == ConfigSource.DEFAULT_CONFIG.value

    # IncrementalAlterConfigs then describe again.
    res2 = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res2])[res2].result(timeout=30)
    cfg = a.describe_configs([res])[res].result(timeout=30)
    assert cfg["retention.ms"].value == "7200000"

    # Broker configs.
    bres = ConfigResource(ConfigResource.Type.BROKER, "1")
    bcfg = a.describe_configs([bres])[bres].result(timeout=30)
    assert bcfg["log.dirs"].value == str(broker.log_dir)
    assert bcfg["num.partitions"].value == "1"
    assert bcfg["auto.create.topics.enable"].value == "true"

    # DescribeCluster.
    cl = a.describe_cluster(request_timeout=30).result(timeout=30)
    assert [(n.id, n.host, n.port) for n in cl.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cl.controller is None or cl.controller.id == 1
    assert cl.cluster_id

    # CreatePartitions 3 -> 5.
    fs = a.create_partitions([NewPartitions(topic, 5)], operation_timeout=30)
    fs[topic].result(timeout=30)
    wait_until(lambda: len(a.list_topics(timeout=10).topics[topic].partitions) == 5, 30, "5 partitions")

    # DeleteTopics: gone from an all-topics metadata request (which never auto-creates).
    a.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    wait_until(lambda: topic not in a.list_topics(timeout=10).topics, 30, "topic gone from metadata")


def test_admin_describe_topics(broker, topic):
    from confluent_kafka import TopicCollection
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    a = ck_admin(broker.bootstrap)
    d = a.describe_topics(TopicCollection([topic]), request_timeout=30)[topic].result(timeout=30)
    assert d.name == topic
    assert not d.is_internal
    assert [p.id for p in d.partitions] == list(range(PARTITIONS))
    for p in d.partitions:
        assert p.leader.id == 1
        assert [r.id for r in p.replicas] == [1] and [r.id for r in p.isr] == [1]


# ---------------------------------------------------------------- produce / consume
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(broker, topic, codec):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    recs = make_records(codec, PARTITIONS, 20, null_header_values=True)
    t0 = now_ms()
    delivered = produce_ck(broker.bootstrap, topic, recs, **{"compression.type": codec, "acks": "all"})
    t1 = now_ms()
    assert_delivered_offsets(delivered, recs, PARTITIONS)
    got = consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS))
    assert_same_records(recs, got, PARTITIONS, what=f"confluent-kafka {codec}")
    assert_create_times(got, t0, t1)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, topic, acks):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    recs = make_records(f"acks{acks}", PARTITIONS, 30)
    if acks == "0":
        # With acks=0 there is no response, so librdkafka reports no offsets (msg.offset() is None).
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": 0, "linger.ms": 5})
        reports = []
        for r in recs:
            p.produce(topic, value=r.value, key=r.key, partition=r.partition, headers=list(r.headers) or None,
                      on_delivery=lambda err, msg: reports.append((err, msg.offset())))
        assert p.flush(60) == 0
        assert all(err is None for err, _ in reports), reports[:5]
        assert all(off is None or off < 0 for _, off in reports), f"acks=0 offsets should be unknown: {reports[:5]}"
    else:
        delivered = produce_ck(broker.bootstrap, topic, recs, acks=acks)
        assert_delivered_offsets(delivered, recs, PARTITIONS)
    got = consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS))
    assert_same_records(recs, got, PARTITIONS, what=f"acks={acks}")


def test_idempotent_producer(broker, topic):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    recs = make_records("idem", PARTITIONS, 200, large=False)
    # Idempotence: InitProducerId, acks=all, sequence numbers per partition, up to 5 in flight.
    delivered = produce_ck(broker.bootstrap, topic, recs, **{
        "enable.idempotence": True, "compression.type": "lz4", "linger.ms": 2, "batch.num.messages": 17,
        "max.in.flight.requests.per.connection": 5})
    assert_delivered_offsets(delivered, recs, PARTITIONS)
    got = consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS))
    assert_same_records(recs, got, PARTITIONS, what="idempotent")


def test_auto_create_topic_on_produce(broker, topic):
    # auto.create.topics.enable=true, num.partitions=1 by default.
    p = Producer({"bootstrap.servers": broker.bootstrap})
    out = []
    p.produce(topic, b"v", key=b"k", on_delivery=lambda e, m: out.append((e, m.partition(), m.offset())))
    assert p.flush(60) == 0
    assert out == [(None, 0, 0)], out
    md = ck_admin(broker.bootstrap).list_topics(timeout=10)
    assert sorted(md.topics[topic].partitions) == [0]
    got = consume_ck(broker.bootstrap, topic, {0: 1})
    assert_same_records([Rec(0, b"k", b"v")], got, 1)


@pytest.mark.broker_overrides({"num.partitions": "4"})
def test_auto_create_uses_num_partitions(broker, topic):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, b"v", partition=3)
    assert p.flush(60) == 0
    md = ck_admin(broker.bootstrap).list_topics(timeout=10)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2, 3]


# ---------------------------------------------------------------- offsets
def test_list_offsets_and_offsets_for_times(broker, topic):
    n = 10
    base = now_ms() - 3_600_000  # an hour ago, 1 s apart
    ck_create_topic(broker.bootstrap, topic, 2)
    recs = make_records("ts", 2, n, timestamps=lambda i: base + (i // 2) * 1000)
    delivered = produce_ck(broker.bootstrap, topic, recs, **{"compression.type": "zstd"})
    assert_delivered_offsets(delivered, recs, 2)

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": CK_GROUP, "enable.auto.commit": False})
    try:
        for p in (0, 1):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, n)
        # One query per partition per call (Kafka rejects duplicate partitions in a request).
        for p, target, want in [
            (0, base + 5500, 6),     # first timestamp >= target: j=6
            (1, base, 0),            # exact match on the first record
            (0, base - 10_000, 0),   # before everything: the first record
            (1, base + 9000, 9),     # exactly the last record
        ]:
            res = c.offsets_for_times([TopicPartition(topic, p, target)], timeout=10)
            assert [(r.partition, r.offset, r.error) for r in res] == [(p, want, None)], (
                f"offsets_for_times(partition {p}, base{target - base:+d}ms)")
        res = c.offsets_for_times([TopicPartition(topic, 0, base + 3000), TopicPartition(topic, 1, base + 4001)],
                                  timeout=10)
        assert [(r.partition, r.offset, r.error) for r in res] == [(0, 3, None), (1, 5, None)]
        # After the last timestamp: no such offset -> librdkafka reports OFFSET_END (-1).
        res = c.offsets_for_times([TopicPartition(topic, 0, base + 60_000)], timeout=10)
        assert (res[0].offset, res[0].error) == (OFFSET_END, None)
    finally:
        c.close()

    a = ck_admin(broker.bootstrap)
    tp0 = TopicPartition(topic, 0)
    for spec, want_offset, want_ts in [
        (OffsetSpec.earliest(), 0, None),
        (OffsetSpec.latest(), n, None),
        (OffsetSpec.for_timestamp(base + 2000), 2, base + 2000),
        (OffsetSpec.max_timestamp(), n - 1, base + (n - 1) * 1000),
    ]:
        r = a.list_offsets({tp0: spec}, request_timeout=30)[tp0].result(timeout=30)
        assert r.offset == want_offset, f"{spec}: offset {r.offset}, expected {want_offset}"
        if want_ts is not None:
            assert r.timestamp == want_ts, f"{spec}: timestamp {r.timestamp}, expected {want_ts}"

    # Explicit CreateTime timestamps come back unchanged.
    got = consume_ck(broker.bootstrap, topic, {0: n, 1: n})
    assert_same_records(recs, got, 2)
    for p in (0, 1):
        assert [g.timestamp for g in got[p]] == [base + j * 1000 for j in range(n)]
        assert {g.timestamp_type for g in got[p]} == {"create"}


def test_consume_from_middle_and_end(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 1)
    recs = make_records("mid", 1, 25)
    produce_ck(broker.bootstrap, topic, recs)
    got = consume_ck(broker.bootstrap, topic, {0: 15}, start={0: 10})
    assert_same_records(recs[10:], got, 1, first_offset={0: 10})


def test_delete_records(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 1)
    recs = make_records("dr", 1, 10)
    produce_ck(broker.bootstrap, topic, recs)
    a = ck_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0, 4)
    r = a.delete_records([tp], request_timeout=30)[tp].result(timeout=30)
    assert r.low_watermark == 4
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": CK_GROUP, "enable.auto.commit": False})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (4, 10)
    finally:
        c.close()
    # OFFSET_BEGINNING now resolves to the new log start offset 4.
    got = consume_ck(broker.bootstrap, topic, {0: 6})
    assert_same_records(recs[4:], got, 1, first_offset={0: 4})


def test_long_poll_fetch_wakes_on_append(broker, topic):
    """An assigned consumer at the end of an empty partition (empty fetches, quirk 3)
    receives a record produced later, without re-assigning."""
    ck_create_topic(broker.bootstrap, topic, 1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": CK_GROUP, "enable.auto.commit": False,
                  "fetch.wait.max.ms": 500, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        # Wait for the first (empty) fetch to come back: partition EOF at offset 0.
        deadline = time.monotonic() + 30
        eof = False
        while not eof and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is not None and m.error().code() == KafkaError._PARTITION_EOF:
                assert (m.partition(), m.offset()) == (0, 0)
                eof = True
        assert eof, "no partition EOF on an empty partition within 30s"

        def later():
            time.sleep(1.0)
            produce_ck(broker.bootstrap, topic, [Rec(0, b"late-key", b"late-value", (("h", b"1"),))])

        th = threading.Thread(target=later)
        th.start()
        deadline = time.monotonic() + 30
        got = None
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got = m
        th.join()
        assert got is not None, "record produced after the consumer caught up never arrived"
        assert (got.offset(), got.key(), got.value(), got.headers()) == (0, b"late-key", b"late-value",
                                                                        [("h", b"1")])
    finally:
        c.close()


# ---------------------------------------------------------------- broker-side semantics
def first_batch_attributes(log_dir, topic, partition=0) -> int:
    """attributes (int16) of the first RecordBatch in the partition's first segment:
    baseOffset(8) batchLength(4) partitionLeaderEpoch(4) magic(1) crc(4) attributes(2)."""
    data = (log_dir / f"{topic}-{partition}" / "00000000000000000000.log").read_bytes()
    assert len(data) >= 61 and data[16] == 2, f"no RecordBatch v2 at the start of the segment ({len(data)} bytes)"
    return int.from_bytes(data[21:23], "big")


def test_fetch_with_tiny_partition_limits(broker, topic):
    """Quirk 4: with max.partition.fetch.bytes / fetch.max.bytes far below the batch sizes
    the broker still returns one whole batch per fetch, and the consumer gets everything."""
    ck_create_topic(broker.bootstrap, topic, 2)
    recs = make_records("tiny", 2, 40)  # includes ~60 KB values, batches up to ~1 MB
    produce_ck(broker.bootstrap, topic, recs, **{"compression.type": "none"})
    got = consume_ck(broker.bootstrap, topic, counts(recs, 2), extra_conf={
        "max.partition.fetch.bytes": 1024, "fetch.max.bytes": 2048, "message.max.bytes": 1000,
        "receive.message.max.bytes": 4_000_000})
    assert_same_records(recs, got, 2, what="tiny fetch limits")


def test_message_too_large_is_rejected(broker, topic):
    """A batch over the broker's message.max.bytes (1048588) is refused with MSG_SIZE_TOO_LARGE
    (error 10); the client-side limit is raised so that the broker has to decide."""
    ck_create_topic(broker.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 5_000_000,
                  "compression.type": "none", "retries": 0})
    out = []
    p.produce(topic, b"x" * 2_000_000, partition=0, on_delivery=lambda e, m: out.append(e))
    p.produce(topic, b"small", partition=0, on_delivery=lambda e, m: out.append((e, m.offset())))
    assert p.flush(60) == 0
    assert out[0] is not None and out[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, out
    assert out[1] == (None, 0), f"the next small record must be appended at offset 0: {out}"


def test_log_append_time_topic(broker, topic):
    """message.timestamp.type=LogAppendTime: the broker stamps batches with its clock and
    consumers see LogAppendTime, whatever the producer sent."""
    ck_create_topic(broker.bootstrap, topic, 1, config={"message.timestamp.type": "LogAppendTime"})
    old = now_ms() - 86_400_000
    recs = make_records("lat", 1, 10, timestamps=lambda i: old + i)
    t0 = now_ms()
    produce_ck(broker.bootstrap, topic, recs, **{"compression.type": "lz4"})
    t1 = now_ms()
    got = consume_ck(broker.bootstrap, topic, {0: 10})
    assert_same_records([Rec(r.partition, r.key, r.value, r.headers) for r in recs], got, 1)
    for g in got[0]:
        assert g.timestamp_type == "log_append", g
        assert t0 - 1 <= g.timestamp <= t1 + 1, f"LogAppendTime {g.timestamp} outside [{t0}, {t1}]"
    assert first_batch_attributes(broker.log_dir, topic) & 0x08, "timestampType bit not set on disk"


def test_topic_compression_type_recompresses(broker, topic):
    """compression.type=gzip on the topic: an uncompressed produce is stored gzip-compressed
    (codec bits of the stored batch), and reads back identical."""
    ck_create_topic(broker.bootstrap, topic, 1, config={"compression.type": "gzip"})
    recs = make_records("recomp", 1, 20)
    produce_ck(broker.bootstrap, topic, recs, **{"compression.type": "none"})
    got = consume_ck(broker.bootstrap, topic, {0: 20})
    assert_same_records(recs, got, 1, what="recompressed to gzip")
    assert first_batch_attributes(broker.log_dir, topic) & 0x07 == 1, "stored batch is not gzip"


def test_producer_compression_kept_by_default(broker, topic):
    """compression.type=producer (default): the batch is stored with the producer's codec."""
    ck_create_topic(broker.bootstrap, topic, 1)
    produce_ck(broker.bootstrap, topic, make_records("keep", 1, 5), **{"compression.type": "zstd"})
    assert first_batch_attributes(broker.log_dir, topic) & 0x07 == 4, "stored batch is not zstd"


def test_out_of_range_offset_resets(broker, topic):
    """Fetching past the end gets OFFSET_OUT_OF_RANGE; auto.offset.reset=earliest then
    restarts from offset 0."""
    ck_create_topic(broker.bootstrap, topic, 1)
    recs = make_records("oor", 1, 10)
    produce_ck(broker.bootstrap, topic, recs)
    got = consume_ck(broker.bootstrap, topic, {0: 10}, start={0: 1000},
                     extra_conf={"auto.offset.reset": "earliest"}, check_watermarks=False)
    assert_same_records(recs, got, 1, what="after out-of-range reset")


def test_delete_and_recreate_topic(broker, topic):
    """A topic deleted and created again under the same name starts empty at offset 0."""
    ck_create_topic(broker.bootstrap, topic, 2)
    produce_ck(broker.bootstrap, topic, make_records("gen1", 2, 10))
    a = ck_admin(broker.bootstrap)
    a.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    wait_until(lambda: topic not in a.list_topics(timeout=10).topics, 30, "topic gone")
    ck_create_topic(broker.bootstrap, topic, 1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": CK_GROUP, "enable.auto.commit": False})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 0)
    finally:
        c.close()
    recs = make_records("gen2", 1, 5)
    assert_delivered_offsets(produce_ck(broker.bootstrap, topic, recs), recs, 1)
    assert_same_records(recs, consume_ck(broker.bootstrap, topic, {0: 5}), 1, what="recreated topic")
