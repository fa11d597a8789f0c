"""Cluster admin APIs on Gregor's one node (DescribeQuorum, ElectLeaders,
Alter/ListPartitionReassignments, ListConfigResources) through real clients: the Apache Kafka Java
AdminClient 3.9 (java/JavaClusterAdminTest.java: describeMetadataQuorum,
electLeaders, alterPartitionReassignments, listPartitionReassignments,
listClientMetricsResources = ListConfigResources v0),
kafka-python's perform_leader_election and confluent-kafka's elect_leaders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import errors as kp_errors
from kafka.admin import KafkaAdminClient

from compat_util import compile_java, run_java_main

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaClusterAdminTest.java"
NODE_ID = 5


@pytest.fixture(scope="session")
def java_cluster_admin_classes(java_classpath, tmp_path_factory) -> str:
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-cluster-admin-classes"))


@pytest.mark.broker_overrides({"node.id": str(NODE_ID)})
def test_java_admin(broker, topic, java_cluster_admin_classes):
    run_java_main(java_cluster_admin_classes, "JavaClusterAdminTest", broker.bootstrap, topic, str(NODE_ID))


def test_kafka_python_leader_election(broker, topic):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000,
                         client_id="gregor-compat-cluster-admin")
    try:
        from kafka.admin import NewTopic as KpNewTopic
        a.create_topics([KpNewTopic(topic, 2, 1)])
        for election_type in (0, 1):
            resp = a.perform_leader_election(election_type, {topic: [0, 1]})
            assert resp.error_code == 0
            results = {(t, p): code for t, parts in resp.replication_election_results
                       for p, code, _msg in parts}
            assert results == {(topic, 0): 84, (topic, 1): 84}, resp
        with pytest.raises(kp_errors.UnknownTopicOrPartitionError):
            a.perform_leader_election(0, {topic: [7]})
    finally:
        a.close()


def test_confluent_kafka_elect_leaders(broker, topic):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(topic, 2, 1)]).values():
        f.result(30)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1), TopicPartition(topic, 9)]
    for election_type in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        result = a.elect_leaders(election_type, tps).result(30)
        codes = {(tp.topic, tp.partition): (e.args[0].code() if isinstance(e, KafkaException) else e)
                 for tp, e in result.items()}
        assert codes == {
            (topic, 0): KafkaError.ELECTION_NOT_NEEDED,
            (topic, 1): KafkaError.ELECTION_NOT_NEEDED,
            (topic, 9): KafkaError.UNKNOWN_TOPIC_OR_PART,
        }, result
        # Every partition: none needed an election, so none is reported.
        assert a.elect_leaders(election_type, None).result(30) == {}
