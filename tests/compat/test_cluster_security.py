"""A 3-node cluster whose own links are secured: the inter-broker listener
(replica fetches, transaction markers) and the controller listener (Raft,
broker registration and heartbeats) over SSL with client certificates, or
over SASL (SCRAM-SHA-512 on SASL_SSL between brokers, PLAIN on
SASL_PLAINTEXT to the controllers).

Each node runs four listeners: PLAINTEXT (the fixtures' probes and the
admin client), BROKER (inter-broker), SSL (the test's producer and
consumer, confluent-kafka) and CONTROLLER. A topic with replication factor
3 and min.insync.replicas=2 must keep all three replicas in sync (so
replication runs over the secured link), survive a kill -9 of its leader
without losing an acknowledged record, and get a new leader. A broker whose
truststore or password is wrong must not join, and its log must say why.

The nodes run Kafka's StandardAuthorizer and name their own principals in
`super.users`, as Kafka users do: brokers and controllers are authorized by
principal (CLUSTER_ACTION), not by the listener they arrive on. A principal
that authenticates on the controller listener but is no super user cannot
join either.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cluster_util import Cluster, Node, free_ports, wait_for
from test_tls import _signed, certs  # noqa: F401 - the session's CA and certificates

RECORDS = 200
DEADLINE_S = 60.0
BROKER_PASSWORD = "broker-secret"
CONTROLLER_PASSWORD = "controller-secret"
INTRUDER_PASSWORD = "intruder-secret"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def _authorizer(*principals: str) -> dict[str, str]:
    """The authorizer with the nodes' own principals as super users, and
    User:ANONYMOUS: the PLAINTEXT listener's admin and probes, and the SSL
    listener's clients (no client certificate there)."""
    return {"authorizer.class.name": AUTHORIZER,
            "super.users": ";".join(["User:ANONYMOUS", *principals])}


def _listeners(node: Node, protocol_map: str) -> dict[str, str]:
    broker_port, ssl_port = node.extra_ports
    return {
        "listeners": (f"PLAINTEXT://127.0.0.1:{node.kafka_port},BROKER://127.0.0.1:{broker_port},"
                      f"SSL://127.0.0.1:{ssl_port},CONTROLLER://127.0.0.1:{node.controller_port}"),
        "advertised.listeners": (f"PLAINTEXT://127.0.0.1:{node.kafka_port},BROKER://127.0.0.1:{broker_port},"
                                 f"SSL://127.0.0.1:{ssl_port}"),
        "listener.security.protocol.map": protocol_map,
        "inter.broker.listener.name": "BROKER",
    }


def _tls(certs: Path, truststore: str = "ca.pem") -> dict[str, str]:
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / truststore),
    }


def mtls_node(certs: Path, truststore: str = "ca.pem"):
    def overrides(node: Node) -> dict[str, str]:
        return {
            **_listeners(node, "PLAINTEXT:PLAINTEXT,BROKER:SSL,SSL:SSL,CONTROLLER:SSL"),
            **_tls(certs, truststore),
            # The cluster's links demand a certificate; the client SSL listener does not.
            "listener.name.broker.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            # Every node presents server-keystore.pem (CN=localhost) on its links.
            **_authorizer("User:CN=localhost"),
        }
    return overrides


def sasl_node(certs: Path, controller_password: str = CONTROLLER_PASSWORD, controller_user: str = "controller"):
    def overrides(node: Node) -> dict[str, str]:
        return {
            **_listeners(node, "PLAINTEXT:PLAINTEXT,BROKER:SASL_SSL,SSL:SSL,CONTROLLER:SASL_PLAINTEXT"),
            **_tls(certs),
            "listener.name.broker.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.broker.scram-sha-512.sasl.jaas.config":
                'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="broker" password="{BROKER_PASSWORD}";',
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                'org.apache.kafka.common.security.plain.PlainLoginModule required '
                f'username="{controller_user}" password="{controller_password}" '
                f'user_controller="{CONTROLLER_PASSWORD}" user_intruder="{INTRUDER_PASSWORD}";',
            **_authorizer("User:broker", "User:controller"),
        }
    return overrides


SCRAM_FORMAT = ["--add-scram", f"SCRAM-SHA-512=[name=broker,password={BROKER_PASSWORD}]"]


@pytest.fixture
def make_cluster(request, tmp_path):
    made: list[Cluster] = []

    def make(node_overrides, format_args=()) -> Cluster:
        c = Cluster(tmp_path / f"cluster{len(made)}", n=3, node_overrides=node_overrides, extra_ports=2,
                    format_args=list(format_args),
                    overrides={"min.insync.replicas": "2", "num.partitions": "1"})
        made.append(c)
        # The nodes' logs are attached to a failure report (conftest).
        request.node._gregor_brokers = getattr(request.node, "_gregor_brokers", []) + c.nodes
        return c.start()

    yield make
    problems = []
    for c in made:
        problems += c.stop()
    crashed = [p for p in problems if "on its own" in p]
    assert not crashed, "\n".join(crashed)


def ssl_conf(certs: Path, nodes: list[Node]) -> dict:
    return {
        "bootstrap.servers": ",".join(f"127.0.0.1:{n.extra_ports[1]}" for n in nodes),
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs / "ca.pem"),
        "socket.timeout.ms": 10000,
    }


def produce_acked(conf: dict, topic: str, n: int) -> set[bytes]:
    from confluent_kafka import Producer
    p = Producer({**conf, "acks": "all", "enable.idempotence": True, "message.timeout.ms": 30000})
    acked: set[bytes] = set()
    errors: list[str] = []

    def cb(err, msg):
        if err is None:
            acked.add(msg.value())
        else:
            errors.append(str(err))
    for i in range(n):
        p.produce(topic, str(i).encode(), callback=cb)
        p.poll(0)
    assert p.flush(45) == 0, "records still in flight"
    assert not errors, errors
    return acked


def consume_all(conf: dict, topic: str, want: set[bytes]) -> set[bytes]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({**conf, "group.id": f"check-{time.monotonic_ns()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    seen: set[bytes] = set()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not want <= seen and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                seen.add(m.value())
    finally:
        c.close()
    return seen


def replicate_and_fail_over(cluster: Cluster, certs: Path) -> None:
    topic = "secured-links"
    cluster.create_topic(topic, partitions=1, rf=3, config={"min.insync.replicas": "2"})
    acked = produce_acked(ssl_conf(certs, cluster.live_nodes()), topic, RECORDS)
    assert len(acked) == RECORDS
    # Every follower fetched over the secured inter-broker listener.
    wait_for(lambda: sorted(cluster.describe(topic)[0].isr) == [1, 2, 3], DEADLINE_S,
             "the ISR to hold all three replicas")
    leader = cluster.wait_for_leader(topic, 0)
    cluster.node(leader).kill9()
    new_leader = cluster.wait_for_leader(topic, 0, not_in=(leader,), timeout=DEADLINE_S)
    assert new_leader != leader
    live = cluster.live_nodes()
    seen = consume_all(ssl_conf(certs, live), topic, acked)
    assert acked <= seen, f"acknowledged records lost: {sorted(acked - seen)[:10]}"
    # The new leader takes writes (two in-sync replicas remain).
    more = produce_acked(ssl_conf(certs, live), topic, 10)
    assert len(more) == 10


def test_mtls_inter_broker_and_controller(make_cluster, certs):  # noqa: F811
    cluster = make_cluster(mtls_node(certs))
    replicate_and_fail_over(cluster, certs)


def test_sasl_inter_broker_and_controller(make_cluster, certs):  # noqa: F811
    cluster = make_cluster(sasl_node(certs), SCRAM_FORMAT)
    replicate_and_fail_over(cluster, certs)


def _broker_only(node: Node, props: dict[str, str]) -> dict[str, str]:
    broker_port, ssl_port = node.extra_ports
    props = dict(props)
    props["listeners"] = (f"PLAINTEXT://127.0.0.1:{node.kafka_port},BROKER://127.0.0.1:{broker_port},"
                          f"SSL://127.0.0.1:{ssl_port}")
    return props


@pytest.mark.parametrize("kind", ["wrong-truststore", "wrong-password", "not-a-super-user"])
def test_broker_with_wrong_credentials_cannot_join(make_cluster, certs, kind):  # noqa: F811
    # Whose log says why: node 4's own, or (refused after authenticating) a controller's.
    said_by_controller = False
    if kind == "wrong-truststore":
        cluster = make_cluster(mtls_node(certs))
        bad = mtls_node(certs, truststore="other-ca.pem")
        expect = "TLS handshake"
    elif kind == "wrong-password":
        cluster = make_cluster(sasl_node(certs), SCRAM_FORMAT)
        bad = sasl_node(certs, controller_password="not-the-password")
        expect = "SASL/PLAIN authentication"
    else:
        # A valid login that the authorizer does not let act as a broker.
        cluster = make_cluster(sasl_node(certs), SCRAM_FORMAT)
        bad = sasl_node(certs, controller_user="intruder", controller_password=INTRUDER_PASSWORD)
        expect = "User:intruder is not authorized for CLUSTER_ACTION on the cluster"
        said_by_controller = True
    node = Node(cluster, 4)
    node.kafka_port, node.controller_port, *node.extra_ports = free_ports(4)
    cluster.node_overrides, good = None, cluster.node_overrides
    try:
        node.write_config({"process.roles": "broker", **_broker_only(node, bad(node))})
        node.format(cluster.cluster_id)
        node.spawn()
        try:
            if said_by_controller:
                wait_for(lambda: any(expect in n.stderr_text(tail=None) for n in cluster.live_nodes()),
                         DEADLINE_S, f"a controller's log to say why node 4 cannot join ({expect!r})",
                         on_timeout=lambda: node.stderr_text())
            else:
                wait_for(lambda: expect in node.stderr_text(tail=None), DEADLINE_S,
                         f"node 4's log to say why it cannot join ({expect!r})",
                         on_timeout=lambda: node.stderr_text())
            # The others keep working, and node 4 never registered.
            leader = cluster.active_controller()
            assert leader in (1, 2, 3)
            cluster.create_topic("after-refusal", partitions=1, rf=3)
            for n in cluster.live_nodes():
                assert 4 not in n.metadata().brokers, f"node {n.id} lists broker 4"
        finally:
            node.expect_exit = True
            node._kill_now()
    finally:
        cluster.node_overrides = good


def _reloads(node: Node) -> int:
    """How many times the node reloaded the TLS side of its outgoing links."""
    return sum(1 for line in node.stderr_text(tail=None).splitlines()
               if "SSL keystore/truststore reloaded" in line and "outgoing links" in line)


def test_mtls_cluster_survives_a_certificate_rotation(make_cluster, certs, tmp_path):  # noqa: F811
    """Every node's keystore is replaced by a certificate from another CA
    (same subject and SANs, as a rotation keeps them), then the old CA is
    dropped from the truststores: links opened afterwards must present the
    new certificate. Killing the leader forces them (followers connect to
    the new leader), and acks=all writes with min.insync.replicas=2 prove
    replication runs over them."""
    d = tmp_path / "rotation"
    d.mkdir()
    _signed(certs, "server-rotated", "/CN=localhost", "other-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    keystore, truststore = d / "keystore.pem", d / "truststore.pem"
    keystore.write_text((certs / "server-keystore.pem").read_text())
    both = d / "both-cas.pem"
    both.write_text((certs / "ca.pem").read_text() + (certs / "other-ca.pem").read_text())
    truststore.write_text(both.read_text())

    def node_overrides(node: Node) -> dict[str, str]:
        return {**mtls_node(certs)(node), "ssl.keystore.location": str(keystore),
                "ssl.truststore.location": str(truststore),
                "gregor.ssl.keystore.reload.interval.ms": "300"}

    cluster = make_cluster(node_overrides)
    conf = lambda nodes: {**ssl_conf(certs, nodes), "ssl.ca.location": str(both)}  # noqa: E731
    topic = "rotated-links"
    cluster.create_topic(topic, partitions=1, rf=3, config={"min.insync.replicas": "2"})
    acked = produce_acked(conf(cluster.live_nodes()), topic, RECORDS)
    wait_for(lambda: sorted(cluster.describe(topic)[0].isr) == [1, 2, 3], DEADLINE_S,
             "the ISR to hold all three replicas")

    def rotate(path: Path, text: str, reloads_before: dict[int, int]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)  # atomically, as certificate managers do
        wait_for(lambda: all(_reloads(n) > reloads_before[n.id] for n in cluster.live_nodes()),
                 DEADLINE_S, f"every node to reload its outgoing links after {path.name} changed")

    rotate(keystore, (certs / "server-rotated-keystore.pem").read_text(),
           {n.id: _reloads(n) for n in cluster.live_nodes()})
    # The old CA is gone: a certificate from it is refused from now on.
    rotate(truststore, (certs / "other-ca.pem").read_text(), {n.id: _reloads(n) for n in cluster.live_nodes()})

    leader = cluster.wait_for_leader(topic, 0)
    cluster.node(leader).kill9()
    cluster.wait_for_leader(topic, 0, not_in=(leader,), timeout=DEADLINE_S)
    live = cluster.live_nodes()
    more = produce_acked(conf(live), topic, 10)
    assert len(more) == 10
    seen = consume_all(conf(live), topic, acked | more)
    assert acked | more <= seen, f"acknowledged records lost: {sorted((acked | more) - seen)[:10]}"
