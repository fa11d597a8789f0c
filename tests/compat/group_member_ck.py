"""A confluent-kafka group member in its own process, for tests that must kill a
member without it leaving the group (SIGKILL) -- used by test_groups_confluent_kafka.py.

    python group_member_ck.py <bootstrap> <group> <topic> <session.timeout.ms> <group.instance.id or -> [assignor]

Subscribes to <topic>, polls forever, never commits, and prints one JSON line per
event on stdout (flushed at once):
    {"event": "assign" | "revoke" | "lost", "partitions": [..], "t": <time.time()>}
    {"event": "error", "error": "..."}   (consumer errors other than partition EOF)
SIGTERM closes the consumer (leaves the group, unless static) and exits 0.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError


def emit(**kw):
    kw.setdefault("t", time.time())
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    bootstrap, group, topic, session_ms, instance_id = sys.argv[1:6]
    assignor = sys.argv[6] if len(sys.argv) > 6 else "range"
    conf = {
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": int(session_ms),
        "heartbeat.interval.ms": 500, "partition.assignment.strategy": assignor,
        "socket.timeout.ms": 10000, "fetch.wait.max.ms": 100,
    }
    if instance_id != "-":
        conf["group.instance.id"] = instance_id
    c = Consumer(conf)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def on_assign(consumer, parts):
        emit(event="assign", partitions=sorted(p.partition for p in parts))

    def on_revoke(consumer, parts):
        emit(event="revoke", partitions=sorted(p.partition for p in parts))

    def on_lost(consumer, parts):
        emit(event="lost", partitions=sorted(p.partition for p in parts))

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit(event="started")
    try:
        while not stop:
            m = c.poll(0.2)
            if m is not None and m.error() is not None and m.error().code() != KafkaError._PARTITION_EOF:
                emit(event="error", error=str(m.error()))
    finally:
        c.close()
        emit(event="closed")


if __name__ == "__main__":
    main()
