"""Lazy segment open and the bound on open segment files (gregor.log.max.open.segments),
seen from a real client: a topic with many small segments, a clean restart, and a read of
everything from offset 0 through confluent-kafka while the broker keeps at most the cap's
worth of segments (active ones included) open. Also the start-up check of the open-file limit.
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer

from compat_util import Rec, assert_same_records, ck_create_topic, consume_ck
from conftest import gregor_bin

CAP = 4
PARTITIONS = 2
PER_PARTITION = 600  # x 10 KB incompressible values: ~6 MB, six 1 MiB segments per partition


def fds_under(pid: int, prefix: Path) -> int:
    """Descriptors of process `pid` open on files whose path starts with `prefix`."""
    prefix = str(prefix.resolve())
    n = 0
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith(prefix):
            n += 1
    return n


def topic_fds(broker, topic: str) -> int:
    return sum(fds_under(broker.proc.pid, broker.log_dir / f"{topic}-{p}") for p in range(PARTITIONS))


@pytest.mark.broker_overrides({"gregor.log.max.open.segments": str(CAP)})
def test_many_segments_read_back_after_clean_restart_under_a_low_cap(broker, topic):
    rnd = random.Random(7)
    ck_create_topic(broker.bootstrap, topic, PARTITIONS, {"segment.bytes": "1048576"})
    recs = [Rec(p, f"k{p}-{i}".encode(), rnd.randbytes(10_000), ())
            for p in range(PARTITIONS) for i in range(PER_PARTITION)]
    prod = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                     "batch.num.messages": 20})
    errors = []
    for r in recs:
        prod.produce(topic, value=r.value, key=r.key, partition=r.partition,
                     on_delivery=lambda err, msg: err and errors.append(err))
        prod.poll(0)
    assert prod.flush(60) == 0
    assert not errors, errors[:5]
    inactive = sum(len(list((broker.log_dir / f"{topic}-{p}").glob("*.log"))) - 1
                   for p in range(PARTITIONS))
    assert inactive > 2 * CAP, f"only {inactive} inactive segments"
    # While writing, open segments (active ones included) were bounded by the cap (plus
    # the segments in use when the cache last closed some, at most one per partition).
    assert topic_fds(broker, topic) <= 3 * (CAP + PARTITIONS)

    broker.restart()
    # A clean restart opens no segment, not even the active ones.
    assert topic_fds(broker, topic) == 0

    expected = {p: PER_PARTITION for p in range(PARTITIONS)}
    got = consume_ck(broker.bootstrap, topic, expected, extra_conf={"fetch.max.bytes": 1 << 20})
    assert_same_records(recs, got, PARTITIONS, what="from offset 0 after a clean restart")
    assert topic_fds(broker, topic) <= 3 * (CAP + PARTITIONS)
    # A second pass reopens the segments the cap closed.
    got = consume_ck(broker.bootstrap, topic, expected)
    assert_same_records(recs, got, PARTITIONS, what="second read")
    assert topic_fds(broker, topic) <= 3 * (CAP + PARTITIONS)


def test_too_low_open_file_limit_is_a_clear_start_up_error(tmp_path):
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    cmd = [str(gregor_bin()), "server",
           "--override", "listeners=PLAINTEXT://127.0.0.1:0",
           "--override", f"log.dirs={tmp_path / 'data'}"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                          preexec_fn=low_limit, cwd=tmp_path)
    assert proc.returncode != 0
    err = proc.stderr.decode(errors="replace")
    assert "open-file limit (ulimit -n) is 256 (hard limit 256)" in err, err[-2000:]
    assert "needs at least" in err, err[-2000:]
