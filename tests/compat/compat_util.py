"""Shared test data, verification and waiting helpers for the compat tests.

Every client test produces the same kind of deterministic record set (keys,
values, headers, some nulls, binary and large compressible values), reads it
back from the beginning, and compares exactly: per partition, the offsets
must be 0..n-1 and the records equal and in production order.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
DEFAULT_TIMEOUT_S = 60.0

Headers = tuple  # tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Rec:
    """A record as produced (and as it must be read back)."""
    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None  # explicit CreateTime (ms), or None = producer's clock


@dataclass(frozen=True)
class Got:
    """A record as consumed."""
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None
    timestamp_type: str | None = None  # "create" / "log_append" / None when unknown

    def same_content(self, r: Rec) -> bool:
        return (self.partition, self.key, self.value, tuple(self.headers)) == (
            r.partition, r.key, r.value, tuple(r.headers))


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- test data
def make_records(tag: str, partitions: int = 3, per_partition: int = 20, *,
                 null_values: bool = True, binary: bool = True, large: bool = True,
                 null_header_values: bool = False, timestamps: Callable[[int], int] | None = None,
                 ) -> list[Rec]:
    """Deterministic records spread round-robin over `partitions`.

    null_values: include tombstones (value None) and a null key every 10th record.
    binary: include non-UTF-8 bytes in keys, values and header values.
    large: include ~60 KB compressible values (so codecs really compress).
    null_header_values: include a header whose value is null (not every client can send it).
    """
    out = []
    for i in range(partitions * per_partition):
        p = i % partitions
        key: bytes | None = f"key-{tag}-{i}".encode()
        if null_values and i % 10 == 0:
            key = None
        elif i % 10 == 5:
            key = f"ключ-{tag}-{i}-🔑".encode()
        elif binary and i % 10 == 7:
            key = bytes([0, 255, 128, i % 256]) + b"\x00key"

        m = i % 10
        if null_values and m == 1:
            value = None
        elif m == 2:
            value = b""
        elif binary and m == 3:
            value = bytes(range(256)) * 4
        elif large and m == 4 and i % 20 == 4:
            value = (f"{tag}-{i}-compressible-" * 3000).encode()  # ~60-70 KB
        else:
            value = (f"value-{tag}-{i}-" + "x" * (i * 7)).encode()

        h = i % 4
        if h == 0:
            headers: Headers = ()
        elif h == 1:
            headers = (("h1", b"v1"),)
        elif h == 2:
            headers = (("dup", b"a"), ("dup", b"b"), ("empty", b""))
        else:
            headers = (("bin", bytes([0, 255, 1, i % 256]) if binary else b"txt"),
                       ("utf8-ключ", "значение".encode()))
        if null_header_values and i % 8 == 3:
            headers = headers + (("null-value", None),)
        out.append(Rec(p, key, value, headers, timestamps(i) if timestamps else None))
    return out


def text_records(tag: str, partitions: int, per_partition: int) -> list[Rec]:
    """Records expressible on a kcat command line: printable keys/values, no nulls,
    no tabs/newlines; headers with printable values."""
    out = []
    for i in range(partitions * per_partition):
        p = i % partitions
        value = f"value-{tag}-{i}-" + "y" * (i * 11)
        if i % 20 == 4:
            value = f"{tag}-{i}-compressible-" * 3000
        h = i % 3
        headers: Headers = () if h == 0 else ((("h1", b"v1"),) if h == 1 else
                                              (("dup", b"a"), ("dup", b"b"), ("u", "ü".encode())))
        out.append(Rec(p, f"key-{tag}-{i}".encode(), value.encode(), headers))
    return out


def by_partition(recs: Iterable[Rec], partitions: int) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = {p: [] for p in range(partitions)}
    for r in recs:
        out[r.partition].append(r)
    return out


def counts(recs: Iterable[Rec], partitions: int) -> dict[int, int]:
    return {p: len(v) for p, v in by_partition(recs, partitions).items()}


# ---------------------------------------------------------------- TSV exchange format
# One record per line, tab-separated: partition, timestamp or "-", key, value, then
# header name/value pairs. Each bytes field is base64 ("" for empty), or "-" for null.
# Used to hand the same records to the Java and Node.js drivers.
def _b64(b: bytes | None) -> str:
    return "-" if b is None else base64.b64encode(b).decode()


def _unb64(s: str) -> bytes | None:
    return None if s == "-" else base64.b64decode(s)


def write_tsv(path: Path, recs: Iterable[Rec]) -> Path:
    lines = []
    for r in recs:
        f = [str(r.partition), "-" if r.timestamp is None else str(r.timestamp), _b64(r.key), _b64(r.value)]
        for k, v in r.headers:
            f += [_b64(k.encode()), _b64(v)]
        lines.append("\t".join(f))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_tsv(path: Path) -> list[Rec]:
    out = []
    for line in path.read_text().splitlines():
        if not line:
            continue
        f = line.split("\t")
        hs = tuple((_unb64(f[i]).decode(), _unb64(f[i + 1])) for i in range(4, len(f), 2))
        out.append(Rec(int(f[0]), _unb64(f[2]), _unb64(f[3]), hs, None if f[1] == "-" else int(f[1])))
    return out


# ---------------------------------------------------------------- comparison
def _short(b) -> str:
    if b is None:
        return "None"
    if isinstance(b, (bytes, bytearray)) and len(b) > 60:
        return f"{bytes(b[:40])!r}...({len(b)} bytes)"
    return repr(b)


def describe(r) -> str:
    off = f" offset={r.offset}" if isinstance(r, Got) else ""
    return (f"p={r.partition}{off} key={_short(r.key)} value={_short(r.value)} "
            f"headers={[(k, _short(v)) for k, v in r.headers]}")


def assert_same_records(expected: list[Rec], got: dict[int, list[Got]], partitions: int,
                        *, first_offset: dict[int, int] | None = None, what: str = "") -> None:
    """Exact comparison: per partition, consumed offsets are first_offset.. contiguous and
    the records equal the produced ones in production order."""
    exp = by_partition(expected, partitions)
    problems = []
    for p in range(partitions):
        e, g = exp[p], got.get(p, [])
        start = (first_offset or {}).get(p, 0)
        offsets = [x.offset for x in g]
        if offsets != list(range(start, start + len(g))):
            problems.append(f"partition {p}: offsets not contiguous from {start}: {offsets[:50]}")
        if len(g) != len(e):
            problems.append(f"partition {p}: expected {len(e)} records, got {len(g)}")
        for i, (er, gr) in enumerate(zip(e, g)):
            if not gr.same_content(er):
                problems.append(f"partition {p} record #{i}: expected {describe(er)}\n"
                                f"{' ' * 12}got      {describe(gr)}")
                break
            if er.timestamp is not None and gr.timestamp is not None and gr.timestamp != er.timestamp:
                problems.append(f"partition {p} record #{i}: timestamp {gr.timestamp} != {er.timestamp}")
                break
    extra = set(got) - set(range(partitions))
    if extra:
        problems.append(f"records from unexpected partitions {sorted(extra)}")
    assert not problems, f"{what} consumed records differ from produced:\n  " + "\n  ".join(problems)


def assert_create_times(got: dict[int, list[Got]], lo_ms: int, hi_ms: int) -> None:
    """Producer-clock CreateTime timestamps must lie within the produce window."""
    for p, recs in got.items():
        for r in recs:
            assert r.timestamp_type in (None, "create"), f"p{p}@{r.offset}: timestamp type {r.timestamp_type}"
            assert r.timestamp is not None and lo_ms - 1 <= r.timestamp <= hi_ms + 1, (
                f"p{p}@{r.offset}: timestamp {r.timestamp} outside produce window [{lo_ms}, {hi_ms}]")


def wait_until(pred: Callable[[], object], timeout: float = DEFAULT_TIMEOUT_S, what: str = "condition",
               interval: float = 0.1):
    """Poll `pred` until it returns a truthy value (returned) or `timeout` expires."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def assert_no_error_codes(obj, where=""):
    """Every error_code in a kafka-python response (as to_object() dicts) must be 0."""
    if hasattr(obj, "to_object"):
        obj = obj.to_object()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "error_code":
                assert v == 0, f"{where}: error_code {v} in {obj}"
            else:
                assert_no_error_codes(v, where)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            assert_no_error_codes(v, where)


# ---------------------------------------------------------------- confluent-kafka helpers
# Used by several tests as the reference reader/admin (librdkafka is the most
# widely deployed client). Imported lazily so collection works without it.
CK_GROUP = "gregor-compat-assign-only"  # confluent-kafka requires a group.id; never used for
# subscribe/commit. Even with assign() only, librdkafka 2.16 looks up the group coordinator
# in the background (seen with a logging proxy: two FindCoordinator v2 requests per consumer).
# Consumer groups are not implemented yet; errors from that lookup are not about our
# partitions, so consume_ck ignores them (and only them).


def ck_admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def ck_create_topic(bootstrap: str, topic: str, partitions: int, config: dict | None = None,
                    timeout: float = 30) -> None:
    from confluent_kafka.admin import NewTopic
    a = ck_admin(bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                   config=config or {})], operation_timeout=timeout)
    fs[topic].result(timeout=timeout)
    wait_until(lambda: _ck_partition_count(a, topic) == partitions, 30,
               f"metadata to show {topic} with {partitions} partitions")


def _ck_partition_count(admin, topic):
    md = admin.list_topics(timeout=10)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def consume_ck(bootstrap: str, topic: str, expected_counts: dict[int, int], *,
               timeout: float = DEFAULT_TIMEOUT_S, start: dict[int, int] | None = None,
               extra_conf: dict | None = None, check_watermarks: bool = True) -> dict[int, list[Got]]:
    """Read partitions from `start` (default beginning) with a confluent-kafka Consumer
    (assign, no group, no commits) until expected_counts records each; then check that the
    high watermark equals start+count, i.e. there is nothing more."""
    from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME,
                                 Consumer, KafkaError, TopicPartition)
    conf = {"bootstrap.servers": bootstrap, "group.id": CK_GROUP, "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "error",
            "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000}
    conf.update(extra_conf or {})
    c = Consumer(conf)
    got: dict[int, list[Got]] = {p: [] for p in expected_counts}
    try:
        c.assign([TopicPartition(topic, p, (start or {}).get(p, OFFSET_BEGINNING)) for p in expected_counts])
        deadline = time.monotonic() + timeout
        ignored = []
        while any(len(got[p]) < n for p, n in expected_counts.items()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s consuming {topic}: got "
                    f"{ {p: len(v) for p, v in got.items()} } of {expected_counts}; ignored errors: {ignored[:5]}")
            for m in c.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if m.topic() != topic or err.code() in (KafkaError._TRANSPORT,) and not err.fatal():
                        # Not about our partitions (e.g. the group coordinator lookup), or a
                        # transient connection error librdkafka retries by itself.
                        ignored.append(str(err))
                        continue
                    raise AssertionError(f"consume error on {m.topic()}[{m.partition()}]: {err}")
                ts_type, ts = m.timestamp()
                tt = {TIMESTAMP_CREATE_TIME: "create", TIMESTAMP_LOG_APPEND_TIME: "log_append"}.get(ts_type)
                got.setdefault(m.partition(), []).append(
                    Got(m.partition(), m.offset(), m.key(), m.value(), tuple(m.headers() or ()), ts, tt))
        if check_watermarks:
            for p, n in expected_counts.items():
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                # Right after the last record read (the first one is checked by assert_same_records).
                want_hi = (got[p][0].offset if got[p] else (start or {}).get(p, 0)) + n
                assert hi == want_hi, f"{topic}[{p}]: high watermark {hi}, expected {want_hi} (extra records?)"
    finally:
        c.close()
    return got


# ---------------------------------------------------------------- the Java client
# Each Java test is one source file under java/, compiled once per session and
# run as a main class that prints "RESULT ok" when its assertions pass.

def compile_java(source: Path, java_classpath: str, out_dir: Path) -> str:
    """javac `source` (with java/TestSupport.java, which the tests extend) into
    `out_dir`; returns the runtime classpath."""
    import shutil
    import subprocess
    assert shutil.which("javac"), "javac not found (a JDK 17+ is required)"
    support = Path(__file__).resolve().parent / "java" / "TestSupport.java"
    r = subprocess.run(["javac", "-cp", java_classpath, "-d", str(out_dir), str(support), str(source)],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"javac failed:\n{r.stderr.decode(errors='replace')}"
    return f"{out_dir}:{java_classpath}"


def run_java_main(classpath: str, main_class: str, *args: str, timeout: float = 105) -> None:
    """Runs `main_class` and asserts it exits 0 having printed "RESULT ok"."""
    import subprocess
    cmd = ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classpath, main_class, *args]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"java timed out after {timeout}s: {' '.join(args)}\nstdout:\n"
                             f"{(e.stdout or b'').decode(errors='replace')[-3000:]}\nstderr:\n"
                             f"{(e.stderr or b'').decode(errors='replace')[-8000:]}") from None
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 0 and "RESULT ok" in out, (
        f"{main_class} {' '.join(args)} exited {r.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-8000:]}")


# ---------------------------------------------------------------- kafkajs
def run_node_driver(script: Path, *args: str, timeout: float = 100) -> dict:
    """Runs a kafkajs driver under node/ and returns the JSON of the one
    `RESULT <json>` line it prints on success (stdout is kept for it; the
    drivers log to stderr)."""
    import json
    import subprocess
    cmd = ["node", str(script), *args]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=script.parent, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timed out after {timeout}s: {' '.join(cmd)}\nstderr:\n"
                             f"{(e.stderr or b'').decode(errors='replace')[-5000:]}") from None
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-5000:]}"
    results = [line[len("RESULT "):] for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, f"expected one RESULT line, stdout:\n{out}\nstderr:\n{err[-3000:]}"
    return json.loads(results[0])


# ---------------------------------------------------------------- process logs
def stderr_tails(paths: list[Path], label: str, tail: int | None) -> str:
    """The stderr files of a process's incarnations (one per start), each cut
    to its last `tail` lines, under a header naming `label` and the file."""
    out = []
    for i, p in enumerate(paths):
        try:
            lines = p.read_text(errors="replace").splitlines()
        except OSError as e:
            lines = [f"<cannot read {p}: {e}>"]
        if tail is not None and len(lines) > tail:
            lines = [f"... ({len(lines) - tail} earlier lines in {p})"] + lines[-tail:]
        out.append(f"--- {label}, incarnation {i + 1} ({p}) ---")
        out.extend(lines)
    return "\n".join(out)
