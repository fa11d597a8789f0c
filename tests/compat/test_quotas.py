"""Client quotas (KIP-546: DescribeClientQuotas 48, AlterClientQuotas 49) and
their enforcement (Kafka's ClientQuotaManager: producer_byte_rate on
Produce, consumer_byte_rate on Fetch, controller_mutation_rate, and
request_percentage on every request; KIP-612's connection_creation_rate
of an ip entity on accepting connections).

Neither confluent-kafka nor kafka-python has the quota admin calls, so the
quotas are set with `gregor configs` (kafka-configs.sh's options) and the
wire answers are checked with hand-encoded requests. Enforcement is
observed as the client sees it: librdkafka's throttle_cb fires with the
throttle time the broker reported for the quoted client id, never for an
unquoted one. No timing thresholds: only whether a throttle was reported.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
import uuid

from compat_util import ck_create_topic, wait_until
from conftest import gregor_bin

INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35


def tool(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(gregor_bin()), *args], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"gregor {' '.join(args)} exited {r.returncode}\n"
                             f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def configs(b, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return tool("configs", "--bootstrap-server", b.bootstrap, *args, check=check)


def test_cli_alter_describe_and_restart(broker):
    configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app",
            "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048")
    configs(broker, "--alter", "--entity-type", "users", "--entity-default",
            "--add-config", "request_percentage=12.5")
    r = configs(broker, "--alter", "--entity-type", "users", "--entity-name", "u",
                "--entity-type", "clients", "--entity-default",
                "--add-config", "controller_mutation_rate=3")
    assert "Completed updating config for user u, client <default>." in r.stdout

    def describe_all() -> tuple[str, str, str]:
        clients = configs(broker, "--describe", "--entity-type", "clients").stdout
        users = configs(broker, "--describe", "--entity-type", "users", "--entity-default").stdout
        both = configs(broker, "--describe", "--entity-type", "users", "--entity-name", "u",
                       "--entity-type", "clients").stdout
        return clients, users, both

    expected = (
        "Quota configs for client-id 'app' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0\n",
        "Quota configs for the default user-principal are request_percentage=12.5\n",
        "Quota configs for user-principal 'u', the default client-id are controller_mutation_rate=3.0\n",
    )
    assert describe_all() == expected
    # Survives a restart: the quotas are replayed from the metadata log.
    broker.restart()
    assert describe_all() == expected

    # ips, as kafka-configs.sh: connection_creation_rate only.
    r = configs(broker, "--alter", "--entity-type", "ips", "--entity-default",
                "--add-config", "connection_creation_rate=1000")
    assert "Completed updating config for ip <default>." in r.stdout
    configs(broker, "--alter", "--entity-type", "ips", "--entity-name", "10.1.2.3",
            "--add-config", "connection_creation_rate=5")
    assert configs(broker, "--describe", "--entity-type", "ips").stdout == (
        "Quota configs for the default ip are connection_creation_rate=1000.0\n"
        "Quota configs for ip '10.1.2.3' are connection_creation_rate=5.0\n")
    r = configs(broker, "--alter", "--entity-type", "ips", "--entity-name", "10.1.2.3",
                "--add-config", "producer_byte_rate=5", check=False)
    assert r.returncode != 0, r.stdout

    configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app",
            "--delete-config", "producer_byte_rate")
    assert configs(broker, "--describe", "--entity-type", "clients", "--entity-name", "app").stdout == \
        "Quota configs for client-id 'app' are consumer_byte_rate=2048.0\n"
    # Kafka's validation, as the controller answers it.
    r = configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app",
                "--add-config", "producer_byte_rate=1.5", check=False)
    assert r.returncode != 0 and "must be a LONG value" in r.stderr, r.stderr
    r = configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app",
                "--add-config", "connection_creation_rate=10", check=False)
    assert r.returncode != 0, r.stdout


# ---------------------------------------------------------------- wire level

def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _nstr(s: str | None) -> bytes:
    return struct.pack(">h", -1) if s is None else _str(s)


def _roundtrip(bootstrap: str, api_key: int, version: int, body: bytes, tls=None,
               source: str | None = None) -> bytes:
    host, port = bootstrap.split(":")
    header = struct.pack(">hhi", api_key, version, 7) + _str("wire-test")
    frame = header + body
    src = (source, 0) if source else None
    with socket.create_connection((host, int(port)), timeout=10, source_address=src) as raw:
        s = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    assert struct.unpack(">i", resp[:4])[0] == 7
    return resp[4:]


def _recv(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def _read_nstr(buf: bytes, at: int) -> tuple[str | None, int]:
    n = struct.unpack(">h", buf[at:at + 2])[0]
    if n < 0:
        return None, at + 2
    return buf[at + 2:at + 2 + n].decode(), at + 2 + n


def alter_v0(bootstrap: str, entity: list[tuple[str, str | None]],
             ops: list[tuple[str, float, bool]], validate_only: bool = False,
             tls=None, source: str | None = None) -> tuple[int, str | None]:
    body = struct.pack(">i", 1) + struct.pack(">i", len(entity))
    for t, n in entity:
        body += _str(t) + _nstr(n)
    body += struct.pack(">i", len(ops))
    for k, v, remove in ops:
        body += _str(k) + struct.pack(">d?", v, remove)
    body += struct.pack(">?", validate_only)
    resp = _roundtrip(bootstrap, 49, 0, body, tls, source)
    # throttle_time_ms, entries count, then the first entry's error.
    assert struct.unpack(">i", resp[4:8])[0] == 1
    code = struct.unpack(">h", resp[8:10])[0]
    message, _ = _read_nstr(resp, 10)
    return code, message


def describe_v0(bootstrap: str, components: list[tuple[str, int, str | None]],
                strict: bool = False, tls=None) -> tuple[int, str | None, int]:
    body = struct.pack(">i", len(components))
    for t, m, name in components:
        body += _str(t) + struct.pack(">b", m) + _nstr(name)
    body += struct.pack(">?", strict)
    resp = _roundtrip(bootstrap, 48, 0, body, tls)
    code = struct.unpack(">h", resp[4:6])[0]
    message, at = _read_nstr(resp, 6)
    entries = struct.unpack(">i", resp[at:at + 4])[0] if at < len(resp) else -1
    return code, message, entries


def test_wire_error_codes(broker):
    b = broker.bootstrap
    assert alter_v0(b, [("client-id", "c")], [("nope", 1.0, False)]) == \
        (INVALID_REQUEST, "Invalid configuration key nope")
    assert alter_v0(b, [("client-id", "c")], [("producer_byte_rate", 1.5, False)])[0] == INVALID_REQUEST
    assert alter_v0(b, [], [("producer_byte_rate", 1.0, False)])[0] == INVALID_REQUEST
    assert alter_v0(b, [("user", "")], [("producer_byte_rate", 1.0, False)])[0] == INVALID_REQUEST
    assert alter_v0(b, [("ip", "1.2.3.4"), ("user", "u")], [("connection_creation_rate", 1.0, False)])[0] \
        == INVALID_REQUEST
    assert alter_v0(b, [("group", "g")], [("producer_byte_rate", 1.0, False)])[0] == UNSUPPORTED_VERSION
    # validate_only: accepted, nothing written.
    assert alter_v0(b, [("client-id", "c")], [("producer_byte_rate", 5.0, False)], validate_only=True) == \
        (0, None)
    assert describe_v0(b, []) == (0, None, 0)
    assert alter_v0(b, [("client-id", "c")], [("producer_byte_rate", 5.0, False)]) == (0, None)
    assert alter_v0(b, [("ip", None)], [("connection_creation_rate", 10.0, False)]) == (0, None)
    assert describe_v0(b, []) == (0, None, 2)
    assert describe_v0(b, [("client-id", 0, "c")], strict=True) == (0, None, 1)
    assert describe_v0(b, [("client-id", 1, None)]) == (0, None, 0)
    assert describe_v0(b, [("client-id", 0, None)])[0] == INVALID_REQUEST
    assert describe_v0(b, [("user", 2, None), ("user", 2, None)])[0] == INVALID_REQUEST
    assert describe_v0(b, [("ip", 2, None), ("user", 2, None)])[0] == INVALID_REQUEST
    assert describe_v0(b, [("user", 9, None)])[0] == UNSUPPORTED_VERSION
    assert describe_v0(b, [("group", 2, None)])[0] == UNSUPPORTED_VERSION


# ---------------------------------------------------------------- enforcement

def _produce(bootstrap: str, topic: str, client_id: str, *, until_throttled: bool,
             messages: int = 60) -> list[float]:
    """Produces 1 KB messages; returns the throttle times librdkafka reported."""
    from confluent_kafka import Producer
    throttles: list[float] = []
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
                  "throttle_cb": lambda ev: throttles.append(ev.throttle_time)})
    try:
        deadline = time.monotonic() + 60
        for i in range(messages):
            p.produce(topic, value=b"x" * 1000, key=str(i).encode())
            p.poll(0.05)
            if until_throttled and any(t > 0 for t in throttles):
                break
        while time.monotonic() < deadline and (
                (until_throttled and not any(t > 0 for t in throttles))
                or (not until_throttled and len(p) > 0)):
            p.poll(0.1)
    finally:
        # Throttled requests may still be queued: do not wait for them.
        p.purge()
        p.flush(5)
    return throttles


def test_produce_throttled_for_quoted_client_only(broker, topic):
    ck_create_topic(broker.bootstrap, topic, 1)
    configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "slow-producer",
            "--add-config", "producer_byte_rate=1024")
    fast = _produce(broker.bootstrap, topic, "fast-producer", until_throttled=False)
    assert not any(t > 0 for t in fast), fast
    slow = _produce(broker.bootstrap, topic, "slow-producer", until_throttled=True)
    assert any(t > 0 for t in slow), slow


def _consume(bootstrap: str, topic: str, client_id: str, want: int) -> tuple[int, list[float]]:
    """Consumes until `want` messages or a throttle is reported; returns both."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    throttles: list[float] = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "client.id": client_id, "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100,
                  "throttle_cb": lambda ev: throttles.append(ev.throttle_time)})
    got = 0
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 60
        while got < want and not any(t > 0 for t in throttles) and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got += 1
    finally:
        c.close()
    return got, throttles


def test_fetch_throttled_for_quoted_client_only(broker, topic):
    from confluent_kafka import Producer
    ck_create_topic(broker.bootstrap, topic, 1)
    # Small batches, so a quota-sized fetch (quota x 10 windows) holds several.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.size": 1500})
    for i in range(60):
        p.produce(topic, value=b"y" * 1000)
        p.poll(0)
    assert p.flush(30) == 0
    configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "slow-consumer",
            "--add-config", "consumer_byte_rate=1024")
    got, fast = _consume(broker.bootstrap, topic, "fast-consumer", 60)
    assert got == 60 and not any(t > 0 for t in fast), (got, fast)
    _, slow = _consume(broker.bootstrap, topic, "slow-consumer", 60)
    assert any(t > 0 for t in slow), slow


def test_user_quota_applies_to_anonymous_principal(broker, topic):
    """On PLAINTEXT the principal is User:ANONYMOUS: a quota for user
    ANONYMOUS throttles every client id there."""
    ck_create_topic(broker.bootstrap, topic, 1)
    configs(broker, "--alter", "--entity-type", "users", "--entity-name", "ANONYMOUS",
            "--add-config", "producer_byte_rate=1024")
    wait_until(lambda: "ANONYMOUS" in configs(broker, "--describe", "--entity-type", "users").stdout,
               30, "the user quota to be visible")
    slow = _produce(broker.bootstrap, topic, "any-client", until_throttled=True)
    assert any(t > 0 for t in slow), slow


from test_acls import ALICE, AUTHORIZER  # noqa: E402
from test_tls import certs, mtls_overrides, ssl_bootstrap, start_broker  # noqa: E402,F401 - fixtures

CLUSTER_AUTHORIZATION_FAILED = 31


def test_authorization_with_mtls_principal(start_broker, certs):
    """With an authorizer, Describe needs DESCRIBE_CONFIGS and Alter
    ALTER_CONFIGS on the cluster (ALTER_CONFIGS implies DESCRIBE_CONFIGS)."""
    import ssl

    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    from compat_util import ck_admin
    b = start_broker(mtls_overrides(certs, **AUTHORIZER))
    tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    tls.load_cert_chain(str(certs / "alice.pem"), str(certs / "alice.key"))
    alice = ssl_bootstrap(b)
    quota = [("client-id", "c")], [("producer_byte_rate", 5.0, False)]
    assert alter_v0(alice, *quota, tls=tls)[0] == CLUSTER_AUTHORIZATION_FAILED
    assert describe_v0(alice, [], tls=tls)[0] == CLUSTER_AUTHORIZATION_FAILED
    # The PLAINTEXT listener's User:ANONYMOUS is a super user (AUTHORIZER).
    assert alter_v0(b.bootstrap, *quota) == (0, None)
    acl = AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, ALICE, "*",
                     AclOperation.ALTER_CONFIGS, AclPermissionType.ALLOW)
    admin = ck_admin(b.bootstrap)
    for f in admin.create_acls([acl], request_timeout=15).values():
        f.result(15)
    wait_until(lambda: describe_v0(alice, [], tls=tls) == (0, None, 1), 30,
               "alice to describe the quotas")
    assert alter_v0(alice, [("user", "u")], [("consumer_byte_rate", 9.0, False)], tls=tls) == (0, None)


def test_controller_mutation_rate_throttles_topic_creation(broker):
    """controller_mutation_rate counts partitions created: kafka-python's
    CreateTopics v3 (permissive, no THROTTLING_QUOTA_EXCEEDED before v6)
    succeeds with a throttle time for the quoted client id only."""
    from kafka.admin import KafkaAdminClient, NewTopic
    configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "slow-admin",
            "--add-config", "controller_mutation_rate=1")

    def create(client_id: str, name: str):
        a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id=client_id,
                             request_timeout_ms=30000)
        try:
            return a.create_topics([NewTopic(name, 20, 1)])
        finally:
            a.close()

    fast = create("fast-admin", f"fast-{uuid.uuid4().hex[:6]}")
    assert fast.throttle_time_ms == 0 and fast.topic_errors[0][1] == 0, fast
    slow = create("slow-admin", f"slow-{uuid.uuid4().hex[:6]}")
    assert slow.topic_errors[0][1] == 0, slow
    assert slow.throttle_time_ms > 0, slow


# ---------------------------------------------------------------- request_percentage

def _metadata_throttles(bootstrap: str, client_id: str, requests: int) -> list[int]:
    """Sends Metadata requests with kafka-python's client until one reports
    a throttle (or `requests` are done); returns every throttle_time_ms."""
    from kafka.client_async import KafkaClient
    from kafka.protocol.metadata import MetadataRequest
    client = KafkaClient(bootstrap_servers=bootstrap, client_id=client_id,
                         api_version=(2, 0), request_timeout_ms=30000)
    throttles: list[int] = []
    try:
        node = client.least_loaded_node()
        assert client.await_ready(node, timeout_ms=30000)
        for _ in range(requests):
            response = client.send_and_receive(
                node, MetadataRequest[5](topics=[], allow_auto_topic_creation=False))
            throttles.append(response.throttle_time_ms)
            if response.throttle_time_ms > 0:
                break
    finally:
        client.close()
    return throttles


def test_request_percentage_throttles_quoted_client_only(broker, topic):
    """A tiny request_percentage (percent of one I/O thread's time) is
    exceeded by any handling time: kafka-python's Metadata responses carry
    a throttle time for the quoted client id, never for another; a
    confluent-kafka producer under such a quota gets its throttle_cb."""
    ck_create_topic(broker.bootstrap, topic, 1)
    configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "busy-client",
            "--add-config", "request_percentage=0.0001")
    configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "busy-producer",
            "--add-config", "request_percentage=0.0001")
    idle = _metadata_throttles(broker.bootstrap, "idle-client", 50)
    assert len(idle) == 50 and not any(t > 0 for t in idle), idle
    busy = _metadata_throttles(broker.bootstrap, "busy-client", 500)
    assert busy[-1] > 0, busy
    slow = _produce(broker.bootstrap, topic, "busy-producer", until_throttled=True)
    assert any(t > 0 for t in slow), slow
    fast = _produce(broker.bootstrap, topic, "idle-producer", until_throttled=False, messages=10)
    assert not any(t > 0 for t in fast), fast


# ---------------------------------------------------------------- connection_creation_rate

def _answered(bootstrap: str, source: str) -> bool:
    """Whether a new connection from `source` gets an ApiVersions answer
    (a throttled one is held, then closed unanswered)."""
    host, port = bootstrap.split(":")
    header = struct.pack(">hhi", 18, 0, 1) + _str("rate-test")
    with socket.create_connection((host, int(port)), timeout=30, source_address=(source, 0)) as s:
        s.sendall(struct.pack(">i", len(header)) + header)
        try:
            return len(s.recv(4)) == 4
        except ConnectionResetError:
            return False


def test_connection_creation_rate_of_an_ip(broker):
    """connection_creation_rate=0 for 127.0.0.1 (an `ip` entity): every new
    connection from it is closed unserved, kafka-python cannot bootstrap
    from it, while 127.0.0.2 (also loopback, no quota) is served; removing
    the quota lets 127.0.0.1 in again."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import NoBrokersAvailable
    b = broker.bootstrap
    other = "127.0.0.2"
    assert _answered(b, "127.0.0.1") and _answered(b, other)
    assert alter_v0(b, [("ip", "127.0.0.1")], [("connection_creation_rate", 0.0, False)],
                    source=other) == (0, None)
    wait_until(lambda: not _answered(b, "127.0.0.1"), 30, "127.0.0.1 to be throttled")
    assert _answered(b, other)
    try:
        admin = KafkaAdminClient(bootstrap_servers=b, client_id="rate-limited",
                                 api_version_auto_timeout_ms=5000, request_timeout_ms=5000)
    except NoBrokersAvailable:
        pass
    else:
        admin.close()
        raise AssertionError("kafka-python connected from a throttled address")
    assert alter_v0(b, [("ip", "127.0.0.1")], [("connection_creation_rate", 0.0, True)],
                    source=other) == (0, None)
    wait_until(lambda: _answered(b, "127.0.0.1"), 30, "127.0.0.1 to be served again")
    admin = KafkaAdminClient(bootstrap_servers=b, client_id="rate-free", request_timeout_ms=30000)
    admin.close()


def test_max_connection_creation_rate_delays_without_refusing(start_broker):
    """max.connection.creation.rate=1 (the broker-wide KIP-612 limit) makes
    connections past the rate wait to be accepted; none is refused. From
    the eleventh connection within ten windows of a second, each waits a
    window (the throttle's cap): a lower bound on the time taken, which a
    slower machine only makes longer."""
    b = start_broker({"max.connection.creation.rate": "1"})
    start = time.monotonic()
    for _ in range(15):
        assert _answered(b.bootstrap, "127.0.0.1")
    assert time.monotonic() - start >= 4.0
