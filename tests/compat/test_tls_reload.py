"""Certificate reload on an SSL listener, as Kafka does it: the keystore
file is replaced and `listener.name.ssl.ssl.keystore.location` altered on
the broker resource (confluent-kafka's incremental_alter_configs), or, with
Gregor's `gregor.ssl.keystore.reload.interval.ms`, the file is replaced
alone. New connections see the new certificate (its serial read with
Python's ssl module and `cryptography`); an open confluent-kafka producer
keeps working; a keystore that does not load is refused and the old
certificate is still served.
"""

from __future__ import annotations

import shutil
import socket
import ssl
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ResourceType)
from cryptography import x509

from compat_util import wait_until
from test_tls import _signed, certs, ck_ssl, ssl_bootstrap, ssl_overrides, start_broker  # noqa: F401

KEY = "listener.name.ssl.ssl.keystore.location"
TIMEOUT_S = 30


def served_serial(port: int) -> int:
    """The serial of the certificate the SSL listener serves to a new connection."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def file_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes().split(b"-----END PRIVATE KEY-----")[-1]).serial_number


def new_keystore(certs: Path, name: str) -> Path:
    """A fresh server key and certificate (same SAN, new serial) as `name-keystore.pem`."""
    _signed(certs, name, "/CN=localhost", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    return certs / f"{name}-keystore.pem"


def alter(bootstrap: str, value: str, op=AlterConfigOpType.SET) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.BROKER, "1",
                         incremental_configs=[ConfigEntry(KEY, value, incremental_operation=op)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(timeout=TIMEOUT_S)


def produce_ok(p: Producer, topic: str, value: bytes) -> None:
    errors = []
    p.produce(topic, value, on_delivery=lambda e, m: errors.append(e))
    assert p.flush(TIMEOUT_S) == 0
    assert errors == [None], errors


@pytest.fixture
def keystore(certs, tmp_path) -> Path:
    """The path the broker serves from, a copy of the session's server keystore."""
    path = tmp_path / "served-keystore.pem"
    shutil.copy(certs / "server-keystore.pem", path)
    return path


def test_alter_keystore_location_reloads(certs, keystore, start_broker):
    b = start_broker(ssl_overrides(certs, **{"ssl.keystore.location": str(keystore),
                                             "gregor.ssl.keystore.reload.interval.ms": "0"}))
    port = b.listener_port("SSL")
    old = served_serial(port)
    assert old == file_serial(keystore)
    p = Producer(ck_ssl(ssl_bootstrap(b), certs))
    produce_ok(p, "reload", b"before")

    # Same path, new content: altering the config to that path reloads it.
    shutil.copy(new_keystore(certs, "server2"), keystore)
    new = file_serial(keystore)
    assert new != old
    alter(b.bootstrap, str(keystore))
    wait_until(lambda: served_serial(port) == new, timeout=TIMEOUT_S, what="new certificate served")
    # The producer's connection predates the reload and keeps working.
    produce_ok(p, "reload", b"after")

    # A path that does not exist, then a garbage file: refused, the new cert still served.
    for bad in (str(keystore.parent / "missing.pem"), str(certs / "garbage.pem")):
        (certs / "garbage.pem").write_text("not a keystore\n")
        with pytest.raises(Exception) as refused:
            alter(b.bootstrap, bad)
        assert "SSLFactory" in str(refused.value), refused.value
        assert served_serial(port) == new
    produce_ok(p, "reload", b"still")

    # Another file by path: taken.
    third = new_keystore(certs, "server3")
    alter(b.bootstrap, str(third))
    wait_until(lambda: served_serial(port) == file_serial(third), timeout=TIMEOUT_S,
               what="third certificate served")
    produce_ok(p, "reload", b"third")
    p.flush(TIMEOUT_S)
    del p

    # The alteration is a metadata record: after a restart the dynamic value
    # wins over server.properties again.
    # Same ports again (the harness restarts PLAINTEXT on its port; ours names both).
    b.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{b.listener_port('PLAINTEXT')},SSL://127.0.0.1:{port}"
    b.restart()
    assert b.listener_port("SSL") == port
    # Applied before the listener opens: the first connection sees it.
    assert served_serial(port) == file_serial(third)


def test_reload_interval_picks_up_replaced_file(certs, keystore, start_broker):
    b = start_broker(ssl_overrides(certs, **{"ssl.keystore.location": str(keystore),
                                             "gregor.ssl.keystore.reload.interval.ms": "500"}))
    port = b.listener_port("SSL")
    old = served_serial(port)
    p = Producer(ck_ssl(ssl_bootstrap(b), certs))
    produce_ok(p, "watched", b"before")

    # A garbage file is not loaded (the broker warns): the old certificate stays.
    keystore.write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    wait_until(lambda: "does not load" in b.stderr_text(), timeout=TIMEOUT_S, what="reload refused")
    assert served_serial(port) == old
    # Replaced by a valid keystore (atomically, as cert managers do): switched.
    fresh = new_keystore(certs, "server4")
    tmp = keystore.with_suffix(".tmp")
    shutil.copy(fresh, tmp)
    tmp.replace(keystore)
    new = file_serial(keystore)
    assert new != old
    wait_until(lambda: served_serial(port) == new, timeout=TIMEOUT_S, what="replaced certificate served")
    produce_ok(p, "watched", b"after")


def other_subject_keystore(certs: Path, name: str, subject: str, san: str) -> Path:
    _signed(certs, name, subject, "ca", f"subjectAltName={san}")
    return certs / f"{name}-keystore.pem"


def test_new_subject_or_fewer_sans_refused(certs, keystore, start_broker):
    """Kafka's ssl.allow.dn.changes / ssl.allow.san.changes (false): a new
    certificate must keep the DN and every SAN; more SANs are fine."""
    b = start_broker(ssl_overrides(certs, **{"ssl.keystore.location": str(keystore),
                                             "gregor.ssl.keystore.reload.interval.ms": "500"}))
    port = b.listener_port("SSL")
    old = served_serial(port)
    other_dn = other_subject_keystore(certs, "server-other-dn", "/CN=intruder",
                                      "IP:127.0.0.1,DNS:localhost")
    fewer_sans = other_subject_keystore(certs, "server-fewer-sans", "/CN=localhost", "DNS:localhost")
    more_sans = other_subject_keystore(certs, "server-more-sans", "/CN=localhost",
                                       "IP:127.0.0.1,DNS:localhost,DNS:broker1.example")

    with pytest.raises(Exception) as refused:
        alter(b.bootstrap, str(other_dn))
    assert ("Keystore DistinguishedName does not match:  existing={alias=kafka, DN=CN=localhost}, "
            "new={alias=kafka, DN=CN=intruder}") in str(refused.value), refused.value
    with pytest.raises(Exception) as refused:
        alter(b.bootstrap, str(fewer_sans))
    assert "Keystore SubjectAltNames do not match" in str(refused.value), refused.value
    assert served_serial(port) == old

    # A file replaced in place by one naming another subject: logged, old one kept.
    shutil.copy(other_dn, keystore)
    wait_until(lambda: "Keystore DistinguishedName does not match" in b.stderr_text(), timeout=TIMEOUT_S,
               what="the file reload refused")
    assert served_serial(port) == old

    # More SANs: taken.
    alter(b.bootstrap, str(more_sans))
    wait_until(lambda: served_serial(port) == file_serial(more_sans), timeout=TIMEOUT_S,
               what="the certificate with more SANs served")


def test_subject_change_allowed_when_configured(certs, keystore, start_broker):
    b = start_broker(ssl_overrides(certs, **{"ssl.keystore.location": str(keystore),
                                             "gregor.ssl.keystore.reload.interval.ms": "0",
                                             "ssl.allow.dn.changes": "true",
                                             "ssl.allow.san.changes": "true"}))
    port = b.listener_port("SSL")
    other = other_subject_keystore(certs, "server-renamed", "/CN=renamed", "DNS:renamed.example")
    alter(b.bootstrap, str(other))
    wait_until(lambda: served_serial(port) == file_serial(other), timeout=TIMEOUT_S,
               what="the renamed certificate served")
