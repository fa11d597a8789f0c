"""Consumer-group benchmark: time for a group of N members to stabilise, and
synchronous commits per second, against a running broker.

Uses confluent-kafka (librdkafka), installed by scripts/test.sh into
.test-deps/venv. Usage:

    .test-deps/venv/bin/python bench/group_bench.py [--bootstrap 127.0.0.1:9092] [--members 50]

Prints the stabilisation time (from the first subscribe until every member
holds its final assignment and the assignments cover all partitions exactly
once) and commits/s for one member committing synchronously in a loop.
"""
import argparse
import threading
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--commit-seconds", type=float, default=5.0)
    args = ap.parse_args()

    topic = f"group-bench-{uuid.uuid4().hex[:8]}"
    group = f"group-bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)

    assignments = {}
    lock = threading.Lock()
    stop = threading.Event()
    consumers = []

    def on_assign(name):
        def cb(consumer, partitions):
            with lock:
                assignments[name] = {p.partition for p in partitions}
        return cb

    for i in range(args.members):
        c = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": group,
            "session.timeout.ms": 30000,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        consumers.append(c)

    def poll_loop(name, c):
        c.subscribe([topic], on_assign=on_assign(name))
        while not stop.is_set():
            c.poll(0.1)

    start = time.monotonic()
    threads = [threading.Thread(target=poll_loop, args=(f"m{i}", c), daemon=True) for i, c in enumerate(consumers)]
    for t in threads:
        t.start()
    deadline = start + 300
    stable_at = None
    while time.monotonic() < deadline:
        with lock:
            sets = list(assignments.values())
        if len(sets) == args.members:
            union = set().union(*sets)
            if len(union) == args.partitions and sum(len(s) for s in sets) == args.partitions:
                stable_at = time.monotonic()
                break
        time.sleep(0.05)
    if stable_at is None:
        print(f"group of {args.members} did not stabilise within 300 s")
    else:
        print(f"group of {args.members} members over {args.partitions} partitions stable after {stable_at - start:.2f} s")
        print("  (includes group.initial.rebalance.delay.ms, 3 s by default)")

    # Commits/s: one member commits synchronously in a loop (the poll threads
    # are stopped first: librdkafka serves a sync commit from the caller).
    stop.set()
    for t in threads:
        t.join(5)
    c = consumers[0]
    owned = sorted(assignments.get("m0", {0}))
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.commit_seconds:
        c.commit(offsets=[TopicPartition(topic, p, n) for p in owned[:1]], asynchronous=False)
        n += 1
    elapsed = time.monotonic() - t0
    print(f"synchronous commits: {n / elapsed:.0f} commits/s ({n} in {elapsed:.1f} s, 1 partition each)")

    for c in consumers:
        c.close()


if __name__ == "__main__":
    main()
