"""Balanced (consumer group) mode of kcat 1.7.1 / librdkafka 2.0.2: `kcat -G group topic`.

kcat -G has no "exit at end of partition" (-e) mode, so each run reads an exact number
of records (-c N) under a timeout. It commits on exit (enable.auto.commit, the default,
commits the stored offsets when the consumer closes).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, Producer, TopicPartition

from compat_util import ck_admin, ck_create_topic, wait_until

KCAT = shutil.which("kcat") or "kcat"
FAST = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}
PARTITIONS = 4
FMT = "%p %o %k %s\\n"


def produce(bootstrap, topic, per_partition, start):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors = []
    for i in range(PARTITIONS * per_partition):
        part, off = i % PARTITIONS, start + i // PARTITIONS
        p.produce(topic, key=f"k{part}-{off}", value=f"v{part}-{off}", partition=part,
                  on_delivery=lambda err, msg: err and errors.append(str(err)))
    assert p.flush(60) == 0 and not errors, errors


def kcat_group(bootstrap, group, topic, count):
    return subprocess.Popen(
        [KCAT, "-b", bootstrap, "-G", group, "-c", str(count), "-f", FMT, "-q",
         "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
         "-X", "heartbeat.interval.ms=500", "-X", "fetch.wait.max.ms=100", topic],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=45) -> list[tuple[int, int, str, str]]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"kcat -G did not read its count within {timeout}s\nstdout:\n{out.decode()[-2000:]}"
                             f"\nstderr:\n{err.decode(errors='replace')[-3000:]}") from None
    assert proc.returncode == 0, f"kcat exited {proc.returncode}\nstderr:\n{err.decode(errors='replace')[-3000:]}"
    recs = []
    for line in out.decode().splitlines():
        p, o, k, v = line.split(" ")
        recs.append((int(p), int(o), k, v))
    return recs


def check_records(recs, offsets: range):
    want = {(p, o) for p in range(PARTITIONS) for o in offsets}
    got = [(p, o) for p, o, _, _ in recs]
    assert len(got) == len(set(got)), f"duplicates: {sorted(got)}"
    assert set(got) == want, f"missing {sorted(want - set(got))}, extra {sorted(set(got) - want)}"
    for p, o, k, v in recs:
        assert (k, v) == (f"k{p}-{o}", f"v{p}-{o}")


@pytest.mark.broker_overrides(FAST)
def test_balanced_consumer(broker, topic):
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    group = f"g-{topic}"
    admin = ck_admin(broker.bootstrap)

    # Two balanced consumers split the 4 partitions 2 + 2; only then are 10 records per
    # partition produced, so each reads exactly 20.
    procs = [kcat_group(broker.bootstrap, group, topic, 20) for _ in range(2)]
    try:
        def split():
            d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
            sizes = sorted(len(m.assignment.topic_partitions) for m in d.members)
            return d.state == ConsumerGroupState.STABLE and sizes == [2, 2]
        wait_until(split, 45, "2 kcat members with 2 partitions each")
        produce(broker.bootstrap, topic, 10, 0)
        results = [finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [len(r) for r in results] == [20, 20]
    assert {p for p, *_ in results[0]}.isdisjoint({p for p, *_ in results[1]})
    check_records(results[0] + results[1], range(0, 10))

    # Both committed on exit.
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    res = admin.list_consumer_group_offsets([req], request_timeout=15)[group].result(timeout=20)
    assert {tp.partition: tp.offset for tp in res.topic_partitions} == {p: 10 for p in range(PARTITIONS)}

    # A new balanced consumer in the same group resumes at the committed offsets.
    produce(broker.bootstrap, topic, 2, 10)
    recs = finish(kcat_group(broker.bootstrap, group, topic, 2 * PARTITIONS))
    check_records(recs, range(10, 12))
