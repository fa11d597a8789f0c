"""The cluster fault suite's short set (in CI): one test per fault, each with a
fixed seed from which the victims are drawn, on a 3-node cluster (combined
broker + controller nodes, cluster_util's harness through fault_util's
FaultCluster).

Every test runs the same two workloads: cluster_util's idempotent acks=all
SeqProducer on an RF 3 topic with 3 partitions and min.insync.replicas=2,
watched from a side thread (high watermarks and leader epochs from every
node), and fault_util's TxnWorkload, a transactional producer committing (and,
every fifth, aborting) transactions of 2-4 records on a second such topic,
judged after the run under read_committed (committed ones whole, aborted ones
invisible, every one all-or-nothing, the last stable offset reaching the high
watermark). It injects its fault, heals it, waits for more acknowledgements, stops
the workload, waits for every ISR to be full again and checks every invariant
of docs/RELIABILITY.md that applies to a cluster (see fault_util's table):
a test fails on any violated invariant, with the failing checks' messages, the
run's events and the nodes' relevant stderr lines in its report (the nodes'
full stderr tails are attached by conftest's report hook).

The faults: (a) kill -9 of a partition leader, (b) of a follower, (c) of the
active controller; (d) SIGSTOP of a leader for several session timeouts, then
SIGCONT; (e) a network partition of a leader (each node in its own network
namespace, needs root); (f) every node SIGTERMed at once and started again;
(g) a rolling restart with SIGTERM; (h) the disk under a leader's log dir
(and metadata log) filling up: it halts as Kafka does, and restarts once
there is room (each node's dir on a tmpfs, needs root). The long mode (random schedules of these
faults, 100+ runs) is scripts/fault-suite.sh, not part of CI.

    GREGOR_BIN=target/debug/gregor .test-deps/venv/bin/pytest tests/compat/test_cluster_faults.py -q

With GREGOR_FAULT_KEEP=DIR a failing test's node dirs (logs, stderr of every
incarnation) and evidence.txt are copied to DIR (pytest keeps only its last
three base temp dirs).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from fault_util import TMPFS_MB, FaultCluster, FaultRun, netns_unavailable, sparing

# A cluster start, one fault with its heal, a full read-back and the checks;
# every wait inside is bounded well below this.
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def faulty(request, tmp_path):
    """`make(netns=False)` starts a FaultCluster, closed at teardown (cuts healed,
    processes stopped, namespaces and links deleted, even on failure)."""
    made: list[FaultCluster] = []

    def make(netns: bool = False, tmpfs_mb: int | None = None) -> FaultCluster:
        if netns:
            why = netns_unavailable()
            if why:
                pytest.skip(why)
        if tmpfs_mb and os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        c = FaultCluster(tmp_path / f"cluster{len(made) + 1}", 3, netns=netns, tmpfs_mb=tmpfs_mb)
        made.append(c)
        request.node._gregor_brokers = getattr(request.node, "_gregor_brokers", []) + c.nodes
        return c.start()

    yield make
    for c in made:
        for p in c.close():
            print(f"teardown: {p}")


def _run(cluster: FaultCluster, topic: str, seed: int, *faults: str | tuple[str, dict],
         assignment: list[list[int]] | None = None) -> None:
    t0 = time.monotonic()
    run = FaultRun(cluster, topic, seed, log=print)
    try:
        run.start(assignment)
        for f in faults:
            name, kw = (f, {}) if isinstance(f, str) else f
            run.inject(name, **kw)
        checks = run.finish()
    finally:
        run.stop()
    print(f"\nseed {seed}, faults {run.faults_done}, acked {len(run.producer.acks)}, "
          f"stall {max(run.stalls, default=float('nan')):.2f}s, {time.monotonic() - t0:.1f}s")
    for c in checks:
        print(f"  {c.line()}")
    for n in run.notes:
        print(f"  note: {n}")
    failed = [c for c in checks if not c.passed_or_known]
    known = [c for c in checks if not c.ok and c.known]
    keep = os.environ.get("GREGOR_FAULT_KEEP")
    if (failed or known) and keep:  # pytest keeps only its last 3 base temp dirs
        dest = Path(keep) / f"{topic}-seed{seed}"
        try:  # the nodes still run; indexes are preallocated (sparse) and rebuilt anyway
            shutil.copytree(cluster.work_dir, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.index", "*.timeindex"))
        except shutil.Error as e:
            print(f"  copying {cluster.work_dir}: {str(e)[:300]}")
        (dest / "evidence.txt").write_text("\n".join(c.line() for c in checks) + "\n\n" + run.evidence(checks))
        print(f"  node dirs and evidence copied to {dest}")
    assert not failed, ("invariants violated:\n" + "\n".join(c.line() for c in failed)
                        + "\n\n" + run.evidence(checks))
    if known:  # every other check held; this one failed as a reported broker bug does
        pytest.xfail("; ".join(c.line() for c in known))


def test_a_leader_kill9(faulty, topic):
    _run(faulty(), topic, 101, "leader-kill9")


def test_b_follower_kill9(faulty, topic):
    """A pure follower: a node that is neither the active controller nor the
    leader of any partition (the topic's assignment spares it)."""
    cluster = faulty()
    controller = cluster.active_controller()
    victim = min(n.id for n in cluster.nodes if n.id != controller)
    _run(cluster, topic, 202, ("follower-kill9", {"victim": victim}),
         assignment=sparing([n.id for n in cluster.nodes], victim))


def test_c_controller_kill9(faulty, topic):
    _run(faulty(), topic, 303, "controller-kill9")


def test_d_leader_sigstop(faulty, topic):
    """Frozen past the session timeout: fenced (its partitions get new leaders),
    acks none of the writes sent to it meanwhile, and after SIGCONT rejoins every
    ISR with a log identical to the leader's (truncated if it had diverged)."""
    _run(faulty(), topic, 404, "leader-sigstop")


def test_e_network_partition_of_leader(faulty, topic):
    """As (d), with the leader running but cut off (its veth down)."""
    _run(faulty(netns=True), topic, 505, ("partition", {"leader": True}))


def test_f_restart_all(faulty, topic):
    _run(faulty(), topic, 606, "restart-all")


def test_g_rolling_restart(faulty, topic):
    _run(faulty(), topic, 707, "rolling-restart")


def test_h_disk_full(faulty, topic):
    """A leader's disk fills up: it halts (exit 1), its partitions get new
    leaders with no acknowledged record lost, and with room again it recovers
    the log it was writing and rejoins every ISR."""
    _run(faulty(tmpfs_mb=TMPFS_MB), topic, 808, "disk-full")
