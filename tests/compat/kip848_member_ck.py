"""A confluent-kafka KIP-848 group member (`group.protocol=consumer`) in its own
process, for tests that must kill a member without it leaving the group
(SIGKILL) -- used by test_configs_compat.py.

    python kip848_member_ck.py <bootstrap> <group> <topic>

Subscribes to <topic> and polls forever, printing one JSON line per event on
stdout (flushed at once): {"event": "started" | "assign" | "revoke" | "lost",
"partitions": [..]} or {"event": "error", "error": "..."}.
The session timeout and heartbeat interval are the broker's (KIP-848 members
cannot choose them; group configs can).
"""

from __future__ import annotations

import json
import sys

from confluent_kafka import Consumer, KafkaError


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    bootstrap, group, topic = sys.argv[1:4]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "socket.timeout.ms": 10000})
    c.subscribe(
        [topic],
        on_assign=lambda _c, ps: emit(event="assign", partitions=sorted(p.partition for p in ps)),
        on_revoke=lambda _c, ps: emit(event="revoke", partitions=sorted(p.partition for p in ps)),
        on_lost=lambda _c, ps: emit(event="lost", partitions=sorted(p.partition for p in ps)))
    emit(event="started")
    while True:
        m = c.poll(0.2)
        if m is not None and m.error() is not None and m.error().code() != KafkaError._PARTITION_EOF:
            emit(event="error", error=str(m.error()))


if __name__ == "__main__":
    main()
