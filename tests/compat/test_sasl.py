"""SASL listeners (SASL_PLAINTEXT, SASL_SSL) with real clients: kcat,
confluent-kafka, kafka-python and the Java client, with PLAIN (users from the
listener's JAAS config) and SCRAM-SHA-256/512 (credentials in the metadata
log, created with `gregor configs --entity-type users` over the PLAINTEXT
listener), plus the protocol's edges at the wire: a request before
authenticating closes the connection, an unsupported mechanism is refused
with the enabled list, SaslHandshake on a PLAINTEXT listener is
ILLEGAL_SASL_STATE, a wrong password fails in every client while the broker
keeps serving the others.
"""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from compat_util import compile_java, run_java_main
from conftest import gregor_bin
from test_tls import certs, kcat, start_broker  # noqa: F401 - fixtures

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaSaslTest.java"
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_alice="alice-secret" user_admin="admin-secret";')
USERS = {"PLAIN": ("alice", "alice-secret"),
         "SCRAM-SHA-256": ("scram256", "s256-secret"),
         "SCRAM-SHA-512": ("scram512", "s512-secret")}
MECHANISMS = list(USERS)


def sasl_overrides(**extra: str) -> dict[str, str]:
    o = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "num.partitions": "1",
    }
    o.update(extra)
    return o


def add_scram_users(b) -> None:
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        user, password = USERS[mechanism]
        r = subprocess.run([str(gregor_bin()), "configs", "--bootstrap-server", b.bootstrap, "--alter",
                            "--entity-type", "users", "--entity-name", user,
                            "--add-config", f"{mechanism}=[password={password}]"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr


@pytest.fixture
def sasl_broker(start_broker):
    b = start_broker(sasl_overrides())
    add_scram_users(b)
    return b


def sasl_bootstrap(b, listener: str = "SASL_PLAINTEXT") -> str:
    return f"127.0.0.1:{b.listener_port(listener)}"


def kcat_sasl(mechanism: str, user: str, password: str, protocol: str = "SASL_PLAINTEXT") -> list[str]:
    return ["-X", f"security.protocol={protocol}", "-X", f"sasl.mechanisms={mechanism}",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]


def ck_sasl(bootstrap: str, mechanism: str, user: str, password: str, **extra) -> dict:
    conf = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password,
            "socket.timeout.ms": 10000}
    conf.update(extra)
    return conf


# ---------------------------------------------------------------- raw wire

def _request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client = b"sasl-test"
    frame = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client + body
    return struct.pack(">i", len(frame)) + frame


def _string(s: str) -> bytes:
    return struct.pack(">h", len(s)) + s.encode()


def _read_frame(sock: socket.socket) -> bytes | None:
    """One response frame, or None when the broker closed the connection."""
    def exactly(n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf
    size = exactly(4)
    if size is None:
        return None
    return exactly(struct.unpack(">i", size)[0])


def _handshake(sock: socket.socket, mechanism: str, version: int = 1) -> tuple[int, list[str]]:
    sock.sendall(_request(17, version, 7, _string(mechanism)))
    resp = _read_frame(sock)
    assert resp is not None, "connection closed instead of a SaslHandshake answer"
    corr, error, n = struct.unpack(">ihi", resp[:10])
    assert corr == 7
    names, pos = [], 10
    for _ in range(n):
        (ln,) = struct.unpack(">h", resp[pos:pos + 2])
        names.append(resp[pos + 2:pos + 2 + ln].decode())
        pos += 2 + ln
    return error, names


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def test_wire_behaviour(sasl_broker):
    b = sasl_broker
    port = b.listener_port("SASL_PLAINTEXT")
    # A Metadata request before authenticating: closed without an answer.
    with _connect(port) as s:
        s.sendall(_request(3, 0, 1, struct.pack(">i", 0)))
        assert _read_frame(s) is None
    # ApiVersions is answered before authentication and lists 17 and 36.
    with _connect(port) as s:
        s.sendall(_request(18, 0, 2, b""))
        resp = _read_frame(s)
        assert resp is not None
        corr, error, n = struct.unpack(">ihi", resp[:10])
        keys = {struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i]) for i in range(n)}
        assert (corr, error) == (2, 0)
        assert (17, 0, 1) in keys and (36, 0, 2) in keys, keys
        # An unsupported mechanism: UNSUPPORTED_SASL_MECHANISM (33) with the enabled list, then closed.
        assert _handshake(s, "GSSAPI") == (33, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
        assert _read_frame(s) is None
    # After SaslHandshake v1, anything but SaslAuthenticate closes the connection.
    with _connect(port) as s:
        assert _handshake(s, "PLAIN") == (0, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
        s.sendall(_request(3, 0, 3, struct.pack(">i", 0)))
        assert _read_frame(s) is None
    # SaslAuthenticate v1 with a wrong password: SASL_AUTHENTICATION_FAILED (58) and Kafka's message,
    # answered after connection.failed.authentication.delay.ms (100), then closed.
    with _connect(port) as s:
        _handshake(s, "PLAIN")
        token = b"\0alice\0wrong"
        start = time.monotonic()
        s.sendall(_request(36, 1, 4, struct.pack(">i", len(token)) + token))
        resp = _read_frame(s)
        assert time.monotonic() - start >= 0.09
        corr, error, ln = struct.unpack(">ihh", resp[:8])
        assert (corr, error) == (4, 58)
        assert resp[8:8 + ln].decode().startswith("Authentication failed"), resp
        assert _read_frame(s) is None
    # SaslHandshake v0: raw PLAIN token without a Kafka header, an empty answer, then requests.
    with _connect(port) as s:
        _handshake(s, "PLAIN", version=0)
        token = b"\0alice\0alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert _read_frame(s) == b""
        s.sendall(_request(3, 0, 5, struct.pack(">i", 0)))
        resp = _read_frame(s)
        assert resp is not None and struct.unpack(">i", resp[:4])[0] == 5
    # On the PLAINTEXT listener SaslHandshake is ILLEGAL_SASL_STATE (34), and the connection stays.
    with _connect(b.port) as s:
        assert _handshake(s, "PLAIN") == (34, [])
        s.sendall(_request(18, 0, 6, b""))
        assert _read_frame(s) is not None
    assert b.running()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat(sasl_broker, mechanism, topic):
    b = sasl_broker
    user, password = USERS[mechanism]
    bootstrap = sasl_bootstrap(b)
    lines = [f"key{i}|value{i}" for i in range(30)]
    kcat("-b", bootstrap, *kcat_sasl(mechanism, user, password), "-P", "-t", topic, "-K", "|",
         input="\n".join(lines) + "\n")
    out = kcat("-b", bootstrap, *kcat_sasl(mechanism, user, password), "-C", "-t", topic, "-K", "|",
               "-o", "beginning", "-e", "-c", "30").stdout.decode()
    assert out.split("\n")[:30] == lines
    # A wrong password: kcat fails with librdkafka's authentication error; the broker serves on.
    r = kcat("-b", bootstrap, *kcat_sasl(mechanism, user, "wrong"), "-L", check=False, timeout=30)
    assert r.returncode != 0
    assert "Authentication failed" in r.stderr.decode(errors="replace"), r.stderr[-2000:]
    out = kcat("-b", bootstrap, *kcat_sasl(mechanism, user, password), "-L").stdout.decode()
    assert f"broker 1 at 127.0.0.1:{b.listener_port('SASL_PLAINTEXT')}" in out, out


def test_confluent_kafka(sasl_broker, topic, capfd):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    from test_tls import ck_produce_consume
    b = sasl_broker
    ck_produce_consume(ck_sasl(sasl_bootstrap(b), "SCRAM-SHA-512", *USERS["SCRAM-SHA-512"]), topic, n=50)
    # A wrong password, and an unknown user (indistinguishable): the request fails and librdkafka
    # logs the broker's message.
    for mechanism, user, password in [("SCRAM-SHA-256", USERS["SCRAM-SHA-256"][0], "wrong"),
                                      ("PLAIN", "alice", "wrong"), ("SCRAM-SHA-512", "nobody", "x")]:
        capfd.readouterr()
        bad = AdminClient(ck_sasl(sasl_bootstrap(b), mechanism, user, password))
        with pytest.raises(KafkaException):
            bad.list_topics(timeout=3)
        del bad
        err = capfd.readouterr().err
        assert "SASL authentication error: Authentication failed" in err, err[-2000:]
    md = AdminClient(ck_sasl(sasl_bootstrap(b), "PLAIN", *USERS["PLAIN"])).list_topics(timeout=10)
    assert topic in md.topics
    assert "SASL authentication failed" in b.stderr_text()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python(sasl_broker, mechanism, topic, caplog):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError
    b = sasl_broker
    user, password = USERS[mechanism]
    conf = dict(bootstrap_servers=sasl_bootstrap(b), security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)
    p = KafkaProducer(acks="all", request_timeout_ms=20000, **conf)
    offsets = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode()).get(timeout=30).offset
               for i in range(20)]
    p.close()
    assert offsets == list(range(20))
    c = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=15000, **conf)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    for m in c:
        got.append((m.offset, m.value))
        if len(got) == 20:
            break
    c.close()
    assert got == [(i, f"v{i}".encode()) for i in range(20)]
    # A wrong password: kafka-python logs the broker's error and closes; the send never gets metadata.
    caplog.set_level(logging.ERROR, logger="kafka.conn")
    with pytest.raises(KafkaError):
        KafkaProducer(**{**conf, "sasl_plain_password": "wrong"}, request_timeout_ms=5000,
                      max_block_ms=5000).send(topic, b"x").get(timeout=10)
    assert "SaslAuthenticationFailedError" in caplog.text, caplog.text[-2000:]
    assert "Authentication failed" in caplog.text


@pytest.fixture(scope="session")
def java_sasl_classes(java_classpath, tmp_path_factory) -> str:
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-sasl-classes"))


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_java_client(sasl_broker, mechanism, topic, java_sasl_classes):
    b = sasl_broker
    user, password = USERS[mechanism]
    run_java_main(java_sasl_classes, "JavaSaslTest", sasl_bootstrap(b), topic, mechanism, user, password)
    run_java_main(java_sasl_classes, "JavaSaslTest", sasl_bootstrap(b), topic + "-x", mechanism, user,
                  "wrong", "fail")


def test_sasl_ssl(start_broker, certs, topic):  # noqa: F811 - fixture
    from test_tls import ck_produce_consume
    b = start_broker(sasl_overrides(**{
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server-keystore.pem"),
    }))
    add_scram_users(b)
    bootstrap = sasl_bootstrap(b, "SASL_SSL")
    tls = ["-X", f"ssl.ca.location={certs / 'ca.pem'}"]
    lines = [f"key{i}|value{i}" for i in range(20)]
    kcat("-b", bootstrap, *kcat_sasl("SCRAM-SHA-256", *USERS["SCRAM-SHA-256"], protocol="SASL_SSL"), *tls,
         "-P", "-t", topic, "-K", "|", input="\n".join(lines) + "\n")
    out = kcat("-b", bootstrap, *kcat_sasl("PLAIN", *USERS["PLAIN"], protocol="SASL_SSL"), *tls,
               "-C", "-t", topic, "-K", "|", "-o", "beginning", "-e", "-c", "20").stdout.decode()
    assert out.split("\n")[:20] == lines
    r = kcat("-b", bootstrap, *kcat_sasl("PLAIN", "alice", "wrong", protocol="SASL_SSL"), *tls, "-L",
             check=False, timeout=30)
    assert r.returncode != 0 and "Authentication failed" in r.stderr.decode(errors="replace")
    ck_produce_consume(ck_sasl(bootstrap, "SCRAM-SHA-512", *USERS["SCRAM-SHA-512"],
                               **{"security.protocol": "SASL_SSL", "ssl.ca.location": str(certs / "ca.pem")}),
                       topic + "-ck", n=20)


def test_reauthentication(start_broker, topic):
    """connections.max.reauth.ms (KIP-368): librdkafka re-authenticates before the session ends
    and keeps its connection; the broker never has to close an expired session."""
    from confluent_kafka import Producer
    b = start_broker(sasl_overrides(**{"connections.max.reauth.ms": "2000"}))
    add_scram_users(b)
    p = Producer(ck_sasl(sasl_bootstrap(b), "SCRAM-SHA-256", *USERS["SCRAM-SHA-256"], acks="all"))
    errors = []
    deadline = time.monotonic() + 6
    n = 0
    while time.monotonic() < deadline:
        p.produce(topic, value=f"v{n}".encode(), on_delivery=lambda err, m: err and errors.append(err))
        n += 1
        p.poll(0.2)
    assert p.flush(20) == 0 and errors == []
    assert "session expired" not in b.stderr_text()


def test_start_refused_without_mechanisms(tmp_path):
    """A SASL listener with Kafka's default mechanism (GSSAPI, not served) refuses to start."""
    r = subprocess.run([str(gregor_bin()), "server", "--override", "listeners=SASL_PLAINTEXT://127.0.0.1:0",
                        "--override", f"log.dirs={tmp_path}"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "GSSAPI is not supported" in r.stderr, r.stderr


def test_gregor_tools_over_sasl(sasl_broker, tmp_path, topic):
    """The native client behind the `gregor` tools: SASL_PLAINTEXT from a --command-config file,
    with Java's sasl.jaas.config or librdkafka's sasl.username / sasl.password."""
    b = sasl_broker
    scram = tmp_path / "scram.properties"
    scram.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                     f'username="{USERS["SCRAM-SHA-512"][0]}" password="{USERS["SCRAM-SHA-512"][1]}";\n')
    plain = tmp_path / "plain.properties"
    plain.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     "sasl.username=alice\nsasl.password=alice-secret\n")
    bad = tmp_path / "bad.properties"
    bad.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                   "sasl.username=alice\nsasl.password=wrong\n")

    def tool(config, *args):
        return subprocess.run([str(gregor_bin()), "topics", "--bootstrap-server", sasl_bootstrap(b),
                               "--command-config", str(config), *args],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    r = tool(scram, "--create", "--topic", topic)
    assert r.returncode == 0, r.stderr
    r = tool(plain, "--list")
    assert r.returncode == 0 and topic in r.stdout.split(), r.stderr
    r = tool(bad, "--list")
    assert r.returncode != 0
    assert "Authentication failed: Invalid username or password" in r.stderr, r.stderr
    # The requests Admin has no method for go over the same SASL connection.
    r = subprocess.run([str(gregor_bin()), "features", "--bootstrap-server", sasl_bootstrap(b),
                        "--command-config", str(scram), "describe"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "Feature: transaction.version" in r.stdout, r.stderr
    r = subprocess.run([str(gregor_bin()), "configs", "--bootstrap-server", sasl_bootstrap(b),
                        "--command-config", str(plain), "--describe", "--entity-type", "brokers",
                        "--entity-default"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "Default configs for brokers in the cluster" in r.stdout, r.stderr
