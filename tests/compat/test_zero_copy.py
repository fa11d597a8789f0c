"""Zero-copy fetches: on a plaintext listener, record sets of 4 KiB and more go from the
segment files to the socket with sendfile(2). Real clients read them back exactly: records
spread over several segments (reads that end at segment ends and at the byte limits),
from the beginning and from the middle, with confluent-kafka (librdkafka) and kafka-python
(a pure-Python parser of the frames), and again after retention deleted the first segments.
"""

from __future__ import annotations

import random

from confluent_kafka import Producer, TopicPartition

from compat_util import Rec, assert_same_records, ck_admin, ck_create_topic, consume_ck
from test_kafka_python import consume_kp

PARTITIONS = 3
PER_PARTITION = 400  # x ~4 KB incompressible values: two 1 MiB segments per partition


def produce(bootstrap: str, topic: str, recs: list[Rec]) -> None:
    prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "batch.num.messages": 7})
    errors = []
    for r in recs:
        prod.produce(topic, value=r.value, key=r.key, partition=r.partition,
                     on_delivery=lambda err, msg: err and errors.append(err))
        prod.poll(0)
    assert prod.flush(60) == 0
    assert not errors, errors[:5]


def test_sendfile_fetches_read_back_exactly(broker, topic):
    rnd = random.Random(13)
    ck_create_topic(broker.bootstrap, topic, PARTITIONS, {"segment.bytes": str(1 << 20)})
    recs = [Rec(p, f"k{p}-{i}".encode(), rnd.randbytes(rnd.randrange(1, 8000)), ())
            for i in range(PER_PARTITION) for p in range(PARTITIONS)]
    produce(broker.bootstrap, topic, recs)
    for p in range(PARTITIONS):
        assert len(list((broker.log_dir / f"{topic}-{p}").glob("*.log"))) > 1
    expected = {p: PER_PARTITION for p in range(PARTITIONS)}

    # Default limits, then limits that cut reads at many batch boundaries.
    got = consume_ck(broker.bootstrap, topic, expected)
    assert_same_records(recs, got, PARTITIONS, what="confluent-kafka")
    got = consume_ck(broker.bootstrap, topic, expected,
                     extra_conf={"fetch.max.bytes": 50_000, "message.max.bytes": 50_000,
                                 "max.partition.fetch.bytes": 20_000})
    assert_same_records(recs, got, PARTITIONS, what="confluent-kafka, small fetches")
    got = consume_kp(broker.bootstrap, topic, expected)
    assert_same_records(recs, got, PARTITIONS, what="kafka-python")

    # From the middle of a partition.
    start = {p: 150 for p in range(PARTITIONS)}
    got = consume_ck(broker.bootstrap, topic, {p: PER_PARTITION - 150 for p in range(PARTITIONS)},
                     start=start)
    later = [r for p in range(PARTITIONS) for r in [x for x in recs if x.partition == p][150:]]
    assert_same_records(later, got, PARTITIONS, first_offset=start, what="from offset 150")


def test_sendfile_fetches_after_retention_deleted_segments(broker, topic):
    rnd = random.Random(17)
    ck_create_topic(broker.bootstrap, topic, 1, {"segment.bytes": str(1 << 20)})
    recs = [Rec(0, f"k{i}".encode(), rnd.randbytes(10_000), ()) for i in range(300)]
    produce(broker.bootstrap, topic, recs)
    # DeleteRecords removes the segments below offset 100.
    admin = ck_admin(broker.bootstrap)
    fut = admin.delete_records([TopicPartition(topic, 0, 100)])
    for f in fut.values():
        f.result(30)
    got = consume_ck(broker.bootstrap, topic, {0: 200}, start={0: 100})
    assert_same_records(recs[100:], got, 1, first_offset={0: 100}, what="after DeleteRecords")
