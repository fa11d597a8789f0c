"""Durability across broker restarts: acknowledged (acks=all) writes survive a SIGKILL
and a clean SIGTERM restart on the same log dir, in order, with exact offsets.

A SIGKILL of the process (not of the machine) leaves the page cache intact, so
every acknowledged write must be there after restart even without fsync (Kafka's
default flush settings); recovery must also accept appends after the restart at
the right offsets.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from compat_util import Rec, assert_same_records, ck_create_topic, consume_ck, counts, make_records

PARTITIONS = 3


def produce_acked(bootstrap, topic, recs, **conf):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **conf})
    acked, errors = [], []
    for r in recs:
        p.produce(topic, value=r.value, key=r.key, partition=r.partition, headers=list(r.headers) or None,
                  on_delivery=lambda err, msg: (errors if err else acked).append(
                      err or (msg.partition(), msg.offset())))
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]
    return acked


def test_kill9_restart_keeps_acked_writes(broker, topic):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    first = make_records("before-kill", PARTITIONS, 50)
    acked = produce_acked(broker.bootstrap, topic, first, **{"compression.type": "zstd"})
    assert len(acked) == len(first)

    broker.kill9()
    broker.restart()

    # Everything acknowledged is there, at the same offsets.
    got = consume_ck(broker.bootstrap, topic, counts(first, PARTITIONS))
    assert_same_records(first, got, PARTITIONS, what="after kill -9 and restart")

    # Appends continue right after the recovered log end.
    second = make_records("after-restart", PARTITIONS, 10)
    acked2 = produce_acked(broker.bootstrap, topic, second, **{"compression.type": "gzip"})
    per_p = {}
    for p, off in acked2:
        per_p.setdefault(p, []).append(off)
    assert per_p == {p: list(range(50, 60)) for p in range(PARTITIONS)}
    got = consume_ck(broker.bootstrap, topic, counts(first + second, PARTITIONS))
    assert_same_records(first + second, got, PARTITIONS, what="after kill -9, restart and more appends")


def test_kill9_twice_with_idempotent_producer(broker, topic):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    all_recs = []
    for round_ in range(2):
        recs = make_records(f"round{round_}", PARTITIONS, 30, large=False)
        produce_acked(broker.bootstrap, topic, recs, **{"enable.idempotence": True, "compression.type": "lz4"})
        all_recs += recs
        broker.kill9()
        broker.restart()
    got = consume_ck(broker.bootstrap, topic, counts(all_recs, PARTITIONS))
    assert_same_records(all_recs, got, PARTITIONS, what="after two kill -9 restarts")


def test_sigterm_restart_keeps_topics_configs_and_data(broker, topic):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS, config={"retention.ms": "3600000"})
    recs = make_records("clean", PARTITIONS, 40)
    produce_acked(broker.bootstrap, topic, recs, **{"compression.type": "snappy"})

    broker.restart()  # SIGTERM, asserts exit code 0, start on the same dir

    from confluent_kafka.admin import ConfigResource
    from compat_util import ck_admin
    a = ck_admin(broker.bootstrap)
    md = a.list_topics(timeout=10)
    assert sorted(md.topics[topic].partitions) == list(range(PARTITIONS))
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert a.describe_configs([res])[res].result(timeout=30)["retention.ms"].value == "3600000"
    got = consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS))
    assert_same_records(recs, got, PARTITIONS, what="after SIGTERM restart")


def test_sigterm_restart_keeps_deletions_and_log_start(broker, topic):
    """Deleted topics stay deleted and DeleteRecords' log start offset stays, across a clean restart."""
    from confluent_kafka import Consumer, TopicPartition
    from compat_util import CK_GROUP, ck_admin
    gone, kept = topic + "-deleted", topic + "-kept"
    ck_create_topic(broker.bootstrap, gone, 1)
    ck_create_topic(broker.bootstrap, kept, 1)
    recs = make_records("ls", 1, 10)
    produce_acked(broker.bootstrap, kept, recs)
    a = ck_admin(broker.bootstrap)
    a.delete_topics([gone], operation_timeout=30)[gone].result(timeout=30)
    tp = TopicPartition(kept, 0, 4)
    assert a.delete_records([tp], request_timeout=30)[tp].result(timeout=30).low_watermark == 4

    broker.restart()

    a = ck_admin(broker.bootstrap)
    topics = a.list_topics(timeout=10).topics
    assert gone not in topics and kept in topics
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": CK_GROUP, "enable.auto.commit": False})
    try:
        assert c.get_watermark_offsets(TopicPartition(kept, 0), timeout=10, cached=False) == (4, 10)
    finally:
        c.close()
    got = consume_ck(broker.bootstrap, kept, {0: 6})
    assert_same_records(recs[4:], got, 1, first_offset={0: 4}, what="log start after restart")


@pytest.mark.broker_overrides({"log.segment.bytes": "1048576"})  # Kafka's minimum (1 MiB)
def test_kill9_with_many_segments(broker, topic):
    """Several segments: recovery must rebuild them and their indexes."""
    import random
    rnd = random.Random(42)
    ck_create_topic(broker.bootstrap, topic, 1)
    # 400 x 10 KB incompressible values, uncompressed: ~4 MB -> at least 3 segments of 1 MiB.
    recs = [Rec(0, f"k{i}".encode(), rnd.randbytes(10_000), (("i", str(i).encode()),)) for i in range(400)]
    produce_acked(broker.bootstrap, topic, recs, **{"batch.num.messages": 20})
    broker.kill9()
    broker.restart()
    got = consume_ck(broker.bootstrap, topic, {0: 400})
    assert_same_records(recs, got, 1, what="many segments after kill -9")
    # Reads starting in the middle of a later segment work (offset index lookups).
    got = consume_ck(broker.bootstrap, topic, {0: 100}, start={0: 300})
    assert_same_records(recs[300:], got, 1, first_offset={0: 300}, what="from offset 300")
    log_files = sorted(p.name for p in (broker.log_dir / f"{topic}-0").glob("*.log"))
    assert len(log_files) >= 3, f"expected several 1 MiB segments for ~4 MB: {log_files}"
    assert log_files[0] == "00000000000000000000.log"
