"""Transactions and exactly-once with confluent-kafka 2.16.1 (librdkafka 2.16.0):
InitProducerId with a transactional.id, AddPartitionsToTxn, AddOffsetsToTxn,
TxnOffsetCommit, EndTxn, the coordinator's WriteTxnMarkers, the last stable
offset (LSO), read_committed Fetch (aborted transactions skipped) and ListOffsets,
and the transaction tools. Every check is exact: which records a read_committed
and a read_uncommitted consumer see, at which offsets (one control record per
partition per finished transaction), the end offsets and consumer positions.

Until the broker has a transaction coordinator, it answers a transactional
InitProducerId with TRANSACTIONAL_ID_AUTHORIZATION_FAILED and every test here
fails at init_transactions() naming that error.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (OFFSET_END, Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             TopicPartition)

from compat_util import ck_admin, ck_create_topic, wait_until
from txn_util import (CLI_DESCRIBE_HEADERS, CLI_LIST_HEADERS, CLI_PRODUCERS_HEADERS, Helper, fenced_codes,
                      gregor_cli, parse_table, plain_producer, produce_all, read_to_end, txn_producer)
from txn_client_ck import process

FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}


def recs(tag: str, partitions: int, per: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value): `per` records per partition, values unique per tag."""
    return [(p, f"k-{tag}-{p}-{i}".encode(), f"{tag}-{p}-{i}".encode())
            for i in range(per) for p in range(partitions)]


def vals(rs, p: int) -> list[bytes]:
    return [v for q, _, v in rs if q == p]


def run_txn(producer, topic_recs: dict[str, list], commit: bool) -> None:
    """One transaction with every record of `topic_recs`; all delivered (flushed)
    before the commit or abort."""
    errors: list[str] = []
    producer.begin_transaction()
    for topic, rs in topic_recs.items():
        produce_all(producer, topic, rs, errors)
    assert producer.flush(30) == 0, "records still undelivered after 30 s"
    assert not errors, f"delivery errors in the transaction: {errors[:5]}"
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def test_commit_abort_read_committed(broker, topic):
    """Three transactions over 2 topics x several partitions: committed, aborted,
    committed. read_committed sees the committed records exactly once and nothing
    of the aborted one; read_uncommitted sees all three; each transaction ends with
    one control record per partition, which no consumer returns but every position
    moves past (position = end offset; committing the positions commits the end)."""
    t1, t2 = f"{topic}-a", f"{topic}-b"
    parts = {t1: 3, t2: 2}
    for t, n in parts.items():
        ck_create_topic(broker.bootstrap, t, n)
    n = 5  # records per partition per transaction
    txns = [({t: recs(f"txn{i}-{t[-1]}", parts[t], n) for t in parts}, commit)
            for i, commit in enumerate([True, False, True])]
    producer = txn_producer(broker.bootstrap, f"txid-{topic}")
    for topic_recs, commit in txns:
        run_txn(producer, topic_recs, commit)

    for t, np in parts.items():
        committed = read_to_end(broker.bootstrap, t, np, "read_committed")
        uncommitted = read_to_end(broker.bootstrap, t, np, "read_uncommitted")
        end = 3 * (n + 1)  # every transaction: n records + 1 control record per partition
        for p in range(np):
            want_c = vals(txns[0][0][t], p) + vals(txns[2][0][t], p)
            want_u = vals(txns[0][0][t], p) + vals(txns[1][0][t], p) + vals(txns[2][0][t], p)
            assert committed.values(p) == want_c, f"{t}[{p}] read_committed"
            assert uncommitted.values(p) == want_u, f"{t}[{p}] read_uncommitted"
            # Offsets: txn0 0..n-1, marker n, txn1 n+1..2n, marker 2n+1, txn2 2n+2..3n+1, marker 3n+2.
            assert committed.offsets(p) == list(range(0, n)) + list(range(2 * n + 2, 3 * n + 2)), f"{t}[{p}]"
            assert uncommitted.offsets(p) == [o for o in range(end) if o not in (n, 2 * n + 1, 3 * n + 2)], \
                f"{t}[{p}]: data records not around one control record per transaction"
            assert committed.ends[p] == uncommitted.ends[p] == end, (
                f"{t}[{p}]: end offsets read_committed {committed.ends[p]} (LSO), read_uncommitted "
                f"{uncommitted.ends[p]} (high watermark), expected {end} with no open transaction")
            assert committed.positions[p] == uncommitted.positions[p] == end, (
                f"{t}[{p}]: positions after reading everything {committed.positions[p]} / "
                f"{uncommitted.positions[p]}, expected the end offset {end} (past the last control record)")

    # A group consumer commits its positions (read_committed): the committed offset is
    # the end, past the control records, and a new member has nothing left to read.
    group = f"g-{topic}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    try:
        tps = [TopicPartition(t1, p, 0) for p in range(parts[t1])]
        c.assign(tps)
        seen, eof = 0, set()
        deadline = time.monotonic() + 30
        while len(eof) < parts[t1]:
            assert time.monotonic() < deadline, f"group consumer: EOF on {eof} only, {seen} records"
            for m in c.consume(100, 0.5):
                if m.error() is None:
                    seen += 1
                elif m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
        assert seen == 2 * n * parts[t1]
        pos = c.position([TopicPartition(t1, p) for p in range(parts[t1])])
        assert [tp.offset for tp in pos] == [3 * (n + 1)] * parts[t1], pos
        c.commit(offsets=pos, asynchronous=False)
        got = c.committed([TopicPartition(t1, p) for p in range(parts[t1])], timeout=10)
        assert [tp.offset for tp in got] == [3 * (n + 1)] * parts[t1], got
    finally:
        c.close()


def test_lso_bounds_read_committed(broker, topic):
    """ListOffsets under read_committed stops at the last stable offset while a
    transaction is open: get_watermark_offsets, an OFFSET_END assignment and
    offsets_for_times all answer from the LSO; records after the open transaction
    (even non-transactional ones) are held back until it ends; then everything
    committed comes through."""
    ck_create_topic(broker.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 60_000
    plain = plain_producer(broker.bootstrap)
    for i in range(4):  # offsets 0..3, timestamps base+i
        plain.produce(topic, value=f"before-{i}".encode(), partition=0, timestamp=base + i)
    assert plain.flush(30) == 0
    producer = txn_producer(broker.bootstrap, f"txid-{topic}")
    producer.begin_transaction()
    for i in range(3):  # offsets 4..6, timestamps base+1000+i
        producer.produce(topic, value=f"open-{i}".encode(), partition=0, timestamp=base + 1000 + i)
    assert producer.flush(30) == 0
    for i in range(2):  # offsets 7..8, after the open transaction
        plain.produce(topic, value=f"after-{i}".encode(), partition=0, timestamp=base + 2000 + i)
    assert plain.flush(30) == 0

    def consumer(isolation):
        return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic}",
                         "enable.auto.commit": False, "isolation.level": isolation,
                         "fetch.wait.max.ms": 100, "enable.partition.eof": True})
    rc, ru = consumer("read_committed"), consumer("read_uncommitted")
    tp = TopicPartition(topic, 0)
    try:
        assert rc.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 4), "read_committed end (LSO)"
        assert ru.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 9), "read_uncommitted end (HW)"
        # Kafka answers a timestamp whose first record is at or past the LSO with no offset
        # under read_committed (Partition.fetchOffsetForTimestamp: offset < lastFetchableOffset).
        at = lambda c, ts: c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0].offset  # noqa: E731
        assert at(rc, base + 2) == 2 and at(ru, base + 2) == 2
        assert at(ru, base + 1000) == 4 and at(ru, base + 2000) == 7
        assert at(rc, base + 1000) == OFFSET_END, "read_committed offsets_for_times of an open transaction's record"
        assert at(rc, base + 2000) == OFFSET_END, "read_committed offsets_for_times past the LSO"
        # OFFSET_END under read_committed resolves to the LSO: the first EOF is there.
        rc.assign([TopicPartition(topic, 0, OFFSET_END)])
        eof = wait_until(lambda: next((m.offset() for m in rc.consume(10, 0.2) if m.error() is not None
                                       and m.error().code() == KafkaError._PARTITION_EOF), None), 20,
                         "EOF of the read_committed OFFSET_END assignment")
        assert eof == 4, f"read_committed OFFSET_END resolved to {eof}, expected the LSO 4"
        rc.unassign()
        open_view = read_to_end(broker.bootstrap, topic, 1, "read_committed")
        assert open_view.values(0) == [f"before-{i}".encode() for i in range(4)]
        assert open_view.ends[0] == 4 and open_view.positions[0] == 4

        producer.commit_transaction(30)
        after = read_to_end(broker.bootstrap, topic, 1, "read_committed")
        assert after.values(0) == ([f"before-{i}".encode() for i in range(4)] + [f"open-{i}".encode() for i in range(3)]
                                   + [f"after-{i}".encode() for i in range(2)])
        assert after.offsets(0) == list(range(9)) and after.ends[0] == 10 and after.positions[0] == 10
        assert rc.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 10)
        assert at(rc, base + 1000) == 4 and at(rc, base + 2000) == 7
    finally:
        rc.close()
        ru.close()


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_consume_transform_produce(broker, topic):
    """A read_committed group consumer + transactional producer processes an input
    topic in batches, sending the consumer's offsets in each transaction
    (send_offsets_to_transaction with consumer_group_metadata()): the output holds
    every input record exactly once and the group's committed offsets are the
    input's end offsets."""
    src, dst, parts, per = f"{topic}-in", f"{topic}-out", 3, 20
    ck_create_topic(broker.bootstrap, src, parts)
    ck_create_topic(broker.bootstrap, dst, parts)
    inputs = recs("in", parts, per)
    plain = plain_producer(broker.bootstrap)
    produce_all(plain, src, inputs)
    assert plain.flush(30) == 0
    group = f"g-{topic}"
    ends = {p: per for p in range(parts)}
    stats = process(broker.bootstrap, group, src, dst, f"txid-{topic}", ends, batch=7, emit=lambda **kw: None)
    assert stats["records"] == parts * per and stats["aborted"] == 0, stats
    check_output(broker.bootstrap, src, dst, parts, per, group, inputs)


def check_output(bootstrap, src, dst, parts, per, group, inputs, *, want_aborted_duplicates=False):
    out = read_to_end(bootstrap, dst, parts, "read_committed")
    dups, missing, wrong = [], [], []
    by_src = {}
    for p, rs in out.records.items():
        for r in rs:
            s = dict(r.headers).get("src", b"?").decode()
            if s in by_src:
                dups.append(s)
            by_src[s] = r
    want = {f"{p}:{o}": (k, v) for p in range(parts) for o, (q, k, v) in
            enumerate([x for x in inputs if x[0] == p])}
    for s, (k, v) in want.items():
        r = by_src.get(s)
        if r is None:
            missing.append(s)
        elif (r.key, r.value, r.partition) != (k, b"out:" + v, int(s.split(":")[0])):
            wrong.append((s, r))
    extra = sorted(set(by_src) - set(want))
    assert not (dups or missing or wrong or extra), (
        f"read_committed output is not each input exactly once: duplicates {dups[:10]}, missing {missing[:10]}, "
        f"wrong {wrong[:3]}, unexpected {extra[:10]}")
    # The admin client must outlive the future (a destroyed handle fails it).
    admin = ck_admin(bootstrap)
    committed = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(src, p) for p in range(parts)])])[group].result(30)
    assert {tp.partition: tp.offset for tp in committed.topic_partitions} == {p: per for p in range(parts)}, (
        f"group {group} committed offsets {committed.topic_partitions}, expected the input end {per}")
    if want_aborted_duplicates:
        raw = read_to_end(bootstrap, dst, parts, "read_uncommitted")
        n_raw = sum(len(v) for v in raw.records.values())
        assert n_raw > parts * per, (
            f"read_uncommitted output holds {n_raw} records, no more than the {parts * per} inputs: the kill did "
            "not leave an aborted transaction's records behind, so this run did not test exactly-once")
    return out


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_consume_transform_produce_survives_kill9(broker, topic):
    """Exactly-once across a crash: the processor (a subprocess) is SIGKILLed with a
    transaction open (its records written, its offsets not yet sent); a new
    processor with the same transactional.id and group fences it, aborts that
    transaction, resumes from the group's committed offsets and finishes. The
    read_committed output holds each input record exactly once (and the aborted
    attempt's records are in the log, only read_uncommitted sees them)."""
    src, dst, parts, per = f"{topic}-in", f"{topic}-out", 3, 40
    ck_create_topic(broker.bootstrap, src, parts)
    ck_create_topic(broker.bootstrap, dst, parts)
    inputs = recs("in", parts, per)
    plain = plain_producer(broker.bootstrap)
    produce_all(plain, src, inputs)
    assert plain.flush(30) == 0
    group, txid = f"g-{topic}", f"txid-{topic}"
    ends = ",".join(f"{p}={per}" for p in range(parts))
    first = Helper("process", broker.bootstrap, group, src, dst, txid, ends, "10", "0.3")
    try:
        first.wait_event(lambda e: e["event"] == "committed" and e["total"] >= 20, 60,
                         "two committed batches")
        first.wait_event(lambda e: e["event"] == "in_txn", 20, "an open transaction with records written")
        first.kill9()
    finally:
        first.stop()
    done_before = max(e["total"] for e in first.events if e["event"] == "committed")
    assert done_before < parts * per, "the first processor finished before it was killed"
    second = Helper("process", broker.bootstrap, group, src, dst, txid, ends, "10", "0")
    try:
        done = second.wait_event(lambda e: e["event"] == "done", 90, "the restarted processor to finish")
        assert second.wait_exit(15) == 0, second.report()
    finally:
        second.stop()
    assert done["records"] == parts * per - done_before, (
        f"the restarted processor handled {done['records']} records; {done_before} of {parts * per} were "
        "committed before the kill (it must resume exactly after them)")
    check_output(broker.bootstrap, src, dst, parts, per, group, inputs, want_aborted_duplicates=True)


@pytest.mark.broker_overrides({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"})
def test_transactions_survive_broker_kill9(broker, topic):
    """kill -9 of the broker with a committed, an aborted and an open transaction (its
    producer SIGKILLed too) in the log, then a restart: the aborted records stay
    invisible to read_committed (the aborted-transaction index and producer state are
    recovered), the coordinator reloads __transaction_state and aborts the open one
    once it times out, and the first transactional.id inits again (fencing its old
    epoch) and commits more."""
    ck_create_topic(broker.bootstrap, topic, 2)
    n, stuck = 5, 4
    committed, aborted = recs("c", 2, n), recs("a", 2, n)
    txid = f"txid-{topic}"
    producer = txn_producer(broker.bootstrap, txid)
    run_txn(producer, {topic: committed}, commit=True)
    run_txn(producer, {topic: aborted}, commit=False)
    h = Helper("hang", broker.bootstrap, topic, "0", f"hang-{txid}", str(stuck), "6000")
    try:
        h.wait_event(lambda e: e["event"] == "in_txn", 60, "the open transaction")
        h.kill9()
    finally:
        h.stop()
    producer = None  # noqa: F841 - the client would only reconnect to the dead broker
    broker.kill9()
    broker.restart()
    # p0: c 0..4, commit 5, a 6..10, abort 11, stuck 12..15, abort 16 -> end 17; p1: 12.
    ends = {0: 2 * (n + 1) + stuck + 1, 1: 2 * (n + 1)}
    last = []

    def settled():
        last[:] = [read_to_end(broker.bootstrap, topic, 2, "read_committed", timeout=10)]
        return last[0] if last[0].ends == ends else None
    try:
        got = wait_until(settled, 45, f"read_committed end offsets {ends} after the restart "
                         "(the open transaction aborted on its timeout)")
    except AssertionError as e:
        raise AssertionError(f"{e}; last read: ends {last and last[0].ends}, "
                             f"records {last and last[0].records}") from None
    for p in range(2):
        assert got.values(p) == vals(committed, p), f"partition {p} read_committed after kill -9 + restart"
        assert got.offsets(p) == list(range(n)), f"partition {p}"
    raw = read_to_end(broker.bootstrap, topic, 2, "read_uncommitted")
    assert raw.values(0) == vals(committed, 0) + vals(aborted, 0) + [f"stuck-{i}".encode() for i in range(stuck)]
    p2 = txn_producer(broker.bootstrap, txid)
    more = recs("m", 2, 2)
    run_txn(p2, {topic: more}, commit=True)
    after = read_to_end(broker.bootstrap, topic, 2, "read_committed")
    for p in range(2):
        assert after.values(p) == vals(committed, p) + vals(more, p), f"partition {p} after the restart's transaction"


def test_fencing(broker, topic):
    """Two producers with one transactional.id: the second's init_transactions bumps
    the epoch and aborts the first's open transaction; the first's next produce or
    commit fails with a fatal fenced error. Only the second's records are committed."""
    ck_create_topic(broker.bootstrap, topic, 2)
    txid = f"txid-{topic}"
    errors1: list[str] = []
    p1 = txn_producer(broker.bootstrap, txid, error_cb=lambda e: errors1.append(e))
    p1.begin_transaction()
    produce_all(p1, topic, [(0, b"k", b"zombie-0"), (1, b"k", b"zombie-1")])
    assert p1.flush(30) == 0
    p2 = txn_producer(broker.bootstrap, txid)
    p2.begin_transaction()
    produce_all(p2, topic, [(0, b"k", b"p2-0"), (1, b"k", b"p2-1")])
    assert p2.flush(30) == 0

    # EndTxn with the old epoch: Kafka answers PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before
    # EndTxn v2); librdkafka raises it as a fatal error (_FENCED).
    with pytest.raises(KafkaException) as ei:
        p1.commit_transaction(30)
    err = ei.value.args[0]
    assert err.code() in fenced_codes() and err.fatal(), (
        f"the fenced producer's commit failed with {err} (code {err.code()}, fatal {err.fatal()}), "
        "expected a fatal _FENCED / PRODUCER_FENCED / INVALID_PRODUCER_EPOCH")
    p2.commit_transaction(30)
    got = read_to_end(broker.bootstrap, topic, 2, "read_committed")
    assert got.values(0) == [b"p2-0"] and got.values(1) == [b"p2-1"], got.records
    raw = read_to_end(broker.bootstrap, topic, 2, "read_uncommitted")
    assert raw.values(0)[:2] == [b"zombie-0", b"p2-0"], raw.records
    # A fenced producer stays fenced: nothing more can be produced.
    with pytest.raises(KafkaException) as ei:
        p1.begin_transaction()
    assert ei.value.args[0].fatal(), ei.value.args[0]


@pytest.mark.broker_overrides({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"})
def test_timed_out_transaction_is_aborted(broker, topic):
    """A producer dies (SIGKILL) with an open transaction and transaction.timeout.ms
    3000: the coordinator aborts it after the timeout, so the LSO moves on and a
    read_committed consumer gets the records another producer wrote after it; the
    dead producer's records are never visible under read_committed. The
    transactional.id is usable again (a new producer inits and commits)."""
    ck_create_topic(broker.bootstrap, topic, 1)
    txid, stuck, later, timeout_ms = f"txid-{topic}", 4, 3, 3000
    h = Helper("hang", broker.bootstrap, topic, "0", txid, str(stuck), str(timeout_ms))
    try:
        ev = h.wait_event(lambda e: e["event"] == "in_txn", 60, "the open transaction")
        h.kill9()
    finally:
        h.stop()
    plain = plain_producer(broker.bootstrap)
    produce_all(plain, topic, [(0, f"later-{i}".encode(), f"later-{i}".encode()) for i in range(later)])
    assert plain.flush(30) == 0
    if time.time() - ev["t"] < timeout_ms / 1000 - 1.0:  # still well inside the timeout
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic}",
                      "isolation.level": "read_committed"})
        try:
            lso = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
        finally:
            c.close()
        if time.time() - ev["t"] < timeout_ms / 1000:
            assert lso == 0, f"read_committed end {lso} while the dead producer's transaction is open, expected 0"
    # A read whose end (the LSO) was asked before the abort and whose fetch came
    # after it sees records past its end: read again then.
    got = wait_until(lambda: (lambda r: r if r.values(0) and r.ends[0] > 0 else None)(
        read_to_end(broker.bootstrap, topic, 1, "read_committed", timeout=10)), 30,
        "read_committed to see the records written after the dead producer's transaction (LSO moved on)")
    assert got.values(0) == [f"later-{i}".encode() for i in range(later)], got.records
    assert got.offsets(0) == list(range(stuck, stuck + later))
    assert got.ends[0] == stuck + later + 1, f"end {got.ends[0]}: expected one abort marker after the records"
    raw = read_to_end(broker.bootstrap, topic, 1, "read_uncommitted")
    assert raw.values(0) == [f"stuck-{i}".encode() for i in range(stuck)] + [f"later-{i}".encode() for i in range(later)]
    # The transactional.id is free again: a new producer inits (epoch bump) and commits.
    p = txn_producer(broker.bootstrap, txid)
    run_txn(p, {topic: [(0, b"k", b"after-timeout")]}, commit=True)
    final = read_to_end(broker.bootstrap, topic, 1, "read_committed")
    assert final.values(0) == got.values(0) + [b"after-timeout"]


def _describe(bootstrap: str, txid: str) -> dict[str, str]:
    # CLI: `gregor transactions describe --transactional-id` (kafka-transactions.sh describe).
    out = gregor_cli("transactions", "--bootstrap-server", bootstrap, "describe", "--transactional-id", txid).stdout
    rows = parse_table(out, CLI_DESCRIBE_HEADERS)
    assert len(rows) == 1, out
    return rows[0]


def _list(bootstrap: str) -> dict[str, dict[str, str]]:
    # CLI: `gregor transactions list` (kafka-transactions.sh list).
    out = gregor_cli("transactions", "--bootstrap-server", bootstrap, "list").stdout
    return {r["TransactionalId"]: r for r in parse_table(out, CLI_LIST_HEADERS)}


def test_transactions_cli(broker, topic):
    """confluent-kafka 2.16 has no list/describe transactions admin calls, so the
    ListTransactions / DescribeTransactions answers are checked through
    `gregor transactions list` and `describe --transactional-id` (Kafka's
    kafka-transactions.sh tables) against what DescribeProducers says of the same
    producer: Ongoing with exactly the partitions written, then CompleteCommit and
    CompleteAbort with none."""
    ck_create_topic(broker.bootstrap, topic, 3)
    txid = f"txid-{topic}"
    node_id = str(next(iter(ck_admin(broker.bootstrap).list_topics(timeout=10).brokers)))
    producer = txn_producer(broker.bootstrap, txid)
    t0 = int(time.time() * 1000)
    producer.begin_transaction()
    produce_all(producer, topic, [(0, b"k", b"v0"), (2, b"k", b"v2")])
    assert producer.flush(30) == 0
    t1 = int(time.time() * 1000)

    out = gregor_cli("transactions", "--bootstrap-server", broker.bootstrap, "describe-producers",
                     "--topic", topic, "--partition", "0").stdout
    producers = parse_table(out, CLI_PRODUCERS_HEADERS)
    assert len(producers) == 1, out
    pid, epoch = producers[0]["ProducerId"], producers[0]["ProducerEpoch"]
    assert producers[0]["CurrentTransactionStartOffset"] == "0", out

    listed = _list(broker.bootstrap)
    assert txid in listed, f"{txid} not listed: {listed}"
    assert listed[txid] == {"TransactionalId": txid, "Coordinator": node_id, "ProducerId": pid,
                            "TransactionState": "Ongoing"}, listed[txid]
    d = _describe(broker.bootstrap, txid)
    assert (d["CoordinatorId"], d["TransactionalId"], d["ProducerId"], d["ProducerEpoch"],
            d["TransactionState"]) == (node_id, txid, pid, epoch, "Ongoing"), d
    assert d["TransactionTimeoutMs"] == "60000", d  # librdkafka's default transaction.timeout.ms
    assert t0 - 1000 <= int(d["CurrentTransactionStartTimeMs"]) <= t1, (d, t0, t1)
    assert int(d["TransactionDurationMs"]) >= 0, d
    assert sorted(d["TopicPartitions"].split(",")) == sorted([f"{topic}-0", f"{topic}-2"]), d

    producer.commit_transaction(30)
    d = _describe(broker.bootstrap, txid)
    assert (d["TransactionState"], d["TopicPartitions"], d["ProducerId"]) == ("CompleteCommit", "", pid), d
    assert _list(broker.bootstrap)[txid]["TransactionState"] == "CompleteCommit"

    run_txn(producer, {topic: [(1, b"k", b"aborted")]}, commit=False)
    d = _describe(broker.bootstrap, txid)
    assert (d["TransactionState"], d["TopicPartitions"]) == ("CompleteAbort", ""), d

    r = gregor_cli("transactions", "--bootstrap-server", broker.bootstrap, "describe", "--transactional-id",
                   f"no-such-{txid}", check=False)
    # kafka-transactions.sh: "Failed to describe transaction state of transactional id `..`"
    # (TransactionalIdNotFoundException), exit 1.
    assert r.returncode != 0 and f"no-such-{txid}" in r.stderr, (r.returncode, r.stdout, r.stderr)
