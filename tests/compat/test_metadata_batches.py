"""Metadata changes larger than one metadata batch (issue 13).

A topic of many partitions is more records than one batch of the metadata
log may hold (`controller.max.records.per.batch`, Kafka's default 10,000,
and about 1 MB). Gregor writes such a change as a KIP-868 transaction
(BeginTransaction ... EndTransaction over several batches) that every reader
applies whole. The tests lower `controller.max.records.per.batch` so a
topic that fits this machine's descriptor limit still needs several
batches, then check with confluent-kafka that the topic is there whole (on
every node, and after restarts), and that the metadata log does hold
transaction markers.

- one node: a 300-partition topic in batches of 50, described, written
  to and read from, across a restart (kept small: a clean stop fsyncs every
  partition, which on a loaded machine outlasts the fixture's 15 s);
- three nodes (the Raft quorum): a 300-partition topic, replication factor
  3, seen whole by every node, also by a node restarted afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_util import cluster_factory, wait_for  # noqa: F401 - fixture

BATCH_RECORDS = "50"


def _begin_markers(data_dir: Path) -> int:
    """BeginTransaction records in the metadata log's segments under `data_dir`."""
    return sum(f.read_bytes().count(b'"type":"BeginTransaction"')
               for f in data_dir.rglob("__cluster_metadata-0/*.log"))


def _create(bootstrap: str, topic: str, partitions: int, rf: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, partitions, rf)], operation_timeout=60,
                              request_timeout=90)[topic]
    fut.result(timeout=120)


def _partition_count(bootstrap: str, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic=topic, timeout=30)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return -1
    return sum(1 for p in t.partitions.values() if p.error is None and p.leader >= 0)


@pytest.mark.broker_overrides({"controller.max.records.per.batch": BATCH_RECORDS})
def test_a_topic_over_several_metadata_batches_on_one_node(broker, topic):
    partitions = 300
    _create(broker.bootstrap, topic, partitions)
    assert _partition_count(broker.bootstrap, topic) == partitions
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=30)
    assert len(described.partitions) == partitions
    assert [p.id for p in described.partitions] == list(range(partitions))
    # 301 records, 50 a batch: a transaction over 7 batches.
    assert _begin_markers(broker.log_dir) >= 1

    # The last partition takes records like the first.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for part in (0, partitions - 1):
        p.produce(topic, value=f"v{part}".encode(), partition=part)
    assert p.flush(30) == 0
    del p  # no client left pointing at the old process

    broker.restart()
    wait_for(lambda: _partition_count(broker.bootstrap, topic) == partitions, 60,
             "the topic whole after a restart")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-g",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partitions - 1, 0)])
        got = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        assert got == [f"v{partitions - 1}".encode()]
    finally:
        c.close()

    # A later, small change still goes in (the transaction was closed).
    _create(broker.bootstrap, f"{topic}-small", 2)
    assert _partition_count(broker.bootstrap, f"{topic}-small") == 2


def test_a_topic_over_several_metadata_batches_on_three_nodes(cluster_factory):  # noqa: F811
    c = cluster_factory(3, {"controller.max.records.per.batch": BATCH_RECORDS})
    topic, partitions = "wide", 300
    _create(c.nodes[0].bootstrap, topic, partitions, rf=3)
    for n in c.nodes:
        wait_for(lambda n=n: _partition_count(n.bootstrap, topic) == partitions, 60,
                 f"node {n.id} sees every partition")
        assert _begin_markers(n.log_dir) >= 1, f"node {n.id} has no transaction in its log"
    # A node restarted from its log and checkpoints sees it whole too.
    last = c.nodes[-1]
    last.restart()
    wait_for(lambda: _partition_count(last.bootstrap, topic) == partitions, 60,
             "the restarted node sees every partition")
    md = last.metadata([topic])
    assert md.topics[topic][0] == 0 and len(md.topics[topic][1]) == partitions
