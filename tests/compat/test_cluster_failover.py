"""Fault injection on a 3-node Gregor cluster (combined broker + controller
nodes, see cluster_util.py), through confluent-kafka. One invariant per test:

- the cluster forms: one quorum leader among 3 voters, every node lists every
  broker, and an RF 3 topic has 3 replicas in every node's metadata;
- no acknowledged write is lost, moved, duplicated or reordered when the
  partition leader is SIGKILLed under an idempotent acks=all producer
  (min.insync.replicas=2), nor when it is SIGTERMed (controlled shutdown:
  exit 0, leadership moves to an ISR member);
- a SIGKILLed follower, restarted, rejoins every ISR;
- a consumer group keeps consuming and committing when its coordinator (the
  leader of the group's __consumer_offsets partition) is SIGKILLed.

Every node is both a broker and a controller, so a fault on a partition
leader is a different fault when that node is also the active controller
(the quorum must elect first). The tests that kill a leader therefore run
twice, placing the leader deterministically with an explicit replica
assignment: on the active controller, and on another node.

The produce-side stall (fault to the first acknowledgement of a record sent
after it) is printed; run with -s to see it. bench/failover.py measures it
properly.
"""

from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from cluster_util import (  # noqa: F401 - cluster and cluster_factory are fixtures
    RDKAFKA_LOGGER, SeqProducer, acked_problems, cluster, cluster_factory, read_all, wait_for)

NODE_IDS = [1, 2, 3]
MIN_ISR = {"min.insync.replicas": "2"}
ACKS_BEFORE_FAULT = 300
ACKS_AFTER_FAULT = 300  # acknowledged records produced after the fault
FAILOVER_TIMEOUT_S = 45.0  # fencing takes broker.session.timeout.ms (1.5 s); the rest is slack
VICTIMS = ["leader-not-controller", "leader-is-controller"]

# A cluster start, a failover and a full read-back take longer than a
# single-broker test; every wait inside is bounded well below this.
pytestmark = pytest.mark.timeout(180)


def _place(cluster, victim: str) -> tuple[int, int, list[int]]:
    """(victim node, active controller, the other nodes): the victim is the active
    controller or, for "leader-not-controller", the lowest other node id."""
    controller = cluster.active_controller()
    node = controller if victim == "leader-is-controller" else min(i for i in NODE_IDS if i != controller)
    return node, controller, [i for i in NODE_IDS if i != node]


def _create_led_by(cluster, topic: str, partitions: int, leader: int) -> None:
    """RF 3 topic whose partition 0 is led by `leader` (first in its replica list;
    Kafka makes the first live replica the leader at creation). Later partitions
    rotate the list, so leaders are spread as Kafka spreads them."""
    order = [leader] + [i for i in NODE_IDS if i != leader]
    assignment = [order[p % 3:] + order[:p % 3] for p in range(partitions)]
    cluster.create_topic(topic, config=MIN_ISR, assignment=assignment)
    got = cluster.wait_for_leader(topic, 0)
    assert got == leader, f"{topic}[0] is led by {got}, expected {leader} (first of {assignment[0]})"


def _assert_still_controller(cluster, controller: int) -> None:
    now = cluster.active_controller()
    assert now == controller, f"the active controller moved from {controller} to {now} before the fault"


def _produce_through(producer: SeqProducer, fault, what: str, check=None) -> float:
    """Once `ACKS_BEFORE_FAULT` records are acknowledged runs `check()` and then
    `fault()`, waits for `ACKS_AFTER_FAULT` acknowledgements of records produced
    after the fault and stops the producer. Returns the time of the fault
    (time.monotonic(), taken right before `fault()` signals)."""
    producer.wait_acks(ACKS_BEFORE_FAULT, 30)
    if check is not None:
        check()
    t_fault = time.monotonic()
    fault()
    try:
        producer.wait_acks(ACKS_AFTER_FAULT, FAILOVER_TIMEOUT_S, sent_after=t_fault)
    except AssertionError:
        producer.stop(flush_timeout=5)
        raise
    producer.stop()
    first = producer.first_ack_sent_after(t_fault)
    print(f"\n{what}: produce stall (fault -> first ack of a record sent after it) "
          f"{first.acked_at - t_fault:.3f}s; {producer.summary()}")
    return t_fault


def _assert_acked_intact(cluster, producer: SeqProducer, topic: str, partitions: int) -> None:
    assert producer.fatal is None, producer.summary()
    ends = {}
    for a in producer.acks:
        ends[a.partition] = max(ends.get(a.partition, 0), a.offset + 1)
    got, hw = read_all(cluster.live_bootstrap(), topic, partitions, min_end=ends)
    problems = acked_problems(producer.acks, got)
    assert not problems, (
        f"{len(producer.acks)} acked, read {sum(len(v) for v in got.values())} "
        f"(high watermarks {hw}, last acked offset + 1 {ends}):\n  " + "\n  ".join(problems)
        + f"\n{producer.summary()}")


# ---------------------------------------------------------------- a
def test_cluster_forms_and_creates_replicated_topics(cluster, topic):
    """Every node reports the same quorum leader among voters 1, 2, 3, lists all
    three brokers, and shows an RF 3 topic's partitions with 3 replicas each."""
    leaders = set()
    for node in cluster.nodes:
        st = wait_for(lambda: (lambda s: s if s.get("LeaderId", "-1") != "-1" else None)(
            cluster.quorum_status(via=node)), 30, f"node {node.id} to name a quorum leader")
        assert sorted(st["voter_ids"]) == NODE_IDS, st
        assert int(st["LeaderId"]) in NODE_IDS, st
        leaders.add(int(st["LeaderId"]))
    assert len(leaders) == 1, f"nodes name different quorum leaders: {leaders}"

    want_brokers = {n.id: ("127.0.0.1", n.kafka_port) for n in cluster.nodes}
    for node in cluster.nodes:
        md = wait_for(lambda: (lambda m: m if m.brokers == want_brokers else None)(node.metadata()),
                      30, f"node {node.id}'s Metadata to list brokers {want_brokers}")
        assert md.controller_id in NODE_IDS, f"node {node.id}: controller id {md.controller_id}"
    # DescribeCluster (librdkafka's admin) lists the same brokers from any node.
    from confluent_kafka.admin import AdminClient
    for node in cluster.nodes:
        admin = AdminClient({"bootstrap.servers": node.bootstrap, "logger": RDKAFKA_LOGGER})
        desc = admin.describe_cluster(request_timeout=10).result(30)
        got = {n.id: (n.host, n.port) for n in desc.nodes}
        assert got == want_brokers, f"node {node.id}: DescribeCluster lists {got}"
        assert desc.controller is not None and desc.controller.id in NODE_IDS, desc.controller

    cluster.create_topic(topic, 3, 3, MIN_ISR)
    for node in cluster.nodes:
        md = node.metadata([topic])
        err, parts = md.topics[topic]
        assert err == 0 and sorted(parts) == [0, 1, 2], f"node {node.id}: {md.topics[topic]}"
        for p in parts.values():
            assert p.error == 0, f"node {node.id} {topic}[{p.partition}]: error {p.error}"
            assert sorted(p.replicas) == NODE_IDS, f"node {node.id} {topic}[{p.partition}]: {p}"
            assert p.leader in p.replicas and p.leader in p.isr, f"node {node.id} {topic}[{p.partition}]: {p}"
            assert set(p.isr) <= set(p.replicas), f"node {node.id} {topic}[{p.partition}]: {p}"
    described = cluster.describe(topic)
    assert sorted(described) == [0, 1, 2], described
    assert all(sorted(p.replicas) == NODE_IDS for p in described.values()), described


# ---------------------------------------------------------------- b
@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("partitions", [1, 3])
def test_acks_all_survives_leader_kill9(cluster, topic, partitions, victim):
    """No acknowledged write is lost, moved, duplicated or reordered when the
    leader of partition 0 is SIGKILLed mid-stream."""
    leader, controller, _ = _place(cluster, victim)
    _create_led_by(cluster, topic, partitions, leader)
    isr_before = cluster.node(leader).metadata([topic]).partition(topic, 0).isr
    producer = SeqProducer(cluster.bootstrap, topic, partitions).start()

    _produce_through(producer, cluster.node(leader).kill9, f"kill -9 of leader {leader} (controller {controller})",
                     check=lambda: _assert_still_controller(cluster, controller))
    new_leader = cluster.wait_for_leader(topic, 0, not_in=(leader,))
    assert new_leader in isr_before, f"new leader {new_leader} was not in the ISR {isr_before}"
    _assert_acked_intact(cluster, producer, topic, partitions)


# ---------------------------------------------------------------- c
@pytest.mark.parametrize("victim", VICTIMS)
def test_sigterm_controlled_shutdown_moves_leadership(cluster, topic, victim):
    """SIGTERM of the leader exits 0, leadership moves to an ISR member, producing
    continues, and no acknowledged write is lost."""
    leader, controller, _ = _place(cluster, victim)
    _create_led_by(cluster, topic, 1, leader)
    isr_before = cluster.node(leader).metadata([topic]).partition(topic, 0).isr
    producer = SeqProducer(cluster.bootstrap, topic, 1).start()
    took = []

    _produce_through(producer, lambda: took.append(cluster.node(leader).terminate()),
                     f"SIGTERM of leader {leader} (controller {controller})",
                     check=lambda: _assert_still_controller(cluster, controller))
    print(f"leader {leader} exited 0 {took[0]:.2f}s after SIGTERM")
    new_leader = cluster.wait_for_leader(topic, 0, not_in=(leader,))
    assert new_leader in isr_before, f"new leader {new_leader} was not in the ISR {isr_before}"
    _assert_acked_intact(cluster, producer, topic, 1)


# ---------------------------------------------------------------- d
def test_restarted_broker_rejoins_isr(cluster, topic):
    """A SIGKILLed follower leaves every ISR, and after a restart (same ports and
    log dir) catches up with what was written meanwhile and rejoins every ISR.
    The follower is neither a leader nor the active controller, so nothing but
    the ISR changes."""
    partitions = 3
    leader, controller, others = _place(cluster, "leader-not-controller")
    follower = next(i for i in others if i != controller)
    cluster.create_topic(topic, config=MIN_ISR, assignment=[[leader, controller, follower]] * partitions)
    for p in range(partitions):
        got = cluster.wait_for_leader(topic, p)
        assert got == leader, f"{topic}[{p}] is led by {got}, expected {leader}"
    cluster.node(follower).kill9()

    def isrs():
        return {p: sorted(m.isr) for p, m in cluster.describe(topic).items()}
    wait_for(lambda: len(isrs()) == partitions and all(follower not in isr for isr in isrs().values()),
             FAILOVER_TIMEOUT_S, f"node {follower} to leave every ISR after its kill -9 "
             "(fenced after broker.session.timeout.ms)", interval=0.2, on_timeout=lambda: f"ISRs: {isrs()}")

    producer = SeqProducer(cluster.bootstrap, topic, partitions, rate=2000).start()
    try:
        producer.wait_acks(ACKS_BEFORE_FAULT + ACKS_AFTER_FAULT, 30)
    finally:
        producer.stop()

    cluster.node(follower).restart()
    wait_for(lambda: (lambda s: s if all(isr == NODE_IDS for isr in s.values()) else None)(isrs()),
             60, f"every ISR to be {NODE_IDS} again after node {follower} restarted", interval=0.25,
             on_timeout=lambda: f"ISRs: {isrs()}")
    _assert_acked_intact(cluster, producer, topic, partitions)


# ---------------------------------------------------------------- e
def _java_string_hash(s: str) -> int:
    b = s.encode("utf-16-be")
    h = 0
    for unit in struct.unpack(f">{len(b) // 2}H", b):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _offsets_partition(group: str, partition_count: int) -> int:
    """Kafka's GroupCoordinator.partitionFor: Utils.abs(groupId.hashCode) % count."""
    h = _java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partition_count


def _offsets_leaders(cluster, via) -> dict[int, int]:
    """__consumer_offsets partition -> leader, once FindCoordinator has created it."""
    warmup = "gregor-cluster-test-warmup"  # FindCoordinator creates __consumer_offsets; retriable meanwhile
    wait_for(lambda: cluster.admin().describe_consumer_groups([warmup])[warmup].result(30), 30,
             "DescribeConsumerGroups of an unknown group to succeed (creates __consumer_offsets)", interval=0.5)

    def leaders():
        t = via.metadata(["__consumer_offsets"]).topics.get("__consumer_offsets")
        if t is None or t[0] != 0 or not t[1] or any(p.leader < 0 for p in t[1].values()):
            return None
        return {p: m.leader for p, m in t[1].items()}
    return wait_for(leaders, 30, "__consumer_offsets to have a leader for every partition")


def _group_coordinated_by(cluster, prefix: str, want_controller: bool, controller: int) -> tuple[str, int, int]:
    """A group id whose __consumer_offsets partition is led by the active controller
    (or not): (group, partition, leader). Ids of one length share most of their Java
    hash, so a search limited to non-negative hashes found nothing for some topic
    names (every candidate negative); Kafka's Utils.abs mapping, which
    test_group_coordinator_is_kafkas_offsets_partition_leader checks on its own,
    places negative hashes too."""
    leaders = _offsets_leaders(cluster, cluster.node(controller))
    for i in range(10_000):
        group = f"{prefix}-g{i}"
        p = _offsets_partition(group, len(leaders))
        if (leaders[p] == controller) == want_controller:
            return group, p, leaders[p]
    raise AssertionError(f"no group id found whose coordinator placement fits; leaders {leaders}")


def test_group_coordinator_is_kafkas_offsets_partition_leader(cluster):
    """FindCoordinator names the leader of __consumer_offsets partition
    Utils.abs(groupId.hashCode()) % partitions, as Kafka does (Utils.abs maps
    Integer.MIN_VALUE to 0 and is Math.abs otherwise), for ids with positive,
    negative and MIN_VALUE hashes; offsets written by Kafka sit in those partitions."""
    leaders = _offsets_leaders(cluster, cluster.nodes[0])
    # "my-group" is __consumer_offsets-12 of 50 in Kafka; "polygenelubricants" hashes to MIN_VALUE.
    # Two partitions often share a leader, so a wrong mapping shows only on some ids: ask about 40.
    candidates = [f"{i}-gregor-group" for i in range(400)]
    groups = ["my-group", "polygenelubricants"]
    groups += [g for g in candidates if _java_string_hash(g) < 0][:30]
    groups += [g for g in candidates if _java_string_hash(g) > 0][:10]
    wrong = []
    for group in groups:
        p = _offsets_partition(group, len(leaders))
        # COORDINATOR_NOT_AVAILABLE is retriable (the coordinator may still be loading).
        named = wait_for(lambda: cluster.admin().describe_consumer_groups([group])[group].result(30), 30,
                         f"DescribeConsumerGroups({group})", interval=0.2).coordinator.id
        if named != leaders[p]:
            wrong.append(f"{group!r} (hashCode {_java_string_hash(group)}): coordinator {named}, "
                         f"Kafka's __consumer_offsets[{p}] is led by {leaders[p]}")
    assert not wrong, "FindCoordinator differs from Kafka's partitionFor:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("victim", ["coordinator-not-controller", "coordinator-is-controller"])
def test_consumer_group_survives_coordinator_kill(cluster, topic, victim):
    """A group member keeps consuming, and its commits keep moving forward, after
    its coordinator (the leader of the group's __consumer_offsets partition) is
    SIGKILLed; every acknowledged record is consumed."""
    partitions = 3
    controller = cluster.active_controller()
    group, op, coordinator = _group_coordinated_by(cluster, topic, victim == "coordinator-is-controller",
                                                   controller)
    # The data partitions stay off the coordinator, so this tests the group's failover only.
    data_nodes = [i for i in NODE_IDS if i != coordinator]
    cluster.create_topic(topic, config=MIN_ISR, assignment=[
        [data_nodes[p % 2], data_nodes[(p + 1) % 2], coordinator] for p in range(partitions)])
    producer = SeqProducer(cluster.bootstrap, topic, partitions, rate=200).start()
    consumer = Consumer({
        "bootstrap.servers": cluster.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
        "socket.timeout.ms": 10000, "fetch.wait.max.ms": 100, "logger": RDKAFKA_LOGGER})
    seen: set[int] = set()
    commit_errors: list[str] = []

    def consume_and_commit(timeout=0.2):
        msgs = consumer.consume(num_messages=500, timeout=timeout)
        for m in msgs:
            if m.error() is None:
                seen.add(int(m.value()))
        if msgs:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:  # e.g. the coordinator is moving; the next commit covers it
                commit_errors.append(str(e))

    def committed() -> dict[int, int]:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}

    try:
        consumer.subscribe([topic])
        wait_for(lambda: (consume_and_commit(), len(seen) >= 200 and sum(
            max(o, 0) for o in committed().values()) >= 100)[1], 60,
            "the group to consume 200 records and commit at least 100", interval=0)
        before = committed()
        described = cluster.admin().describe_consumer_groups([group])[group].result(30)
        assert described.coordinator.id == coordinator, (
            f"FindCoordinator names node {described.coordinator.id}, the leader of "
            f"__consumer_offsets[{op}] is {coordinator}")
        _assert_still_controller(cluster, controller)

        t_kill = time.monotonic()
        cluster.node(coordinator).kill9()
        wait_for(lambda: (consume_and_commit(), producer.acked_count(sent_after=t_kill) >= ACKS_AFTER_FAULT)[1],
                 FAILOVER_TIMEOUT_S, f"{ACKS_AFTER_FAULT} acks after the coordinator kill", interval=0,
                 on_timeout=producer.summary)
        producer.stop()
        assert producer.fatal is None, producer.summary()
        acked = {a.seq for a in producer.acks}
        ends = {p: 0 for p in range(partitions)}
        for a in producer.acks:
            ends[a.partition] = max(ends[a.partition], a.offset + 1)
        wait_for(lambda: (consume_and_commit(), acked <= seen)[1], FAILOVER_TIMEOUT_S,
                 "the group to consume every acknowledged record after the coordinator kill", interval=0,
                 on_timeout=lambda: f"missing {len(acked - seen)} e.g. {sorted(acked - seen)[:10]}; "
                                    f"commit errors {sorted(set(commit_errors))[:5]}")
        # Commits move on past the kill: the last ones cover every acknowledged record.
        after = wait_for(lambda: (lambda c: c if all(c[p] >= ends[p] for p in ends) else None)(
            (consume_and_commit(), committed())[1]), 30,
            f"committed offsets to reach the acknowledged ends {ends}", interval=0.1)
        print(f"\ncoordinator {coordinator} (__consumer_offsets[{op}], controller {controller}) killed; "
              f"committed before {before}, after {after}; commit errors meanwhile: "
              f"{sorted(set(commit_errors))[:5]}")
        assert all(after[p] > before[p] for p in range(partitions)), (before, after)
    finally:
        producer.stop(flush_timeout=5)
        consumer.close()
