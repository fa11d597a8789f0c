#!/usr/bin/env python3
"""Restart time and open descriptors of one node with many partitions.

    bench/restart_scale.py --bin target/release/gregor --partitions 5000 --segments 1

Creates `--partitions` partitions (topics of 100), writes one 100 B record per partition
per `--segments` round (rounds apart by the topics' segment.ms, so each round rolls a
new segment), then SIGTERMs the broker and starts it again on the same log dir. Reports:
the stop time, the time from the new process's start to its listening line (the listener
opens while the logs load), to `/readyz` answering 200 ("online": every log loaded and
every partition it leads hosted), the time until a confluent-kafka consumer assigned to
every partition has read every record from offset 0 ("all readable"), and the broker's
open descriptors (all, and those on segment files) and RSS at each step. Then it writes
one more record per partition, `kill -9`s the broker (every active segment is recovered
at the next start) and reports the same times for that restart (`kill9_*`). Extra
`--override k=v` go to the broker. Not a test: one run, note the machine's load (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

LISTEN_RE = re.compile(r"gregor: listening on \S+://[^:]+:(\d+)")
HTTP_RE = re.compile(r"gregor: http listening on http://(\S+)")
PER_TOPIC = 100
SEGMENT_MS = 2000


def fds(pid: int) -> tuple[int, int]:
    total = segs = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        total += 1
        try:
            t = os.readlink(fd)
        except OSError:
            continue
        if t.endswith((".log", ".index", ".timeindex", ".txnindex")):
            segs += 1
    return total, segs


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(binary: str, log_dir: Path, work: Path, overrides: list[str], n: int):
    """Starts the broker; returns (process, Kafka port, seconds to the listening line,
    HTTP address, start instant)."""
    cmd = [binary, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
           "--override", f"log.dirs={log_dir}",
           "--override", "http.listeners=http://127.0.0.1:0"]
    for o in overrides:
        cmd += ["--override", o]
    t0 = time.monotonic()
    err = open(work / f"stderr-{n}.log", "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    port = listen_s = None
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        m = LISTEN_RE.search(line)
        if m and port is None:
            port, listen_s = int(m.group(1)), time.monotonic() - t0
        m = HTTP_RE.search(line)
        if m:
            return proc, port, listen_s, m.group(1), t0
    raise SystemExit(f"broker exited (rc={proc.wait()}); see {work}/stderr-{n}.log")


def online(http: str, t0: float) -> float:
    """Seconds from `t0` (the process start) until /readyz answers 200."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{http}/readyz", timeout=10) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except urllib.error.HTTPError:
            pass
        time.sleep(0.01)
    raise SystemExit("/readyz not ready within 600 s")


def kill9(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def stop(proc) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=600)
    if rc != 0:
        raise SystemExit(f"broker exited with {rc} after SIGTERM")
    return time.monotonic() - t0


def read_all(bootstrap: str, topics: list[str], records: int) -> float:
    t0 = time.monotonic()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "restart-bench",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 1000})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(PER_TOPIC)])
    got = 0
    deadline = time.monotonic() + 600
    while got < records:
        if time.monotonic() > deadline:
            raise SystemExit(f"read {got} of {records} records in 600 s")
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error() is None:
                got += 1
    c.close()
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--partitions", type=int, default=5000)
    ap.add_argument("--segments", type=int, default=1)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--override", action="append", default=[])
    ap.add_argument("--keep", action="store_true",
                    help="keep the work dir (its data/ stopped cleanly) to profile a start on it")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="restart-bench-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log_dir = work / "data"
    out = {"bin": a.bin, "partitions": a.partitions, "segments": a.segments,
           "overrides": a.override, "load_before": os.getloadavg()}

    proc, port, _, _, _ = start(a.bin, log_dir, work, a.override, 0)
    bootstrap = f"127.0.0.1:{port}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [f"scale-{i:03d}" for i in range(a.partitions // PER_TOPIC)]
    t0 = time.monotonic()
    conf = {"segment.ms": str(SEGMENT_MS)} if a.segments > 1 else {}
    for i in range(0, len(topics), 10):
        fs = admin.create_topics([NewTopic(t, PER_TOPIC, 1, config=conf) for t in topics[i:i + 10]],
                                 operation_timeout=120)
        for f in fs.values():
            f.result(timeout=300)
    out["create_s"] = round(time.monotonic() - t0, 2)
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": 1})
    for r in range(a.segments):
        if r > 0:
            time.sleep(SEGMENT_MS / 1000 + 0.5)  # let segment.ms pass: the next append rolls
        for t in topics:
            for p in range(PER_TOPIC):
                prod.produce(t, value=b"x" * 100, partition=p)
                prod.poll(0)
        assert prod.flush(600) == 0
    out["fds_after_write"], out["segment_fds_after_write"] = fds(proc.pid)
    out["rss_mib_after_write"] = round(rss_mib(proc.pid), 1)
    out["stop_s"] = round(stop(proc), 2)

    proc, port, listen_s, http, t0 = start(a.bin, log_dir, work, a.override, 1)
    out["restart_to_listener_s"] = round(listen_s, 2)
    out["fds_at_listener"], out["segment_fds_at_listener"] = fds(proc.pid)
    out["rss_mib_at_listener"] = round(rss_mib(proc.pid), 1)
    out["restart_to_online_s"] = round(online(http, t0), 2)
    read_s = read_all(f"127.0.0.1:{port}", topics, a.partitions * a.segments)
    out["listener_to_all_read_s"] = round(read_s, 2)
    out["restart_to_all_read_s"] = round(listen_s + read_s, 2)
    out["fds_after_read"], out["segment_fds_after_read"] = fds(proc.pid)
    out["rss_mib_after_read"] = round(rss_mib(proc.pid), 1)

    # One more record per partition, then a crash: every active segment has
    # data past its recovery point, recovered at the next start.
    bootstrap = f"127.0.0.1:{port}"
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": 1})
    for t in topics:
        for p in range(PER_TOPIC):
            prod.produce(t, value=b"x" * 100, partition=p)
            prod.poll(0)
    assert prod.flush(600) == 0
    kill9(proc)
    proc, port, listen_s, http, t0 = start(a.bin, log_dir, work, a.override, 2)
    out["kill9_restart_to_listener_s"] = round(listen_s, 2)
    out["kill9_restart_to_online_s"] = round(online(http, t0), 2)
    read_s = read_all(f"127.0.0.1:{port}", topics, a.partitions * (a.segments + 1))
    out["kill9_restart_to_all_read_s"] = round(listen_s + read_s, 2)
    out["kill9_fds_after_read"], _ = fds(proc.pid)
    out["kill9_rss_mib_after_read"] = round(rss_mib(proc.pid), 1)
    out["stop2_s"] = round(stop(proc), 2)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out))
    if not a.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
