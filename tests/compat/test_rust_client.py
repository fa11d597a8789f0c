"""The native Rust client (crates/client), through `gregor console-producer`,
`console-consumer` and `producer-perf-test`, against other clients: what the
Rust producer writes, confluent-kafka, kafka-python and Java read identically
and in order; what confluent-kafka and Java produce, the Rust consumer reads;
Rust and librdkafka consumers share one group's partitions."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from compat_util import ck_create_topic, wait_until
from conftest import gregor_bin

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def gregor(*args, input_text=None, timeout=60):
    out = subprocess.run([str(gregor_bin()), *args], input=input_text, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def lines(n, tag):
    return [f"k{i}:{tag}-value-{i}" for i in range(n)]


def ck_read(bootstrap, topic, partitions, expected):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-ck", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append((m.partition(), m.offset(), m.key(), m.value(), m.headers()))
    c.close()
    return got


@pytest.mark.parametrize("codec", CODECS)
def test_rust_producer_is_read_by_confluent_and_kafka_python(broker, topic, codec):
    ck_create_topic(broker.bootstrap, topic, 1)
    text = "\n".join(f"h1:x{i}\tk{i}:v-{codec}-{i}" for i in range(50)) + "\n"
    gregor("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
           "--compression-codec", codec, "--property", "parse.key=true", "--property", "parse.headers=true",
           "--property", "key.separator=:",
           input_text=text)
    got = ck_read(broker.bootstrap, topic, 1, 50)
    assert [(o, k, v) for _, o, k, v, _ in got] == [(i, f"k{i}".encode(), f"v-{codec}-{i}".encode())
                                                   for i in range(50)]
    assert all(h == [("h1", f"x{i}".encode())] for i, (_, _, _, _, h) in enumerate(got))

    from kafka import KafkaConsumer, TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                       consumer_timeout_ms=10000)
    kc.assign([KTP(topic, 0)])
    kc.seek_to_beginning()
    kp = [(m.offset, m.key, m.value) for m in kc][:50]
    kc.close()
    assert kp == [(i, f"k{i}".encode(), f"v-{codec}-{i}".encode()) for i in range(50)]


def test_rust_producer_is_read_by_java(broker, topic, java_classpath):
    ck_create_topic(broker.bootstrap, topic, 1)
    gregor("console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
           "--property", "parse.key=true", "--property", "key.separator=:",
           input_text="\n".join(lines(30, "java")) + "\n")
    src = """
import java.util.*; import org.apache.kafka.clients.consumer.*; import org.apache.kafka.common.*;
public class ReadAll { public static void main(String[] a) throws Exception {
  Properties p = new Properties(); p.put("bootstrap.servers", a[0]);
  p.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
  p.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
  try (KafkaConsumer<String,String> c = new KafkaConsumer<>(p)) {
    TopicPartition tp = new TopicPartition(a[1], 0); c.assign(List.of(tp)); c.seekToBeginning(List.of(tp));
    int n = 0; long end = System.currentTimeMillis() + 30000;
    while (n < Integer.parseInt(a[2]) && System.currentTimeMillis() < end)
      for (ConsumerRecord<String,String> r : c.poll(java.time.Duration.ofMillis(200))) {
        System.out.println(r.offset() + " " + r.key() + " " + r.value()); n++; }
  } } }
"""
    import tempfile, pathlib
    d = pathlib.Path(tempfile.mkdtemp())
    (d / "ReadAll.java").write_text(src)
    out = subprocess.run(["java", "-cp", java_classpath, str(d / "ReadAll.java"), broker.bootstrap, topic, "30"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = [l for l in out.stdout.splitlines() if l and l[0].isdigit()]
    assert got == [f"{i} k{i} java-value-{i}" for i in range(30)]


def test_confluent_producer_is_read_by_rust_consumer(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "compression.type": "zstd"})
    for i in range(90):
        p.produce(topic, key=f"k{i}", value=f"v{i}", partition=i % 3)
    assert p.flush(30) == 0
    out = gregor("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--from-beginning",
                 "--max-messages", "90", "--timeout-ms", "20000", "--property", "print.key=true",
                 "--property", "print.partition=true", "--property", "print.offset=true")
    rows = [l.split("\t") for l in out.splitlines() if l.strip()]
    assert len(rows) == 90, out[-2000:]
    by_partition: dict[str, list[tuple[int, str, str]]] = {}
    for row in rows:
        fields = dict(x.split(":", 1) for x in row[:2])
        by_partition.setdefault(fields["Partition"], []).append((int(fields["Offset"]), row[2], row[3]))
    for part, recs in by_partition.items():
        pi = int(part)
        assert recs == [(o, f"k{pi + 3 * o}", f"v{pi + 3 * o}") for o in range(30)], recs


@pytest.mark.broker_overrides({"group.initial.rebalance.delay.ms": "0"})
def test_rust_and_librdkafka_consumers_share_a_group(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 4)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(400):
        p.produce(topic, value=f"v{i}", partition=i % 4)
    assert p.flush(30) == 0
    group = f"{topic}-mixed"
    ck_seen = []
    stop = threading.Event()

    def ck_member():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        c.subscribe([topic])
        while not stop.is_set():
            m = c.poll(0.1)
            if m is not None and not m.error():
                ck_seen.append((m.partition(), m.offset()))
                c.commit(message=m, asynchronous=False)
                time.sleep(0.02)  # slow, so partitions are left for the Rust member
        c.close()

    t = threading.Thread(target=ck_member)
    t.start()
    wait_until(lambda: len(ck_seen) > 0, 30, "the librdkafka member to start consuming")
    out = gregor("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                 "--from-beginning", "--timeout-ms", "8000", "--property", "print.partition=true",
                 "--property", "print.offset=true", timeout=90)
    stop.set()
    t.join(30)
    rust_seen = set()
    for l in out.splitlines():
        if l.strip():
            f = dict(x.split(":", 1) for x in l.split("\t")[:2])
            rust_seen.add((int(f["Partition"]), int(f["Offset"])))
    assert rust_seen, "the Rust member got no partitions"
    # The partitions were shared: each member saw records the other did not.
    assert rust_seen - set(ck_seen) and set(ck_seen) - rust_seen
    # Together they covered every record; a record may be read twice only around the rebalance.
    assert rust_seen | set(ck_seen) == {(p, o) for p in range(4) for o in range(100)}


JAVA_GROUP_MEMBER = """
import java.util.*; import org.apache.kafka.clients.consumer.*; import org.apache.kafka.common.*;
public class GroupMember { public static void main(String[] a) throws Exception {
  Properties p = new Properties(); p.put("bootstrap.servers", a[0]); p.put("group.id", a[2]);
  p.put("auto.offset.reset", "earliest"); p.put("enable.auto.commit", "false");
  p.put("max.poll.records", "10");  // poll often, so a rebalance is joined promptly
  p.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
  p.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
  try (KafkaConsumer<String,String> c = new KafkaConsumer<>(p)) {
    c.subscribe(List.of(a[1]));
    long idleSince = System.currentTimeMillis(); long end = System.currentTimeMillis() + 60000;
    while (System.currentTimeMillis() - idleSince < 8000 && System.currentTimeMillis() < end) {
      ConsumerRecords<String,String> rs = c.poll(java.time.Duration.ofMillis(200));
      for (ConsumerRecord<String,String> r : rs) {
        System.out.println("REC " + r.partition() + " " + r.offset()); System.out.flush();
        c.commitSync(Map.of(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1)));
        Thread.sleep(20);
        idleSince = System.currentTimeMillis();
      }
    }
  } } }
"""


@pytest.mark.broker_overrides({"group.initial.rebalance.delay.ms": "0"})
def test_rust_and_java_consumers_share_a_group(broker, topic, java_classpath, tmp_path):
    ck_create_topic(broker.bootstrap, topic, 4)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(400):
        p.produce(topic, value=f"v{i}", partition=i % 4)
    assert p.flush(30) == 0
    group = f"{topic}-java-rust"
    (tmp_path / "GroupMember.java").write_text(JAVA_GROUP_MEMBER)
    java = subprocess.Popen(["java", "-cp", java_classpath, str(tmp_path / "GroupMember.java"), broker.bootstrap,
                             topic, group], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    java_seen: list[tuple[int, int]] = []

    def read_java():
        for line in java.stdout:
            if line.startswith("REC "):
                _, part, off = line.split()
                java_seen.append((int(part), int(off)))

    reader = threading.Thread(target=read_java)
    reader.start()
    try:
        wait_until(lambda: len(java_seen) > 0, 60, "the Java member to start consuming")
        out = gregor("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                     "--from-beginning", "--timeout-ms", "8000", "--property", "print.partition=true",
                     "--property", "print.offset=true", timeout=90)
        assert java.wait(90) == 0, java.stderr.read()[-2000:]
    finally:
        if java.poll() is None:
            java.kill()
        reader.join(30)
    rust_seen = set()
    for l in out.splitlines():
        if l.strip():
            f = dict(x.split(":", 1) for x in l.split("\t")[:2])
            rust_seen.add((int(f["Partition"]), int(f["Offset"])))
    assert rust_seen - set(java_seen) and set(java_seen) - rust_seen, "the members did not share partitions"
    assert rust_seen | set(java_seen) == {(p, o) for p in range(4) for o in range(100)}
