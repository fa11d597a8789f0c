"""SSL listeners (TLS with rustls) with real clients: kcat, confluent-kafka,
kafka-python and the Java client, over server-authenticated TLS and mTLS.

A throwaway CA, a broker certificate (SAN IP:127.0.0.1, DNS:localhost, so
clients verify the hostname as Kafka's default
ssl.endpoint.identification.algorithm=https asks) and client certificates
are made with the openssl CLI once per session. Each broker runs a PLAINTEXT
and an SSL listener side by side, both on ephemeral ports; Metadata must
answer each client with the ports of the listener it came on.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from cluster_util import Cluster, Node, wait_for
from compat_util import compile_java, run_java_main, wait_until
from conftest import Broker, gregor_bin

KCAT = shutil.which("kcat") or "kcat"
OPENSSL = shutil.which("openssl") or "openssl"
JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaTlsTest.java"
CMD_TIMEOUT_S = 60


# ---------------------------------------------------------------- certificates

def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr.decode(errors='replace')}"


def _signed(d: Path, name: str, subject: str, ca: str, ext: str | None = None) -> None:
    """`name.key` (PKCS#8, unencrypted), `name.pem` signed by `ca`, `name-keystore.pem` (both)."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=d)
    extra = []
    if ext:
        (d / f"{name}.ext").write_text(ext + "\n")
        extra = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)
    (d / f"{name}-keystore.pem").write_text((d / f"{name}.key").read_text() + (d / f"{name}.pem").read_text())


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN=gregor test {ca}", cwd=d)
    _signed(d, "server", "/CN=localhost", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    # X.509 v3 (extensions given): rustls, like most TLS stacks now, refuses v1 certificates.
    client_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth"
    # DER order O, OU, CN: RFC 2253 prints it CN=alice,OU=eng,O=acme.
    _signed(d, "alice", "/O=acme/OU=eng/CN=alice", "ca", client_ext)
    _signed(d, "mallory", "/O=acme/OU=eng/CN=mallory", "other-ca", client_ext)
    # The server key encrypted as Kafka's PEM keystores allow (PKCS#8, PBES2, AES-256-CBC).
    _openssl("pkcs8", "-topk8", "-v2", "aes256", "-in", "server.key", "-out", "server-encrypted.key",
             "-passout", "pass:s3cret", cwd=d)
    (d / "server-encrypted-keystore.pem").write_text(
        (d / "server-encrypted.key").read_text() + (d / "server.pem").read_text())
    return d


def ssl_overrides(certs: Path, **extra: str) -> dict[str, str]:
    o = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server-keystore.pem"),
        "num.partitions": "1",
    }
    o.update(extra)
    return o


def mtls_overrides(certs: Path, **extra: str) -> dict[str, str]:
    return ssl_overrides(certs, **{
        "ssl.client.auth": "required",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.pem"),
        **extra,
    })


@pytest.fixture
def start_broker(request, tmp_path):
    """Starts a broker with the given overrides; stopped (and checked for a clean exit) at teardown."""
    started: list[Broker] = []

    def start(overrides: dict[str, str]) -> Broker:
        b = Broker(tmp_path / f"broker{len(started)}", overrides)
        request.node._gregor_brokers = getattr(request.node, "_gregor_brokers", []) + [b]
        started.append(b)
        return b.start()

    yield start
    for b in started:
        if b.running():
            b.stop()


def ssl_bootstrap(b: Broker) -> str:
    return f"127.0.0.1:{b.listener_port('SSL')}"


# ---------------------------------------------------------------- clients

def kcat(*args: str, input: str | None = None, check: bool = True,
         timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess:
    cmd = [KCAT, *args]
    r = subprocess.run(cmd, input=input.encode() if input is not None else None, capture_output=True,
                       timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, (f"kcat exited {r.returncode}: {' '.join(cmd)}\n"
                                   f"stderr: {r.stderr.decode(errors='replace')[-3000:]}")
    return r


def kcat_ssl(certs: Path, client: str | None = None) -> list[str]:
    args = ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={certs / 'ca.pem'}"]
    if client:
        args += ["-X", f"ssl.certificate.location={certs / (client + '.pem')}",
                 "-X", f"ssl.key.location={certs / (client + '.key')}"]
    return args


def ck_ssl(bootstrap: str, certs: Path, client: str | None = None, **extra) -> dict:
    conf = {"bootstrap.servers": bootstrap, "security.protocol": "ssl",
            "ssl.ca.location": str(certs / "ca.pem"), "socket.timeout.ms": 10000}
    if client:
        conf["ssl.certificate.location"] = str(certs / f"{client}.pem")
        conf["ssl.key.location"] = str(certs / f"{client}.key")
    conf.update(extra)
    return conf


def ck_produce_consume(conf: dict, topic: str, n: int = 100) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    p = Producer({**conf, "acks": "all", "linger.ms": 5})
    delivered = []
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode() * 10,
                  on_delivery=lambda err, m: delivered.append(err))
    assert p.flush(30) == 0, "confluent-kafka producer did not deliver everything within 30s"
    assert delivered == [None] * n, f"delivery errors: {[e for e in delivered if e][:3]}"
    c = Consumer({**conf, "group.id": "tls-test", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error() is None:
                    got.append((m.offset(), m.key(), m.value()))
        assert [g[0] for g in got] == list(range(n)), f"offsets read: {[g[0] for g in got][:10]}..."
        assert all(k == f"k{i}".encode() and v == f"v{i}".encode() * 10 for i, (_, k, v) in enumerate(got))
    finally:
        c.close()


def metadata_ports(conf: dict) -> dict[int, int]:
    from confluent_kafka.admin import AdminClient
    md = AdminClient(conf).list_topics(timeout=20)
    return {b.id: b.port for b in md.brokers.values()}


# ---------------------------------------------------------------- tests

def test_kcat_produce_consume_over_ssl(start_broker, certs, topic):
    b = start_broker(ssl_overrides(certs))
    ssl = ssl_bootstrap(b)
    lines = [f"key{i}|value{i}" for i in range(50)]
    kcat("-b", ssl, *kcat_ssl(certs), "-P", "-t", topic, "-K", "|", input="\n".join(lines) + "\n")
    out = kcat("-b", ssl, *kcat_ssl(certs), "-C", "-t", topic, "-K", "|", "-o", "beginning", "-e",
               "-c", "50").stdout.decode()
    assert out.split("\n")[:50] == lines
    # The same records on the PLAINTEXT listener.
    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-K", "|", "-o", "beginning", "-e", "-c", "50").stdout.decode()
    assert out.split("\n")[:50] == lines


def test_metadata_advertises_the_listener_of_the_request(start_broker, certs):
    b = start_broker(ssl_overrides(certs))
    ssl_port, plain_port = b.listener_port("SSL"), b.port
    assert ssl_port != plain_port
    assert metadata_ports(ck_ssl(ssl_bootstrap(b), certs)) == {1: ssl_port}
    assert metadata_ports({"bootstrap.servers": b.bootstrap}) == {1: plain_port}
    # kcat's view: the broker list of the SSL listener names the SSL port.
    out = kcat("-b", ssl_bootstrap(b), *kcat_ssl(certs), "-L").stdout.decode()
    assert f"broker 1 at 127.0.0.1:{ssl_port}" in out, out


def test_advertised_listeners_per_listener(start_broker, certs):
    b = start_broker(ssl_overrides(
        certs, **{"advertised.listeners": "PLAINTEXT://127.0.0.1:0,SSL://localhost:0"}))
    # Advertised port 0 is the bound port; the SSL listener advertises the name `localhost`.
    from confluent_kafka.admin import AdminClient
    md = AdminClient(ck_ssl(ssl_bootstrap(b), certs)).list_topics(timeout=20)
    assert [(x.host, x.port) for x in md.brokers.values()] == [("localhost", b.listener_port("SSL"))]
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=20)
    assert [(x.host, x.port) for x in md.brokers.values()] == [("127.0.0.1", b.port)]


def test_confluent_kafka_over_ssl(start_broker, certs, topic):
    b = start_broker(ssl_overrides(certs))
    ck_produce_consume(ck_ssl(ssl_bootstrap(b), certs, **{"ssl.endpoint.identification.algorithm": "https"}),
                       topic)


def test_kafka_python_over_ssl(start_broker, certs, topic):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    b = start_broker(ssl_overrides(certs))
    ssl_conf = dict(bootstrap_servers=ssl_bootstrap(b), security_protocol="SSL",
                    ssl_cafile=str(certs / "ca.pem"), ssl_check_hostname=True)
    p = KafkaProducer(acks="all", request_timeout_ms=20000, **ssl_conf)
    futures = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(40)]
    offsets = [f.get(timeout=30).offset for f in futures]
    p.close()
    assert offsets == list(range(40))
    c = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=15000, **ssl_conf)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    for m in c:
        got.append((m.offset, m.key, m.value))
        if len(got) == 40:
            break
    c.close()
    assert got == [(i, f"k{i}".encode(), f"v{i}".encode()) for i in range(40)]


@pytest.fixture(scope="session")
def java_tls_classes(java_classpath, tmp_path_factory) -> str:
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-tls-classes"))


def test_java_client_over_ssl(start_broker, certs, topic, java_tls_classes):
    b = start_broker(ssl_overrides(certs))
    run_java_main(java_tls_classes, "JavaTlsTest", ssl_bootstrap(b), topic, str(certs / "ca.pem"))


def test_java_client_mtls(start_broker, certs, topic, java_tls_classes):
    b = start_broker(mtls_overrides(certs))
    run_java_main(java_tls_classes, "JavaTlsTest", ssl_bootstrap(b), topic, str(certs / "ca.pem"),
                  str(certs / "alice-keystore.pem"))


def test_mtls_required_refuses_clients_without_a_trusted_certificate(start_broker, certs, topic):
    b = start_broker(mtls_overrides(certs))
    ssl = ssl_bootstrap(b)
    # No certificate, or one from a CA the broker does not trust: no metadata.
    for client in (None, "mallory"):
        r = kcat("-b", ssl, *kcat_ssl(certs, client), "-L", "-m", "5", check=False, timeout=30)
        assert r.returncode != 0, f"kcat with client cert {client} got metadata:\n{r.stdout.decode()}"
    # With alice's certificate: produce and consume.
    kcat("-b", ssl, *kcat_ssl(certs, "alice"), "-P", "-t", topic, input="one\ntwo\n")
    out = kcat("-b", ssl, *kcat_ssl(certs, "alice"), "-C", "-t", topic, "-o", "beginning", "-e", "-c", "2")
    assert out.stdout.decode().split("\n")[:2] == ["one", "two"]
    ck_produce_consume(ck_ssl(ssl, certs, "alice"), topic + "-ck")
    # The PLAINTEXT listener is unaffected.
    assert metadata_ports({"bootstrap.servers": b.bootstrap}) == {1: b.port}
    assert "TLS handshake failed" in b.stderr_text(tail=None)


def test_principal_mapping_rules_apply_to_the_client_dn(start_broker, certs):
    # alice's DN is CN=alice,OU=eng,O=acme: a rule for OU=ops only leaves no rule that applies,
    # and Kafka then refuses the connection.
    b = start_broker(mtls_overrides(certs, **{"ssl.principal.mapping.rules": "RULE:^CN=(.*?),OU=ops,.*$/$1/"}))
    r = kcat("-b", ssl_bootstrap(b), *kcat_ssl(certs, "alice"), "-L", "-m", "5", check=False, timeout=30)
    assert r.returncode != 0
    wait_until(lambda: "no ssl.principal.mapping.rules rule applies to 'CN=alice,OU=eng,O=acme'"
               in b.stderr_text(tail=None), 10, "the refusal with alice's DN in the broker log")
    b.stop()
    b2 = start_broker(mtls_overrides(certs, **{"ssl.principal.mapping.rules":
                                               "RULE:^CN=(.*?),OU=ops,.*$/$1/,RULE:^CN=(.*?),OU=eng,O=acme$/$1/U"}))
    kcat("-b", ssl_bootstrap(b2), *kcat_ssl(certs, "alice"), "-L", "-m", "10")


def test_requested_client_auth_accepts_both(start_broker, certs):
    b = start_broker(mtls_overrides(certs, **{"ssl.client.auth": "requested"}))
    ssl = ssl_bootstrap(b)
    kcat("-b", ssl, *kcat_ssl(certs), "-L", "-m", "10")
    kcat("-b", ssl, *kcat_ssl(certs, "alice"), "-L", "-m", "10")


def _api_versions_request() -> bytes:
    body = struct.pack(">hhih", 18, 0, 7, 4) + b"probe"  # ApiVersions v0, correlation 7, client "probe"
    return struct.pack(">i", len(body)) + body


def test_plaintext_and_garbage_on_the_ssl_port_do_not_disturb_others(start_broker, certs, topic):
    b = start_broker(ssl_overrides(certs))
    port = b.listener_port("SSL")
    # A Kafka request in plaintext, random bytes, and a silent connection, all on the SSL port.
    plain = socket.create_connection(("127.0.0.1", port), timeout=10)
    plain.sendall(_api_versions_request())
    junk = socket.create_connection(("127.0.0.1", port), timeout=10)
    junk.sendall(os.urandom(4096))
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        # The broker closes the plaintext and junk connections (EOF or reset), without answering.
        for s in (plain, junk):
            try:
                data = s.recv(65536)
                assert not data.startswith(struct.pack(">i", 7)), "answered a plaintext request on the SSL port"
                while data:
                    data = s.recv(65536)
            except ConnectionResetError:
                pass
        # Meanwhile TLS and plaintext clients work.
        ck_produce_consume(ck_ssl(ssl_bootstrap(b), certs), topic)
        assert metadata_ports({"bootstrap.servers": b.bootstrap}) == {1: b.port}
        # A kcat speaking plaintext to the SSL port fails, and the broker keeps serving.
        r = kcat("-b", ssl_bootstrap(b), "-L", "-m", "3", check=False, timeout=30)
        assert r.returncode != 0
        assert b.running()
        kcat("-b", ssl_bootstrap(b), *kcat_ssl(certs), "-L", "-m", "10")
    finally:
        for s in (plain, junk, silent):
            s.close()


def _start_fails(tmp_path: Path, overrides: dict[str, str]) -> str:
    cmd = [str(gregor_bin()), "server", "--override", f"log.dirs={tmp_path / 'data'}"]
    for k, v in overrides.items():
        cmd += ["--override", f"{k}={v}"]
    r = subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert r.returncode != 0, f"gregor started with {overrides}"
    return r.stderr.decode(errors="replace")


@pytest.mark.parametrize("overrides,message", [
    # Kafka's default mechanism, GSSAPI, is not served; SASL_SSL needs the SSL settings too.
    ({"listeners": "SASL_SSL://127.0.0.1:0"}, "SASL mechanism GSSAPI is not supported"),
    ({"listeners": "SASL_SSL://127.0.0.1:0", "sasl.enabled.mechanisms": "SCRAM-SHA-256"},
     "ssl.keystore.location"),
    ({"listeners": "SSL://127.0.0.1:0"}, "ssl.keystore.location"),
    ({"listeners": "SSL://127.0.0.1:0", "ssl.keystore.location": "/nonexistent/k.pem"}, "ssl.keystore.type=JKS"),
    ({"listeners": "SSL://127.0.0.1:0", "ssl.keystore.type": "PEM",
      "ssl.keystore.location": "/nonexistent/k.pem"}, "/nonexistent/k.pem"),
    ({"listeners": "SSL://127.0.0.1:0", "ssl.keystore.type": "PEM", "ssl.keystore.location": "/x",
      "ssl.cipher.suites": "TLS_RSA_WITH_RC4_128_MD5"}, "unknown cipher suite 'TLS_RSA_WITH_RC4_128_MD5'"),
])
def test_start_refuses_bad_security_configs(tmp_path, overrides, message):
    err = _start_fails(tmp_path, overrides)
    assert message in err, err


def test_encrypted_key_with_ssl_key_password(start_broker, certs, tmp_path):
    keystore = str(certs / "server-encrypted-keystore.pem")
    err = _start_fails(tmp_path, {"listeners": "SSL://127.0.0.1:0", "ssl.keystore.type": "PEM",
                                  "ssl.keystore.location": keystore})
    assert "the private key is encrypted: set ssl.key.password" in err, err
    err = _start_fails(tmp_path, {"listeners": "SSL://127.0.0.1:0", "ssl.keystore.type": "PEM",
                                  "ssl.keystore.location": keystore, "ssl.key.password": "wrong"})
    assert "wrong password" in err and "s3cret" not in err, err
    b = start_broker(ssl_overrides(certs, **{"ssl.keystore.location": keystore, "ssl.key.password": "s3cret"}))
    kcat("-b", ssl_bootstrap(b), *kcat_ssl(certs), "-L", "-m", "10")


def test_cipher_suites_and_protocols_restrict_the_handshake(start_broker, certs):
    b = start_broker(ssl_overrides(certs, **{
        "listener.name.ssl.ssl.enabled.protocols": "TLSv1.2",
        "listener.name.ssl.ssl.cipher.suites": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    }))
    port = b.listener_port("SSL")

    def handshake(*args: str) -> str:
        r = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                            str(certs / "ca.pem"), *args], input=b"", capture_output=True, timeout=30)
        return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    out = handshake("-tls1_2")
    assert "ECDHE-RSA-AES256-GCM-SHA384" in out and "Verify return code: 0" in out, out
    out = handshake("-tls1_3")
    assert "Cipher is (NONE)" in out, out
    out = handshake("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert "Cipher is (NONE)" in out, out


# ---------------------------------------------------------------- a cluster

class _TlsNode(Node):
    """A cluster node with an SSL listener (port 0) beside PLAINTEXT and CONTROLLER."""

    def write_config(self, overrides: dict[str, str]) -> None:
        super().write_config({
            **overrides,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.kafka_port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port},SSL://127.0.0.1:0",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.kafka_port},SSL://127.0.0.1:0",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL",
        })

    def ssl_port(self) -> int:
        def port():
            for line in reversed(self.stdout_lines):
                if line.startswith("gregor: listening on SSL://"):
                    return int(line.rsplit(":", 1)[1])
            return None
        wait_for(port, 10, f"node {self.id}'s SSL listening line")
        return port()


class _TlsCluster(Cluster):
    def __init__(self, work_dir: Path, n: int, overrides: dict[str, str]):
        super().__init__(work_dir, n, overrides)
        self.nodes = [_TlsNode(self, i) for i in range(1, n + 1)]


def test_cluster_registers_every_listener(request, tmp_path, certs, topic):
    """Each broker registers its PLAINTEXT and SSL endpoints with the controller; a
    client on any node's SSL listener sees every broker at its SSL port, and
    replication (inter-broker, PLAINTEXT) carries what SSL clients write."""
    from confluent_kafka.admin import AdminClient, NewTopic
    c = _TlsCluster(tmp_path / "cluster", 3, {"ssl.keystore.type": "PEM",
                                              "ssl.keystore.location": str(certs / "server-keystore.pem")})
    request.node._gregor_brokers = getattr(request.node, "_gregor_brokers", []) + c.nodes
    try:
        c.start()
        ssl_ports = {n.id: n.ssl_port() for n in c.nodes}
        plain_ports = {n.id: n.kafka_port for n in c.nodes}
        for n in c.nodes:
            conf = ck_ssl(f"127.0.0.1:{ssl_ports[n.id]}", certs)
            wait_for(lambda: metadata_ports(conf) == ssl_ports, 30,
                     f"node {n.id}'s SSL Metadata to list every broker's SSL port {ssl_ports}")
            assert metadata_ports({"bootstrap.servers": n.bootstrap}) == plain_ports
        conf = ck_ssl(",".join(f"127.0.0.1:{p}" for p in ssl_ports.values()), certs)
        admin = AdminClient(conf)  # kept alive until the topic exists
        admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
        ck_produce_consume(conf, topic)
    finally:
        problems = c.stop()
        crashed = [p for p in problems if "on its own" in p]
        assert not crashed, "\n".join(crashed)
