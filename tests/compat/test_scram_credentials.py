"""SCRAM credentials (KIP-554: DescribeUserScramCredentials 50 and
AlterUserScramCredentials 51) through confluent-kafka 2.16 / librdkafka's
AdminClient, the Apache Kafka Java AdminClient 3.9
(java/JavaScramAdminTest.java), `gregor configs --entity-type users` and `gregor storage format
--add-scram`, answered as Kafka 4.1 answers them.

librdkafka computes the salted password itself (its own PBKDF2); the broker
keeps only StoredKey and ServerKey. The metadata log must hold exactly the
keys RFC 5802 derives from that salted password, checked here with Python's
hashlib, a third implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from cluster_util import cluster, cluster_factory, wait_for  # noqa: F401 - fixtures
from compat_util import ck_admin, compile_java, run_java_main
from conftest import Broker, gregor_bin

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaScramAdminTest.java"
SHA256 = ScramMechanism.SCRAM_SHA_256
SHA512 = ScramMechanism.SCRAM_SHA_512


def tool(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(gregor_bin()), *args], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"gregor {' '.join(args)} exited {r.returncode}\n"
                             f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def alter(admin, alterations) -> dict[str, str | None]:
    """Each user's outcome: None, or the Kafka error's name."""
    out = {}
    for user, fut in admin.alter_user_scram_credentials(alterations).items():
        try:
            fut.result(15)
            out[user] = None
        except KafkaException as e:
            out[user] = e.args[0].name()
    return out


def describe_all(admin) -> dict[str, list[tuple[ScramMechanism, int]]]:
    result = admin.describe_user_scram_credentials().result(15)
    return {user: sorted((i.mechanism, i.iterations) for i in d.scram_credential_infos)
            for user, d in result.items()}


def describe_one(admin, user):
    """(mechanism, iterations) pairs, or the Kafka error's name."""
    fut = admin.describe_user_scram_credentials([user])[user]
    try:
        d = fut.result(15)
    except KafkaException as e:
        return e.args[0].name()
    return sorted((i.mechanism, i.iterations) for i in d.scram_credential_infos)


def expected_keys(password: bytes, salt: bytes, iterations: int, digest: str) -> tuple[str, str]:
    """RFC 5802: StoredKey and ServerKey, base64, for a password."""
    salted = hashlib.pbkdf2_hmac(digest, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored = hashlib.new(digest, client_key).digest()
    server = hmac.new(salted, b"Server Key", digest).digest()
    return base64.b64encode(stored).decode(), base64.b64encode(server).decode()


def metadata_log_bytes(log_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((log_dir / "__cluster_metadata-0").glob("*.log")))


def test_alter_describe_delete_with_confluent_kafka(broker):
    admin = ck_admin(broker.bootstrap)
    assert describe_all(admin) == {}
    salt = b"salt-of-alice-0123"
    assert alter(admin, [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(SHA256, 8192), b"alice-secret", salt),
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(SHA512, 4096), b"bob-secret"),
    ]) == {"alice": None, "bob": None}
    assert alter(admin, [
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(SHA256, 16384), b"bob-secret"),
    ]) == {"bob": None}
    assert describe_all(admin) == {"alice": [(SHA256, 8192)], "bob": [(SHA256, 16384), (SHA512, 4096)]}
    assert describe_one(admin, "alice") == [(SHA256, 8192)]
    assert describe_one(admin, "nobody") == "RESOURCE_NOT_FOUND"

    # The log holds the keys derived from librdkafka's salted password.
    stored, server = expected_keys(b"alice-secret", salt, 8192, "sha256")
    log = metadata_log_bytes(broker.log_dir)
    assert f'"stored_key":"{stored}"'.encode() in log
    assert f'"server_key":"{server}"'.encode() in log
    assert b"alice-secret" not in log

    # Kafka's refusals, user by user; the valid change in the same request goes ahead.
    assert alter(admin, [
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(SHA256, 4095), b"x"),
        UserScramCredentialUpsertion("dave", ScramCredentialInfo(SHA512, 16385), b"x"),
        UserScramCredentialDeletion("alice", SHA512),
        # Twice in one request (deletions are looked at first, as Kafka does).
        UserScramCredentialDeletion("bob", SHA512),
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(SHA256, 4096), b"x"),
        UserScramCredentialUpsertion("frank", ScramCredentialInfo(SHA512, 4096), b"x"),
    ]) == {
        "carol": "UNACCEPTABLE_CREDENTIAL",
        "dave": "UNACCEPTABLE_CREDENTIAL",
        "alice": "RESOURCE_NOT_FOUND",
        "bob": "DUPLICATE_RESOURCE",
        "frank": None,
    }
    assert describe_all(admin) == {
        "alice": [(SHA256, 8192)], "bob": [(SHA256, 16384), (SHA512, 4096)], "frank": [(SHA512, 4096)]}

    assert alter(admin, [UserScramCredentialDeletion("alice", SHA256)]) == {"alice": None}
    assert describe_one(admin, "alice") == "RESOURCE_NOT_FOUND"

    # Credentials survive a restart (the log, and the snapshot of a clean stop).
    broker.restart()
    admin = ck_admin(broker.bootstrap)
    assert describe_all(admin) == {"bob": [(SHA256, 16384), (SHA512, 4096)], "frank": [(SHA512, 4096)]}


def test_java_admin(broker, java_classpath, tmp_path):
    classes = compile_java(JAVA_SRC, java_classpath, tmp_path / "classes")
    run_java_main(classes, "JavaScramAdminTest", broker.bootstrap)
    # What the Java client wrote, librdkafka reads.
    assert describe_all(ck_admin(broker.bootstrap)) == {
        "jalice": [(SHA512, 10000)], "jbob": [(SHA512, 4096)]}


def test_configs_tool_for_users(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    r = tool("configs", *b, "--alter", "--entity-type", "users", "--entity-name", "alice",
             "--add-config", "SCRAM-SHA-256=[iterations=8192,password=alice-secret],SCRAM-SHA-512=[password=alice-secret]")
    assert r.stdout == "Completed updating config for user alice.\n"
    r = tool("configs", *b, "--describe", "--entity-type", "users", "--entity-name", "alice")
    assert r.stdout == ("SCRAM credential configs for user-principal 'alice' are "
                        "SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096\n")
    tool("configs", *b, "--alter", "--entity-type", "users", "--entity-name", "bob",
         "--add-config", "SCRAM-SHA-512=[password=bob-secret]")
    r = tool("configs", *b, "--alter", "--entity-type", "users", "--entity-name", "alice",
             "--delete-config", "SCRAM-SHA-512")
    assert r.stdout == "Completed updating config for user alice.\n"
    r = tool("configs", *b, "--describe", "--entity-type", "users")
    assert r.stdout == (
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192\n"
        "SCRAM credential configs for user-principal 'bob' are SCRAM-SHA-512=iterations=4096\n")
    # A user without credentials prints nothing, as in Kafka.
    r = tool("configs", *b, "--describe", "--entity-type", "users", "--entity-name", "nobody")
    assert r.stdout == ""
    # The broker's refusal is the tool's error.
    r = tool("configs", *b, "--alter", "--entity-type", "users", "--entity-name", "alice",
             "--add-config", "SCRAM-SHA-256=[iterations=100,password=x]", check=False)
    assert r.returncode != 0 and "Too few iterations" in r.stderr, r.stderr
    r = tool("configs", *b, "--alter", "--entity-type", "users", "--entity-name", "alice",
             "--delete-config", "SCRAM-SHA-512", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr
    # A quota key is a client quota (test_quotas.py); describing the user
    # shows both, as kafka-configs.sh does.
    tool("configs", *b, "--alter", "--entity-type", "users", "--entity-name", "alice",
         "--add-config", "producer_byte_rate=1024")
    r = tool("configs", *b, "--describe", "--entity-type", "users", "--entity-name", "alice")
    assert r.stdout == ("Quota configs for user-principal 'alice' are producer_byte_rate=1024.0\n"
                        "SCRAM credential configs for user-principal 'alice' are "
                        "SCRAM-SHA-256=iterations=8192\n"), r.stdout
    # librdkafka sees what the tool wrote.
    assert describe_all(ck_admin(broker.bootstrap)) == {
        "alice": [(SHA256, 8192)], "bob": [(SHA512, 4096)]}


def test_storage_format_add_scram(tmp_path):
    node = Broker(tmp_path)
    props = tmp_path / "server.properties"
    props.write_text(f"node.id=1\nlog.dirs={node.log_dir}\n")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    tool("storage", "format", "-t", cluster_id, "-c", str(props),
         "--add-scram", "SCRAM-SHA-256=[name=admin,password=admin-secret]",
         "--add-scram", "SCRAM-SHA-512=[name=admin,iterations=8192,password=admin-secret]",
         "-S", "SCRAM-SHA-512=[name=alice,password=alice-secret,salt=c2FsdHlzYWx0]")
    assert (node.log_dir / "bootstrap.checkpoint").exists()
    r = tool("storage", "format", "-t", cluster_id, "-c", str(props),
             "--add-scram", "SCRAM-SHA-1=[name=admin,password=x]", check=False)
    assert r.returncode != 0
    node.start()
    try:
        assert describe_all(ck_admin(node.bootstrap)) == {
            "admin": [(SHA256, 4096), (SHA512, 8192)], "alice": [(SHA512, 4096)]}
        stored, _ = expected_keys(b"alice-secret", b"saltysalt", 4096, "sha512")
        assert f'"stored_key":"{stored}"'.encode() in metadata_log_bytes(node.log_dir)
        r = tool("configs", "--bootstrap-server", node.bootstrap, "--describe",
                 "--entity-type", "users", "--entity-name", "admin")
        assert r.stdout == ("SCRAM credential configs for user-principal 'admin' are "
                            "SCRAM-SHA-256=iterations=4096, SCRAM-SHA-512=iterations=8192\n")
        # The bootstrap is applied once: a restart does not add it again.
        tool("configs", "--bootstrap-server", node.bootstrap, "--alter", "--entity-type", "users",
             "--entity-name", "admin", "--delete-config", "SCRAM-SHA-512")
        node.restart()
        assert describe_all(ck_admin(node.bootstrap)) == {
            "admin": [(SHA256, 4096)], "alice": [(SHA512, 4096)]}
    finally:
        if node.running():
            assert node.stop() == 0, node.report()


def test_cluster_alter_through_a_follower(cluster):
    """In a 3-node cluster a change sent to a node that is not the active
    controller is forwarded to it; every node then describes it, also after
    the controller is gone."""
    leader = cluster.active_controller()
    follower = next(n for n in cluster.nodes if n.id != leader)
    assert alter(ck_admin(follower.bootstrap), [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(SHA256, 8192), b"alice-secret"),
    ]) == {"alice": None}
    for node in cluster.nodes:
        wait_for(lambda: describe_one(ck_admin(node.bootstrap), "alice") == [(SHA256, 8192)],
                 30, f"alice's credential on node {node.id}")
    cluster.node(leader).kill9()
    survivor = next(n for n in cluster.nodes if n.id != leader)
    # A retry after a lost answer finds the credential already gone.
    wait_for(lambda: alter(ck_admin(survivor.bootstrap), [UserScramCredentialDeletion("alice", SHA256)])
             in ({"alice": None}, {"alice": "RESOURCE_NOT_FOUND"}),
             60, "a deletion through a new active controller")
    for node in cluster.live_nodes():
        wait_for(lambda: describe_one(ck_admin(node.bootstrap), "alice") == "RESOURCE_NOT_FOUND",
                 30, f"alice's deletion on node {node.id}")
