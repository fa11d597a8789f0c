"""Transactions with the Apache Kafka Java client 3.9, driven by
java/JavaTransactionTest.java (compiled once per session, like JavaClientTest.java):
KafkaProducer initTransactions / beginTransaction / commitTransaction /
abortTransaction, read_committed and read_uncommitted KafkaConsumers (records,
offsets around the control records, endOffsets = LSO, positions),
consume-transform-produce with sendOffsetsToTransaction(offsets,
consumer.groupMetadata()), fencing (ProducerFencedException), and
Admin.listTransactions() / describeTransactions() against describeProducers().
Assertions run in Java (see the file header).

Until the broker has a transaction coordinator, initTransactions() fails with
TransactionalIdAuthorizationException and every scenario fails naming it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_util import compile_java, run_java_main

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaTransactionTest.java"
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}


@pytest.fixture(scope="session")
def java_txn_classes(java_classpath, tmp_path_factory) -> str:
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-txn-classes"))


@pytest.mark.broker_overrides(FAST_GROUPS)
@pytest.mark.parametrize("scenario", ["basic", "ctp", "fence", "admin"])
def test_java_transactions(broker, topic, scenario, java_txn_classes):
    run_java_main(java_txn_classes, "JavaTransactionTest", broker.bootstrap, topic, scenario)
