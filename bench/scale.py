#!/usr/bin/env python3
"""Partitions at scale on one node: create time, RSS, descriptors, produce.

    bench/scale.py --bin target/release/gregor --counts 1000,10000,50000

For each count, on a fresh log dir: starts the broker, creates the partitions
as topics of `--per-topic` partitions (default: one topic per count, up to
10,000 partitions, which needs several metadata batches, see
docs/ARCHITECTURE.md), then reports the create time, the broker's RSS and open
descriptors before and after, RSS per idle partition, and the throughput of a
confluent-kafka producer writing `--records` 100 B records spread over every
partition (record i to partition i mod count, acks=1, no compression), with
the CPU seconds the broker and the producer (this process) spent on it. Then
it restarts the node twice on the same log dir, once after SIGTERM and once
after `kill -9`, and reports the stop time, the time from the new process's
start to its listening line, the time until Metadata shows every partition
with a leader and no error ("online"), and RSS and descriptors once idle
again (RSS per partition after a restart is measured against the empty
node's RSS before the create). Stops at the first count the machine cannot
hold (e.g. `ulimit -n`), saying why. Extra `--override k=v` go to the broker.
Not a test: one run per count, note the machine's load (printed).
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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    """User + system CPU seconds of this process (the producer runs in it)."""
    t = os.times()
    return t.user + t.system


def fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(binary: str, log_dir: Path, work: Path, overrides: list[str]):
    """Starts the broker; returns (process, port, seconds to its listening line)."""
    t0 = time.monotonic()
    cmd = [binary, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
           "--override", f"log.dirs={log_dir}"]
    for o in overrides:
        cmd += ["--override", o]
    err = open(work / "stderr.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    for raw in proc.stdout:
        m = LISTEN_RE.search(raw.decode(errors="replace"))
        if m:
            return proc, int(m.group(1)), time.monotonic() - t0
    raise RuntimeError(f"broker exited (rc={proc.wait()}); see {work}/stderr.log")


def stop(proc, sig=signal.SIGTERM) -> float:
    """Sends `sig`; returns the seconds until the process exited."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0


def topic_sizes(count: int, per_topic: int) -> list[tuple[str, int]]:
    out, left, i = [], count, 0
    while left > 0:
        n = min(per_topic, left)
        out.append((f"scale-{i}", n))
        left -= n
        i += 1
    return out


def online(bootstrap: str, count: int, per_topic: int, timeout: float = 900) -> float:
    """Seconds until Metadata shows every partition with a leader and no error."""
    t0 = time.monotonic()
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 300_000})
    want = dict(topic_sizes(count, per_topic))
    while time.monotonic() - t0 < timeout:
        try:
            md = admin.list_topics(timeout=60)
        except Exception:  # noqa: BLE001 - not up yet: ask again
            time.sleep(0.2)
            continue
        ok = 0
        for name, n in want.items():
            t = md.topics.get(name)
            if t is None or t.error is not None:
                continue
            ok += sum(1 for p in t.partitions.values() if p.error is None and p.leader >= 0)
        if ok == count:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(f"not every partition online after {timeout} s")


def create(bootstrap: str, count: int, per_topic: int) -> float:
    # librdkafka gives up on a request after socket.timeout.ms (60 s by
    # default, 300 s at most) whatever request_timeout says; a topic of 10,000 partitions
    # on a loaded machine takes longer than that to create.
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 300_000})
    topics = [NewTopic(name, n, 1) for name, n in topic_sizes(count, per_topic)]
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
    # Every partition of every topic in turn: (topic, partition) of record i.
    targets = [(name, part) for name, n in topic_sizes(count, per_topic) for part in range(n)]
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
                topic, part = targets[i % len(targets)]
                p.produce(topic, value, partition=part, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 0:
            p.poll(0)
    remaining = p.flush(600)
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
            proc, port, _ = start(args.bin, work / "data", work, args.override)
            bootstrap = f"127.0.0.1:{port}"
            row: dict = {"partitions": count}
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
                row.update({
                    "create_s": round(create_s, 2),
                    "rss_mib_before": round(before_rss, 1), "rss_mib_idle": round(idle_rss, 1),
                    "kib_per_idle_partition": round((idle_rss - before_rss) * 1024 / count, 2),
                    "fds_before": before_fds, "fds_idle": idle_fds,
                })
                broker0, client0 = cpu_s(proc.pid), self_cpu_s()
                msgs, mbs = produce(bootstrap, count, args.per_topic, args.records)
                row.update({
                    # Which side is the limit: CPU seconds each spent on the produce.
                    "produce_broker_cpu_s": round(cpu_s(proc.pid) - broker0, 2),
                    "produce_client_cpu_s": round(self_cpu_s() - client0, 2),
                    "rss_mib_after_produce": round(rss_mib(proc.pid), 1),
                    "fds_after_produce": fds(proc.pid),
                    "produce_msgs_s": round(msgs), "produce_mb_s": round(mbs, 1),
                })
                for how, sig in (("sigterm", signal.SIGTERM), ("kill9", signal.SIGKILL)):
                    row[f"{how}_stop_s"] = round(stop(proc, sig), 2)
                    proc, port, listen_s = start(args.bin, work / "data", work, args.override)
                    bootstrap = f"127.0.0.1:{port}"
                    online_s = online(bootstrap, count, args.per_topic)
                    rss = settle(proc.pid, 20)
                    row.update({
                        f"{how}_restart_listener_s": round(listen_s, 2),
                        f"{how}_restart_online_s": round(listen_s + online_s, 2),
                        f"{how}_restart_rss_mib": round(rss, 1),
                        f"{how}_restart_kib_per_partition": round(
                            (rss - before_rss) * 1024 / count, 2),
                        f"{how}_restart_fds": fds(proc.pid),
                    })
                row["loadavg"] = os.getloadavg()
                print(json.dumps(row), flush=True)
            except Exception as e:  # noqa: BLE001 - what was measured, then why it stopped
                row["failed"] = str(e)
                row["stderr_tail"] = (work / "stderr.log").read_text(
                    errors="replace").splitlines()[-5:]
                print(json.dumps(row), flush=True)
                break
            finally:
                if proc.poll() is None:
                    stop(proc)

if __name__ == "__main__":
    main()
