"""Log lifecycle seen through confluent-kafka: retention moves the low
watermark, compaction leaves the latest value per key, DeleteRecords moves the
log start and a consumer below it follows auto.offset.reset."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from compat_util import ck_admin, ck_create_topic, wait_until

FAST_CHECKS = {"log.retention.check.interval.ms": "200", "log.cleaner.backoff.ms": "200"}


def produce(bootstrap, topic, items, partition=0):
    """items: (key, value, timestamp_ms or None); returns the acked offsets."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    offsets = []
    for key, value, ts in items:
        kw = {"timestamp": ts} if ts is not None else {}
        p.produce(topic, key=key, value=value, partition=partition,
                  on_delivery=lambda err, msg: offsets.append(msg.offset() if err is None else err), **kw)
        p.poll(0)
    assert p.flush(30) == 0
    assert all(isinstance(o, int) for o in offsets), offsets
    return offsets


def read_all(bootstrap, topic, partition=0, reset="earliest"):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader", "enable.auto.commit": False,
                  "auto.offset.reset": reset})
    low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    c.assign([TopicPartition(topic, partition, low)])
    out = []
    deadline = time.monotonic() + 30
    while (not out or out[-1][0] < high - 1) and time.monotonic() < deadline and high > low:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append((m.offset(), m.key(), m.value()))
    c.close()
    return low, high, out


@pytest.mark.broker_overrides(FAST_CHECKS)
def test_retention_by_time_moves_the_low_watermark(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 1, {"retention.ms": "60000", "segment.bytes": "1048576"})
    now = int(time.time() * 1000)
    old = [(f"k{i}".encode(), b"x" * 20000, now - 3_600_000) for i in range(120)]  # ~2.4 MB, an hour old
    produce(broker.bootstrap, topic, old)
    produce(broker.bootstrap, topic, [(b"fresh", b"v", None)])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-w"})
    tp = TopicPartition(topic, 0)
    # Whole old segments go; the active one (holding the fresh record) stays.
    low = wait_until(lambda: (lambda lo: lo if lo > 0 else None)(c.get_watermark_offsets(tp, timeout=10)[0]),
                     30, "retention to advance the low watermark")
    high = c.get_watermark_offsets(tp, timeout=10)[1]
    assert 0 < low <= 120 and high == 121
    c.close()
    lo, hi, got = read_all(broker.bootstrap, topic)
    assert lo == low and got[-1][1] == b"fresh" and [o for o, _, _ in got] == list(range(low, 121))


@pytest.mark.broker_overrides(FAST_CHECKS)
def test_compaction_keeps_the_latest_value_per_key(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 1, {"cleanup.policy": "compact", "segment.bytes": "1048576",
                                                 "min.cleanable.dirty.ratio": "0.01"})
    items = []
    for rnd in range(6):
        for k in range(50):
            items.append((f"key-{k}".encode(), f"r{rnd}-".encode() + b"y" * 4000, None))
    produce(broker.bootstrap, topic, items)  # 300 records, ~1.2 MB: several segments
    produce(broker.bootstrap, topic, [(b"key-0", b"last", None)])  # rolls nothing; stays active

    def compacted():
        _, high, got = read_all(broker.bootstrap, topic)
        return got if len(got) < high else None

    got = wait_until(compacted, 60, "the cleaner to compact the topic")
    latest = {}
    for _, key, value in got:
        latest[key] = value
    assert latest[b"key-0"] == b"last"
    for k in range(1, 50):
        assert latest[f"key-{k}".encode()].startswith(b"r5-"), k
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(offsets) and offsets[-1] == 300  # offsets kept, with gaps
    # Producing without a key to a compacted topic is refused (INVALID_RECORD).
    p = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    errs = []
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: errs.append(err))
    p.flush(30)
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.INVALID_RECORD, errs


def test_delete_records_and_offset_reset(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode(), None) for i in range(20)])
    admin = ck_admin(broker.bootstrap)
    res = admin.delete_records([TopicPartition(topic, 0, 12)])
    [r.result(10) for r in res.values()]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-d", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (12, 20)
    # Starting below the log start: OFFSET_OUT_OF_RANGE, then auto.offset.reset=earliest.
    c.assign([TopicPartition(topic, 0, 3)])
    got = []
    wait_until(lambda: (lambda m: got.append(m.offset()) if m is not None and not m.error() else None)(c.poll(0.2))
               or len(got) == 8, 30, "records from the new log start")
    assert got == list(range(12, 20))
    c.close()
    # The topic's configs are visible through the admin API with their sources.
    cfg = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    entries = list(cfg.values())[0].result(10)
    assert entries["retention.ms"].value == "604800000" and entries["cleanup.policy"].value == "delete"
