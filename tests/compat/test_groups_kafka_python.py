"""Consumer groups (classic protocol) with kafka-python 2.3.3: KafkaConsumer
subscribe with two members in threads, commit()/committed(), and KafkaAdminClient
list_consumer_groups / describe_consumer_groups / list_consumer_group_offsets.

KafkaConsumer is not thread-safe: each member's consumer lives in its own thread,
and anything else done with it (commit, committed) runs there via `call()`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from compat_util import ck_create_topic, wait_until

FAST = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}
REQUEST_TIMEOUT_MS = 30000
PARTITIONS = 4
PER_PARTITION = 25


class KpMember:
    def __init__(self, name: str, bootstrap: str, group: str, topic: str):
        self.name, self.topic = name, topic
        self.kwargs = dict(bootstrap_servers=bootstrap, group_id=group, client_id=name,
                           enable_auto_commit=False, auto_offset_reset="earliest",
                           session_timeout_ms=6000, heartbeat_interval_ms=500,
                           request_timeout_ms=REQUEST_TIMEOUT_MS, fetch_max_wait_ms=100)
        self.assignment: frozenset[int] = frozenset()
        self.records: list[tuple[int, int, bytes]] = []
        self.exc: BaseException | None = None
        self._calls: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kp-{name}", daemon=True)

    def start(self) -> "KpMember":
        self._thread.start()
        return self

    def _run(self):
        c = None
        try:
            c = KafkaConsumer(**self.kwargs)
            c.subscribe([self.topic])
            while not self._stop.is_set():
                for tp, msgs in c.poll(timeout_ms=100).items():
                    for m in msgs:
                        self.records.append((tp.partition, m.offset, m.value))
                self.assignment = frozenset(tp.partition for tp in c.assignment())
                while True:
                    try:
                        fn, box = self._calls.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        box.put((True, fn(c)))
                    except BaseException as e:  # noqa: BLE001 - handed to the caller
                        box.put((False, e))
        except BaseException as e:  # noqa: BLE001
            self.exc = e
        finally:
            if c is not None:
                try:
                    c.close(autocommit=False)
                except BaseException as e:  # noqa: BLE001
                    self.exc = self.exc or e
            self.closed.set()

    def call(self, fn, timeout: float = 30):
        """Run fn(consumer) in the member's thread; return its result or raise its exception."""
        box: queue.Queue = queue.Queue()
        self._calls.put((fn, box))
        try:
            ok, v = box.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: call not served within {timeout}s (exc={self.exc!r})") from None
        if not ok:
            raise v
        return v

    def stop(self):
        self._stop.set()
        assert self.closed.wait(30), f"{self.name}: close() did not return within 30s"
        if self.exc is not None:
            raise AssertionError(f"member {self.name} failed: {self.exc!r}") from self.exc


def produce(bootstrap, topic) -> dict[tuple[int, int], bytes]:
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        futs = []
        for i in range(PARTITIONS * PER_PARTITION):
            v = f"value-{i}".encode()
            futs.append((v, p.send(topic, key=f"key-{i}".encode(), value=v, partition=i % PARTITIONS)))
        p.flush(timeout=60)
        out = {}
        for v, f in futs:
            md = f.get(timeout=60)
            out[(md.partition, md.offset)] = v
    finally:
        p.close(timeout=10)
    assert set(out) == {(q, o) for q in range(PARTITIONS) for o in range(PER_PARTITION)}, sorted(out)[:10]
    return out


def two_member_group(broker, topic, group):
    """Start 2 members, wait for a 2+2 split, then produce; returns (members, values)
    once every record was consumed (and nothing more arrived for 1.5 s)."""
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    members = [KpMember(f"kp{i}", broker.bootstrap, group, topic).start() for i in range(2)]
    try:
        def split():
            a, b = (m.assignment for m in members)
            return len(a) == len(b) == 2 and a | b == frozenset(range(PARTITIONS))
        wait_until(split, 45, "2 kafka-python members with 2 partitions each")
        values = produce(broker.bootstrap, topic)
        total = PARTITIONS * PER_PARTITION
        wait_until(lambda: sum(len(m.records) for m in members) >= total, 45, "all records consumed")
        time.sleep(1.5)  # duplicates, if any, would arrive now
        seen = Counter((p, o) for m in members for p, o, _ in m.records)
        assert set(seen) == set(values) and max(seen.values()) == 1, (
            f"not exactly once: dups {[k for k, c in seen.items() if c > 1][:10]}, "
            f"missing {sorted(set(values) - set(seen))[:10]}")
        for m in members:
            assert {p for p, _, _ in m.records} == m.assignment, (m.name, m.assignment)
            for p, o, v in m.records:
                assert values[(p, o)] == v
        return members, values
    except BaseException:
        for m in members:
            m._stop.set()
        raise


@pytest.mark.broker_overrides(FAST)
def test_two_members_share_and_commit(broker, topic):
    group = f"g-{topic}"
    members, _ = two_member_group(broker, topic, group)
    try:
        for m in members:
            mine = sorted(m.assignment)
            # Nothing committed yet.
            assert m.call(lambda c: [c.committed(TopicPartition(topic, p)) for p in mine]) == [None, None]
            m.call(lambda c: c.commit())  # the consumed positions
            assert m.call(lambda c: [c.committed(TopicPartition(topic, p)) for p in mine]) == [PER_PARTITION] * 2
        # An explicit offset (with metadata), read back by the other member too.
        from kafka.structs import OffsetAndMetadata
        p0_owner = next(m for m in members if 0 in m.assignment)
        other = next(m for m in members if m is not p0_owner)
        p0_owner.call(lambda c: c.commit({TopicPartition(topic, 0): OffsetAndMetadata(7, "meta", -1)}))
        got = other.call(lambda c: c.committed(TopicPartition(topic, 0), metadata=True))
        assert (got.offset, got.metadata) == (7, "meta"), got
    finally:
        for m in members:
            m.stop()


@pytest.mark.broker_overrides(FAST)
def test_admin_groups(broker, topic):
    group = f"g-{topic}"
    members, _ = two_member_group(broker, topic, group)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS,
                         client_id="kp-admin")
    try:
        for m in members:
            m.call(lambda c: c.commit())

        assert sorted(a.list_consumer_groups()) == [(group, "consumer")]

        [desc] = a.describe_consumer_groups([group])
        assert (desc.error_code, desc.group, desc.state, desc.protocol_type, desc.protocol) == (
            0, group, "Stable", "consumer", "range"), desc
        assert sorted(mi.client_id for mi in desc.members) == ["kp0", "kp1"]
        by_client = {}
        for mi in desc.members:
            assert mi.client_host == "/127.0.0.1", mi
            assert mi.member_metadata.topics == [topic], mi.member_metadata
            tps = mi.member_assignment.assignment
            assert [t for t, _ in tps] == [topic], tps
            by_client[mi.client_id] = frozenset(tps[0][1])
        assert by_client == {m.name: m.assignment for m in members}

        offs = a.list_consumer_group_offsets(group)
        assert {tp: om.offset for tp, om in offs.items()} == {
            TopicPartition(topic, p): PER_PARTITION for p in range(PARTITIONS)}, offs
    finally:
        for m in members:
            m.stop()
    [desc] = a.describe_consumer_groups([group])
    assert (desc.state, desc.members) == ("Empty", []), desc
    # DeleteGroups on the now empty group.
    from kafka.errors import NoError
    assert a.delete_consumer_groups([group]) == [(group, NoError)]
    assert a.list_consumer_groups() == []
    a.close()
