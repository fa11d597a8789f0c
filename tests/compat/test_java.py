"""Apache Kafka Java client 3.9 (kafka-clients.jar from the
shigawire-apache-flink-libraries wheel) driven by java/JavaClientTest.java.

The Java file is compiled once per session with javac (equivalent to the
single-file source launch `java -cp JARS JavaClientTest.java ...`, but without
recompiling for every test). Assertions run inside Java; it exits non-zero with
a message on failure. Records produced by Java are also read back with
confluent-kafka.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_util import (CODECS, assert_same_records, compile_java, consume_ck, counts, make_records, now_ms,
                         run_java_main, write_tsv)

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaClientTest.java"
PARTITIONS = 3


@pytest.fixture(scope="session")
def java_classes(java_classpath, tmp_path_factory) -> str:
    """Compile JavaClientTest.java once; returns the full runtime classpath."""
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-classes"))


def run_java(classpath: str, *args: str, timeout: float = 110) -> None:
    run_java_main(classpath, "JavaClientTest", *args, timeout=timeout)


def test_admin(broker, topic, java_classes):
    run_java(java_classes, broker.bootstrap, topic, "admin")


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(broker, topic, codec, java_classes, tmp_path):
    recs = make_records(codec, PARTITIONS, 20, null_header_values=True)
    tsv = write_tsv(tmp_path / "records.tsv", recs)
    run_java(java_classes, broker.bootstrap, topic, "produce", str(tsv), codec)
    assert_same_records(recs, consume_ck(broker.bootstrap, topic, counts(recs, PARTITIONS)), PARTITIONS,
                        what=f"Java-produced ({codec}), read by confluent-kafka")


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, topic, acks, java_classes, tmp_path):
    recs = make_records(f"acks{acks}", PARTITIONS, 30, large=False)
    tsv = write_tsv(tmp_path / "records.tsv", recs)
    run_java(java_classes, broker.bootstrap, topic, "acks", str(tsv), acks)


def test_offsets_for_times(broker, topic, java_classes, tmp_path):
    base = now_ms() - 3_600_000
    recs = make_records("ts", 2, 10, timestamps=lambda i: base + (i // 2) * 1000)
    tsv = write_tsv(tmp_path / "records.tsv", recs)
    run_java(java_classes, broker.bootstrap, topic, "times", str(tsv))
