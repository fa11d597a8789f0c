"""Consumer groups (classic protocol) with the Apache Kafka Java client 3.9, driven by
java/JavaGroupTest.java (compiled once per session, like JavaClientTest.java): two
KafkaConsumers in threads (range and cooperative-sticky), commitSync after every batch,
committed(), and AdminClient listConsumerGroups / describeConsumerGroups /
listConsumerGroupOffsets / alterConsumerGroupOffsets / deleteConsumerGroupOffsets
(OffsetDelete) / deleteConsumerGroups. Assertions run in Java (see the file header).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaGroupTest.java"
FAST = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}


@pytest.fixture(scope="session")
def java_group_classes(java_classpath, tmp_path_factory) -> str:
    assert shutil.which("javac"), "javac not found (a JDK 17+ is required)"
    out = tmp_path_factory.mktemp("java-group-classes")
    r = subprocess.run(["javac", "-cp", java_classpath, "-d", str(out), str(JAVA_SRC)],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"javac failed:\n{r.stderr.decode(errors='replace')}"
    return f"{out}:{java_classpath}"


@pytest.mark.broker_overrides(FAST)
@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_two_consumers(broker, topic, assignor, java_group_classes):
    args = [broker.bootstrap, topic, f"g-{topic}", assignor]
    cmd = ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", java_group_classes, "JavaGroupTest", *args]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=105, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"java timed out: {' '.join(args)}\nstdout:\n"
                             f"{(e.stdout or b'').decode(errors='replace')[-3000:]}\nstderr:\n"
                             f"{(e.stderr or b'').decode(errors='replace')[-8000:]}") from None
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 0 and "RESULT ok" in out, (
        f"JavaGroupTest {' '.join(args)} exited {r.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-8000:]}")
