"""ACL enforcement on the data and group APIs, as Kafka's StandardAuthorizer
enforces it, seen by real clients authenticated with SASL/PLAIN: Produce
needs WRITE on the topic, Fetch READ, a group READ on the group; Metadata
lists only the topics the principal may DESCRIBE and answers a topic it may
not describe the same way whether it exists or not; transactional and
idempotent producers need WRITE on the transactional id, or IDEMPOTENT_WRITE
/ WRITE on some topic; configs need DESCRIBE_CONFIGS; authorized operations
are the principal's. The PLAINTEXT listener is the inter-broker one; its
User:ANONYMOUS is in super.users (as Kafka's brokers need CLUSTER_ACTION),
and it is used here as the administrator.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from compat_util import ck_admin
from test_acls import AUTHORIZER  # with super.users=User:ANONYMOUS
from test_sasl import sasl_bootstrap, sasl_overrides
from test_tls import start_broker  # noqa: F401 - fixture

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_alice="alice-secret" user_bob="bob-secret";')
ALICE = "User:alice"
TIMEOUT = 15


@pytest.fixture
def acl_broker(start_broker):
    return start_broker(sasl_overrides(**AUTHORIZER, **{
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "auto.create.topics.enable": "true"}))


def as_user(b, user: str, **extra) -> dict:
    conf = {"bootstrap.servers": sasl_bootstrap(b), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-secret",
            "socket.timeout.ms": 10000}
    conf.update(extra)
    return conf


def allow(rt, name, principal, op, pattern=ResourcePatternType.LITERAL):
    return AclBinding(rt, name, pattern, principal, "*", op, AclPermissionType.ALLOW)


def grant(admin, *bindings):
    for f in admin.create_acls(list(bindings), request_timeout=TIMEOUT).values():
        f.result()


def make_topics(admin, *names):
    fs = admin.create_topics([NewTopic(n, 1, 1) for n in names], request_timeout=TIMEOUT)
    for f in fs.values():
        f.result()


def produce_errors(conf: dict, topic: str, n: int = 3) -> list:
    """Produces n records; the delivery errors (None for each success)."""
    out = []
    p = Producer({"message.timeout.ms": 10000, "retries": 0, **conf})
    for i in range(n):
        p.produce(topic, value=str(i).encode(), on_delivery=lambda e, m: out.append(e))
    p.flush(30)
    assert len(out) == n, "every delivery reported"
    return [e.code() if e else None for e in out]


def error_code(future):
    try:
        future.result()
        return None
    except KafkaException as e:
        return e.args[0].code()


def test_produce_and_fetch_need_write_and_read(acl_broker):
    b = acl_broker
    admin = ck_admin(b.bootstrap)
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    make_topics(admin, topic)

    # No ACL: WRITE refused per partition, the topic invisible to alice.
    assert set(produce_errors(as_user(b, "alice"), topic)) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    alice_admin = AdminClient(as_user(b, "alice"))
    assert topic not in alice_admin.list_topics(timeout=TIMEOUT).topics

    grant(admin, allow(ResourceType.TOPIC, topic, ALICE, AclOperation.WRITE))
    assert produce_errors(as_user(b, "alice"), topic) == [None, None, None]
    # WRITE implies DESCRIBE: alice now sees the topic, bob still does not.
    assert topic in alice_admin.list_topics(timeout=TIMEOUT).topics
    assert topic not in AdminClient(as_user(b, "bob")).list_topics(timeout=TIMEOUT).topics

    # Fetching needs READ on the topic and READ on the group.
    group = f"g-{uuid.uuid4().hex[:6]}"
    errors: list[int] = []

    def consume(max_records: int, deadline_s: float) -> list[bytes]:
        c = Consumer(as_user(b, "alice", **{"group.id": group, "auto.offset.reset": "earliest",
                                             "enable.auto.commit": False}))
        got = []
        try:
            c.subscribe([topic])
            import time
            end = time.monotonic() + deadline_s
            while time.monotonic() < end and len(got) < max_records:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    errors.append(m.error().code())
                    if m.error().code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                                            KafkaError.TOPIC_AUTHORIZATION_FAILED):
                        break
                    continue
                got.append(m.value())
            if got:
                c.commit(asynchronous=False)
        finally:
            c.close()
        return got

    assert consume(3, 20) == []
    assert KafkaError.GROUP_AUTHORIZATION_FAILED in errors, errors
    grant(admin, allow(ResourceType.GROUP, group, ALICE, AclOperation.READ))
    errors.clear()
    assert consume(3, 20) == []
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED in errors, errors
    grant(admin, allow(ResourceType.TOPIC, topic, ALICE, AclOperation.READ))
    errors.clear()
    assert sorted(consume(3, 30)) == [b"0", b"1", b"2"], errors

    # The committed offsets: visible to alice (DESCRIBE on the group), not to bob.
    offsets = alice_admin.list_consumer_group_offsets(
        [__import__("confluent_kafka").ConsumerGroupTopicPartitions(group)])[group].result()
    assert [tp.offset for tp in offsets.topic_partitions if tp.topic == topic] == [3]
    bob_admin = AdminClient(as_user(b, "bob"))
    assert error_code(bob_admin.list_consumer_group_offsets(
        [__import__("confluent_kafka").ConsumerGroupTopicPartitions(group)])[group]) \
        == KafkaError.GROUP_AUTHORIZATION_FAILED
    # ListGroups: only the groups the caller may describe.
    listed = alice_admin.list_consumer_groups(request_timeout=TIMEOUT).result().valid
    assert group in {g.group_id for g in listed}
    listed = bob_admin.list_consumer_groups(request_timeout=TIMEOUT).result().valid
    assert group not in {g.group_id for g in listed}


def test_acl_removed_mid_session(acl_broker):
    """An ACL deleted while a producer is connected: its next request is
    refused (the decision reads the current ACLs, not the connection's)."""
    b = acl_broker
    admin = ck_admin(b.bootstrap)
    topic = f"mid-{uuid.uuid4().hex[:6]}"
    make_topics(admin, topic)
    write = allow(ResourceType.TOPIC, topic, ALICE, AclOperation.WRITE)
    grant(admin, write)
    results = []
    p = Producer(as_user(b, "alice", **{"message.timeout.ms": 10000, "retries": 0}))
    p.produce(topic, b"before", on_delivery=lambda e, m: results.append(e))
    p.flush(20)
    assert results == [None]
    from confluent_kafka.admin import AclBindingFilter, AclPermissionType as Perm
    [f] = admin.delete_acls([AclBindingFilter(
        ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, ALICE, None,
        AclOperation.WRITE, Perm.ALLOW)], request_timeout=TIMEOUT).values()
    assert f.result() == [write]
    p.produce(topic, b"after", on_delivery=lambda e, m: results.append(e))
    p.flush(20)
    assert len(results) == 2 and results[1] is not None
    assert results[1].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, results[1]


def test_metadata_leaks_no_topic_names(acl_broker):
    """A topic alice may not DESCRIBE looks the same whether it exists or
    not; auto-creation needs CREATE; kafka-python sees the same errors."""
    b = acl_broker
    admin = ck_admin(b.bootstrap)
    secret = f"secret-{uuid.uuid4().hex[:6]}"
    make_topics(admin, secret)
    alice = AdminClient(as_user(b, "alice", **{"allow.auto.create.topics": True}))
    missing = f"missing-{uuid.uuid4().hex[:6]}"
    for name in (secret, missing):
        md = alice.list_topics(topic=name, timeout=TIMEOUT).topics[name]
        assert md.error is not None and md.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (name, md.error)
        assert not md.partitions

    # DESCRIBE without CREATE: an unknown topic is not auto-created.
    grant(admin, allow(ResourceType.TOPIC, "auto-", ALICE, AclOperation.DESCRIBE,
                       ResourcePatternType.PREFIXED))
    auto = f"auto-{uuid.uuid4().hex[:6]}"
    assert produce_errors(as_user(b, "alice"), auto, 1) != [None]
    assert auto not in admin.list_topics(timeout=TIMEOUT).topics
    # With CREATE on the prefix (and WRITE), producing auto-creates it.
    grant(admin, allow(ResourceType.TOPIC, "auto-", ALICE, AclOperation.CREATE, ResourcePatternType.PREFIXED),
          allow(ResourceType.TOPIC, "auto-", ALICE, AclOperation.WRITE, ResourcePatternType.PREFIXED))
    assert produce_errors(as_user(b, "alice"), auto, 1) == [None]
    assert auto in admin.list_topics(timeout=TIMEOUT).topics

    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError
    kp_conf = dict(bootstrap_servers=sasl_bootstrap(b), security_protocol="SASL_PLAINTEXT",
                   sasl_mechanism="PLAIN", sasl_plain_username="alice",
                   sasl_plain_password="alice-secret", request_timeout_ms=15000,
                   api_version_auto_timeout_ms=10000)
    kc = KafkaConsumer(**kp_conf)
    try:
        topics = kc.topics()
        assert auto in topics and secret not in topics, topics
    finally:
        kc.close()
    kp = KafkaProducer(**kp_conf, max_block_ms=15000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            kp.send(secret, b"x").get(timeout=15)
    finally:
        kp.close(timeout=5)


def test_idempotent_and_transactional_producers(acl_broker):
    b = acl_broker
    admin = ck_admin(b.bootstrap)
    topic = f"tx-{uuid.uuid4().hex[:6]}"
    make_topics(admin, topic)

    # Idempotence needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic
    # (KIP-679): DESCRIBE (so the topic's metadata comes) is not enough.
    grant(admin, allow(ResourceType.TOPIC, topic, "User:bob", AclOperation.DESCRIBE))
    p = Producer(as_user(b, "bob", **{"enable.idempotence": True, "message.timeout.ms": 10000}))
    p.produce(topic, b"x")
    # librdkafka raises the fatal error from poll once InitProducerId is refused.
    with pytest.raises(KafkaException) as e:
        import time
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            p.poll(0.2)
    err = e.value.args[0]
    assert err.fatal() and err.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, err
    grant(admin, allow(ResourceType.TOPIC, topic, "User:bob", AclOperation.WRITE))
    assert produce_errors(as_user(b, "bob", **{"enable.idempotence": True, "retries": 5}), topic, 2) == [None, None]

    # A transactional producer needs WRITE on its transactional id.
    txn_id = f"txn-{uuid.uuid4().hex[:6]}"
    p = Producer(as_user(b, "bob", **{"transactional.id": txn_id}))
    with pytest.raises(KafkaException) as e:
        p.init_transactions(20)
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, e.value
    grant(admin, allow(ResourceType.TRANSACTIONAL_ID, txn_id, "User:bob", AclOperation.WRITE))
    p = Producer(as_user(b, "bob", **{"transactional.id": txn_id}))
    p.init_transactions(20)
    p.begin_transaction()
    p.produce(topic, b"in-txn")
    p.commit_transaction(20)

    # Offsets sent in the transaction need READ on the group.
    p.begin_transaction()
    p.produce(topic, b"in-txn-2")
    from confluent_kafka import TopicPartition
    c = Consumer(as_user(b, "bob", **{"group.id": "bob-group"}))
    try:
        with pytest.raises(KafkaException) as e:
            p.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], c.consumer_group_metadata(), 20)
        assert e.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED, e.value
    finally:
        c.close()
    p.abort_transaction(20)


def test_configs_groups_and_authorized_operations(acl_broker):
    b = acl_broker
    admin = ck_admin(b.bootstrap)
    topic = f"cfg-{uuid.uuid4().hex[:6]}"
    make_topics(admin, topic)
    alice = AdminClient(as_user(b, "alice"))

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert error_code(alice.describe_configs([res], request_timeout=TIMEOUT)[res]) \
        == KafkaError.TOPIC_AUTHORIZATION_FAILED
    broker_res = ConfigResource(ConfigResource.Type.BROKER, "1")
    assert error_code(alice.describe_configs([broker_res], request_timeout=TIMEOUT)[broker_res]) \
        == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    grant(admin, allow(ResourceType.TOPIC, topic, ALICE, AclOperation.DESCRIBE_CONFIGS))
    configs = alice.describe_configs([res], request_timeout=TIMEOUT)[res].result()
    assert "cleanup.policy" in configs
    # DESCRIBE_CONFIGS does not allow altering.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    alter = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    assert error_code(alice.incremental_alter_configs([alter], request_timeout=TIMEOUT)[alter]) \
        == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Authorized operations are alice's, not everything.
    grant(admin, allow(ResourceType.TOPIC, topic, ALICE, AclOperation.READ))
    [d] = alice.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT,
                                include_authorized_operations=True).values()
    ops = set(d.result().authorized_operations)
    # READ implies DESCRIBE; DESCRIBE_CONFIGS was granted above.
    assert ops == {AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS}, ops
    cluster = alice.describe_cluster(request_timeout=TIMEOUT, include_authorized_operations=True).result()
    assert not cluster.authorized_operations, cluster.authorized_operations
    cluster = admin.describe_cluster(request_timeout=TIMEOUT, include_authorized_operations=True).result()
    assert AclOperation.ALTER in set(cluster.authorized_operations)

    # Deleting a group needs DELETE on it; describing it DESCRIBE.
    group = f"g-{uuid.uuid4().hex[:6]}"
    [f] = alice.describe_consumer_groups([group], request_timeout=TIMEOUT,
                                         include_authorized_operations=True).values()
    assert error_code(f) == KafkaError.GROUP_AUTHORIZATION_FAILED
    [f] = alice.delete_consumer_groups([group], request_timeout=TIMEOUT).values()
    assert error_code(f) == KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(admin, allow(ResourceType.GROUP, group, ALICE, AclOperation.DESCRIBE))
    [f] = alice.describe_consumer_groups([group], request_timeout=TIMEOUT,
                                         include_authorized_operations=True).values()
    assert set(f.result().authorized_operations) == {AclOperation.DESCRIBE}

    # Deleting records and partitions: DELETE and ALTER on the topic.
    from confluent_kafka.admin import NewPartitions
    [f] = alice.create_partitions([NewPartitions(topic, 2)], request_timeout=TIMEOUT).values()
    assert error_code(f) == KafkaError.TOPIC_AUTHORIZATION_FAILED
