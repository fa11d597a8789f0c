"""Broker and group configs through confluent-kafka 2.16.1 / librdkafka 2.16.0's
AdminClient, answered as Kafka 4.1 answers them:

- dynamic broker configs follow Kafka's DynamicBrokerConfig: a per-broker
  config (librdkafka's test 0081 sets sasl.kerberos.min.time.before.relogin on
  broker 1) is accepted by IncrementalAlterConfigs and AlterConfigs, and a
  read-only config is refused with INVALID_REQUEST;
- GROUP resources (Kafka 4's group configs) are described with every group
  config and altered within the broker's group.consumer.* bounds (outside them:
  INVALID_CONFIG), and the KIP-848 coordinator applies a group's
  consumer.session.timeout.ms: a killed member expires on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from compat_util import ck_admin, ck_create_topic, wait_until

HERE = Path(__file__).resolve().parent
RELOGIN = "sasl.kerberos.min.time.before.relogin"
SESSION = "consumer.session.timeout.ms"
HEARTBEAT = "consumer.heartbeat.interval.ms"

# The broker-wide KIP-848 session timeout is the longest Kafka allows (60 s) and
# the lower bounds are relaxed, so a group may set a much shorter timeout.
GROUP_BOUNDS = {
    "group.consumer.session.timeout.ms": "60000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "100",
}


def incremental_set(admin, restype, name, key, value):
    res = ConfigResource(restype, name, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    return admin.incremental_alter_configs([res])[res]


def error_of(future):
    with pytest.raises(KafkaException) as e:
        future.result(10)
    err = e.value.args[0]
    return err.name(), err.str()


def describe(admin, restype, name):
    res = ConfigResource(restype, name)
    return admin.describe_configs([res])[res].result(10)


def test_per_broker_config_is_dynamic_like_kafka(broker):
    admin = ck_admin(broker.bootstrap)
    incremental_set(admin, ResourceType.BROKER, "1", RELOGIN, "58000").result(10)
    assert describe(admin, ResourceType.BROKER, "1")[RELOGIN].value == "58000"

    # The legacy API replaces the broker's dynamic configs with this set.
    res = ConfigResource(ResourceType.BROKER, "1", set_config={RELOGIN: "59000"})
    admin.alter_configs([res])[res].result(10)
    entry = describe(admin, ResourceType.BROKER, "1")[RELOGIN]
    assert (entry.value, entry.source) == ("59000", 2)  # DYNAMIC_BROKER_CONFIG
    # (That it cannot be the cluster default is tested in crates/cli/tests/broker_configs.rs:
    # confluent-kafka cannot name the default broker resource "".)


def test_read_only_broker_config_is_refused_like_kafka(broker):
    admin = ck_admin(broker.bootstrap)
    assert error_of(incremental_set(admin, ResourceType.BROKER, "1", "node.id", "7")) == (
        "INVALID_REQUEST", "Cannot update these configs dynamically: Set(node.id)")
    res = ConfigResource(ResourceType.BROKER, "1", set_config={"offsets.topic.num.partitions": "3"})
    assert error_of(admin.alter_configs([res])[res]) == (
        "INVALID_REQUEST", "Cannot update these configs dynamically: Set(offsets.topic.num.partitions)")
    entry = describe(admin, ResourceType.BROKER, "1")["node.id"]
    assert entry.is_read_only and entry.value == "1"


def test_group_configs_describe_and_alter_within_bounds(broker, topic):
    admin = ck_admin(broker.bootstrap)
    group = f"{topic}-g"
    before = describe(admin, ResourceType.GROUP, group)
    assert {SESSION, HEARTBEAT, "share.session.timeout.ms", "share.auto.offset.reset"} <= set(before)
    # Unset: the broker's group.consumer.session.timeout.ms, as DEFAULT_CONFIG.
    assert (before[SESSION].value, before[SESSION].source) == ("45000", 5)

    incremental_set(admin, ResourceType.GROUP, group, SESSION, "50000").result(10)
    after = describe(admin, ResourceType.GROUP, group)
    assert (after[SESSION].value, after[SESSION].source) == ("50000", 8)  # GROUP_CONFIG

    assert error_of(incremental_set(admin, ResourceType.GROUP, group, SESSION, "70000")) == (
        "INVALID_CONFIG",
        "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms")
    assert error_of(incremental_set(admin, ResourceType.GROUP, group, SESSION, "1000")) == (
        "INVALID_CONFIG",
        "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms")
    assert error_of(incremental_set(admin, ResourceType.GROUP, group, "consumer.nope", "1"))[0] == "INVALID_CONFIG"
    assert describe(admin, ResourceType.GROUP, group)[SESSION].value == "50000"


class Member:
    """kip848_member_ck.py in its own process; its JSON events on a queue."""

    def __init__(self, bootstrap, group, topic):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "kip848_member_ck.py"), bootstrap, group, topic],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.mark.broker_overrides(GROUP_BOUNDS)
def test_group_session_timeout_is_applied_to_kip848_members(broker, topic):
    admin = ck_admin(broker.bootstrap)
    ck_create_topic(broker.bootstrap, topic, 2)
    group = f"{topic}-g"
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(SESSION, "3000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry(HEARTBEAT, "500", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(10)

    member = Member(broker.bootstrap, group, topic)
    try:
        wait_until(lambda: any(e["event"] == "assign" and e["partitions"] for e in member.events),
                   30, "the member to be assigned partitions")
        members = lambda: admin.describe_consumer_groups([group])[group].result(10).members  # noqa: E731
        assert len(members()) == 1
        member.kill()
        killed = time.monotonic()
        # The broker-wide session timeout is 60 s: only the group's 3 s lets the
        # member expire within this deadline.
        wait_until(lambda: len(members()) == 0, 20, "the killed member to expire on the group's session timeout")
        assert time.monotonic() - killed < 20
    finally:
        member.kill()
