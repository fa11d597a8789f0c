#!/usr/bin/env python3
"""TLS, SASL and authorization cost on one broker (issue 11).

Starts a release `gregor` with PLAINTEXT, SSL, SASL_SSL and SASL_PLAINTEXT
listeners (SASL/PLAIN; a throwaway CA and server certificate made with the
openssl CLI), then produces the same records with confluent-kafka (librdkafka
with OpenSSL; gregor-bench's bundled librdkafka is built without TLS) to each
listener in turn, to a fresh one-partition topic each, acks=1, and consumes
them back; prints records/s, MB/s and the broker's CPU per record (utime+stime
from /proc, the TLS cost on the broker side).

`--acls N` (default 1000) then starts a second broker with Kafka's
StandardAuthorizer and N ACLs (half literal, half prefixed, on other topics,
plus the prefixed one that lets the benchmark user write) and produces over
SASL_PLAINTEXT as that user, to compare with the first broker's
SASL_PLAINTEXT row (no authorizer). 0 skips it.

    python3 bench/tls_bench.py [--gregor target/release/gregor] [--records 1000000] [--repeat 3] [--acls 1000]

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

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

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


def produce(conf: dict, topic: str, n: int, size: int, broker_pid: int, create: bool = True) -> dict:
    if create:
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


def consume(conf: dict, topic: str, n: int, size: int, broker_pid: int) -> dict:
    """Reads the n records of `topic` (one partition) from offset 0."""
    c = Consumer({**conf, "group.id": f"bench-{topic}", "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760,
                  "queued.max.messages.kbytes": 1048576})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    # Timed from the first record on: connection set-up and the first
    # fetch's wait are not throughput.
    c0 = t0 = None
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error() is None:
                if t0 is None:
                    c0, t0 = cpu_s(broker_pid), time.monotonic()
                got += 1
    assert t0 is not None, "nothing consumed"
    secs, cpu = time.monotonic() - t0, cpu_s(broker_pid) - c0
    c.close()
    assert got == n, f"consumed {got} of {n}"
    return {"records": n, "size": size, "secs": secs, "rec_s": n / secs, "mb_s": n * size / secs / 1e6,
            "broker_cpu_us_per_record": cpu / n * 1e6}


JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_bench="bench-secret";')


def start(gregor: str, work: Path, name: str, listeners: list[str], extra: list[str]):
    """A broker with `listeners` (names = protocols); its process and ports."""
    overrides = [f"listeners={','.join(f'{n}://127.0.0.1:0' for n in listeners)}",
                 f"log.dirs={work / name}", "ssl.keystore.type=PEM",
                 f"ssl.keystore.location={work / 'keystore.pem'}",
                 "sasl.enabled.mechanisms=PLAIN",
                 f"listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}",
                 f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}", *extra]
    cmd = [gregor, "server"]
    for o in overrides:
        cmd += ["--override", o]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(work / f"{name}.log", "wb"), cwd=work)
    ports = {}
    while len(ports) < len(listeners):
        line = proc.stdout.readline().decode()
        assert line, f"gregor exited; see {work / (name + '.log')}"
        m = re.match(r"gregor: listening on (\w+)://.*:(\d+)$", line.strip())
        if m:
            ports[m.group(1)] = int(m.group(2))
    return proc, ports


def client_confs(work: Path, ports: dict) -> dict:
    sasl = {"sasl.mechanisms": "PLAIN", "sasl.username": "bench", "sasl.password": "bench-secret"}
    tls = {"ssl.ca.location": str(work / "ca.pem")}
    protocol = {"PLAINTEXT": {}, "SSL": {"security.protocol": "ssl", **tls},
                "SASL_SSL": {"security.protocol": "sasl_ssl", **tls, **sasl},
                "SASL_PLAINTEXT": {"security.protocol": "sasl_plaintext", **sasl}}
    return {name: {"bootstrap.servers": f"127.0.0.1:{port}", **protocol[name]} for name, port in ports.items()}


def table(rows: list[dict], what: str) -> None:
    print()
    print(f"{what}:")
    print("| listener | record size | records | records/s (median) | MB/s | broker CPU µs/record |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in (100, 1024):
        for listener in dict.fromkeys(r["listener"] for r in rows):
            rs = [r for r in rows if r["size"] == size and r["listener"] == listener]
            if not rs:
                continue
            print(f"| {listener} | {size} B | {rs[0]['records']:,} | "
                  f"{statistics.median(r['rec_s'] for r in rs):,.0f} | "
                  f"{statistics.median(r['mb_s'] for r in rs):.1f} | "
                  f"{statistics.median(r['broker_cpu_us_per_record'] for r in rs):.2f} |")


def acl_run(args, work: Path) -> list[dict]:
    """Produce over SASL_PLAINTEXT through an authorizer holding `args.acls` ACLs."""
    proc, ports = start(args.gregor, work, "acl-broker", ["PLAINTEXT", "SASL_PLAINTEXT"], [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:ANONYMOUS"])
    confs = client_confs(work, ports)
    rows = []
    try:
        admin = AdminClient(confs["PLAINTEXT"])
        bench = "User:bench"
        acls = [AclBinding(ResourceType.TOPIC, f"other-{i}", ResourcePatternType.LITERAL, bench, "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW) for i in range(args.acls // 2)]
        acls += [AclBinding(ResourceType.TOPIC, f"p{i}-", ResourcePatternType.PREFIXED, bench, "*",
                            AclOperation.WRITE, AclPermissionType.ALLOW) for i in range(args.acls - len(acls) - 1)]
        acls.append(AclBinding(ResourceType.TOPIC, "b-", ResourcePatternType.PREFIXED, bench, "*",
                               AclOperation.WRITE, AclPermissionType.ALLOW))
        for i in range(0, len(acls), 100):
            for f in admin.create_acls(acls[i:i + 100]).values():
                f.result(30)
        for size in (100, 1024):
            n = args.records if size == 100 else args.records // 3
            for i in range(args.repeat):
                topic = f"b-acl-{size}-{i}"
                admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
                r = produce(confs["SASL_PLAINTEXT"], topic, n, size, proc.pid, create=False)
                r["listener"] = f"SASL_PLAINTEXT, {len(acls)} ACLs"
                rows.append(r)
                print(json.dumps(r), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gregor", default=str(ROOT / "target" / "release" / "gregor"))
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--acls", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gregor-tls-bench-"))
    make_certs(work)
    proc, ports = start(args.gregor, work, "broker", ["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"], [])
    confs = client_confs(work, ports)
    produced, consumed = [], []
    try:
        for size in (100, 1024):
            n = args.records if size == 100 else args.records // 3
            for i in range(args.repeat):
                for listener, conf in confs.items():
                    topic = f"b-{listener}-{size}-{i}"
                    r = produce(conf, topic, n, size, proc.pid)
                    r["listener"] = listener
                    produced.append(r)
                    print(json.dumps(r), flush=True)
                    r = consume(conf, topic, n, size, proc.pid)
                    r["listener"] = listener
                    consumed.append(r)
                    print(json.dumps({"consume": True, **r}), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    with_acls = acl_run(args, work) if args.acls > 0 else []
    table(produced, "produce (acks=1)")
    table(consumed, "consume (from offset 0)")
    if with_acls:
        table([r for r in produced if r["listener"] == "SASL_PLAINTEXT"] + with_acls,
              "produce with an authorizer vs none")


if __name__ == "__main__":
    main()
