"""aiokafka (asyncio client; snappy/lz4/zstd via cramjam).

Known client limitation: like kafka-python, aiokafka writes a null header value as
an empty one, so no null header values are sent here.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from compat_util import (CODECS, Got, Rec, assert_create_times, assert_no_error_codes, assert_same_records, consume_ck, counts,
                         make_records, now_ms)

PARTITIONS = 3


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def produce_aio(bootstrap, topic, recs: list[Rec], **conf) -> list[tuple[int, int]]:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, request_timeout_ms=30000, **conf)
    await p.start()
    try:
        futs = [await p.send(topic, value=r.value, key=r.key, partition=r.partition, timestamp_ms=r.timestamp,
                             headers=list(r.headers)) for r in recs]
        await p.flush()
        metas = await asyncio.gather(*futs)
    finally:
        await p.stop()
    # acks=0: aiokafka resolves each send with None (there is no response to take metadata from).
    return [(None, None) if m is None else (m.partition, m.offset) for m in metas]


async def consume_aio(bootstrap, topic, expected_counts: dict[int, int], timeout=60.0) -> dict[int, list[Got]]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", fetch_max_wait_ms=100, request_timeout_ms=30000)
    await c.start()
    got: dict[int, list[Got]] = {p: [] for p in expected_counts}
    try:
        tps = [TopicPartition(topic, p) for p in expected_counts]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while any(len(got[p]) < n for p, n in expected_counts.items()):
            assert time.monotonic() < deadline, (
                f"timed out consuming: { {p: len(v) for p, v in got.items()} } of {expected_counts}")
            for tp, msgs in (await c.getmany(*tps, timeout_ms=500)).items():
                for m in msgs:
                    got[tp.partition].append(Got(tp.partition, m.offset, m.key, m.value, tuple(m.headers),
                                                 m.timestamp, {0: "create", 1: "log_append"}.get(m.timestamp_type)))
        end = {tp.partition: off for tp, off in (await c.end_offsets(tps)).items()}
        want = {p: (got[p][0].offset if got[p] else 0) + n for p, n in expected_counts.items()}
        assert end == want, f"end offsets {end}, expected {want}"
    finally:
        await c.stop()
    return got


async def create(bootstrap, topic, partitions, configs=None):
    a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await a.start()
    try:
        r = await a.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
        assert_no_error_codes(r, "create_topics")
        for _ in range(300):
            d = await a.describe_topics([topic])
            if d and d[0]["error_code"] == 0 and len(d[0]["partitions"]) == partitions:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{topic} not in metadata with {partitions} partitions")
    finally:
        await a.close()


def assert_offsets(delivered, recs, partitions):
    per_p: dict[int, list[int]] = {}
    for p, off in delivered:
        per_p.setdefault(p, []).append(off)
    for p, n in counts(recs, partitions).items():
        assert per_p.get(p, []) == list(range(n)), f"partition {p}: offsets {per_p.get(p)}"


def test_admin(broker, topic):
    async def main():
        await create(broker.bootstrap, topic, PARTITIONS, {"retention.ms": "3600000"})
        a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        await a.start()
        try:
            assert topic in await a.list_topics()
            [resp] = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            [res] = resp.to_object()["resources"]
            assert res["error_code"] == 0, res
            entries = {e["config_names"]: e["config_value"] for e in res["config_entries"]}
            assert entries["retention.ms"] == "3600000"
            assert entries["cleanup.policy"] == "delete"
            r = await a.create_partitions({topic: NewPartitions(total_count=4)})
            assert_no_error_codes(r, "create_partitions")
            for _ in range(300):
                if len((await a.describe_topics([topic]))[0]["partitions"]) == 4:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("create_partitions: not 4 partitions")
            r = await a.delete_topics([topic])
            assert_no_error_codes(r, "delete_topics")
            for _ in range(300):
                if topic not in await a.list_topics():
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("deleted topic still listed")
        finally:
            await a.close()
    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(broker, topic, codec):
    recs = make_records(codec, PARTITIONS, 20)

    async def main():
        await create(broker.bootstrap, topic, PARTITIONS)
        t0 = now_ms()
        delivered = await produce_aio(broker.bootstrap, topic, recs, acks="all",
                                      compression_type=None if codec == "none" else codec)
        t1 = now_ms()
        assert_offsets(delivered, recs, PARTITIONS)
        got = await consume_aio(broker.bootstrap, topic, counts(recs, PARTITIONS))
        assert_same_records(recs, got, PARTITIONS, what=f"aiokafka {codec}")
        assert_create_times(got, t0, t1)
    run(main())
    assert_same_records(recs, consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS)), PARTITIONS,
                        what=f"aiokafka {codec} read by confluent-kafka")


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, topic, acks):
    recs = make_records(f"acks{acks}", PARTITIONS, 30)

    async def main():
        await create(broker.bootstrap, topic, PARTITIONS)
        delivered = await produce_aio(broker.bootstrap, topic, recs, acks=acks, compression_type="zstd")
        if acks == 0:
            assert set(delivered) == {(None, None)}, "acks=0 has no response: no record metadata"
        else:
            assert_offsets(delivered, recs, PARTITIONS)
        got = await consume_aio(broker.bootstrap, topic, counts(recs, PARTITIONS))
        assert_same_records(recs, got, PARTITIONS, what=f"acks={acks}")
    run(main())


def test_idempotent_producer(broker, topic):
    recs = make_records("idem", PARTITIONS, 100, large=False)

    async def main():
        await create(broker.bootstrap, topic, PARTITIONS)
        delivered = await produce_aio(broker.bootstrap, topic, recs, enable_idempotence=True, acks="all",
                                      compression_type="gzip", max_batch_size=4096)
        assert_offsets(delivered, recs, PARTITIONS)
        got = await consume_aio(broker.bootstrap, topic, counts(recs, PARTITIONS))
        assert_same_records(recs, got, PARTITIONS, what="idempotent")
    run(main())


def test_offsets_for_times(broker, topic):
    n = 10
    base = now_ms() - 3_600_000
    recs = make_records("ts", 2, n, timestamps=lambda i: base + (i // 2) * 1000)

    async def main():
        await create(broker.bootstrap, topic, 2)
        await produce_aio(broker.bootstrap, topic, recs)
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
        await c.start()
        try:
            tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
            assert await c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
            assert await c.end_offsets([tp0, tp1]) == {tp0: n, tp1: n}
            r = await c.offsets_for_times({tp0: base + 5500, tp1: base + 60_000})
            assert (r[tp0].offset, r[tp0].timestamp) == (6, base + 6000)
            assert r[tp1] is None
        finally:
            await c.stop()
    run(main())
