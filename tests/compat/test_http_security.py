"""The HTTP listener's security (/metrics, the console and its API): HTTPS
with a test CA, client certificates (mTLS), HTTP basic authentication
against the SCRAM users of the metadata log, and the console's
authorization of each call for the authenticated principal, checked with
real HTTP clients (Python's urllib with an SSL context, curl,
prometheus_client's parser) and the console in headless Chromium.

Certificates come from test_tls's session CA (server certificate with
SAN IP:127.0.0.1; alice's client certificate from the same CA, mallory's
from another one).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

import conftest
from compat_util import ck_admin, ck_create_topic
from test_acls import AUTHORIZER  # super.users=User:ANONYMOUS: the PLAINTEXT admin
from test_tls import certs, start_broker  # noqa: F401 - fixtures

CURL = shutil.which("curl") or "curl"
URL_RE = re.compile(r"^gregor: http listening on (https?://\S+)$")
TIMEOUT = 15

pytestmark = [pytest.mark.timeout(180)]


def http_url(b, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(b.stdout_lines):
            m = URL_RE.match(line)
            if m:
                return m.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no 'gregor: http listening' line in {b.stdout_lines}")


def tls_context(certs, client: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(certs / f"{client}.pem"), str(certs / f"{client}.key"))
    return ctx


def request(url: str, *, method: str = "GET", body=None, user: str | None = None,
            password: str | None = None, ctx: ssl.SSLContext | None = None):
    """(status, headers, body text) of one HTTP request."""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT, context=ctx) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def add_scram_users(bootstrap: str, users: dict[str, str]) -> None:
    admin = ck_admin(bootstrap)
    ups = [UserScramCredentialUpsertion(u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), p.encode())
           for u, p in users.items()]
    for f in admin.alter_user_scram_credentials(ups).values():
        f.result()


def scrape(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def https_overrides(certs, **extra) -> dict[str, str]:
    o = {
        "http.listeners": "https://127.0.0.1:0",
        # The broker's own ssl.* keys: the HTTP listener falls back to them.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server-keystore.pem"),
        "num.partitions": "1",
    }
    o.update(extra)
    return o


def test_https_with_a_test_ca(start_broker, certs):
    b = start_broker(https_overrides(certs))
    base = http_url(b)
    assert base.startswith("https://127.0.0.1:")
    status, _, body = request(f"{base}/healthz", ctx=tls_context(certs))
    assert (status, body) == (200, "ok\n")
    # The system's CAs do not know the test CA: the certificate is refused.
    with pytest.raises(urllib.error.URLError) as e:
        request(f"{base}/healthz", ctx=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
    # curl with the CA: /metrics and the console's API.
    r = subprocess.run([CURL, "-sS", "--fail", "--cacert", str(certs / "ca.pem"), f"{base}/metrics"],
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert "kafka_server" in r.stdout.decode()
    ck_create_topic(b.bootstrap, "over-https", 1)
    status, _, body = request(f"{base}/api/topics?q=over-https", ctx=tls_context(certs))
    assert status == 200, body
    assert [t["name"] for t in json.loads(body)["topics"]] == ["over-https"]


def test_mtls_required(start_broker, certs):
    b = start_broker(https_overrides(certs, **{
        "http.authentication.method": "mtls",
        "http.ssl.client.auth": "required",
        "http.ssl.truststore.type": "PEM",
        "http.ssl.truststore.location": str(certs / "ca.pem"),
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+),.*$/$1/,DEFAULT",
    }))
    base = http_url(b)
    # No client certificate: the handshake is refused.
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        request(f"{base}/api/whoami", ctx=tls_context(certs))
    # A certificate from another CA: refused too.
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        request(f"{base}/api/whoami", ctx=tls_context(certs, "mallory"))
    # alice's certificate: her principal, through ssl.principal.mapping.rules.
    status, _, body = request(f"{base}/api/whoami", ctx=tls_context(certs, "alice"))
    assert status == 200, body
    assert json.loads(body) == {"principal": "User:alice", "authenticated": True}
    r = subprocess.run([CURL, "-sS", "--fail", "--cacert", str(certs / "ca.pem"),
                        "--cert", str(certs / "alice.pem"), "--key", str(certs / "alice.key"),
                        f"{base}/metrics"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    failed = scrape(r.stdout.decode())
    assert failed[("kafka_server_socket_server_metrics_failed_authentication_total",
                   (("listener", "HTTP"),))] >= 2


def test_basic_auth_against_scram_users(start_broker):
    b = start_broker({"http.listeners": "http://127.0.0.1:0", "http.authentication.method": "basic"})
    base = http_url(b)
    add_scram_users(b.bootstrap, {"alice": "alice-secret"})
    # Orchestrators' probes stay open.
    assert request(f"{base}/healthz")[0] == 200
    assert request(f"{base}/readyz")[0] in (200, 503)
    for user, password in [(None, None), ("alice", "wrong"), ("nobody", "alice-secret")]:
        status, headers, body = request(f"{base}/metrics", user=user, password=password)
        assert status == 401, (user, body)
        assert headers["WWW-Authenticate"] == 'Basic realm="gregor"'
        assert request(f"{base}/api/topics", user=user, password=password)[0] == 401
    status, _, body = request(f"{base}/metrics", user="alice", password="alice-secret")
    assert status == 200, body
    samples = scrape(body)
    failed = samples[("kafka_server_socket_server_metrics_failed_authentication_total", (("listener", "HTTP"),))]
    assert failed >= 4
    status, _, body = request(f"{base}/api/whoami", user="alice", password="alice-secret")
    assert json.loads(body) == {"principal": "User:alice", "authenticated": True}
    # curl, the way a Prometheus scrape config with basic_auth sends it.
    r = subprocess.run([CURL, "-sS", "--fail", "-u", "alice:alice-secret", f"{base}/metrics"],
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", "alice:nope",
                        f"{base}/metrics"], capture_output=True, timeout=TIMEOUT)
    assert r.stdout == b"401"


def allow(rt, name, principal, op):
    return AclBinding(rt, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW)


@pytest.mark.parametrize("kafka_listeners", ["plaintext", "sasl"])
def test_console_api_is_read_only_without_acls_to_alter(start_broker, kafka_listeners):
    """`plaintext`: the console cannot log in as the caller and authorizes
    in-process; `sasl`: it logs in to the SASL_PLAINTEXT listener with the
    caller's credentials (SCRAM-SHA-512) and Kafka's authorizer answers."""
    extra = {}
    if kafka_listeners == "sasl":
        extra = {"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                 "sasl.enabled.mechanisms": "SCRAM-SHA-512"}
    b = start_broker({**AUTHORIZER, **extra, "http.listeners": "http://127.0.0.1:0",
                      "http.authentication.method": "basic"})
    base = http_url(b)
    add_scram_users(b.bootstrap, {"reader": "reader-secret", "writer": "writer-secret"})
    ck_create_topic(b.bootstrap, "orders", 1)
    # A record to browse (an empty partition needs no Fetch, so no READ check on the wire).
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce("orders", value=b"first")
    assert p.flush(TIMEOUT) == 0
    admin = ck_admin(b.bootstrap)
    bindings = [
        allow(ResourceType.TOPIC, "orders", "User:reader", AclOperation.DESCRIBE),
        allow(ResourceType.TOPIC, "orders", "User:reader", AclOperation.DESCRIBE_CONFIGS),
        allow(ResourceType.TOPIC, "orders", "User:writer", AclOperation.ALL),
        allow(ResourceType.TOPIC, "fresh", "User:writer", AclOperation.CREATE),
    ]
    for f in admin.create_acls(bindings, request_timeout=TIMEOUT).values():
        f.result()

    def call(user, method, path, body=None):
        status, _, text = request(f"{base}{path}", method=method, body=body, user=user,
                                  password=f"{user}-secret")
        return status, text

    # Both see the topic and its configs.
    for user in ("reader", "writer"):
        status, text = call(user, "GET", "/api/topics")
        assert status == 200, text
        assert "orders" in [t["name"] for t in json.loads(text)["topics"]]
        assert call(user, "GET", "/api/topics/orders/configs")[0] == 200
    # The reader may not alter: 403 with Kafka's error name.
    refused = [
        ("POST", "/api/topics/orders/configs", {"set": {"retention.ms": "60000"}}, "TOPIC_AUTHORIZATION_FAILED"),
        ("POST", "/api/topics", {"name": "fresh", "partitions": 1}, "TOPIC_AUTHORIZATION_FAILED"),
        ("POST", "/api/topics/orders/produce", {"value": "hi"}, "TOPIC_AUTHORIZATION_FAILED"),
        ("GET", "/api/topics/orders/messages?partition=0", None, "TOPIC_AUTHORIZATION_FAILED"),
        ("DELETE", "/api/topics/orders", None, "TOPIC_AUTHORIZATION_FAILED"),
    ]
    for method, path, body, error in refused:
        status, text = call("reader", method, path, body)
        assert status == 403, (path, text)
        assert error in json.loads(text)["error"], text
    # The writer may.
    status, text = call("writer", "POST", "/api/topics/orders/configs", {"set": {"retention.ms": "60000"}})
    assert status == 200, text
    status, text = call("writer", "POST", "/api/topics/orders/produce", {"value": "hi"})
    assert status == 200, text
    status, text = call("writer", "GET", "/api/topics/orders/messages?partition=0&offset=0")
    assert status == 200, text
    status, text = call("writer", "POST", "/api/topics", {"name": "fresh", "partitions": 1})
    assert status == 200, text
    # The topic list shows the reader only what it may describe.
    status, text = call("reader", "GET", "/api/topics")
    assert [t["name"] for t in json.loads(text)["topics"]] == ["orders"]
    configs = admin.describe_configs([__import__("confluent_kafka").admin.ConfigResource("TOPIC", "orders")])
    for f in configs.values():
        assert f.result()["retention.ms"].value == "60000"


def test_console_on_a_node_with_only_an_ssl_listener(start_broker, certs, monkeypatch):
    from test_console import Console, browser  # noqa: F401
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_console import CHROMIUM
    from pathlib import Path
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    # The fixture waits for the first listener's line; here it is SSL.
    monkeypatch.setattr(conftest, "LISTEN_RE", re.compile(r"^gregor: listening on SSL://127\.0\.0\.1:(\d+)$"))
    b = start_broker({
        "listeners": "SSL://127.0.0.1:0",
        "inter.broker.listener.name": "SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.pem"),
        "http.listeners": "http://127.0.0.1:0",
        "num.partitions": "1",
    })
    base = http_url(b)
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem")}
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": b.bootstrap, **conf})
    for f in admin.create_topics([NewTopic("tls-only-topic", 2, 1)], request_timeout=TIMEOUT).values():
        f.result()
    status, _, body = request(f"{base}/api/topics")
    assert status == 200, body
    assert "tls-only-topic" in [t["name"] for t in json.loads(body)["topics"]]
    with sync_api.sync_playwright() as p:
        br = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            c = Console(br, base)
            c.open("/brokers")
            c.shot("ssl-only-brokers")
            c.open("/topics")
            c.page.get_by_text("tls-only-topic").first.wait_for()
            c.assert_clean("topics on an SSL-only node")
            c.shot("ssl-only-topics")
        finally:
            br.close()


def test_https_certificate_reload(start_broker, certs, tmp_path):
    """A keystore file replaced on disk is served to new connections after
    the next `gregor.ssl.keystore.reload.interval.ms` check."""
    from test_tls import _signed
    _signed(certs, "server-http2", "/CN=localhost", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    keystore = tmp_path / "http-keystore.pem"
    shutil.copy(certs / "server-keystore.pem", keystore)
    b = start_broker(https_overrides(certs, **{
        "http.ssl.keystore.location": str(keystore),
        "gregor.ssl.keystore.reload.interval.ms": "200",
    }))
    host, port = http_url(b).removeprefix("https://").rsplit(":", 1)

    def served() -> str:
        return ssl.get_server_certificate((host, int(port)), ca_certs=str(certs / "ca.pem")).strip()

    def pem(name: str) -> str:
        return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert((certs / name).read_text())).strip()

    assert served() == pem("server.pem")
    shutil.copy(certs / "server-http2-keystore.pem", keystore)
    deadline = time.monotonic() + 30
    while served() != pem("server-http2.pem"):
        assert time.monotonic() < deadline, "the new certificate was not served within 30 s"
        time.sleep(0.1)
    status, _, _ = request(f"https://{host}:{port}/healthz", ctx=tls_context(certs))
    assert status == 200
