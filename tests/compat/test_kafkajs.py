"""kafkajs 2.2.4 (Node.js; pre-flexible protocol versions only, e.g. Produce v7,
Metadata v6). Driven by node/kafkajs_test.js.

kafkajs has no consumer without a consumer group (not implemented in the broker
yet), so records it produced are read back and compared with confluent-kafka.
Known client limitation: kafkajs cannot send null header values, so none are sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_util import (CODECS, assert_create_times, assert_same_records, consume_ck, counts, make_records, now_ms,
                         run_node_driver, write_tsv)

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "kafkajs_test.js"
PARTITIONS = 3


def run_node(*args: str, timeout: float = 90) -> dict:
    return run_node_driver(SCRIPT, *args, timeout=timeout)


def test_admin(broker, topic):
    res = run_node(broker.bootstrap, topic, "admin")
    assert res == {"created": True, "partitionsAfter": 5, "deleted": True}


def check_produced(broker, topic, recs, res, *, offsets_known=True):
    assert res["partitions"] == PARTITIONS
    # Two sends; per partition the first batch starts at 0, the second right after it.
    first_half = recs[: (len(recs) + 1) // 2]
    n_first = counts(first_half, PARTITIONS)
    assert len(res["sends"]) == 2
    for i, send in enumerate(res["sends"]):
        for s in send:
            assert s["errorCode"] == 0, res
        if offsets_known:
            want = {p: "0" for p in range(PARTITIONS)} if i == 0 else {p: str(n_first[p]) for p in range(PARTITIONS)}
            assert {s["partition"]: s["baseOffset"] for s in send} == want, f"send {i}: {send}"
    got = consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS))
    assert_same_records(recs, got, PARTITIONS, what="kafkajs-produced, read by confluent-kafka")
    return got


@pytest.mark.parametrize("codec", CODECS)
def test_produce_codec(broker, topic, codec, tmp_path):
    # No null header values (kafkajs limitation); null keys and tombstones are fine.
    recs = make_records(codec, PARTITIONS, 20)
    tsv = write_tsv(tmp_path / "records.tsv", recs)
    t0 = now_ms()
    res = run_node(broker.bootstrap, topic, "produce", str(tsv), codec, "all", "0")
    t1 = now_ms()
    got = check_produced(broker, topic, recs, res)
    assert_create_times(got, t0, t1)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, topic, acks, tmp_path):
    recs = make_records(f"acks{acks}", PARTITIONS, 20, large=False)
    tsv = write_tsv(tmp_path / "records.tsv", recs)
    res = run_node(broker.bootstrap, topic, "produce", str(tsv), "gzip", acks, "0")
    # acks=0: no produce response, kafkajs reports no offsets.
    check_produced(broker, topic, recs, res, offsets_known=acks != "0")


def test_idempotent_producer(broker, topic, tmp_path):
    recs = make_records("idem", PARTITIONS, 50, large=False)
    tsv = write_tsv(tmp_path / "records.tsv", recs)
    res = run_node(broker.bootstrap, topic, "produce", str(tsv), "zstd", "all", "1")
    check_produced(broker, topic, recs, res)
