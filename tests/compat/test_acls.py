"""ACLs (DescribeAcls 29, CreateAcls 30, DeleteAcls 31) through
confluent-kafka / librdkafka's AdminClient, answered as Kafka 4.1's
StandardAuthorizer answers them: ACLs created, described with literal,
prefixed, match and any filters, deleted by filter; invalid bindings refused
one by one with INVALID_REQUEST; SECURITY_DISABLED without an authorizer.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from compat_util import ck_admin, wait_until

# The PLAINTEXT listener is the inter-broker one; with an authorizer its
# principal (User:ANONYMOUS) must be a super user, as Kafka's brokers need
# CLUSTER_ACTION. The fixtures' probes and the tests' admin use it too.
AUTHORIZER = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
              "super.users": "User:ANONYMOUS"}
TIMEOUT = 15


def allow(rt, name, pattern, principal, op):
    return AclBinding(rt, name, pattern, principal, "*", op, AclPermissionType.ALLOW)


def filt(rt=ResourceType.ANY, name=None, pattern=ResourcePatternType.ANY, principal=None,
         op=AclOperation.ANY, perm=AclPermissionType.ANY):
    return AclBindingFilter(rt, name, pattern, principal, None, op, perm)


def create(admin, bindings):
    futures = admin.create_acls(bindings, request_timeout=TIMEOUT)
    return {b: f.result() for b, f in futures.items()}


def describe(admin, f):
    return set(admin.describe_acls(f, request_timeout=TIMEOUT).result())


BINDINGS = [
    allow(ResourceType.TOPIC, "logs-1", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ),
    allow(ResourceType.TOPIC, "logs-", ResourcePatternType.PREFIXED, "User:bob", AclOperation.WRITE),
    allow(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, "User:*", AclOperation.DESCRIBE),
    allow(ResourceType.GROUP, "g", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ),
    AclBinding(ResourceType.TOPIC, "logs-1", ResourcePatternType.LITERAL, "User:eve", "10.0.0.1",
               AclOperation.ALL, AclPermissionType.DENY),
]


@pytest.mark.broker_overrides(AUTHORIZER)
def test_create_describe_delete(broker):
    admin = ck_admin(broker.bootstrap)
    create(admin, BINDINGS)
    # Creating again changes nothing.
    create(admin, BINDINGS[:2])
    assert describe(admin, filt()) == set(BINDINGS)

    lit, pre, star, group, deny = BINDINGS
    # Exact pattern-type filters compare names exactly.
    assert describe(admin, filt(ResourceType.TOPIC, "logs-1", ResourcePatternType.LITERAL)) == {lit, deny}
    assert describe(admin, filt(ResourceType.TOPIC, None, ResourcePatternType.PREFIXED)) == {pre}
    assert describe(admin, filt(ResourceType.TOPIC, "logs-", ResourcePatternType.ANY)) == {pre}
    # MATCH: every ACL that applies to a topic called logs-1.
    assert describe(admin, filt(ResourceType.TOPIC, "logs-1", ResourcePatternType.MATCH)) == {
        lit, pre, star, deny}
    assert describe(admin, filt(ResourceType.TOPIC, "other", ResourcePatternType.MATCH)) == {star}
    # Entry filters.
    assert describe(admin, filt(principal="User:alice")) == {lit, group}
    assert describe(admin, filt(perm=AclPermissionType.DENY)) == {deny}
    assert describe(admin, filt(ResourceType.GROUP)) == {group}

    # Delete by filter: each filter reports what it matched.
    futures = admin.delete_acls(
        [filt(ResourceType.TOPIC, "logs-1", ResourcePatternType.MATCH, principal="User:bob"),
         filt(ResourceType.GROUP)],
        request_timeout=TIMEOUT)
    deleted = [set(f.result()) for f in futures.values()]
    assert sorted(deleted, key=len) == [{pre}, {group}] or sorted(deleted, key=len) == [{group}, {pre}]
    assert describe(admin, filt()) == {lit, star, deny}

    # ACLs are metadata: they survive a restart.
    broker.restart()
    admin = ck_admin(broker.bootstrap)
    assert describe(admin, filt()) == {lit, star, deny}


@pytest.mark.broker_overrides(AUTHORIZER)
def test_invalid_bindings_fail_one_by_one(broker):
    admin = ck_admin(broker.bootstrap)
    good = allow(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ)
    bad_cluster = allow(ResourceType.BROKER, "not-kafka-cluster", ResourcePatternType.LITERAL,
                        "User:alice", AclOperation.ALTER)
    bad_principal = allow(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "alice",
                          AclOperation.READ)
    futures = admin.create_acls([good, bad_cluster, bad_principal], request_timeout=TIMEOUT)
    futures[good].result()
    for b in (bad_cluster, bad_principal):
        with pytest.raises(KafkaException) as e:
            futures[b].result()
        assert e.value.args[0].code() == KafkaError.INVALID_REQUEST, e.value
    assert describe(admin, filt()) == {good}


def test_security_disabled_without_authorizer(broker):
    admin = ck_admin(broker.bootstrap)
    b = allow(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ)
    with pytest.raises(KafkaException) as e:
        create(admin, [b])
    assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # librdkafka drops DescribeAcls' top-level error and DeleteAcls'
    # per-filter errors (its results hold only bindings): kafka-python,
    # which raises them, checks those on the wire.
    assert describe(admin, filt()) == set()
    from kafka.admin import ACLFilter, KafkaAdminClient, ResourcePatternFilter
    from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType
    from kafka.admin import ResourceType as KpResourceType
    from kafka.errors import SecurityDisabledError
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        any_filter = ACLFilter(
            principal=None, host=None, operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                KpResourceType.ANY, None, ACLResourcePatternType.ANY))
        with pytest.raises(SecurityDisabledError):
            kp.describe_acls(any_filter)
        [(_, _, error)] = kp.delete_acls([any_filter])
        assert error is SecurityDisabledError, error
    finally:
        kp.close()


# ------------------------------------------------- enforcement, with mTLS principals

from test_tls import certs, mtls_overrides, ssl_bootstrap, start_broker  # noqa: E402,F401 - fixtures
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

ALICE = "User:CN=alice,OU=eng,O=acme"


def _error_code(future):
    try:
        future.result()
        return None
    except KafkaException as e:
        return e.args[0].code()


def test_enforcement_with_mtls_principals(start_broker, certs):
    b = start_broker(mtls_overrides(certs, **AUTHORIZER))
    # The PLAINTEXT listener's User:ANONYMOUS is a super user (AUTHORIZER).
    admin = ck_admin(b.bootstrap)
    alice = AdminClient({"bootstrap.servers": ssl_bootstrap(b), "security.protocol": "ssl",
                         "ssl.ca.location": str(certs / "ca.pem"),
                         "ssl.certificate.location": str(certs / "alice.pem"),
                         "ssl.key.location": str(certs / "alice.key"), "socket.timeout.ms": 10000})

    def create_topic(client, name):
        return _error_code(client.create_topics([NewTopic(name, 1, 1)],
                                                request_timeout=TIMEOUT)[name])

    def delete_topic(client, name):
        return _error_code(client.delete_topics([name], request_timeout=TIMEOUT)[name])

    mine = allow(ResourceType.TOPIC, "a-", ResourcePatternType.PREFIXED, ALICE, AclOperation.CREATE)
    # No ACL: alice may neither create topics nor ACLs.
    assert create_topic(alice, "a-t") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    [f] = alice.create_acls([mine], request_timeout=TIMEOUT).values()
    assert _error_code(f) == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    create(admin, [mine])
    assert create_topic(alice, "a-t") is None
    assert create_topic(alice, "b-t") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert delete_topic(alice, "a-t") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # A DENY wins over the prefixed ALLOW.
    create(admin, [
        allow(ResourceType.TOPIC, "a-t", ResourcePatternType.LITERAL, ALICE, AclOperation.DELETE),
        AclBinding(ResourceType.TOPIC, "a-secret", ResourcePatternType.LITERAL, ALICE, "*",
                   AclOperation.CREATE, AclPermissionType.DENY),
        allow(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, ALICE,
              AclOperation.ALTER),
    ])
    assert delete_topic(alice, "a-t") is None
    assert create_topic(alice, "a-secret") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # ALTER on the cluster lets alice manage ACLs.
    other = allow(ResourceType.GROUP, "g", ResourcePatternType.LITERAL, ALICE, AclOperation.READ)
    create(alice, [other])
    assert other in describe(admin, filt(ResourceType.GROUP))


def _acls_tool(*args, check=True):
    import subprocess
    from conftest import gregor_bin
    r = subprocess.run([str(gregor_bin()), "acls", *args], capture_output=True, text=True,
                       timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.mark.broker_overrides(AUTHORIZER)
def test_acls_tool(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    out = _acls_tool(*b, "--add", "--allow-principal", "User:alice", "--operation", "Read",
                     "--topic", "t").stdout
    assert ("Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`: \n"
            " \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW) \n") in out
    assert "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`" in out
    _acls_tool(*b, "--add", "--allow-principal", "User:bob", "--producer", "--topic", "logs-",
               "--resource-pattern-type", "prefixed")
    _acls_tool(*b, "--add", "--allow-principal", "User:carol", "--consumer", "--topic", "t",
               "--group", "g")
    admin = ck_admin(broker.bootstrap)
    got = describe(admin, filt())
    P, L = ResourcePatternType.PREFIXED, ResourcePatternType.LITERAL
    assert got == {
        allow(ResourceType.TOPIC, "t", L, "User:alice", AclOperation.READ),
        *(allow(ResourceType.TOPIC, "logs-", P, "User:bob", op)
          for op in (AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE)),
        allow(ResourceType.TOPIC, "t", L, "User:carol", AclOperation.READ),
        allow(ResourceType.TOPIC, "t", L, "User:carol", AclOperation.DESCRIBE),
        allow(ResourceType.GROUP, "g", L, "User:carol", AclOperation.READ),
    }
    listed = _acls_tool(*b, "--list", "--topic", "logs-1", "--resource-pattern-type", "match").stdout
    assert "name=logs-, patternType=PREFIXED" in listed and "name=t," not in listed
    assert _acls_tool(*b, "--remove", "--topic", "t", check=False).returncode != 0
    _acls_tool(*b, "--remove", "--force", "--topic", "t")
    assert {x.name for x in describe(admin, filt())} == {"logs-", "g"}


# ------------------------------------- the inter-broker listener grants nothing by itself

def _tls_raw(port: int, certs, client: str):
    """A raw Kafka connection over TLS with `client`'s certificate."""
    import ssl
    from fault_util import RawConn
    conn = RawConn("127.0.0.1", port, timeout=10.0)
    tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    tls.load_cert_chain(str(certs / f"{client}.pem"), str(certs / f"{client}.key"))
    conn.sock = tls.wrap_socket(conn.sock, server_hostname="localhost")
    return conn


def _follower_fetch_error(conn, topic: str, replica_id: int) -> int:
    """Fetch v4 as a follower (replica_id set): the partition's error code."""
    import struct
    from fault_util import _str
    body = (struct.pack(">iiiib", replica_id, 0, 0, 1 << 20, 0) + struct.pack(">i", 1) + _str(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 1 << 20))
    r = conn.request(1, 4, body)
    r.take(">i")  # throttle
    assert r.take(">i") == 1 and r.string() == topic
    assert r.take(">i") == 1 and r.take(">i") == 0
    return r.take(">h")


def _write_txn_markers_error(conn, topic: str) -> int:
    """WriteTxnMarkers v1 (flexible: compact arrays and tagged fields), one
    COMMIT marker: the partition's error code."""
    import struct
    from fault_util import _str
    name = topic.encode()
    body = (bytes([2]) + struct.pack(">qhb", 4242, 0, 1)
            + bytes([2, len(name) + 1]) + name + bytes([2]) + struct.pack(">i", 0) + b"\x00"
            + struct.pack(">i", 0) + b"\x00" + b"\x00")
    cid = next(conn.correlation)
    frame = struct.pack(">hhi", 27, 1, cid) + _str("gregor-test") + b"\x00" + body
    conn.sock.sendall(struct.pack(">i", len(frame)) + frame)
    r = conn.receive(cid)
    assert r.take(">b") == 0  # response header tags
    assert r.take(">b") == 2 and r.take(">q") == 4242
    assert r.take(">b") == 2 and r.take(">b") == len(name) + 1
    r.i += len(name)
    assert r.take(">b") == 2 and r.take(">i") == 0
    return r.take(">h")


def test_inter_broker_listener_authorizes_by_principal(start_broker, certs):
    """The SSL listener is the inter-broker one; only the brokers' principal
    (their certificate's DN, in super.users) may act as a broker there, as in
    Kafka: another client on the same listener is refused CLUSTER_ACTION."""
    b = start_broker(mtls_overrides(certs, **{**AUTHORIZER, "super.users": "User:CN=localhost",
                                              "inter.broker.listener.name": "SSL"}))
    broker_conf = {"bootstrap.servers": ssl_bootstrap(b), "security.protocol": "ssl",
                   "ssl.ca.location": str(certs / "ca.pem"),
                   "ssl.certificate.location": str(certs / "server.pem"),
                   "ssl.key.location": str(certs / "server.key"), "socket.timeout.ms": 10000}
    topic = "replicated"
    broker_admin = AdminClient(broker_conf)
    assert _error_code(broker_admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=TIMEOUT)[topic]) is None
    port = b.listener_port("SSL")

    with _tls_raw(port, certs, "alice") as alice:
        # Kafka answers an unauthorized follower fetch per partition.
        assert _follower_fetch_error(alice, topic, replica_id=1) == KafkaError.TOPIC_AUTHORIZATION_FAILED
        assert _write_txn_markers_error(alice, topic) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
        # CLUSTER_ACTION by ACL is enough, as for Kafka's brokers.
        grant = allow(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, ALICE,
                      AclOperation.CLUSTER_ACTION)
        create(broker_admin, [grant])
        wait_until(lambda: _write_txn_markers_error(alice, topic) != KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                   TIMEOUT, "the CLUSTER_ACTION ACL to reach the broker")
        assert _follower_fetch_error(alice, topic, replica_id=1) != KafkaError.TOPIC_AUTHORIZATION_FAILED
    with _tls_raw(port, certs, "server") as broker:
        assert _follower_fetch_error(broker, topic, replica_id=1) != KafkaError.TOPIC_AUTHORIZATION_FAILED
        assert _write_txn_markers_error(broker, topic) != KafkaError.CLUSTER_AUTHORIZATION_FAILED
