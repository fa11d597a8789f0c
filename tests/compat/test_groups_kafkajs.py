"""Consumer groups (classic protocol) with kafkajs 2.2.4 (JoinGroup v5, SyncGroup v3,
OffsetCommit/OffsetFetch, DescribeGroups, ListGroups, DeleteGroups), driven by
node/kafkajs_group_test.js: two consumers of one group split the partitions, consume
everything exactly once, autoCommit after each batch; admin describeGroups /
listGroups / fetchOffsets / setOffsets / deleteGroups.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from compat_util import run_node_driver

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "kafkajs_group_test.js"
FAST = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}


def run_node(*args: str, timeout: float = 100) -> dict:
    return run_node_driver(SCRIPT, *args, timeout=timeout)


@pytest.mark.broker_overrides(FAST)
def test_two_member_group(broker, topic):
    partitions, per = 4, 30
    group = f"g-{topic}"
    res = run_node(broker.bootstrap, topic, group, str(partitions), str(per))

    # The two consumers split the partitions 2 + 2, disjoint.
    a, b = (frozenset(x) for x in res["assignments"])
    assert len(a) == len(b) == 2 and a | b == frozenset(range(partitions)), res["assignments"]
    for joins in res["joins"]:
        assert all(j["groupProtocol"] == "RoundRobinAssigner" for j in joins), joins
    assert [s["errorCode"] for s in res["sent"]] == [0] * partitions
    assert [s["baseOffset"] for s in res["sent"]] == ["0"] * partitions

    # Every record exactly once, by the member that owns its partition.
    seen = Counter((c["partition"], c["offset"]) for c in res["consumed"])
    want = {(p, o) for p in range(partitions) for o in range(per)}
    dups = [k for k, n in seen.items() if n > 1]
    assert not dups, f"records consumed twice: {sorted(dups)[:20]}"
    assert set(seen) == want, f"missing {sorted(want - set(seen))[:20]}, extra {sorted(set(seen) - want)[:20]}"
    owners = (a, b)
    for c in res["consumed"]:
        assert c["partition"] in owners[c["member"]], c
        i = c["offset"] * partitions + c["partition"]
        assert c["value"] == f"value-{i}", c

    # DescribeGroups while both run.
    wr = res["whileRunning"]
    assert (wr["groupId"], wr["state"], wr["protocolType"], wr["protocol"], wr["errorCode"]) == (
        group, "Stable", "consumer", "RoundRobinAssigner", 0), wr
    assert len(wr["members"]) == 2
    assert sorted(sorted(m["assignment"][topic]) for m in wr["members"]) == sorted([sorted(a), sorted(b)]), wr
    assert {m["memberId"] for m in wr["members"]} == {res["joins"][0][-1]["memberId"], res["joins"][1][-1]["memberId"]}
    for m in wr["members"]:
        assert m["clientId"] == "gregor-compat-kafkajs-group" and m["clientHost"] == "/127.0.0.1", m
        assert m["subscription"] == [topic], m
    assert res["offsetsWhileRunning"] == [[p, per] for p in range(partitions)]

    # After both disconnected (LeaveGroup): Empty, offsets kept.
    ad = res["afterDisconnect"]
    assert (ad["state"], ad["members"], ad["errorCode"]) == ("Empty", [], 0), ad
    assert res["listed"] == [{"groupId": group, "protocolType": "consumer"}]
    # kafkajs reports an empty metadata string as null (`metadata || null` in admin.fetchOffsets).
    assert res["fetched"] == [{"topic": topic, "partitions": [[p, per, None] for p in range(partitions)]}]
    assert res["afterSet"] == [[0, 3]] + [[p, per] for p in range(1, partitions)]
    assert res["deleted"] == [{"groupId": group, "errorCode": 0}]
    assert res["listedAfterDelete"] == []
