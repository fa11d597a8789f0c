"""kcat (Debian bookworm's kcat 1.7.1, built on librdkafka 2.0.2 -- an old librdkafka,
see PROTOCOL-NOTES quirks 1-3).

kcat has no admin commands: topics are auto-created by producing (with
num.partitions=3) or created with confluent-kafka's AdminClient. kcat reads
messages as lines with a key delimiter, so its records are text-only (no null
keys/values, no binary) and -H headers apply to a whole invocation: records are
produced in chunks that share headers, each chunk one kcat run, in order.
kcat cannot set a record's timestamp, so offsets-by-time (-o s@TS) is tested on
two rounds produced one second apart.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from compat_util import (CODECS, Got, Rec, assert_create_times, assert_same_records, ck_create_topic, consume_ck,
                         counts, now_ms, text_records)

KCAT = shutil.which("kcat") or "kcat"
PARTITIONS = 3
KEY_DELIM = "|"
CMD_TIMEOUT_S = 60

pytestmark = pytest.mark.broker_overrides({"num.partitions": str(PARTITIONS)})


def kcat(*args, input: str | None = None, timeout=CMD_TIMEOUT_S, stderr_ok=True) -> str:
    cmd = [KCAT, *args]
    try:
        r = subprocess.run(cmd, input=input.encode() if input is not None else None, capture_output=True,
                           timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"kcat timed out after {timeout}s: {' '.join(cmd)}\nstderr: "
                             f"{(e.stderr or b'').decode(errors='replace')[-3000:]}") from None
    assert r.returncode == 0, (f"kcat exited {r.returncode}: {' '.join(cmd)}\n"
                               f"stderr: {r.stderr.decode(errors='replace')[-3000:]}")
    err = r.stderr.decode(errors="replace")
    # kcat reports failed deliveries on stderr ("% Delivery failed for message: ...").
    assert stderr_ok or ("Delivery failed" not in err and "ERROR" not in err), (
        f"kcat reported errors: {' '.join(cmd)}\nstderr: {err[-3000:]}")
    return r.stdout.decode()


def produce_kcat(bootstrap: str, topic: str, recs: list[Rec], *extra: str) -> None:
    """Produce `recs` in order: one kcat -P run per run of consecutive same-(partition,
    headers) records."""
    chunks: list[tuple[int, tuple, list[Rec]]] = []
    for r in recs:
        if chunks and chunks[-1][0] == r.partition and chunks[-1][1] == r.headers:
            chunks[-1][2].append(r)
        else:
            chunks.append((r.partition, r.headers, [r]))
    for p, headers, rs in chunks:
        hargs = []
        for k, v in headers:
            hargs += ["-H", f"{k}={v.decode()}"]
        lines = "".join(f"{r.key.decode()}{KEY_DELIM}{r.value.decode()}\n" for r in rs)
        for r in rs:
            assert KEY_DELIM not in r.key.decode() and "\n" not in r.value.decode()
        kcat("-b", bootstrap, "-P", "-t", topic, "-p", str(p), "-K", KEY_DELIM, *hargs, *extra, input=lines,
             stderr_ok=False)


def consume_kcat(bootstrap: str, topic: str, partition: int, *offset_args: str) -> list[Got]:
    """kcat -C -e -J on one partition; returns the records it printed."""
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-p", str(partition), *(offset_args or ("-o", "beginning")),
               "-e", "-J", "-q")
    got = []
    for line in out.splitlines():
        if not line.strip():
            continue
        m = json.loads(line)
        h = m.get("headers") or []
        if h and isinstance(h[0], dict):  # [{"name": value}] form
            headers = tuple((k, None if v is None else v.encode()) for d in h for k, v in d.items())
        else:  # ["name", "value", ...] form (kcat 1.7)
            headers = tuple((h[i], None if h[i + 1] is None else h[i + 1].encode()) for i in range(0, len(h), 2))
        got.append(Got(m["partition"], m["offset"],
                       None if m.get("key") is None else m["key"].encode(),
                       None if m.get("payload") is None else m["payload"].encode(),
                       headers, m.get("ts"), {"create": "create", "logappend": "log_append"}.get(m.get("tstype"),
                                                                                                m.get("tstype"))))
    return got


def interleave_by_partition(recs: list[Rec]) -> list[Rec]:
    # Produce partition by partition (order within a partition kept), fewer kcat runs.
    return sorted(recs, key=lambda r: r.partition)


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(broker, topic, codec):
    recs = interleave_by_partition(text_records(codec, PARTITIONS, 12))
    t0 = now_ms()
    produce_kcat(broker.bootstrap, topic, recs, "-z", codec, "-X", "acks=all")
    t1 = now_ms()
    got = {p: consume_kcat(broker.bootstrap, topic, p) for p in range(PARTITIONS)}
    assert_same_records(recs, got, PARTITIONS, what=f"kcat {codec}")
    assert_create_times(got, t0, t1)
    # And the same data through a current librdkafka.
    assert_same_records(recs, consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS)), PARTITIONS,
                        what=f"kcat {codec} read by confluent-kafka")


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, topic, acks):
    recs = interleave_by_partition(text_records(f"acks{acks}", PARTITIONS, 10))
    produce_kcat(broker.bootstrap, topic, recs, "-X", f"acks={acks}", "-z", "gzip")
    got = {p: consume_kcat(broker.bootstrap, topic, p) for p in range(PARTITIONS)}
    assert_same_records(recs, got, PARTITIONS, what=f"kcat acks={acks}")


def test_idempotent_producer(broker, topic):
    recs = interleave_by_partition(text_records("idem", PARTITIONS, 30))
    produce_kcat(broker.bootstrap, topic, recs, "-X", "enable.idempotence=true", "-z", "snappy")
    got = {p: consume_kcat(broker.bootstrap, topic, p) for p in range(PARTITIONS)}
    assert_same_records(recs, got, PARTITIONS, what="kcat idempotent")


def test_metadata_list(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 2)
    md = json.loads(kcat("-b", broker.bootstrap, "-L", "-J"))
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(1, f"127.0.0.1:{broker.port}")]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1]
    for p in parts:
        assert p["leader"] == 1
        assert [r["id"] for r in p["replicas"]] == [1]
        assert [r["id"] for r in p["isrs"]] == [1]
    # Single-topic query.
    md = json.loads(kcat("-b", broker.bootstrap, "-L", "-J", "-t", topic))
    assert [t["topic"] for t in md["topics"]] == [topic]


def test_consume_empty_partition_reaches_end(broker, topic):
    """Quirk 3: an empty partition's fetch must carry an empty (not null) record set, or
    kcat -e never sees the end and hangs."""
    ck_create_topic(broker.bootstrap, topic, 1)
    assert consume_kcat(broker.bootstrap, topic, 0) == []


def test_offsets_by_time(broker, topic):
    first = interleave_by_partition(text_records("round1", PARTITIONS, 5))
    produce_kcat(broker.bootstrap, topic, first)
    time.sleep(1.1)
    t_split = now_ms()
    time.sleep(0.1)
    second = interleave_by_partition(text_records("round2", PARTITIONS, 5))
    produce_kcat(broker.bootstrap, topic, second)
    for p in range(PARTITIONS):
        got = consume_kcat(broker.bootstrap, topic, p, "-o", f"s@{t_split}")
        exp = [r for r in second if r.partition == p]
        assert [(g.offset, g.key, g.value) for g in got] == [(5 + i, r.key, r.value) for i, r in enumerate(exp)], (
            f"partition {p}: -o s@{t_split} returned {[(g.offset, g.key) for g in got]}")
        assert all(g.timestamp >= t_split for g in got)
    # Relative offsets: the last 2 records of partition 0.
    got = consume_kcat(broker.bootstrap, topic, 0, "-o", "-2")
    assert [g.offset for g in got] == [8, 9]
