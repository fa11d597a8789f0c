"""KIP-848 consumer groups (`group.protocol=consumer`) with confluent-kafka
2.16.1 / librdkafka 2.16.0: ConsumerGroupHeartbeat with server-side
assignment, ConsumerGroupDescribe, offsets, and a classic group beside it."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition

from compat_util import ck_admin, ck_create_topic, wait_until


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(partitions * per_partition):
        p.produce(topic, key=str(i), value=f"v{i}", partition=i % partitions)
    assert p.flush(30) == 0


def member(bootstrap: str, group: str, topic: str, name: str, **extra) -> Consumer:
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, "client.id": name}
    conf.update(extra)
    c = Consumer(conf)
    c.subscribe([topic])
    return c


def owned(c: Consumer) -> set[int]:
    return {tp.partition for tp in c.assignment()}


def test_two_members_split_partitions_and_take_over(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 6)
    produce(broker.bootstrap, topic, 6, 10)
    group = f"{topic}-g"
    c1 = member(broker.bootstrap, group, topic, "c1")
    c2 = member(broker.bootstrap, group, topic, "c2")
    seen: dict[tuple[int, int], bytes] = {}

    def step():
        for c in (c1, c2):
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen[(m.partition(), m.offset())] = m.value()
                c.commit(message=m, asynchronous=False)
        a1, a2 = owned(c1), owned(c2)
        return len(seen) == 60 and len(a1) == 3 and len(a2) == 3

    wait_until(step, 60, "two consumer-protocol members to split 6 partitions and read 60 records")
    a1, a2 = owned(c1), owned(c2)
    assert not (a1 & a2) and a1 | a2 == set(range(6))
    assert sorted(seen) == [(p, o) for p in range(6) for o in range(10)]

    admin = ck_admin(broker.bootstrap)
    desc = admin.describe_consumer_groups([group])[group].result(10)
    assert desc.state == ConsumerGroupState.STABLE
    assert len(desc.members) == 2
    assigned = sorted(tp.partition for m in desc.members for tp in m.assignment.topic_partitions)
    assert assigned == list(range(6))

    committed = c1.committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
    assert [tp.offset for tp in committed] == [10] * 6

    c2.close()
    wait_until(lambda: (c1.poll(0.1), len(owned(c1)) == 6)[1], 30, "the survivor to own all 6 partitions")
    c1.close()
    wait_until(lambda: admin.describe_consumer_groups([group])[group].result(10).state
               == ConsumerGroupState.EMPTY, 30, "the group to become empty")


def test_consumer_and_classic_groups_coexist(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, 2, 5)
    new = member(broker.bootstrap, f"{topic}-new", topic, "new")
    classic = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-classic",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    classic.subscribe([topic])
    counts = {"new": 0, "classic": 0}

    def step():
        for name, c in (("new", new), ("classic", classic)):
            m = c.poll(0.1)
            if m is not None and not m.error():
                counts[name] += 1
        return counts["new"] == 10 and counts["classic"] == 10

    wait_until(step, 60, "both groups to read all 10 records")
    admin = ck_admin(broker.bootstrap)
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
    assert f"{topic}-new" in listed and f"{topic}-classic" in listed
    new.close()
    classic.close()
