"""/metrics, /readyz and the Grafana dashboard, scraped with prometheus_client's
parsers (Prometheus text 0.0.4 and OpenMetrics) against a real gregor process,
under a confluent-kafka workload. One invariant per test:

- records in = records produced, per topic and in total; bytes in/out and the
  Produce/Fetch request counters move with the workload;
- the lag series equal what `gregor consumer-groups --describe` prints for a
  group with committed offsets;
- `gregor.metrics.partition.level=false` drops the per-partition series and
  keeps the per-topic ones;
- OpenMetrics is served when asked for (ends with `# EOF`, parses);
- every metric the Grafana dashboard (grafana/gregor.json) queries is exposed;
- in a 3-node cluster the leader's under-replicated partitions rise when a
  follower is SIGKILLed;
- a failing request moves ErrorsPerSec of its API and error code by exactly 1;
- the rebalance counter moves when a second consumer joins a group;
- leader and partition counts move by the partitions created;
- the log cleaner's series move after a compacted topic is cleaned.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from cluster_util import cluster, cluster_factory, run_tool, wait_for  # noqa: F401 - fixtures

HTTP_RE = re.compile(r"^gregor: http listening on http://(\S+)$")
HTTP = {"http.listeners": "http://127.0.0.1:0"}
DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "gregor.json"
TIMEOUT = 30.0

pytestmark = pytest.mark.timeout(180)


def http_addr(stdout_lines: list[str]) -> str:
    """The HTTP listener's address, from the broker's stdout."""
    def found():
        for line in stdout_lines:
            m = HTTP_RE.match(line)
            if m:
                return m.group(1)
        return None
    return wait_for(found, TIMEOUT, "the `gregor: http listening on` line")


def get(addr: str, path: str, accept: str | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://{addr}{path}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(addr: str) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value."""
    status, kind, text = get(addr, "/metrics")
    assert status == 200, text
    assert kind.startswith("text/plain; version=0.0.4"), kind
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, default: float | None = None, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        if default is not None:
            return default
        known = sorted({n for n, _ in samples})
        raise AssertionError(f"no sample {name}{labels}; series named like it: "
                             f"{[k for k in samples if k[0] == name][:20]} (names: {known[:200]})")
    return samples[key]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(TIMEOUT)


def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> int:
    """Produces the given number of records to each partition; returns their value bytes."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    size = 0
    for partition, n in per_partition.items():
        for i in range(n):
            v = f"value-{partition}-{i}".encode()
            size += len(v)
            p.produce(topic, value=v, partition=partition)
    assert p.flush(TIMEOUT) == 0, "records left unacknowledged"
    return size


def consume_all(bootstrap: str, topic: str, group: str, expect: int) -> Consumer:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + TIMEOUT
    while got < expect:
        assert time.monotonic() < deadline, f"consumed {got} of {expect}"
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    return c


@pytest.mark.broker_overrides(HTTP)
def test_counters_move_by_the_records_produced(broker, topic):
    addr = http_addr(broker.stdout_lines)
    create_topic(broker.bootstrap, topic, 2)
    before = scrape(addr)
    total_before = value(before, "kafka_server_brokertopicmetrics_messagesin_total")
    produce_before = value(before, "kafka_network_requestmetrics_requests_total", 0, request="Produce")
    value_bytes = produce(broker.bootstrap, topic, {0: 30, 1: 12})
    after = scrape(addr)
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 42
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total") - total_before == 42
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic) > value_bytes
    assert value(after, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic=topic) == 0
    assert value(after, "kafka_network_requestmetrics_requests_total", request="Produce") > produce_before
    assert value(after, "kafka_network_requestmetrics_totaltimems_count", request="Produce") > produce_before
    assert value(after, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") > 0
    # Per partition: the log end offsets.
    assert value(after, "kafka_log_log_logendoffset", topic=topic, partition="0") == 30
    assert value(after, "kafka_log_log_logendoffset", topic=topic, partition="1") == 12
    assert value(after, "kafka_server_replicamanager_underreplicatedpartitions") == 0

    c = consume_all(broker.bootstrap, topic, f"{topic}-g", 42)
    c.close()
    consumed = scrape(addr)
    assert value(consumed, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) >= value_bytes
    assert value(consumed, "kafka_network_requestmetrics_requests_total", request="Fetch") > 0
    # Nothing new produced: still exactly the records produced.
    assert value(consumed, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 42
    assert value(consumed, "kafka_server_socket_server_metrics_connection_creation_total",
                 listener="PLAINTEXT") > 0


@pytest.mark.broker_overrides(HTTP)
def test_lag_equals_the_consumer_groups_tool(broker, topic):
    addr = http_addr(broker.stdout_lines)
    create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, {0: 10, 1: 7, 2: 4})
    group = f"{topic}-lagging"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 7),
                      TopicPartition(topic, 2, 0)], asynchronous=False)
    c.close()
    out = run_tool(["consumer-groups", "--bootstrap-server", broker.bootstrap,
                    "--describe", "--group", group]).stdout
    tool = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group and cols[1] == topic:
            tool[cols[2]] = (int(cols[3]), int(cols[5]))
    assert set(tool) == {"0", "1", "2"}, out
    samples = scrape(addr)
    for partition, (current, lag) in tool.items():
        labels = {"consumergroup": group, "topic": topic, "partition": partition}
        assert value(samples, "kafka_consumergroup_current_offset", **labels) == current
        assert value(samples, "kafka_consumergroup_lag", **labels) == lag
    assert tool == {"0": (3, 7), "1": (7, 0), "2": (0, 4)}
    assert value(samples, "kafka_consumergroup_lag_sum", consumergroup=group, topic=topic) == 11
    # Lagging partitions have an age; a caught-up one has 0.
    assert value(samples, "kafka_consumergroup_lag_seconds", consumergroup=group, topic=topic,
                 partition="1") == 0
    assert value(samples, "kafka_consumergroup_lag_seconds", consumergroup=group, topic=topic,
                 partition="0") >= 0
    assert value(samples, "kafka_server_group_coordinator_metrics_group_count",
                 protocol="classic", state="Empty") >= 1


@pytest.mark.broker_overrides({**HTTP, "gregor.metrics.partition.level": "false"})
def test_partition_level_off_keeps_topic_series_only(broker, topic):
    addr = http_addr(broker.stdout_lines)
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, {0: 5, 1: 5})
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-g"})
    c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    c.close()
    samples = scrape(addr)
    assert value(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 10
    assert value(samples, "kafka_consumergroup_lag_sum", consumergroup=f"{topic}-g", topic=topic) == 4
    per_partition = [k for k in samples if ("partition", "0") in k[1] or ("partition", "1") in k[1]]
    assert per_partition == [], per_partition[:10]


@pytest.mark.broker_overrides(HTTP)
def test_openmetrics_and_readyz(broker, topic):
    addr = http_addr(broker.stdout_lines)
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, {0: 3})
    status, kind, text = get(addr, "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert kind.startswith("application/openmetrics-text"), kind
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in om_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert families["kafka_server_brokertopicmetrics_messagesin"].type == "counter"
    assert samples[("kafka_server_brokertopicmetrics_messagesin_total", (("topic", topic),))] == 3
    assert families["kafka_network_requestmetrics_totaltimems"].type == "histogram"
    status, _, text = get(addr, "/readyz")
    assert (status, text) == (200, "ready\n")
    assert get(addr, "/healthz")[0] == 200


def dashboard_metric_names() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
            walk(p.get("panels", []))
    walk(dash["panels"])
    assert exprs, "the dashboard has no queries"
    names = set()
    for e in exprs:
        # Metric names: identifiers not followed by `(` (functions), not label
        # names inside {} or by()/without(), not PromQL keywords.
        e = re.sub(r"\{[^}]*\}", "", e)
        e = re.sub(r"\b(by|without)\s*\([^)]*\)", "", e)
        e = re.sub(r"\[[^\]]*\]", "", e)
        for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
            word = m.group(0)
            rest = e[m.end():].lstrip()
            if rest.startswith("(") or word in {"by", "without", "on", "ignoring", "le", "bool", "and",
                                                "or", "unless", "offset"}:
                continue
            names.add(word)
    return names


@pytest.mark.broker_overrides(HTTP)
def test_dashboard_queries_only_exposed_series(broker, topic):
    addr = http_addr(broker.stdout_lines)
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, {0: 3})
    c = consume_all(broker.bootstrap, topic, f"{topic}-g", 3)
    c.commit(asynchronous=False)
    c.close()
    _, _, text = get(addr, "/metrics")
    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed.add(family.name)
        exposed.update(s.name for s in family.samples)
    missing = sorted(n for n in dashboard_metric_names() if n not in exposed)
    assert missing == [], f"the dashboard queries series /metrics does not expose: {missing}"


def test_under_replicated_partitions_rise_when_a_follower_dies(cluster_factory, topic):
    c = cluster_factory(3, overrides=HTTP)
    c.create_topic(topic, partitions=1, rf=3)
    leader = c.wait_for_leader(topic, 0)
    addr = http_addr(c.node(leader).stdout_lines)

    def urp():
        s = scrape(addr)
        return (value(s, "kafka_server_replicamanager_underreplicatedpartitions"),
                value(s, "kafka_cluster_partition_underreplicated", 0, topic=topic, partition="0"))
    wait_for(lambda: urp() == (0, 0), TIMEOUT, "no under-replicated partition before the fault")
    follower = next(i for i in (1, 2, 3) if i != leader and i != c.active_controller())
    c.node(follower).kill9()
    wait_for(lambda: urp()[0] >= 1 and urp()[1] == 1, TIMEOUT,
             f"the leader (node {leader}) to report {topic}-0 under-replicated after node {follower} died",
             on_timeout=lambda: str(urp()))
    s = scrape(addr)
    assert value(s, "kafka_cluster_partition_insyncreplicascount", topic=topic, partition="0") == 2
    assert value(s, "kafka_server_replicamanager_isrshrinks_total") >= 1


@pytest.mark.broker_overrides(HTTP)
def test_errors_per_api_and_code(broker, topic):
    addr = http_addr(broker.stdout_lines)
    name = "kafka_network_requestmetrics_errors_total"
    before = scrape(addr)
    exists = value(before, name, 0, request="CreateTopics", error="TOPIC_ALREADY_EXISTS")
    created = value(before, name, 0, request="CreateTopics", error="NONE")
    create_topic(broker.bootstrap, topic, 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT)
    assert err.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    after = scrape(addr)
    assert value(after, name, request="CreateTopics", error="TOPIC_ALREADY_EXISTS") - exists == 1
    # The successful creation was counted too, once, as Kafka's errorCounts (NONE).
    assert value(after, name, request="CreateTopics", error="NONE") - created == 1
    # Every API is counted, not only Produce and Fetch.
    assert value(after, name, request="Metadata", error="NONE") > 0
    assert value(after, name, request="ApiVersions", error="NONE") > 0


def assigned(c: Consumer) -> bool:
    c.poll(0.1)
    return len(c.assignment()) > 0


@pytest.mark.broker_overrides(HTTP)
def test_rebalance_counter_moves_when_a_consumer_joins(broker, topic):
    addr = http_addr(broker.stdout_lines)
    create_topic(broker.bootstrap, topic, 2)
    name = "kafka_server_group_coordinator_metrics_group_rebalance_total"
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-g",
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 200}
    first = Consumer(conf)
    first.subscribe([topic])
    wait_for(lambda: assigned(first), TIMEOUT, "the first consumer's assignment")
    one = value(scrape(addr), name)
    assert one >= 1
    second = Consumer(conf)
    second.subscribe([topic])
    try:
        # Both poll (the first must rejoin) until each owns one partition.
        wait_for(lambda: assigned(first) and assigned(second)
                 and len(first.assignment()) == 1 and len(second.assignment()) == 1,
                 TIMEOUT, "the group to rebalance over two consumers")
        assert value(scrape(addr), name) > one
    finally:
        second.close()
        first.close()


@pytest.mark.broker_overrides(HTTP)
def test_leader_and_partition_counts_follow_created_topics(broker, topic):
    addr = http_addr(broker.stdout_lines)
    before = scrape(addr)
    leaders = value(before, "kafka_server_replicamanager_leadercount")
    partitions = value(before, "kafka_server_replicamanager_partitioncount")
    create_topic(broker.bootstrap, topic, 3)
    create_topic(broker.bootstrap, f"{topic}-b", 2)

    def counts():
        s = scrape(addr)
        return (value(s, "kafka_server_replicamanager_leadercount") - leaders,
                value(s, "kafka_server_replicamanager_partitioncount") - partitions)
    wait_for(lambda: counts() == (5, 5), TIMEOUT, "leader and partition counts to grow by 5",
             on_timeout=lambda: str(counts()))


@pytest.mark.broker_overrides({**HTTP, "log.cleaner.backoff.ms": "200"})
def test_cleaner_series_move_after_a_compaction(broker, topic):
    addr = http_addr(broker.stdout_lines)
    series = ["kafka_log_logcleaner_max_clean_time_secs", "kafka_log_logcleaner_cleaner_recopy_percent",
              "kafka_log_logcleaner_max_buffer_utilization_percent", "kafka_log_logcleaner_deadthreadcount",
              "kafka_log_logcleanermanager_max_dirty_percent",
              "kafka_log_logcleanermanager_time_since_last_run_ms"]
    before = scrape(addr)
    for name in series:
        value(before, name)  # exists
    assert value(before, "kafka_log_logcleaner_cleaner_recopy_percent") == 0
    assert value(before, "kafka_log_logcleaner_deadthreadcount") == 0
    uncleanable = [v for (n, _), v in before.items()
                   if n == "kafka_log_logcleanermanager_uncleanable_partitions_count"]
    assert uncleanable and all(v == 0 for v in uncleanable), uncleanable
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "1048576",
        "min.cleanable.dirty.ratio": "0.01"})])[topic].result(TIMEOUT)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for rnd in range(6):
        for k in range(50):
            p.produce(topic, key=f"key-{k}".encode(), value=f"r{rnd}-".encode() + b"y" * 4000)
    assert p.flush(TIMEOUT) == 0  # ~1.2 MB: closed segments to clean

    def cleaned():
        s = scrape(addr)
        return s if value(s, "kafka_log_logcleaner_cleaner_recopy_percent") > 0 else None
    after = wait_for(cleaned, 60, "the cleaner to compact the topic")
    # Most records were superseded: far less written than read.
    assert 0 < value(after, "kafka_log_logcleaner_cleaner_recopy_percent") < 100
    assert value(after, "kafka_log_logcleaner_max_buffer_utilization_percent") > 0
    assert value(after, "kafka_log_logcleaner_deadthreadcount") == 0
