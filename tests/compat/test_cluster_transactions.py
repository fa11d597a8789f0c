"""Transactions on a 3-node Gregor cluster (cluster_util.py) through confluent-kafka,
with a node SIGKILLed mid-transaction. The invariant, checked exactly: read with
read_committed, the topic holds every record of every transaction the client
committed, once, in order, and nothing of any transaction it aborted.

- the transaction coordinator (the leader of the transactional id's
  __transaction_state partition, as FindCoordinator names it) is SIGKILLed while
  a transaction is open with its records written: the client finds the new
  coordinator and either commits, or gets an abortable error, aborts and retries
  the records in a new transaction (each attempt writes distinct values, so an
  aborted attempt's records are recognisable). Run with the coordinator on the
  active controller and on another node;
- the leader of the transaction's data partition is frozen (SIGSTOP) before the
  commit and SIGKILLed after commit_transaction returned, i.e. after the
  coordinator wrote PrepareCommit and before any marker could reach that leader:
  the coordinator must write the markers to the new leader, so read_committed
  eventually sees the transaction, and the producer's next transaction works.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException

from cluster_util import RDKAFKA_LOGGER, cluster, cluster_factory, wait_for  # noqa: F401 - fixtures
from txn_util import find_txn_coordinator, produce_all, read_to_end, txn_producer, wait_txn_coordinator

NODE_IDS = [1, 2, 3]
MIN_ISR = {"min.insync.replicas": "2"}
FAILOVER_TIMEOUT_S = 60.0
PRODUCER_CONF = {"logger": RDKAFKA_LOGGER, "transaction.timeout.ms": 60000, "message.timeout.ms": 60000}

pytestmark = pytest.mark.timeout(240)


def _warm_up(cluster) -> None:
    """init_transactions of a throwaway id: the first FindCoordinator(TRANSACTION)
    creates __transaction_state (librdkafka retries COORDINATOR_NOT_AVAILABLE meanwhile)."""
    txn_producer(cluster.bootstrap, "gregor-cluster-txn-warmup", init_timeout=60, **PRODUCER_CONF).close()


def _txid_coordinated_by(cluster, prefix: str, want) -> tuple[str, int]:
    """A transactional id whose coordinator (named alike by every node) satisfies want(node)."""
    for i in range(300):
        txid = f"{prefix}-tx{i}"
        node = wait_txn_coordinator(cluster.live_nodes(), txid)
        if want(node):
            return txid, node
    raise AssertionError("no transactional id found with a fitting coordinator")


class TxnRun:
    """Transactions of `per` records per partition; each attempt's values are distinct
    ("<txn>-<attempt>-<partition>-<i>"). Records what was committed and aborted."""

    def __init__(self, producer, topic: str, partitions: int, per: int):
        self.p, self.topic, self.partitions, self.per = producer, topic, partitions, per
        self.committed: list[tuple[int, int]] = []
        self.aborted: list[tuple[int, int]] = []
        self.errors: list[str] = []

    def values(self, k: int, attempt: int) -> list[tuple[int, bytes, bytes]]:
        return [(p, f"k{k}".encode(), f"{k}-{attempt}-{p}-{i}".encode())
                for i in range(self.per) for p in range(self.partitions)]

    def _retry(self, op, what: str, deadline: float):
        """Calls op() until it does not raise a retriable error (librdkafka: retry the
        same call); returns None or the abortable/fatal KafkaError."""
        while True:
            try:
                op()
                return None
            except KafkaException as e:
                err = e.args[0]
                self.errors.append(f"{what}: {err}")
                if err.fatal():
                    raise AssertionError(f"fatal error in {what}: {err}; history {self.errors}") from None
                if err.txn_requires_abort():
                    return err
                if not err.retriable() or time.monotonic() > deadline:
                    raise AssertionError(f"{what} failed: {err}; history {self.errors}") from None
                time.sleep(0.2)

    def run(self, k: int, mid_txn=None, deadline_s: float = 120.0) -> None:
        """Transaction k, retried (new attempt) after an abortable error; `mid_txn()` runs
        once, with the first attempt open and its records delivered."""
        deadline = time.monotonic() + deadline_s
        for attempt in range(20):
            assert time.monotonic() < deadline, f"transaction {k} not committed in {deadline_s}s: {self.errors}"
            err = self._retry(self.p.begin_transaction, f"txn {k}.{attempt} begin", deadline)
            if err is None:
                delivery: list[str] = []
                produce_all(self.p, self.topic, self.values(k, attempt), delivery)
                left = self.p.flush(60)
                self.errors += [f"txn {k}.{attempt} delivery: {d}" for d in delivery]
                if mid_txn is not None and attempt == 0:
                    assert left == 0 and not delivery, f"records not delivered before the fault: {delivery[:5]}"
                    mid_txn()
                err = self._retry(lambda: self.p.commit_transaction(60), f"txn {k}.{attempt} commit", deadline)
                if err is None:
                    self.committed.append((k, attempt))
                    return
            abort_err = self._retry(lambda: self.p.abort_transaction(60), f"txn {k}.{attempt} abort", deadline)
            assert abort_err is None, f"abort_transaction failed: {abort_err}; history {self.errors}"
            self.aborted.append((k, attempt))
        raise AssertionError(f"transaction {k}: 20 attempts aborted: {self.errors}")

    def check(self, bootstrap: str, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """read_committed holds exactly the committed attempts' values, once each, in
        transaction order per partition, and nothing of an aborted attempt -- waiting
        (bounded) for markers still on their way."""
        want = {p: [v for k, a in self.committed for q, _, v in self.values(k, a) if q == p]
                for p in range(self.partitions)}

        def complete():
            got = read_to_end(bootstrap, self.topic, self.partitions, "read_committed", timeout=20)
            return got if all(len(got.values(p)) >= len(want[p]) for p in want) else None
        try:
            got = wait_for(complete, timeout, "read_committed to show every committed transaction", interval=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}\ncommitted {self.committed}, aborted {self.aborted}, "
                                 f"client errors {self.errors[:20]}") from None
        aborted_vals = {v for k, a in self.aborted for _, _, v in self.values(k, a)}
        for p in range(self.partitions):
            vals = got.values(p)
            leaked = [v for v in vals if v in aborted_vals]
            assert not leaked, f"partition {p}: records of aborted attempts visible under read_committed: {leaked[:10]}"
            assert vals == want[p], (
                f"partition {p}: read_committed differs from the committed transactions {self.committed} "
                f"(aborted {self.aborted}): got {len(vals)} records, want {len(want[p])}; "
                f"first difference at {next((i for i, (a, b) in enumerate(zip(vals, want[p])) if a != b), None)}; "
                f"client errors {self.errors[:20]}")


@pytest.mark.parametrize("victim", ["coordinator-not-controller", "coordinator-is-controller"])
def test_transactions_survive_coordinator_kill9(cluster, topic, victim):
    partitions = 3
    controller = cluster.active_controller()
    _warm_up(cluster)
    txid, coordinator = _txid_coordinated_by(
        cluster, topic, lambda n: (n == controller) == (victim == "coordinator-is-controller"))
    # The data partitions stay off the coordinator: only the coordinator fails over.
    data_nodes = [i for i in NODE_IDS if i != coordinator]
    cluster.create_topic(topic, config=MIN_ISR, assignment=[
        [data_nodes[p % 2], data_nodes[(p + 1) % 2], coordinator] for p in range(partitions)])
    producer = txn_producer(cluster.bootstrap, txid, **PRODUCER_CONF)
    run = TxnRun(producer, topic, partitions, per=10)
    for k in range(3):
        run.run(k)
    killed_at = []

    def kill_coordinator():
        assert find_txn_coordinator("127.0.0.1", cluster.node(coordinator).kafka_port, txid) == (0, coordinator)
        killed_at.append(time.monotonic())
        cluster.node(coordinator).kill9()
    run.run(3, mid_txn=kill_coordinator)
    for k in range(4, 8):
        run.run(k)
    took = time.monotonic() - killed_at[0]
    new = wait_txn_coordinator(cluster.live_nodes(), txid, FAILOVER_TIMEOUT_S)
    assert new != coordinator, f"FindCoordinator still names the killed node {coordinator}"
    print(f"\ncoordinator {coordinator} (controller {controller}) killed mid-transaction; new coordinator {new}; "
          f"committed {run.committed}, aborted {run.aborted}, {took:.1f}s to commit 5 transactions after the kill; "
          f"client errors {run.errors[:10]}")
    run.check(cluster.live_bootstrap())
    assert [k for k, _ in run.committed] == list(range(8))


def test_transaction_completes_when_data_leader_dies_before_markers(cluster, topic):
    controller = cluster.active_controller()
    _warm_up(cluster)
    txid, coordinator = _txid_coordinated_by(cluster, topic, lambda n: True)
    others = [i for i in NODE_IDS if i != coordinator]
    leader = next((i for i in others if i != controller), others[0])
    order = [leader] + [i for i in NODE_IDS if i != leader]
    cluster.create_topic(topic, config=MIN_ISR, assignment=[order])
    assert cluster.wait_for_leader(topic, 0) == leader
    producer = txn_producer(cluster.bootstrap, txid, **PRODUCER_CONF)
    run = TxnRun(producer, topic, 1, per=20)
    run.run(0)

    def freeze():
        # Frozen before EndTxn: the coordinator can write PrepareCommit and answer, but
        # no marker can reach this leader.
        cluster.node(leader).sigstop()

    run.run(1, mid_txn=freeze)
    assert run.committed[-1] == (1, 0), f"the commit with the leader frozen was not the first attempt: {run.aborted}"
    # commit_transaction returned: the coordinator has decided (PrepareCommit); the
    # markers cannot have reached the frozen leader. Now it dies for good.
    cluster.node(leader).kill9()
    new_leader = cluster.wait_for_leader(topic, 0, timeout=FAILOVER_TIMEOUT_S, not_in=(leader,))
    run.check(cluster.live_bootstrap())
    # The producer goes on: its next transaction (which waits for the previous one's
    # markers: CONCURRENT_TRANSACTIONS until then) commits too.
    run.run(2)
    run.check(cluster.live_bootstrap())
    print(f"\nleader {leader} of {topic}[0] frozen before the commit and killed after it; new leader "
          f"{new_leader}; coordinator {coordinator}; committed {run.committed}; client errors {run.errors[:10]}")


def test_dead_producers_transaction_aborted_after_coordinator_kill9(cluster, topic):
    """A producer dies (SIGKILL) with a transaction open, then its coordinator is
    SIGKILLed too: the new coordinator (the new leader of the __transaction_state
    partition) must take the transaction over without any client asking about it and
    abort it once transaction.timeout.ms has passed, so the data partition's LSO moves
    on and read_committed gets the records written after it (the dead producer's never)."""
    from txn_util import Helper, plain_producer
    controller = cluster.active_controller()
    _warm_up(cluster)
    txid, coordinator = _txid_coordinated_by(cluster, topic, lambda n: n != controller)
    data_nodes = [i for i in NODE_IDS if i != coordinator]
    cluster.create_topic(topic, config=MIN_ISR, assignment=[[data_nodes[0], data_nodes[1], coordinator]])
    stuck, later = 4, 3
    h = Helper("hang", cluster.bootstrap, topic, "0", txid, str(stuck), "6000")
    try:
        h.wait_event(lambda e: e["event"] == "in_txn", 60, "the open transaction")
        h.kill9()
    finally:
        h.stop()
    cluster.node(coordinator).kill9()
    plain = plain_producer(cluster.live_bootstrap(), logger=RDKAFKA_LOGGER)
    produce_all(plain, topic, [(0, f"later-{i}".encode(), f"later-{i}".encode()) for i in range(later)])
    assert plain.flush(30) == 0
    last = []

    def through():
        last[:] = [read_to_end(cluster.live_bootstrap(), topic, 1, "read_committed", timeout=10)]
        return last[0] if last[0].values(0) else None
    try:
        got = wait_for(through, FAILOVER_TIMEOUT_S, "read_committed to see the records written after the dead "
                       "producer's transaction (aborted by the new coordinator on its timeout)", interval=0.5)
    except AssertionError as e:
        new = [find_txn_coordinator("127.0.0.1", n.kafka_port, txid) for n in cluster.live_nodes()]
        raise AssertionError(f"{e}\nlast read_committed end {last and last[0].ends}; FindCoordinator now "
                             f"{new} (killed {coordinator})") from None
    assert got.values(0) == [f"later-{i}".encode() for i in range(later)], got.records
    assert got.offsets(0) == list(range(stuck, stuck + later))
