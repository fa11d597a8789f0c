#!/usr/bin/env python3
"""Partitions at scale on one node: create time, RSS, descriptors, produce.

    bench/scale.py --bin target/release/gregor --counts 1000,10000,50000

For each count, on a fresh log dir: starts the broker, creates the partitions
as topics of `--per-topic` partitions (default: one topic per count, up to
10,000 partitions, which needs several metadata batches, see
docs/ARCHITECTURE.md), then reports the create time, the broker's RSS and open
descriptors before and after, RSS per idle partition, and the throughput of a
confluent-kafka producer writing `--records` 100 B records spread over every
partition (random partition per record, acks=1, lz4 off). Stops at the first
count the machine cannot hold (e.g. `ulimit -n`), saying why. Extra
`--override k=v` go to the broker. Not a test: one run per count, note the
machine's load (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

LISTEN_RE = re.compile(r"gregor: listening on \S+://[^:]+:(\d+)")


def fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(binary: str, log_dir: Path, work: Path, overrides: list[str]):
    cmd = [binary, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
           "--override", f"log.dirs={log_dir}"]
    for o in overrides:
        cmd += ["--override", o]
    err = open(work / "stderr.log", "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    for raw in proc.stdout:
        m = LISTEN_RE.search(raw.decode(errors="replace"))
        if m:
            return proc, int(m.group(1))
    raise RuntimeError(f"broker exited (rc={proc.wait()}); see {work}/stderr.log")


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def create(bootstrap: str, count: int, per_topic: int) -> float:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = []
    left, i = count, 0
    while left > 0:
        n = min(per_topic, left)
        topics.append(NewTopic(f"scale-{i}", n, 1))
        left -= n
        i += 1
    t0 = time.monotonic()
    # One topic a request: each is one controller change.
    for t in topics:
        admin.create_topics([t], operation_timeout=300, request_timeout=600)[t.topic].result(timeout=900)
    return time.monotonic() - t0


def settle(pid: int, seconds: float = 5.0) -> float:
    """RSS after the broker went idle: sampled until two readings 1 s apart agree
    within 1 MiB (bounded by `seconds`)."""
    deadline = time.monotonic() + seconds
    last = rss_mib(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = rss_mib(pid)
        if abs(now - last) < 1:
            return now
        last = now
    return last


def produce(bootstrap: str, count: int, per_topic: int, records: int) -> tuple[float, float]:
    topics = [f"scale-{i}" for i in range((count + per_topic - 1) // per_topic)]
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1,
                  "queue.buffering.max.messages": 1_000_000, "batch.num.messages": 10_000})
    value = b"x" * 100
    failed = 0

    def cb(err, _msg):
        nonlocal failed
        if err is not None:
            failed += 1

    t0 = time.monotonic()
    for i in range(records):
        while True:
            try:
                p.produce(topics[i % len(topics)], value, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 0:
            p.poll(0)
    remaining = p.flush(300)
    took = time.monotonic() - t0
    if remaining or failed:
        raise RuntimeError(f"{remaining} not delivered, {failed} failed")
    return records / took, records * 100 / took / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/gregor")
    ap.add_argument("--counts", default="1000,10000,50000")
    ap.add_argument("--per-topic", type=int, default=10_000)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--override", action="append", default=[])
    args = ap.parse_args()
    print(json.dumps({"loadavg": os.getloadavg(), "ulimit_n": int(subprocess.run(
        ["sh", "-c", "ulimit -n"], capture_output=True, text=True).stdout)}))
    for count in (int(c) for c in args.counts.split(",")):
        with tempfile.TemporaryDirectory(prefix="gregor-scale-") as tmp:
            work = Path(tmp)
            proc, port = start(args.bin, work / "data", work, args.override)
            bootstrap = f"127.0.0.1:{port}"
            try:
                before_rss, before_fds = settle(proc.pid), fds(proc.pid)
                try:
                    create_s = create(bootstrap, count, args.per_topic)
                except Exception as e:  # noqa: BLE001 - reported, then stop
                    tail = (work / "stderr.log").read_text(errors="replace").splitlines()[-5:]
                    print(json.dumps({"partitions": count, "create_failed": str(e),
                                      "fds": fds(proc.pid) if proc.poll() is None else None,
                                      "stderr_tail": tail}))
                    break
                idle_rss, idle_fds = settle(proc.pid, 20), fds(proc.pid)
                msgs, mbs = produce(bootstrap, count, args.per_topic, args.records)
                print(json.dumps({
                    "partitions": count, "create_s": round(create_s, 2),
                    "rss_mib_before": round(before_rss, 1), "rss_mib_idle": round(idle_rss, 1),
                    "kib_per_idle_partition": round((idle_rss - before_rss) * 1024 / count, 2),
                    "fds_before": before_fds, "fds_idle": idle_fds,
                    "rss_mib_after_produce": round(rss_mib(proc.pid), 1), "fds_after_produce": fds(proc.pid),
                    "produce_msgs_s": round(msgs), "produce_mb_s": round(mbs, 1),
                    "loadavg": os.getloadavg(),
                }))
            finally:
                stop(proc)


if __name__ == "__main__":
    main()
