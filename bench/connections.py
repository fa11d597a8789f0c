#!/usr/bin/env python3
"""Idle connections: broker memory per connection, and a busy producer's latency beside them.

    bench/connections.py --bin target/release/gregor --connections 10000

Starts the broker, measures a confluent-kafka producer's delivery latency (acks=1,
linger.ms=0, `--rate` records/s of 100 B for `--seconds`) with no other client, then
opens `--connections` client connections that each send ApiVersions v0 and Metadata v1
(all topics), read both answers and stay open without sending anything more, and
measures the producer again beside them. Reports the broker's RSS (VmRSS) before and
after the idle connections (the difference per connection), its open descriptors, and
the producer's p50/p99/p99.9 latency in both phases. Needs `ulimit -n` above
`--connections` for both processes (this script raises its own soft limit). Not a
test: one run, note the machine's load (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

LISTEN_RE = re.compile(r"gregor: listening on \S+://[^:]+:(\d+)")


def status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def request(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client = b"idle"
    head = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = head + body
    return struct.pack(">i", len(msg)) + msg


def read_frame(s: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def open_idle(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(request(18, 0, 1, b""))  # ApiVersions v0
    read_frame(s)
    s.sendall(request(3, 1, 2, struct.pack(">i", -1)))  # Metadata v1, all topics
    read_frame(s)
    return s


def latency_run(port: int, topic: str, rate: int, seconds: float) -> dict:
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "acks": "1", "linger.ms": 0,
                  "enable.idempotence": False})
    lat: list[float] = []
    errors = 0

    def cb(sent: float):
        def done(err, _msg):
            nonlocal errors
            if err is not None:
                errors += 1
            else:
                lat.append(time.perf_counter() - sent)
        return done

    value = b"x" * 100
    # Warm up (connection, metadata) before measuring.
    p.produce(topic, value)
    p.flush(30)
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            p.poll(max(0.0, min(due - now, 0.001)))
        # Latency from the scheduled send time, so a stall is not hidden.
        p.produce(topic, value, on_delivery=cb(due))
        p.poll(0)
    p.flush(60)
    lat.sort()

    def q(f: float) -> float:
        return lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else float("nan")

    return {"records": len(lat), "errors": errors, "p50_ms": q(0.5), "p99_ms": q(0.99),
            "p999_ms": q(0.999), "max_ms": lat[-1] * 1000 if lat else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--override", action="append", default=[])
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load average: {os.getloadavg()}, RLIMIT_NOFILE {hard}")
    work = Path(tempfile.mkdtemp(prefix="gregor-conn-"))
    cmd = [args.bin, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
           "--override", f"log.dirs={work / 'data'}"]
    for o in args.override:
        cmd += ["--override", o]
    log = open(work / "broker.log", "w")
    broker = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            m = LISTEN_RE.search((work / "broker.log").read_text())
            port = int(m.group(1)) if m else None
            if port is None:
                time.sleep(0.05)
        assert port, (work / "broker.log").read_text()
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        for f in admin.create_topics([NewTopic("busy", 1, 1)]).values():
            f.result(30)
        alone = latency_run(port, "busy", args.rate, args.seconds)
        print("producer alone:", json.dumps(alone))
        rss0 = status(broker.pid, "VmRSS")
        t0 = time.monotonic()
        idle = [open_idle(port) for _ in range(args.connections)]
        opened = time.monotonic() - t0
        time.sleep(1)  # let the broker settle (not a synchronisation: a measurement)
        rss1 = status(broker.pid, "VmRSS")
        fds = len(os.listdir(f"/proc/{broker.pid}/fd"))
        per = (rss1 - rss0) / max(1, len(idle))
        print(f"{len(idle)} idle connections opened in {opened:.1f} s; broker RSS "
              f"{rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB = {per:.1f} KiB per connection; "
              f"{fds} open descriptors")
        beside = latency_run(port, "busy", args.rate, args.seconds)
        print("producer beside the idle connections:", json.dumps(beside))
        rss2 = status(broker.pid, "VmRSS")
        print(f"broker RSS after the second run {rss2 / 1024:.1f} MiB, peak "
              f"{status(broker.pid, 'VmHWM') / 1024:.1f} MiB")
        print(json.dumps({"connections": len(idle), "rss_before_kib": rss0, "rss_after_kib": rss1,
                          "kib_per_connection": round(per, 2), "fds": fds,
                          "alone": alone, "beside": beside}))
        for s in idle:
            s.close()
    finally:
        broker.terminate()
        broker.wait(30)


if __name__ == "__main__":
    main()
