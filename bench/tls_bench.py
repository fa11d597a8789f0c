#!/usr/bin/env python3
"""TLS vs plaintext produce throughput on one broker (issue 11).

Starts a release `gregor` with a PLAINTEXT and an SSL listener (a throwaway CA
and server certificate made with the openssl CLI), then produces the same
records with confluent-kafka (librdkafka with OpenSSL; gregor-bench's bundled
librdkafka is built without TLS) to each listener in turn, to a fresh
one-partition topic each, acks=1, and prints records/s, MB/s and the broker's
CPU per record (utime+stime from /proc, the TLS cost on the broker side).

    python3 bench/tls_bench.py [--gregor target/release/gregor] [--records 1000000] [--repeat 3]

Needs the confluent-kafka package (the compat venv has it:
.test-deps/venv/bin/python bench/tls_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=bench ca", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    (d / "keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def produce(conf: dict, topic: str, n: int, size: int, broker_pid: int) -> dict:
    admin = AdminClient(conf)  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    p = Producer({**conf, "acks": "1", "linger.ms": 5, "batch.size": 1048576,
                  "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576})
    p.list_topics(topic, timeout=10)
    value = b"x" * size
    failed = []

    def on_delivery(err, _msg):
        if err is not None:
            failed.append(err)

    c0, t0 = cpu_s(broker_pid), time.monotonic()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    assert p.flush(120) == 0 and not failed, f"undelivered: {failed[:3]}"
    secs, cpu = time.monotonic() - t0, cpu_s(broker_pid) - c0
    return {"records": n, "size": size, "secs": secs, "rec_s": n / secs, "mb_s": n * size / secs / 1e6,
            "broker_cpu_us_per_record": cpu / n * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gregor", default=str(ROOT / "target" / "release" / "gregor"))
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gregor-tls-bench-"))
    make_certs(work)
    proc = subprocess.Popen([args.gregor, "server",
                             "--override", "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
                             "--override", f"log.dirs={work / 'data'}",
                             "--override", "ssl.keystore.type=PEM",
                             "--override", f"ssl.keystore.location={work / 'keystore.pem'}"],
                            stdout=subprocess.PIPE, stderr=open(work / "broker.log", "wb"), cwd=work)
    ports = {}
    while len(ports) < 2:
        line = proc.stdout.readline().decode()
        assert line, f"gregor exited; see {work / 'broker.log'}"
        m = re.match(r"gregor: listening on (\w+)://.*:(\d+)$", line.strip())
        if m:
            ports[m.group(1)] = int(m.group(2))
    confs = {
        "PLAINTEXT": {"bootstrap.servers": f"127.0.0.1:{ports['PLAINTEXT']}"},
        "SSL": {"bootstrap.servers": f"127.0.0.1:{ports['SSL']}", "security.protocol": "ssl",
                "ssl.ca.location": str(work / "ca.pem")},
    }
    rows = []
    try:
        for size in (100, 1024):
            n = args.records if size == 100 else args.records // 3
            for i in range(args.repeat):
                for listener, conf in confs.items():
                    r = produce(conf, f"b-{listener}-{size}-{i}", n, size, proc.pid)
                    r["listener"] = listener
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    print()
    print("| listener | record size | records | records/s (median) | MB/s | broker CPU µs/record |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in (100, 1024):
        for listener in confs:
            rs = [r for r in rows if r["size"] == size and r["listener"] == listener]
            print(f"| {listener} | {size} B | {rs[0]['records']:,} | "
                  f"{statistics.median(r['rec_s'] for r in rs):,.0f} | "
                  f"{statistics.median(r['mb_s'] for r in rs):.1f} | "
                  f"{statistics.median(r['broker_cpu_us_per_record'] for r in rs):.2f} |")


if __name__ == "__main__":
    main()
