"""SASL/OAUTHBEARER on a SASL_PLAINTEXT listener with real clients.

- Kafka's JWKS validator (`OAuthBearerValidatorCallbackHandler`): tokens the
  test signs with PyJWT (RS256, ES256) against a JWKS file the test writes, and
  one served over http by a threaded http.server (with a key rotation: a token
  with a new kid fails once, the broker refetches the JWKS, the client's
  reconnect succeeds). Wrong audience, wrong issuer, expired and badly signed
  tokens are refused, and the broker logs why.
- Kafka's default unsecured validator: librdkafka's
  `enable.sasl.oauthbearer.unsecure.jwt=true`, kafka-python and kafkajs with a
  hand-made unsigned token.
- At the wire: Kafka's error challenge `{"status":"invalid_token"}`, the
  client's `\\x01`, then SASL_AUTHENTICATION_FAILED and a closed connection;
  the session lifetime is the token's remaining lifetime (KIP-368).

The Java client is not driven here: its OAUTHBEARER login, even the
unsecured one, needs Jackson, which the test classpath (pyflink's jars) lacks.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from test_sasl import _connect, _handshake, _read_frame, _request
from test_tls import ck_produce_consume, start_broker  # noqa: F401 - fixture

jwt = pytest.importorskip("jwt")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")

SECURED = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
LOGIN = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
ISSUER = "https://issuer.test"
NODE_DIR = Path(__file__).resolve().parent / "node"


class Keys:
    """Signing keys and their JWKS."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self, key, kid: str, alg: str) -> dict:
        algo = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
        d = algo.to_jwk(key.public_key(), as_dict=True)
        d.update(kid=kid, alg=alg, use="sig")
        return d

    def jwks(self, rotated: bool = False) -> dict:
        keys = [self.jwk(self.rsa, "rsa1", "RS256"), self.jwk(self.ec, "ec1", "ES256")]
        if rotated:
            keys.append(self.jwk(self.rsa2, "rsa2", "RS256"))
        return {"keys": keys}

    def token(self, sub: str = "alice", kid: str = "rsa1", aud="kafka", iss: str = ISSUER,
              exp_in: float = 3600, key=None, alg: str | None = None) -> str:
        now = int(time.time())
        claims = {"sub": sub, "iat": now - 5, "exp": now + exp_in, "aud": aud, "iss": iss, "scope": "kafka"}
        if key is None:
            key = {"rsa1": self.rsa, "ec1": self.ec, "rsa2": self.rsa2}[kid]
        alg = alg or ("ES256" if kid.startswith("ec") else "RS256")
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def oauth_overrides(**extra: str) -> dict[str, str]:
    o = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": f"{LOGIN} required;",
        "num.partitions": "1",
    }
    o.update(extra)
    return o


def jwks_overrides(url: str) -> dict[str, str]:
    return oauth_overrides(**{
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": SECURED,
        "sasl.oauthbearer.jwks.endpoint.url": url,
        "sasl.oauthbearer.expected.audience": "kafka,other-aud",
        "sasl.oauthbearer.expected.issuer": ISSUER,
    })


def bootstrap(b) -> str:
    return f"127.0.0.1:{b.listener_port('SASL_PLAINTEXT')}"


def ck_conf(b, token: str) -> dict:
    def oauth_cb(_config: str):
        return token, time.time() + 3600
    return {"bootstrap.servers": bootstrap(b), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb, "socket.timeout.ms": 10000}


def ck_refused(b, token: str, why: str) -> None:
    """The client cannot get metadata with `token`; the broker logs `why`."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    a = AdminClient(ck_conf(b, token))
    a.poll(0.5)
    with pytest.raises(KafkaException):
        a.list_topics(timeout=3)
    del a
    deadline = time.monotonic() + 15
    while why not in b.stderr_text():
        assert time.monotonic() < deadline, f"broker never logged {why!r}:\n{b.stderr_text()[-3000:]}"
        time.sleep(0.1)


def test_jwks_file(start_broker, keys, tmp_path, topic):  # noqa: F811 - fixture
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks()))
    b = start_broker(jwks_overrides(f"file://{path}"))
    ck_produce_consume(ck_conf(b, keys.token()), topic, n=30)
    ck_produce_consume(ck_conf(b, keys.token(sub="svc-ec", kid="ec1", aud=["x", "other-aud"])), topic + "-ec",
                       n=10)
    ck_refused(b, keys.token(aud="wrong"), "audience")
    ck_refused(b, keys.token(iss="https://evil.test"), "issuer")
    ck_refused(b, keys.token(exp_in=-120), "expired")
    ck_refused(b, keys.token(key=keys.rsa2), "signature is invalid")
    # Algorithm confusion: the RSA key's alg is RS256; a PS256 token under its kid is refused.
    ck_refused(b, keys.token(alg="PS256"), "is for algorithm PS256")
    assert "SASL authentication failed" in b.stderr_text()
    assert b.running()


class JwksServer:
    """A JWKS over http from a thread; `doc` may be replaced."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.hits = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = json.dumps(server.doc).encode()
                server.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server(keys):
    s = JwksServer(keys.jwks())
    yield s
    s.close()


def test_jwks_http_and_rotation(start_broker, keys, jwks_server, topic):  # noqa: F811 - fixture
    b = start_broker(jwks_overrides(jwks_server.url))
    ck_produce_consume(ck_conf(b, keys.token()), topic, n=20)
    assert jwks_server.hits >= 1
    # A new key at the identity provider: the first token with its kid fails and makes the broker
    # refetch the JWKS; librdkafka reconnects with the same token and succeeds.
    jwks_server.doc = keys.jwks(rotated=True)
    ck_produce_consume(ck_conf(b, keys.token(sub="bob", kid="rsa2")), topic + "-rotated", n=5)
    assert "unknown JWKS key id" in b.stderr_text()
    ck_refused(b, keys.token(aud="nope"), "audience")


def unsecured_token(claims: dict) -> str:
    def enc(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'none'})}.{enc(claims)}."


def test_unsecured_librdkafka(start_broker, topic):  # noqa: F811 - fixture
    from confluent_kafka import Consumer
    b = start_broker(oauth_overrides(**{
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config":
            f'{LOGIN} required unsecuredValidatorRequiredScope="kafka";',
    }))
    conf = {"bootstrap.servers": bootstrap(b), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": "principal=alice scope=kafka,other"}
    ck_produce_consume(conf, topic, n=20)
    # Missing the required scope: refused with Kafka's insufficient_scope status.
    bad = {**conf, "sasl.oauthbearer.config": "principal=alice scope=other"}
    c = Consumer({**bad, "group.id": "g"})
    with pytest.raises(Exception):
        c.list_topics(timeout=3)
    c.close()
    deadline = time.monotonic() + 15
    while "missing a required scope value (kafka)" not in b.stderr_text():
        assert time.monotonic() < deadline, b.stderr_text()[-3000:]
        time.sleep(0.1)


def test_wire(start_broker):  # noqa: F811 - fixture
    b = start_broker(oauth_overrides(**{"connections.max.reauth.ms": "3600000"}))
    port = b.listener_port("SASL_PLAINTEXT")
    now = int(time.time())

    def first(token: str) -> bytes:
        return f"n,,\x01auth=Bearer {token}\x01\x01".encode()

    def authenticate(s, data: bytes, corr: int):
        s.sendall(_request(36, 1, corr, struct.pack(">i", len(data)) + data))
        resp = _read_frame(s)
        assert resp is not None
        c, error, ln = struct.unpack(">ihh", resp[:8])
        assert c == corr
        pos = 8
        message = None
        if ln >= 0:
            message = resp[pos:pos + ln].decode()
            pos += ln
        (blen,) = struct.unpack(">i", resp[pos:pos + 4])
        auth_bytes = resp[pos + 4:pos + 4 + blen]
        (lifetime,) = struct.unpack(">q", resp[pos + 4 + blen:pos + 12 + blen])
        return error, message, auth_bytes, lifetime

    # Valid: the session lasts until the token expires (less than connections.max.reauth.ms).
    with _connect(port) as s:
        assert _handshake(s, "OAUTHBEARER") == (0, ["OAUTHBEARER"])
        error, _, auth_bytes, lifetime = authenticate(s, first(unsecured_token({"sub": "alice", "exp": now + 100})), 1)
        assert (error, auth_bytes) == (0, b"")
        assert 90_000 <= lifetime <= 100_000, lifetime
        s.sendall(_request(3, 0, 2, struct.pack(">i", 0)))
        assert _read_frame(s) is not None
    # Expired: the error challenge, then \x01 fails with the same JSON, then the connection closes.
    with _connect(port) as s:
        _handshake(s, "OAUTHBEARER")
        error, _, auth_bytes, _ = authenticate(s, first(unsecured_token({"sub": "alice", "exp": now - 100})), 3)
        assert (error, auth_bytes) == (0, b'{"status":"invalid_token"}')
        error, message, _, _ = authenticate(s, b"\x01", 4)
        assert (error, message) == (58, '{"status":"invalid_token"}')
        assert _read_frame(s) is None
    # Malformed initial response: Kafka's generic failure.
    with _connect(port) as s:
        _handshake(s, "OAUTHBEARER")
        error, message, _, _ = authenticate(s, b"n,,auth=Bearer x", 5)
        assert error == 58 and "invalid credentials with SASL mechanism OAUTHBEARER" in message
        assert _read_frame(s) is None
    assert b.running()


def test_kafka_python(start_broker, topic):  # noqa: F811 - fixture
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError
    from kafka.sasl.oauth import AbstractTokenProvider

    b = start_broker(oauth_overrides())

    class Provider(AbstractTokenProvider):
        def __init__(self, sub: str, exp_in: int) -> None:
            self.sub, self.exp_in = sub, exp_in

        def token(self) -> str:
            return unsecured_token({"sub": self.sub, "exp": int(time.time()) + self.exp_in})

    conf = dict(bootstrap_servers=bootstrap(b), security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider("alice", 3600))
    p = KafkaProducer(acks="all", request_timeout_ms=20000, **conf)
    offsets = [p.send(topic, value=f"v{i}".encode()).get(timeout=30).offset for i in range(10)]
    p.close()
    assert offsets == list(range(10))
    c = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=15000, **conf)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    for m in c:
        got.append(m.value)
        if len(got) == 10:
            break
    c.close()
    assert got == [f"v{i}".encode() for i in range(10)]
    with pytest.raises(KafkaError):
        KafkaProducer(**{**conf, "sasl_oauth_token_provider": Provider("alice", -100)},
                      request_timeout_ms=5000, max_block_ms=5000).send(topic, b"x").get(timeout=10)


KAFKAJS = r"""
const { Kafka, logLevel } = require('kafkajs');
const [broker, topic, token] = process.argv.slice(1);
(async () => {
  const kafka = new Kafka({ brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 2 },
    sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: token }) } });
  const result = {};
  try {
    const producer = kafka.producer();
    await producer.connect();
    const sent = await producer.send({ topic, acks: -1, messages: [{ value: 'a' }, { value: 'b' }] });
    await producer.disconnect();
    result.offset = sent[0].baseOffset;
  } catch (e) {
    result.error = `${e.name}: ${e.message}`;
  }
  console.log('RESULT ' + JSON.stringify(result));
})();
"""


def run_kafkajs(b, topic: str, token: str) -> dict:
    r = subprocess.run(["node", "-e", KAFKAJS, bootstrap(b), topic, token], capture_output=True,
                       timeout=120, cwd=NODE_DIR, stdin=subprocess.DEVNULL)
    out = r.stdout.decode(errors="replace")
    lines = [line[len("RESULT "):] for line in out.splitlines() if line.startswith("RESULT ")]
    assert r.returncode == 0 and len(lines) == 1, f"stdout:\n{out}\nstderr:\n{r.stderr.decode()[-3000:]}"
    return json.loads(lines[0])


@pytest.mark.skipif(not (NODE_DIR / "node_modules" / "kafkajs").exists(), reason="kafkajs not installed")
def test_kafkajs(start_broker, topic):  # noqa: F811 - fixture
    b = start_broker(oauth_overrides(**{"auto.create.topics.enable": "true"}))
    now = int(time.time())
    ok = run_kafkajs(b, topic, unsecured_token({"sub": "alice", "exp": now + 3600}))
    assert ok == {"offset": "0"}, ok
    # kafkajs takes Kafka's error challenge for success and sends Metadata; the broker closes the
    # connection, as Kafka's SaslServerAuthenticator does, so the client fails all the same.
    bad = run_kafkajs(b, topic, unsecured_token({"sub": "alice", "exp": now - 3600}))
    assert "error" in bad and "offset" not in bad, bad
    assert "during SASL authentication" in b.stderr_text()


def test_start_refused_without_jwks_url(tmp_path):
    """The JWKS validator without sasl.oauthbearer.jwks.endpoint.url refuses to start."""
    from conftest import gregor_bin
    args = [str(gregor_bin()), "server", "--override", "listeners=SASL_PLAINTEXT://127.0.0.1:0",
            "--override", f"log.dirs={tmp_path}", "--override", "sasl.enabled.mechanisms=OAUTHBEARER",
            "--override", f"sasl.server.callback.handler.class={SECURED}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                       env={**os.environ})
    assert r.returncode != 0 and "sasl.oauthbearer.jwks.endpoint.url" in r.stderr, r.stderr
