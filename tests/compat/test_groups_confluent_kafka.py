"""Consumer groups (classic protocol) with confluent-kafka 2.16.1 / librdkafka 2.16.0.

Members run in threads (`CkMember`: one Consumer per thread, polled continuously,
rebalance callbacks recorded with timestamps) or, when a member must die without
leaving the group, in a subprocess (`group_member_ck.py`, SIGKILLed).

Most tests lower the broker's group.initial.rebalance.delay.ms to 0 and
group.min.session.timeout.ms to 1000 (FAST) so that short session timeouts are
accepted; `test_initial_rebalance_delay_default` keeps the default 3 s delay.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, Consumer, KafkaError, KafkaException,
                             Producer, TopicPartition)


from compat_util import ck_admin, ck_create_topic, wait_until

FAST = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}
MEMBER_SCRIPT = Path(__file__).resolve().parent / "group_member_ck.py"


# ---------------------------------------------------------------- helpers
def produce_keyed(bootstrap: str, topic: str, partitions: int, per_partition: int, tag: str = "r",
                  start: int = 0) -> dict[tuple[int, int], bytes]:
    """Produce per_partition keyed records to each partition (explicit partition, round
    robin); returns {(partition, offset): value} assuming the partitions held `start`
    records each before."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    errors, delivered = [], {}

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[(msg.partition(), msg.offset())] = msg.value()

    for i in range(partitions * per_partition):
        part = i % partitions
        p.produce(topic, key=f"key-{tag}-{i}".encode(), value=f"value-{tag}-{i}".encode(), partition=part,
                  on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(60) == 0, "records not delivered within 60s"
    assert not errors, f"delivery errors: {errors[:5]}"
    want = {(q, o) for q in range(partitions) for o in range(start, start + per_partition)}
    assert set(delivered) == want, f"unexpected delivery offsets: {sorted(set(delivered) ^ want)[:10]}"
    return delivered


class CkMember:
    """A group member polled by its own thread. Rebalance events are recorded as
    (monotonic time, "assign"/"revoke"/"lost", sorted partitions); `assignment` is the
    consumer's assignment() after the latest poll; `processed` holds (partition, offset,
    value) of every record handed to the application. With commit_each, every record is
    committed synchronously after processing; failures go to `commit_errors`."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, *, session_ms: int = 6000,
                 assignor: str = "range", commit_each: bool = False, process_delay: float = 0.0,
                 instance_id: str | None = None, extra: dict | None = None,
                 retry_rebalance_commits: bool = False):
        self.name, self.topic = name, topic
        self.conf = {
            "bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": session_ms, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": assignor, "fetch.wait.max.ms": 100,
            "socket.timeout.ms": 10000, **(extra or {}),
        }
        if instance_id:
            self.conf["group.instance.id"] = instance_id
        self.cooperative = assignor == "cooperative-sticky"
        self.commit_each, self.process_delay = commit_each, process_delay
        self.events: list[tuple[float, str, list[int]]] = []
        self.assignment: frozenset[int] = frozenset()
        self.assignment_changed_at = time.monotonic()
        self.processed: list[tuple[int, int, bytes]] = []
        self.commit_errors: list[str] = []
        self.commit_retries: list[str] = []
        self.retry_rebalance_commits = retry_rebalance_commits
        self.errors: list[str] = []
        self.exc: BaseException | None = None
        self.member_id: str | None = None
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)

    def start(self) -> "CkMember":
        self._thread.start()
        return self

    def _run(self):
        try:
            c = Consumer(self.conf)
        except BaseException as e:  # noqa: BLE001
            self.exc = e
            self.closed.set()
            return

        def on_assign(consumer, parts):
            self.events.append((time.monotonic(), "assign", sorted(p.partition for p in parts)))
            consumer.incremental_assign(parts) if self.cooperative else consumer.assign(parts)

        def on_revoke(consumer, parts):
            self.events.append((time.monotonic(), "revoke", sorted(p.partition for p in parts)))
            consumer.incremental_unassign(parts) if self.cooperative else consumer.unassign()

        def on_lost(consumer, parts):
            self.events.append((time.monotonic(), "lost", sorted(p.partition for p in parts)))
            consumer.incremental_unassign(parts) if self.cooperative else consumer.unassign()

        try:
            c.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
            while not self._stop.is_set():
                m = c.poll(0.1)
                self._snapshot(c)
                if m is None:
                    continue
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        self.errors.append(str(err))
                    continue
                self.processed.append((m.partition(), m.offset(), m.value()))
                if self.process_delay:
                    time.sleep(self.process_delay)
                if self.commit_each:
                    self._commit(c, m)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.exc = e
        finally:
            try:
                c.close()
            except BaseException as e:  # noqa: BLE001
                self.exc = self.exc or e
            self.closed.set()

    def _commit(self, c, m):
        deadline = time.monotonic() + 30
        while True:
            try:
                c.commit(message=m, asynchronous=False)
                return
            except KafkaException as e:
                err = f"p{m.partition()}@{m.offset()}: {e.args[0]}"
                code = e.args[0].code()
                if (not self.retry_rebalance_commits or time.monotonic() > deadline
                        or code not in (KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS)):
                    self.commit_errors.append(err)
                    return
                # The group moved on to the next generation while this commit was in
                # flight (see test_cooperative_sticky_incremental_rebalance): commit the
                # same offset again in the new generation.
                self.commit_retries.append(err)
                time.sleep(0.05)

    def _snapshot(self, c):
        a = frozenset(tp.partition for tp in c.assignment())
        if a != self.assignment:
            self.assignment = a
            self.assignment_changed_at = time.monotonic()
        if a and self.member_id is None:
            self.member_id = c.memberid() or None

    def stop(self, timeout: float = 30) -> None:
        """Close the consumer (LeaveGroup) from its own thread; raise what the thread raised."""
        self._stop.set()
        assert self.closed.wait(timeout), f"member {self.name}: close() did not return within {timeout}s"
        if self.exc is not None:
            raise AssertionError(f"member {self.name} failed: {self.exc!r}") from self.exc

    def abandon(self):
        self._stop.set()
        self.closed.wait(30)

    def kinds(self, since: float = 0.0) -> list[tuple[str, list[int]]]:
        return [(k, p) for t, k, p in self.events if t >= since]


class ProcMember:
    """group_member_ck.py in a subprocess (so it can be SIGKILLed without leaving)."""

    def __init__(self, bootstrap: str, group: str, topic: str, session_ms: int, instance_id: str | None = None,
                 assignor: str = "range"):
        self.proc = subprocess.Popen(
            [sys.executable, str(MEMBER_SCRIPT), bootstrap, group, topic, str(session_ms), instance_id or "-",
             assignor],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events: list[dict] = []
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            ev["mono"] = time.monotonic()
            self.events.append(ev)

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr += line

    @property
    def assignment(self) -> frozenset[int]:
        a: set[int] = set()
        for ev in self.events:
            if ev["event"] == "assign":
                a |= set(ev["partitions"])
            elif ev["event"] in ("revoke", "lost"):
                a -= set(ev["partitions"])
        return frozenset(a)

    def errors(self) -> list[str]:
        return [ev["error"] for ev in self.events if ev["event"] == "error"]

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def report(self) -> str:
        return f"events={self.events}\nstderr={self.stderr.decode(errors='replace')[-3000:]}"


def balanced(assignments: list[frozenset[int]], partitions: int) -> bool:
    """Disjoint, full coverage, and as even as possible."""
    n = len(assignments)
    sizes = sorted(len(a) for a in assignments)
    return (sum(sizes) == partitions and frozenset().union(*assignments) == frozenset(range(partitions))
            and sizes[-1] - sizes[0] <= 1 and sizes[0] == partitions // n)


def describe(admin, group: str):
    return admin.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=20)


def member_partitions(desc, topic: str) -> dict[str, frozenset[int]]:
    out = {}
    for m in desc.members:
        tps = m.assignment.topic_partitions if m.assignment else []
        assert all(tp.topic == topic for tp in tps), f"{m.member_id}: {tps}"
        out[m.member_id] = frozenset(tp.partition for tp in tps)
    return out


def group_offsets(admin, group: str, topic: str, partitions: int) -> dict[int, int]:
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = admin.list_consumer_group_offsets([req], request_timeout=15)[group].result(timeout=20)
    assert res.group_id == group
    for tp in res.topic_partitions:
        assert tp.error is None, f"{tp}: {tp.error}"
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}


def stop_all(members):
    first = None
    for m in members:
        try:
            if isinstance(m, ProcMember):
                m.terminate()
            else:
                m.stop()
        except AssertionError as e:  # keep closing the others
            first = first or e
    if first:
        raise first


# ---------------------------------------------------------------- membership
@pytest.mark.broker_overrides(FAST)
def test_three_members_share_partitions_and_leave_promptly(broker, topic):
    """3 members on 6 partitions get 2 each (disjoint, full coverage); DescribeGroups
    agrees; when one closes (LeaveGroup) the other two take its partitions well before
    the 30 s session timeout would have expired it."""
    ck_create_topic(broker.bootstrap, topic, 6)
    group = f"g-{topic}"
    members = [CkMember(f"m{i}", broker.bootstrap, group, topic, session_ms=30000).start() for i in range(3)]
    admin = ck_admin(broker.bootstrap)
    try:
        wait_until(lambda: balanced([m.assignment for m in members], 6), 45,
                   "3 members with 2 partitions each")
        for m in members:
            assert len(m.assignment) == 2, (m.name, m.assignment)

        desc = wait_until(lambda: (d := describe(admin, group)).state == ConsumerGroupState.STABLE
                          and len(d.members) == 3 and d, 15, "DescribeGroups: Stable with 3 members")
        assert desc.group_id == group
        assert not desc.is_simple_consumer_group
        assert desc.partition_assignor == "range"
        assert desc.coordinator.id == 1 and desc.coordinator.port == broker.port
        by_id = member_partitions(desc, topic)
        assert by_id == {m.member_id: m.assignment for m in members}, (by_id, [(m.member_id, m.assignment) for m in members])
        assert sorted(m.client_id for m in desc.members) == ["m0", "m1", "m2"]
        assert {m.host for m in desc.members} == {"/127.0.0.1"}
        assert all(m.group_instance_id is None for m in desc.members)

        leaver, survivors = members[0], members[1:]
        before = {m.name: m.assignment for m in members}
        t0 = time.monotonic()
        leaver.stop()
        wait_until(lambda: balanced([m.assignment for m in survivors], 6), 20,
                   "the 2 survivors to own all 6 partitions")
        moved_after = max(m.assignment_changed_at for m in survivors) - t0
        assert moved_after < 10, f"partitions moved {moved_after:.1f}s after LeaveGroup (session timeout 30s)"
        assert all(len(m.assignment) == 3 for m in survivors)
        assert before[leaver.name] <= survivors[0].assignment | survivors[1].assignment

        desc = wait_until(lambda: (d := describe(admin, group)).state == ConsumerGroupState.STABLE
                          and len(d.members) == 2 and d, 15, "DescribeGroups: Stable with 2 members")
        assert member_partitions(desc, topic) == {m.member_id: m.assignment for m in survivors}
        for m in members:
            assert not m.errors, (m.name, m.errors)
    finally:
        stop_all(members)


@pytest.mark.broker_overrides(FAST)
def test_killed_member_expires_after_session_timeout(broker, topic):
    """A member SIGKILLed (no LeaveGroup) keeps its partitions until its 4 s session
    times out; then the survivor gets all 6."""
    session_ms = 4000
    ck_create_topic(broker.bootstrap, topic, 6)
    group = f"g-{topic}"
    victim = ProcMember(broker.bootstrap, group, topic, session_ms)
    survivor = CkMember("survivor", broker.bootstrap, group, topic, session_ms=session_ms).start()
    try:
        wait_until(lambda: balanced([victim.assignment, survivor.assignment], 6), 45,
                   "2 members with 3 partitions each")
        assert victim.assignment == frozenset(range(6)) - survivor.assignment
        # Stable: no rebalance in progress at the kill.
        wait_until(lambda: describe(ck_admin(broker.bootstrap), group).state == ConsumerGroupState.STABLE, 15,
                   "group Stable")
        t_kill = time.monotonic()
        victim.kill9()
        wait_until(lambda: survivor.assignment == frozenset(range(6)), session_ms / 1000 + 20,
                   "the survivor to own all 6 partitions")
        first_rebalance = min(t for t, k, _ in survivor.events if t > t_kill)
        # Its last heartbeat was at most heartbeat.interval.ms (0.5 s) before the kill.
        assert first_rebalance - t_kill >= session_ms / 1000 - 1.0, (
            f"rebalance began {first_rebalance - t_kill:.2f}s after the kill, before the session timeout "
            f"({session_ms} ms)")
        assert survivor.assignment_changed_at - t_kill <= session_ms / 1000 + 8, (
            f"partitions moved only {survivor.assignment_changed_at - t_kill:.1f}s after the kill")
        desc = describe(ck_admin(broker.bootstrap), group)
        assert desc.state == ConsumerGroupState.STABLE
        assert [m.member_id for m in desc.members] == [survivor.member_id]
        assert not survivor.errors, survivor.errors
    except AssertionError as e:
        raise AssertionError(f"{e}\nvictim: {victim.report()}\nsurvivor events: {survivor.events}") from None
    finally:
        stop_all([victim, survivor])


# ---------------------------------------------------------------- offsets
@pytest.mark.broker_overrides(FAST)
def test_committed_offsets_survive_kill9(broker, topic):
    """Synchronous commits (the later one wins, metadata kept) survive a broker kill -9 +
    restart: admin, committed() and a new member of the group all see them, and the new
    member resumes exactly after them."""
    partitions, n = 3, 20
    ck_create_topic(broker.bootstrap, topic, partitions)
    values = produce_keyed(broker.bootstrap, topic, partitions, n)
    group = f"g-{topic}"
    m = CkMember("first", broker.bootstrap, group, topic).start()
    try:
        wait_until(lambda: len(m.processed) == partitions * n, 45, "the first member to read everything")
    finally:
        m.stop()

    # Commit from a member of the group (subscribe, assigned), twice; the second wins.
    c = Consumer({**m.conf, "client.id": "committer"})
    try:
        c.subscribe([topic])
        wait_until(lambda: (c.poll(0.2), len(c.assignment()) == partitions)[1], 45, "assignment")
        c.commit(offsets=[TopicPartition(topic, p, 5) for p in range(partitions)], asynchronous=False)
        final = {0: 7, 1: 3, 2: n}
        res = c.commit(offsets=[TopicPartition(topic, 0, 7, metadata="meta-0"), TopicPartition(topic, 1, 3),
                                TopicPartition(topic, 2, n)], asynchronous=False)
        assert all(tp.error is None for tp in res), res
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        assert {tp.partition: tp.offset for tp in got} == final
    finally:
        c.close()

    broker.kill9()
    broker.restart()

    admin = ck_admin(broker.bootstrap)
    assert wait_until(lambda: group_offsets(admin, group, topic, partitions), 30,
                      "OffsetFetch after restart") == final
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    tp0 = admin.list_consumer_group_offsets([req], request_timeout=15)[group].result(timeout=20).topic_partitions[0]
    assert (tp0.offset, tp0.metadata) == (7, "meta-0")
    desc = describe(admin, group)
    assert desc.state == ConsumerGroupState.EMPTY and desc.members == []

    m2 = CkMember("resumer", broker.bootstrap, group, topic).start()
    try:
        want = {p: n - final[p] for p in range(partitions)}
        wait_until(lambda: len(m2.processed) >= sum(want.values()), 45, "the new member to read the rest")
        time.sleep(1.0)  # anything more (e.g. re-reads from 0) would show up now
        per_p: dict[int, list[int]] = {p: [] for p in range(partitions)}
        for p, off, v in m2.processed:
            per_p[p].append(off)
            assert values[(p, off)] == v
        assert per_p == {p: list(range(final[p], n)) for p in range(partitions)}
        assert m2.assignment == frozenset(range(partitions))
    finally:
        m2.stop()


def run_midway_join(broker, topic, assignor: str, partitions: int = 6, per_partition: int = 60):
    """Member a reads (10 ms per record, sync commit after each); b joins once a has
    processed a quarter. Returns (a, b, produced values, group, DescribeGroups result)
    after everything was read and the group went quiet; a.events / b.events are the
    rebalance events up to then (before the members were closed)."""
    ck_create_topic(broker.bootstrap, topic, partitions)
    values = produce_keyed(broker.bootstrap, topic, partitions, per_partition)
    total = partitions * per_partition
    group = f"g-{topic}"
    kw = dict(assignor=assignor, commit_each=True, process_delay=0.01,
              retry_rebalance_commits=assignor == "cooperative-sticky")
    a = CkMember("a", broker.bootstrap, group, topic, **kw).start()
    b = None
    try:
        wait_until(lambda: len(a.processed) >= total // 4, 45, "a to process a quarter")
        b = CkMember("b", broker.bootstrap, group, topic, **kw).start()
        wait_until(lambda: len(a.processed) + len(b.processed) >= total, 60, "everything processed")
        wait_until(lambda: balanced([a.assignment, b.assignment], partitions), 30, "a balanced group")
        time.sleep(1.5)  # duplicates, if any, would arrive now
        desc = describe(ck_admin(broker.bootstrap), group)
        # Snapshot events and assignments together: closing a member below
        # rebalances the other, which would change its live assignment.
        events = (list(a.events), list(b.events))
        assignments = (a.assignment, b.assignment)
        assert b.processed, "b joined but processed nothing"
    finally:
        stop_all([x for x in (a, b) if x is not None])
    a.events, b.events = events
    a.assignment, b.assignment = assignments
    return a, b, values, group, desc


def assert_exactly_once(a, b, values, what):
    seen = Counter((p, o) for m in (a, b) for p, o, _ in m.processed)
    dups = sorted(k for k, c in seen.items() if c > 1)
    assert not a.commit_errors and not b.commit_errors, (
        f"{what}: synchronous commits failed: a={a.commit_errors[:5]} b={b.commit_errors[:5]}")
    assert not dups, f"{what}: records processed twice: {dups[:20]} (a events {a.events}, b events {b.events})"
    missing = sorted(set(values) - set(seen))
    assert not missing, f"{what}: records never processed: {missing[:20]}"
    assert set(seen) == set(values)
    for m in (a, b):
        for p, o, v in m.processed:
            assert values[(p, o)] == v
        assert not m.errors, (m.name, m.errors)


@pytest.mark.broker_overrides(FAST)
def test_exactly_once_across_eager_rebalance(broker, topic):
    """range (eager): with a synchronous commit after every record, the union of
    what both members processed is every record once: no duplicate, no gap."""
    a, b, values, group, desc = run_midway_join(broker, topic, "range")
    assert_exactly_once(a, b, values, "range")
    # Eager: a stops processing before it rejoins, so no commit can race a generation bump.
    assert not a.commit_retries and not b.commit_retries
    assert desc.state == ConsumerGroupState.STABLE and desc.partition_assignor == "range"
    # a: all 6, everything revoked (eager), then its half.
    assert a.kinds() == [("assign", list(range(6))), ("revoke", list(range(6))), ("assign", sorted(a.assignment))], a.events
    assert b.kinds() == [("assign", sorted(b.assignment))], b.events
    assert group_offsets(ck_admin(broker.bootstrap), group, topic, 6) == {p: 60 for p in range(6)}


@pytest.mark.broker_overrides(FAST)
def test_cooperative_sticky_incremental_rebalance(broker, topic):
    """cooperative-sticky: when b joins, a gets an incremental revoke of exactly the
    partitions b then gets (never all of its partitions), keeps the rest, nothing is
    lost, and every record is processed exactly once.

    Unlike eager, a keeps processing (and committing) its retained partitions during
    the second rebalance. A commit sent with generation N can reach the coordinator
    after that rebalance's join phase completed (generation N+1): Kafka's classic
    coordinator then answers ILLEGAL_GENERATION (REBALANCE_IN_PROGRESS before Kafka
    3.7's rewrite), and so does gregor -- seen with librdkafka's debug log: "Committing
    offsets ... generation-id 2 in join-state wait-join". Such a commit is retried in
    the new generation (a keeps that partition); any other failure fails the test."""
    a, b, values, group, desc = run_midway_join(broker, topic, "cooperative-sticky")
    assert_exactly_once(a, b, values, "cooperative-sticky")
    assert desc.state == ConsumerGroupState.STABLE and desc.partition_assignor == "cooperative-sticky"
    ka, kb = a.kinds(), b.kinds()
    assert ka[0] == ("assign", list(range(6))), a.events
    revokes = [p for k, p in ka if k == "revoke"]
    assert len(revokes) == 1 and len(revokes[0]) == 3, f"a's events: {ka}"
    moved = revokes[0]
    assert sorted(a.assignment) == sorted(set(range(6)) - set(moved)), (ka, a.assignment)
    # Incremental: a never gives up the partitions it keeps; its later assigns add nothing.
    assert [p for k, p in ka[1:] if k == "assign" and p] == [], ka
    assert not [p for k, p in ka + kb if k == "lost"], (ka, kb)
    assert [p for k, p in kb if k == "assign" and p] == [moved], f"b's events {kb}, a revoked {moved}"
    assert [p for k, p in kb if k != "assign"] == [], kb
    assert group_offsets(ck_admin(broker.bootstrap), group, topic, 6) == {p: 60 for p in range(6)}


@pytest.mark.broker_overrides(FAST)
def test_static_membership_restart_keeps_assignment(broker, topic):
    """group.instance.id: a member SIGKILLed and restarted with the same instance id
    within the session timeout gets the same partitions back, and the other member sees
    no rebalance at all (not even after the old session would have expired)."""
    session_ms = 6000
    ck_create_topic(broker.bootstrap, topic, 6)
    group = f"g-{topic}"
    a = ProcMember(broker.bootstrap, group, topic, session_ms, instance_id="static-a")
    b = CkMember("b", broker.bootstrap, group, topic, session_ms=session_ms, instance_id="static-b").start()
    a2 = None
    admin = ck_admin(broker.bootstrap)
    try:
        wait_until(lambda: balanced([a.assignment, b.assignment], 6), 45, "2 static members, 3 partitions each")
        desc = wait_until(lambda: (d := describe(admin, group)).state == ConsumerGroupState.STABLE and d, 15,
                          "Stable")
        assert sorted(m.group_instance_id for m in desc.members) == ["static-a", "static-b"]
        a_parts, b_parts = a.assignment, b.assignment
        b_events_before = list(b.events)

        t_kill = time.monotonic()
        a.kill9()
        a2 = ProcMember(broker.bootstrap, group, topic, session_ms, instance_id="static-a")
        wait_until(lambda: a2.assignment, 20, "the restarted static member to be assigned")
        assert time.monotonic() - t_kill < session_ms / 1000, "restarted member assigned only after the session timeout"
        assert a2.assignment == a_parts, f"restarted member got {sorted(a2.assignment)}, had {sorted(a_parts)}"
        # Past the point where the killed incarnation's session would have expired.
        time.sleep(max(0.0, t_kill + session_ms / 1000 + 2.0 - time.monotonic()))
        assert b.events == b_events_before, f"b saw a rebalance: {b.events[len(b_events_before):]}"
        assert b.assignment == b_parts and a2.assignment == a_parts
        assert [e for e in a2.events if e["event"] in ("revoke", "lost")] == [], a2.events
        desc = describe(admin, group)
        assert desc.state == ConsumerGroupState.STABLE
        assert {m.group_instance_id: frozenset(tp.partition for tp in m.assignment.topic_partitions)
                for m in desc.members} == {"static-a": a_parts, "static-b": b_parts}
        assert not a2.errors() and not b.errors, (a2.errors(), b.errors)
    except AssertionError as e:
        raise AssertionError(f"{e}\na: {a.report()}\na2: {a2.report() if a2 else None}\nb: {b.events}") from None
    finally:
        stop_all([x for x in (a2, b) if x is not None])
        a.terminate()


@pytest.mark.broker_overrides({"group.min.session.timeout.ms": "1000"})
def test_initial_rebalance_delay_default(broker, topic):
    """Default group.initial.rebalance.delay.ms=3000: the first member of a new group is
    not assigned before 3 s, so a second member joining 1 s later is part of the very
    first generation -- each gets half of the partitions in its first assignment and
    nobody is ever revoked."""
    ck_create_topic(broker.bootstrap, topic, 6)
    group = f"g-{topic}"
    t0 = time.monotonic()
    a = CkMember("a", broker.bootstrap, group, topic).start()
    b = None
    try:
        time.sleep(1.0)  # the second member arrives during the delay
        assert not a.events, f"a assigned before the initial rebalance delay: {a.events}"
        b = CkMember("b", broker.bootstrap, group, topic).start()
        wait_until(lambda: balanced([a.assignment, b.assignment], 6), 45, "both assigned")
        first_assign = min(t for t, _, _ in a.events)
        assert first_assign - t0 >= 3.0, f"a first assigned {first_assign - t0:.2f}s after start (< 3 s delay)"
        for m in (a, b):
            assert m.kinds() == [("assign", sorted(m.assignment))], (m.name, m.events)
            assert len(m.assignment) == 3
    finally:
        stop_all([x for x in (a, b) if x is not None])


# ---------------------------------------------------------------- admin
@pytest.mark.broker_overrides(FAST)
def test_admin_groups(broker, topic):
    """AdminClient: list_consumer_groups (with a state filter), describe_consumer_groups,
    list_consumer_group_offsets, alter_consumer_group_offsets (rejected while the group
    has members, accepted when empty), delete_consumer_groups (NON_EMPTY_GROUP while
    active, then deleted). confluent-kafka 2.16.1 has no delete_consumer_group_offsets
    (OffsetDelete is covered by the Java test)."""
    partitions = 3
    ck_create_topic(broker.bootstrap, topic, partitions)
    produce_keyed(broker.bootstrap, topic, partitions, 10)
    group, other = f"g-{topic}", f"g2-{topic}"
    admin = ck_admin(broker.bootstrap)
    m = CkMember("admin-member", broker.bootstrap, group, topic, commit_each=True).start()
    try:
        wait_until(lambda: len(m.processed) == 30, 45, "the member to read and commit everything")
        assert not m.commit_errors, m.commit_errors

        # A second group, with committed offsets only (never joined): "simple"/Empty.
        admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(other, [TopicPartition(topic, 1, 4)])], request_timeout=15
        )[other].result(timeout=20)

        listed = admin.list_consumer_groups(request_timeout=15).result(timeout=20)
        assert not listed.errors, listed.errors
        by_id = {g.group_id: g for g in listed.valid}
        assert set(by_id) == {group, other}, by_id
        assert by_id[group].state == ConsumerGroupState.STABLE
        assert not by_id[group].is_simple_consumer_group
        assert by_id[other].state == ConsumerGroupState.EMPTY
        stable = admin.list_consumer_groups(request_timeout=15, states={ConsumerGroupState.STABLE}).result(timeout=20)
        assert [g.group_id for g in stable.valid] == [group]
        empty = admin.list_consumer_groups(request_timeout=15, states={ConsumerGroupState.EMPTY}).result(timeout=20)
        assert [g.group_id for g in empty.valid] == [other]

        desc = describe(admin, group)
        assert desc.state == ConsumerGroupState.STABLE and desc.partition_assignor == "range"
        assert [(d.member_id, d.client_id) for d in desc.members] == [(m.member_id, "admin-member")]
        assert member_partitions(desc, topic) == {m.member_id: frozenset(range(partitions))}

        assert group_offsets(admin, group, topic, partitions) == {p: 10 for p in range(partitions)}
        assert group_offsets(admin, other, topic, partitions) == {0: -1001, 1: 4, 2: -1001}

        # Active group: alter offsets and delete are refused.
        fut = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2)])], request_timeout=15)[group]
        with pytest.raises(KafkaException) as ei:
            r = fut.result(timeout=20)
            # Per-partition errors come back inside the result.
            errs = [tp.error for tp in r.topic_partitions if tp.error is not None]
            if errs:
                raise KafkaException(errs[0])
        assert ei.value.args[0].code() == KafkaError.UNKNOWN_MEMBER_ID, ei.value
        with pytest.raises(KafkaException) as ei:
            admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value
        assert group_offsets(admin, group, topic, partitions) == {p: 10 for p in range(partitions)}
    finally:
        m.stop()

    # Empty now: alter works, delete works.
    desc = describe(admin, group)
    assert desc.state == ConsumerGroupState.EMPTY and desc.members == []
    r = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 2, 9)])],
        request_timeout=15)[group].result(timeout=20)
    assert all(tp.error is None for tp in r.topic_partitions), r.topic_partitions
    assert group_offsets(admin, group, topic, partitions) == {0: 2, 1: 10, 2: 9}

    fs = admin.delete_consumer_groups([group, other], request_timeout=15)
    assert sorted(fs) == sorted([group, other])
    for g, f in fs.items():
        assert f.result(timeout=20) is None, g
    listed = admin.list_consumer_groups(request_timeout=15).result(timeout=20)
    assert [g.group_id for g in listed.valid] == [], [g.group_id for g in listed.valid]
    assert group_offsets(admin, group, topic, partitions) == {p: -1001 for p in range(partitions)}
    assert describe(admin, group).state == ConsumerGroupState.DEAD
    with pytest.raises(KafkaException) as ei:
        admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, ei.value
