"""Consumer groups (classic protocol) with the Apache Kafka Java client 3.9, driven by
java/JavaGroupTest.java (compiled once per session, like JavaClientTest.java): two
KafkaConsumers in threads (range and cooperative-sticky), commitSync after every batch,
committed(), and AdminClient listConsumerGroups / describeConsumerGroups /
listConsumerGroupOffsets / alterConsumerGroupOffsets / deleteConsumerGroupOffsets
(OffsetDelete) / deleteConsumerGroups. Assertions run in Java (see the file header).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_util import compile_java, run_java_main

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaGroupTest.java"
FAST = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}


@pytest.fixture(scope="session")
def java_group_classes(java_classpath, tmp_path_factory) -> str:
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-group-classes"))


@pytest.mark.broker_overrides(FAST)
@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_two_consumers(broker, topic, assignor, java_group_classes):
    run_java_main(java_group_classes, "JavaGroupTest", broker.bootstrap, topic, f"g-{topic}", assignor)
