"""confluent-kafka transactional clients in their own process, for the tests that
must SIGKILL one mid-transaction -- used by test_transactions.py (and, in process,
through `process()`).

    python txn_client_ck.py process <bootstrap> <group> <in_topic> <out_topic> <transactional.id> \
        <in_ends: p=end,p=end,...> <batch> <pause_in_txn_s>
    python txn_client_ck.py hang <bootstrap> <topic> <partition> <transactional.id> <n> <transaction.timeout.ms>

`process`: a consume-transform-produce loop. A read_committed consumer of <group>
(subscribe, enable.auto.commit=false) reads <in_topic>; every batch of at most
<batch> records is one transaction of the transactional producer: for each input
record one output record to the same partition of <out_topic> (key kept, value
b"out:" + value, header ("src", b"<partition>:<offset>")), then
send_offsets_to_transaction(consumer positions, consumer_group_metadata()) and
commit_transaction(). With <pause_in_txn_s> > 0 it flushes the batch's records (so
they are in the log, uncommitted), prints {"event": "in_txn"} and sleeps that long
before sending the offsets and committing: the moment to SIGKILL it. It stops once
the group's committed offsets reach <in_ends> (the input is complete before it starts).
An abortable error (e.g. a rebalance fenced the group generation) aborts the
transaction and rewinds the consumer to the committed offsets; a fatal one exits 1.

`hang`: init_transactions, begin_transaction, <n> records to <topic>[<partition>],
flush, prints {"event": "in_txn"} and sleeps until killed: a producer that dies
holding an open transaction (the coordinator must abort it after
transaction.timeout.ms).

One JSON line per event on stdout, flushed at once.
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


def emit(**kw):
    kw.setdefault("t", time.time())
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def _delivery_errors(errors: list):
    def cb(err, msg):
        if err is not None:
            errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
    return cb


def process(bootstrap: str, group: str, in_topic: str, out_topic: str, txid: str, in_ends: dict[int, int],
            batch: int = 10, pause_in_txn: float = 0.0, emit=emit, deadline_s: float = 90.0) -> dict:
    """Runs the loop until the group's committed offsets reach `in_ends`. Returns
    {"batches": committed transactions, "aborted": aborted ones, "records": inputs processed}."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txid, "linger.ms": 5,
                         "transaction.timeout.ms": 30000, "socket.timeout.ms": 10000})
    # Before the consumer asks for its committed offsets: init_transactions fences a
    # previous incarnation and aborts its open transaction (and pending offsets).
    producer.init_transactions(30)
    emit(event="initialized")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                         "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000})
    all_tps = [TopicPartition(in_topic, p) for p in sorted(in_ends)]
    stats = {"batches": 0, "aborted": 0, "records": 0}
    errors: list[str] = []
    deadline = time.monotonic() + deadline_s
    try:
        consumer.subscribe([in_topic])
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"processor did not finish within {deadline_s}s: {stats}")
            msgs = consumer.consume(num_messages=batch, timeout=0.5)
            data = []
            for m in msgs:
                if m.error() is None:
                    data.append(m)
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    emit(event="error", error=str(m.error()))
            if not data:
                committed = consumer.committed(all_tps, timeout=10)
                if all(tp.offset >= in_ends[tp.partition] for tp in committed):
                    break
                continue
            try:
                producer.begin_transaction()
                for m in data:
                    producer.produce(out_topic, key=m.key(), value=b"out:" + (m.value() or b""),
                                     partition=m.partition(),
                                     headers=[("src", f"{m.partition()}:{m.offset()}".encode())],
                                     on_delivery=_delivery_errors(errors))
                if pause_in_txn > 0:
                    producer.flush(30)
                    emit(event="in_txn", records=len(data))
                    time.sleep(pause_in_txn)
                producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                     consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
            except KafkaException as e:
                err = e.args[0]
                if not err.txn_requires_abort():
                    raise
                emit(event="abortable", error=str(err))
                producer.abort_transaction(30)
                stats["aborted"] += 1
                # Rewind to what the group has committed: the aborted batch is read again.
                for tp in consumer.committed(consumer.assignment(), timeout=10):
                    consumer.seek(tp if tp.offset >= 0 else TopicPartition(tp.topic, tp.partition, 0))
                continue
            if errors:
                raise AssertionError(f"delivery errors in a committed transaction: {errors[:5]}")
            stats["batches"] += 1
            stats["records"] += len(data)
            emit(event="committed", records=len(data), total=stats["records"],
                 offsets={m.partition(): m.offset() + 1 for m in data})
    finally:
        consumer.close()
    emit(event="done", **stats)
    return stats


def hang(bootstrap: str, topic: str, partition: int, txid: str, n: int, txn_timeout_ms: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txid, "linger.ms": 5,
                         "transaction.timeout.ms": txn_timeout_ms,
                         # librdkafka: socket.timeout.ms must be <= transaction.timeout.ms + 100
                         "socket.timeout.ms": min(10000, txn_timeout_ms)})
    producer.init_transactions(30)
    producer.begin_transaction()
    errors: list[str] = []
    for i in range(n):
        producer.produce(topic, key=f"stuck-{i}".encode(), value=f"stuck-{i}".encode(), partition=partition,
                         on_delivery=_delivery_errors(errors))
    left = producer.flush(30)
    if left or errors:
        emit(event="error", error=f"{left} undelivered, errors {errors[:5]}")
        sys.exit(1)
    emit(event="in_txn", records=n)
    while True:
        time.sleep(1)


def main():
    mode = sys.argv[1]
    if mode == "process":
        bootstrap, group, in_topic, out_topic, txid, ends, batch, pause = sys.argv[2:10]
        in_ends = {int(p): int(e) for p, e in (kv.split("=") for kv in ends.split(","))}
        try:
            process(bootstrap, group, in_topic, out_topic, txid, in_ends, int(batch), float(pause))
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            emit(event="failed", error=repr(e))
            sys.exit(1)
    elif mode == "hang":
        bootstrap, topic, partition, txid, n, timeout_ms = sys.argv[2:8]
        try:
            hang(bootstrap, topic, int(partition), txid, int(n), int(timeout_ms))
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            emit(event="failed", error=repr(e))
            sys.exit(1)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
