"""A multi-node Gregor cluster for fault-injection tests and benchmarks.

`Cluster(work_dir, n)` formats and starts `n` combined (broker + controller)
nodes of the real `gregor` binary on loopback: node i listens for clients on
`PLAINTEXT://127.0.0.1:<kafka port>` and for Raft on
`CONTROLLER://127.0.0.1:<controller port>`, keeps its data in
`work_dir/node<i>/data`, and `controller.quorum.voters` names all n nodes.
Ports must be known before any node starts (the voters name each other), so
they are picked by binding 127.0.0.1:0 sockets and closing them; if another
process grabs one in between, the whole start is retried with fresh ports.

Each `Node` keeps its ports and log dir across process incarnations:
`kill9()`, `sigstop()`/`sigcont()`, `terminate()` (SIGTERM; a controlled
shutdown that must exit 0) and `restart()`. Every wait is bounded by a
deadline (`wait_for`); nothing sleeps in place of a check. Each node's
stderr goes to a file per incarnation, and `Node.report()` (events, stdout,
stderr tail) is attached to a failing test's report by conftest's hook.

Views of the cluster, all asked of one named node so a test can check that
every node agrees:

- `Node.metadata()`: a raw Kafka Metadata v1 request to that node (brokers,
  controller id, and per partition the leader, replicas and ISR);
- `Cluster.describe(topic)`: `gregor topics --describe` (leader/replicas/ISR);
- `Cluster.quorum_status()`: `gregor metadata-quorum describe --status`.

`SeqProducer` writes the values 0, 1, 2, ... with an idempotent acks=all
producer in a background thread and records each acknowledgement;
`read_all()` and `acked_problems()` check what a fresh consumer reads back
against those acknowledgements (no acked record lost or moved, none twice,
per-partition order kept). The pytest fixtures are `cluster` (3 nodes) and
`cluster_factory` (any size and overrides); a test module imports them.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from compat_util import stderr_tails

REPO = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"^gregor: listening on PLAINTEXT://127\.0\.0\.1:(\d+)$")
STARTUP_TIMEOUT_S = 45.0  # the listening line waits for the quorum to elect and the broker to register
STOP_TIMEOUT_S = 30.0  # SIGTERM: a controlled shutdown moves leaderships first (gregor gives it 10 s)
REBIND_TIMEOUT_S = 15.0  # how long a restart keeps retrying its own ports
TOOL_TIMEOUT_S = 30.0
START_ATTEMPTS = 3  # whole-cluster starts with fresh ports after a port clash
STDERR_TAIL_LINES = 200
ADDR_IN_USE = ("Address already in use", "AddrInUse", "os error 98")
# All nodes at once: there is nowhere to move leaderships, and gregor's controlled
# shutdown gives up after 10 s; a node still running 2 s later is SIGKILLed and reported.
TEARDOWN_STOP_TIMEOUT_S = 12.0
# librdkafka logs every refused connection to a killed node on stderr; route its logs
# through `logging` instead (pytest shows them for failing tests only).
RDKAFKA_LOGGER = logging.getLogger("rdkafka")


def gregor_bin() -> Path:
    """$GREGOR_BIN, else target/debug/gregor (as conftest's broker fixture)."""
    return Path(os.environ.get("GREGOR_BIN", REPO / "target" / "debug" / "gregor"))


class ClusterError(AssertionError):
    pass


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.1,
             on_timeout: Callable[[], str] | None = None):
    """Poll `cond` until it returns a truthy value (returned) or `timeout` expires
    (AssertionError naming `what`, the last value or exception, and `on_timeout()`)."""
    deadline = time.monotonic() + timeout
    last, last_exc = None, None
    while True:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() > deadline:
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r}"
                + (f", last error: {last_exc!r}" if last_exc else "") + ")" + extra)
        time.sleep(interval)


def free_ports(n: int) -> list[int]:
    """n distinct ports the kernel considered free a moment ago (all bound at once,
    so they differ; another process may still take one before gregor binds it)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_tool(args: list[str], timeout: float = TOOL_TIMEOUT_S, check: bool = True,
             binary: Path | None = None) -> subprocess.CompletedProcess:
    """Runs `gregor <args>` (a tool), bounded by `timeout`."""
    cmd = [str(binary or gregor_bin()), *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f}s; "
                             f"stdout: {e.stdout!r} stderr: {e.stderr!r}") from None
    if check and r.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


# ---------------------------------------------------------------- raw Metadata v1
@dataclass
class PartitionMeta:
    partition: int
    error: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class Metadata:
    """One node's answer to Metadata v1."""
    brokers: dict[int, tuple[str, int]]
    controller_id: int
    topics: dict[str, tuple[int, dict[int, PartitionMeta]]]  # name -> (error, partitions)

    def partition(self, topic: str, p: int) -> PartitionMeta | None:
        t = self.topics.get(topic)
        return None if t is None or t[0] != 0 else t[1].get(p)


class Reader:
    """Big-endian fields of a Kafka response body, read in order."""

    def __init__(self, b: bytes):
        self.b, self.i = b, 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.b, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.b[self.i:self.i + n].decode()
        self.i += n
        return s

    def int32s(self) -> list[int]:
        return [self.take(">i") for _ in range(self.take(">i"))]


def kafka_metadata(host: str, port: int, topics: list[str] | None = None, timeout: float = 5.0) -> Metadata:
    """Metadata v1 asked of exactly this broker (a client library would pick any
    broker it knows, which hides a node whose view lags)."""
    client_id = b"gregor-cluster-test"
    body = struct.pack(">hhih", 3, 1, 1, len(client_id)) + client_id
    if topics is None:
        body += struct.pack(">i", -1)  # null: all topics
    else:
        body += struct.pack(">i", len(topics))
        for t in topics:
            body += struct.pack(">h", len(t.encode())) + t.encode()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)

        def read_exact(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError(f"{host}:{port} closed the connection mid-response")
                buf += chunk
            return buf

        (size,) = struct.unpack(">i", read_exact(4))
        r = Reader(read_exact(size))
    r.take(">i")  # correlation id
    brokers = {}
    for _ in range(r.take(">i")):
        node_id, h, p = r.take(">i"), r.string(), r.take(">i")
        r.string()  # rack
        brokers[node_id] = (h, p)
    controller_id = r.take(">i")
    out_topics = {}
    for _ in range(r.take(">i")):
        err, name, _internal = r.take(">h"), r.string(), r.take(">?")
        parts = {}
        for _ in range(r.take(">i")):
            perr, idx, leader = r.take(">h"), r.take(">i"), r.take(">i")
            parts[idx] = PartitionMeta(idx, perr, leader, r.int32s(), r.int32s())
        out_topics[name] = (err, parts)
    return Metadata(brokers, controller_id, out_topics)


# ---------------------------------------------------------------- one node
class Node:
    """One node (fixed id, ports and log dir) across its process incarnations."""

    def __init__(self, cluster: "Cluster", node_id: int):
        self.cluster = cluster
        self.id = node_id
        self.dir = cluster.work_dir / f"node{node_id}"
        self.log_dir = self.dir / "data"
        self.props_path = self.dir / "server.properties"
        self.kafka_port = 0
        self.controller_port = 0
        self.extra_ports: list[int] = []  # `Cluster(extra_ports=k)`: k more ports for other listeners
        self.proc: subprocess.Popen | None = None
        self.incarnation = 0
        self.stderr_paths: list[Path] = []
        self.stdout_lines: list[str] = []
        self.events: list[str] = []
        self._lines: queue.Queue | None = None
        self._stderr_file = None
        self.expect_exit = False  # the test stopped/killed this incarnation itself
        self.paused = False  # SIGSTOPped

    # ------------------------------------------------------------------ info
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def serving(self) -> bool:
        """Running and not SIGSTOPped: a node worth asking."""
        return self.running() and not self.paused

    def metadata(self, topics: list[str] | None = None, timeout: float = 5.0) -> Metadata:
        return kafka_metadata("127.0.0.1", self.kafka_port, topics, timeout)

    def _event(self, msg: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {msg}")

    def stderr_text(self, tail: int | None = STDERR_TAIL_LINES) -> str:
        return stderr_tails(self.stderr_paths, f"node {self.id} stderr", tail)

    def report(self) -> str:
        return "\n".join(
            [f"node {self.id}: kafka port {self.kafka_port}, controller port {self.controller_port}, "
             f"dir {self.dir}", "events:"] + [f"  {e}" for e in self.events]
            + ["stdout:"] + [f"  {line}" for line in self.stdout_lines] + [self.stderr_text()])

    def fail(self, msg: str) -> ClusterError:
        return ClusterError(f"node {self.id}: {msg}\n{self.report()}")

    # ------------------------------------------------------------------ config
    def write_config(self, overrides: dict[str, str]) -> None:
        c = self.cluster
        self.dir.mkdir(parents=True, exist_ok=True)
        props = {
            "node.id": str(self.id),
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.kafka_port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.quorum.voters": ",".join(
                f"{n.id}@127.0.0.1:{n.controller_port}" for n in c.nodes),
            "log.dirs": str(self.log_dir),
        }
        props.update(overrides)
        if c.node_overrides is not None:
            props.update({k: str(v) for k, v in c.node_overrides(self).items()})
        self.props_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def format(self, cluster_id: str) -> None:
        r = run_tool(["storage", "format", "-t", cluster_id, "-c", str(self.props_path),
                      *self.cluster.format_args],
                     check=False, binary=self.cluster.binary)
        self._event(f"storage format -> {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
        if r.returncode != 0:
            raise self.fail(f"`gregor storage format` exited {r.returncode}: {r.stderr.strip()}")

    # ------------------------------------------------------------------ processes
    def spawn(self) -> None:
        """Starts a process; `wait_listening` waits for it to serve."""
        assert not self.running(), f"node {self.id} is already running"
        binary = self.cluster.binary
        if not binary.exists():
            raise self.fail(f"binary {binary} does not exist (run `cargo build -p gregor-cli`)")
        self.incarnation += 1
        self.expect_exit = False
        self.paused = False
        stderr_path = self.dir / f"stderr-{self.incarnation}.log"
        self.stderr_paths.append(stderr_path)
        self._stderr_file = open(stderr_path, "wb")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        # openraft logs every vote at info; keep gregor's own info lines readable in reports.
        env.setdefault("RUST_LOG", "info,openraft=warn")
        self.proc = subprocess.Popen(
            [str(binary), "server", str(self.props_path)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._stderr_file, cwd=self.dir, env=env)
        self._event(f"incarnation {self.incarnation}: pid {self.proc.pid} started")
        lines: queue.Queue = queue.Queue()
        self._lines = lines
        proc = self.proc

        def reader():
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                self.stdout_lines.append(line)
                lines.put(line)
            lines.put(None)  # EOF

        threading.Thread(target=reader, name=f"gregor-node{self.id}-stdout", daemon=True).start()

    def wait_listening(self, deadline: float) -> bool:
        """True once the listening line is printed; False if the process exited
        first (e.g. a port was taken); raises on timeout."""
        assert self._lines is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill_now()
                raise self.fail("did not print its listening line in time")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                try:
                    rc = self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._kill_now()
                    rc = "killed (closed stdout but kept running)"
                self._close_stderr()
                self._event(f"incarnation {self.incarnation} exited before listening: rc={rc}")
                return False
            if self._is_listening_line(line):
                self._event(f"incarnation {self.incarnation} listening")
                return True

    def _is_listening_line(self, line: str) -> bool:
        """Whether `line` is the listening line; raises if it names another port."""
        m = LISTEN_RE.match(line)
        if m and int(m.group(1)) != self.kafka_port:
            raise self.fail(f"listens on {m.group(1)}, configured {self.kafka_port}")
        return m is not None

    def address_in_use(self) -> bool:
        try:
            text = self.stderr_paths[-1].read_text(errors="replace")
        except (OSError, IndexError):
            return False
        return any(s in text for s in ADDR_IN_USE)

    def _close_stderr(self) -> None:
        if self._stderr_file is not None and not self._stderr_file.closed:
            self._stderr_file.close()

    def _kill_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._close_stderr()

    def kill9(self) -> None:
        """SIGKILL (a crash). `restart()` brings the node back."""
        assert self.running(), f"node {self.id} is not running"
        self.expect_exit = True
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(timeout=10)
        self.paused = False
        self._close_stderr()
        self._event(f"incarnation {self.incarnation}: SIGKILL -> rc {rc}")

    def sigstop(self) -> None:
        assert self.running(), f"node {self.id} is not running"
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        self._event(f"incarnation {self.incarnation}: SIGSTOP")

    def sigcont(self) -> None:
        assert self.running(), f"node {self.id} is not running"
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False
        self._event(f"incarnation {self.incarnation}: SIGCONT")

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> float:
        """SIGTERM (controlled shutdown); must exit 0 within `timeout`.
        Returns the seconds it took."""
        assert self.running(), f"node {self.id} is not running"
        self.expect_exit = True
        if self.paused:
            self.sigcont()
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_now()
            self._event(f"incarnation {self.incarnation}: no exit {timeout:.0f}s after SIGTERM; SIGKILLed")
            raise self.fail(f"did not exit within {timeout:.0f}s of SIGTERM") from None
        took = time.monotonic() - t0
        self._close_stderr()
        self._event(f"incarnation {self.incarnation}: SIGTERM -> exit {rc} in {took:.2f}s")
        if rc != 0:
            raise self.fail(f"exited with code {rc} after SIGTERM (expected 0)")
        return took

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> "Node":
        """Starts this node alone (its log dir is already formatted) on its own ports,
        retrying for a while if a port is still held."""
        deadline = time.monotonic() + timeout
        rebind_deadline = time.monotonic() + REBIND_TIMEOUT_S
        while True:
            self.spawn()
            if self.wait_listening(deadline):
                return self
            if not self.address_in_use() or time.monotonic() > rebind_deadline:
                raise self.fail("exited before listening")
            time.sleep(0.5)

    def restart(self, timeout: float = STARTUP_TIMEOUT_S) -> "Node":
        """SIGTERM (must exit 0) if running, then start on the same ports and log dir."""
        if self.running():
            self.terminate()
        return self.start(timeout)


# ---------------------------------------------------------------- the cluster
class Cluster:
    def __init__(self, work_dir: Path, n: int = 3, overrides: dict[str, str] | None = None,
                 binary: Path | None = None,
                 node_overrides: Callable[[Node], dict[str, str]] | None = None,
                 extra_ports: int = 0, format_args: list[str] | None = None):
        """`node_overrides(node)` adds per-node properties after `overrides` (it may use
        the node's ports, `node.extra_ports` among them: `extra_ports` more per node);
        `format_args` are appended to every `gregor storage format`."""
        self.work_dir = Path(work_dir)
        self.n = n
        self.overrides = {k: str(v) for k, v in (overrides or {}).items()}
        self.node_overrides = node_overrides
        self.extra_ports = extra_ports
        self.format_args = list(format_args or [])
        self.binary = Path(binary) if binary else gregor_bin()
        self.nodes = [Node(self, i) for i in range(1, n + 1)]
        self.cluster_id: str | None = None
        self._admins: dict[str, object] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> "Cluster":
        """Formats every node and starts them together (nothing registers until a
        majority of voters has elected a leader), then waits until the cluster has
        formed (`wait_ready`); retries with fresh ports if one was taken meanwhile."""
        for attempt in range(1, START_ATTEMPTS + 1):
            per = 2 + self.extra_ports
            ports = free_ports(per * self.n)
            for i, node in enumerate(self.nodes):
                node.kafka_port, node.controller_port = ports[per * i], ports[per * i + 1]
                node.extra_ports = ports[per * i + 2:per * (i + 1)]
            self.cluster_id = run_tool(["storage", "random-uuid"], binary=self.binary).stdout.strip()
            for node in self.nodes:
                if node.log_dir.exists():  # a previous attempt's data
                    shutil.rmtree(node.log_dir)
                node.write_config(self.overrides)
                node.format(self.cluster_id)
            for node in self.nodes:
                node.spawn()
            deadline = time.monotonic() + timeout
            up = [node.wait_listening(deadline) for node in self.nodes]
            if all(up):
                self.wait_ready(max(1.0, deadline - time.monotonic()))
                return self
            clash = any(not ok and node.address_in_use() for ok, node in zip(up, self.nodes))
            for node in self.nodes:
                node.expect_exit = True
                node._kill_now()
            if not clash or attempt == START_ATTEMPTS:
                down = [node.id for ok, node in zip(up, self.nodes) if not ok]
                raise ClusterError(f"nodes {down} exited before listening (attempt {attempt})\n"
                                   + self.report())
            for node in self.nodes:
                node._event(f"start attempt {attempt}: a port was taken; retrying with fresh ports")
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Waits until every serving node's Metadata lists every serving node as a
        broker (registered and unfenced) and a quorum leader is known. A node prints
        its listening line before the quorum has elected, so this is the real start."""
        def ready():
            want = {n.id for n in self.live_nodes()}
            return all(set(n.metadata().brokers) == want for n in self.live_nodes())
        def diagnose() -> str:
            lines = []
            for n in self.live_nodes():
                try:
                    brokers = sorted(n.metadata().brokers)
                except OSError as e:
                    brokers = repr(e)
                q = run_tool(["metadata-quorum", "--bootstrap-server", n.bootstrap, "describe", "--status"],
                             check=False, binary=self.binary)
                quorum = q.stdout.splitlines()[1].strip() if q.returncode == 0 else q.stderr.strip()
                lines.append(f"node {n.id} lists brokers {brokers}; quorum: {quorum}")
            return "\n".join(lines)
        wait_for(ready, timeout, "every live node to list every live node as a broker", on_timeout=diagnose)
        wait_for(self.quorum_leader, timeout, "the metadata quorum to name a live leader")

    def stop(self, timeout: float = TEARDOWN_STOP_TIMEOUT_S) -> list[str]:
        """Stops every process: SIGTERM to all at once, SIGKILL after `timeout`.
        Returns problems: nodes that exited on their own during the run, or did not
        exit cleanly now (a whole cluster stopping at once cannot always move its
        leaderships anywhere, so that is reported, not judged, by callers)."""
        self._admins.clear()
        crashed, unclean, signalled = [], [], []
        for node in self.nodes:
            if node.proc is None:
                continue
            if not node.running():
                if not node.expect_exit:
                    crashed.append(f"node {node.id} exited on its own (rc={node.proc.returncode})")
                node._close_stderr()
                continue
            node.expect_exit = True
            if node.paused:
                node.sigcont()
            node.proc.send_signal(signal.SIGTERM)
            signalled.append(node)
        deadline = time.monotonic() + timeout
        for node in signalled:
            try:
                rc = node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                node._event(f"incarnation {node.incarnation}: teardown SIGTERM -> exit {rc}")
                if rc != 0:
                    unclean.append(f"node {node.id} exited {rc} after the teardown SIGTERM")
            except subprocess.TimeoutExpired:
                node._kill_now()
                node._event(f"incarnation {node.incarnation}: no exit {timeout:.0f}s after teardown "
                            "SIGTERM; SIGKILLed")
                unclean.append(f"node {node.id} did not exit within {timeout:.0f}s of the teardown SIGTERM")
            node._close_stderr()
        return crashed + unclean

    def report(self) -> str:
        return "\n\n".join(node.report() for node in self.nodes)

    # ------------------------------------------------------------------ access
    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def live_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.serving()]

    def live_bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.live_nodes())

    def admin(self, bootstrap: str | None = None):
        """A confluent-kafka AdminClient (cached per bootstrap string)."""
        from confluent_kafka.admin import AdminClient
        b = bootstrap or self.live_bootstrap()
        if b not in self._admins:
            self._admins[b] = AdminClient({"bootstrap.servers": b, "socket.timeout.ms": 10000,
                                           "logger": RDKAFKA_LOGGER})
        return self._admins[b]

    def tool(self, *args: str, via: Node | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """`gregor <tool> --bootstrap-server <via, default the live nodes> args...`."""
        b = via.bootstrap if via else self.live_bootstrap()
        return run_tool([args[0], "--bootstrap-server", b, *args[1:]], check=check, binary=self.binary)

    # ------------------------------------------------------------------ views
    def quorum_status(self, via: Node | None = None) -> dict[str, str]:
        """`metadata-quorum describe --status` as {"LeaderId": "1", ...}; the voter and
        observer lists are parsed into "voter_ids"/"observer_ids" (lists of ints)."""
        out = self.tool("metadata-quorum", "describe", "--status", via=via).stdout
        d = {}
        for line in out.splitlines():
            k, sep, v = line.partition(":")
            if sep:
                d[k.strip()] = v.strip()
        d["voter_ids"] = [int(x) for x in re.findall(r'"id": (\d+)', d.get("CurrentVoters", ""))]
        d["observer_ids"] = [int(x) for x in re.findall(r'"id": (\d+)', d.get("CurrentObservers", ""))]
        return d

    def active_controller(self, timeout: float = 30.0) -> int:
        """The quorum leader, waiting (bounded) until every serving node names the same live one."""
        def agreed():
            ids = set()
            for n in self.live_nodes():
                try:
                    ids.add(int(self.quorum_status(via=n)["LeaderId"]))
                except (AssertionError, KeyError, ValueError):
                    return None
            if len(ids) != 1:
                return None
            lid = ids.pop()
            return lid if lid in [n.id for n in self.live_nodes()] else None
        return wait_for(agreed, timeout, "every live node to name the same live quorum leader", interval=0.2)

    def quorum_leader(self) -> int | None:
        """The active controller (LeaderId) if a live node names one that is live."""
        try:
            lid = int(self.quorum_status()["LeaderId"])
        except (AssertionError, KeyError, ValueError):
            return None
        return lid if lid in [n.id for n in self.live_nodes()] else None

    def describe(self, topic: str, via: Node | None = None) -> dict[int, PartitionMeta]:
        """`gregor topics --describe --topic T`, parsed per partition."""
        out = self.tool("topics", "--describe", "--topic", topic, via=via).stdout
        parts = {}
        def ids(s: str) -> list[int]:
            return [int(x) for x in s.split(",") if x]
        for m in re.finditer(r"Partition: (\d+)\s+Leader: (\S+)\s+Replicas: (\S*)\s+Isr: (\S*)", out):
            leader = -1 if m.group(2) == "none" else int(m.group(2))
            parts[int(m.group(1))] = PartitionMeta(int(m.group(1)), 0, leader, ids(m.group(3)), ids(m.group(4)))
        return parts

    def views(self, topic: str) -> dict[int, Metadata]:
        """Every serving node's Metadata for `topic`."""
        return {n.id: n.metadata([topic]) for n in self.live_nodes()}

    def leader_of(self, topic: str, partition: int) -> int | None:
        """The partition's leader if every serving node names the same live leader, else None."""
        live = {n.id for n in self.live_nodes()}
        leaders = set()
        for node in self.live_nodes():
            try:
                p = node.metadata([topic]).partition(topic, partition)
            except OSError:
                return None
            leaders.add(p.leader if p is not None and p.error == 0 else None)
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        return leader if leader in live else None

    def wait_for_leader(self, topic: str, partition: int, timeout: float = 30.0,
                        not_in: tuple[int, ...] = ()) -> int:
        """Waits until every serving node agrees on a live leader outside `not_in`."""
        def ok():
            leader = self.leader_of(topic, partition)
            return leader if leader is not None and leader not in not_in else None
        return wait_for(ok, timeout, f"{topic}[{partition}] to have a leader outside {list(not_in)} "
                        "that every live node agrees on",
                        on_timeout=lambda: self._views_text(topic))

    def _views_text(self, topic: str) -> str:
        lines = []
        for n in self.live_nodes():
            try:
                md = n.metadata([topic])
                t = md.topics.get(topic)
                lines.append(f"node {n.id} view: brokers={sorted(md.brokers)} controller={md.controller_id} "
                             f"partitions={t and {p: (pm.leader, pm.replicas, pm.isr, pm.error) for p, pm in t[1].items()}}")
            except Exception as e:  # noqa: BLE001 - diagnostics only
                lines.append(f"node {n.id} view: {e!r}")
        return "\n".join(lines)

    def create_topic(self, topic: str, partitions: int = 1, rf: int = 3, config: dict | None = None,
                     timeout: float = 30.0, assignment: list[list[int]] | None = None) -> None:
        """CreateTopics through the AdminClient, then waits until every live node
        shows every partition with a leader and `rf` replicas. `assignment` (one
        replica list per partition, preferred leader first) replaces partitions/rf."""
        from confluent_kafka.admin import NewTopic
        cfg = {k: str(v) for k, v in (config or {}).items()}
        if assignment is not None:
            partitions, rf = len(assignment), len(assignment[0])
            # librdkafka wants the partition count, and no replication factor, beside an assignment.
            new = NewTopic(topic, num_partitions=partitions, replica_assignment=assignment, config=cfg)
        else:
            new = NewTopic(topic, partitions, rf, config=cfg)
        fs = self.admin().create_topics([new], operation_timeout=timeout)
        fs[topic].result(timeout=timeout)

        def ready():
            for md in self.views(topic).values():
                t = md.topics.get(topic)
                if t is None or t[0] != 0 or len(t[1]) != partitions:
                    return False
                if any(p.leader < 0 or len(p.replicas) != rf for p in t[1].values()):
                    return False
            return True
        wait_for(ready, timeout, f"every live node to show {topic} with {partitions} led partitions of RF {rf}",
                 on_timeout=lambda: self._views_text(topic))


# ---------------------------------------------------------------- producing and checking
@dataclass
class Ack:
    seq: int
    partition: int
    offset: int
    sent_at: float  # time.monotonic() of the produce() call
    acked_at: float


@dataclass
class SeqProducer:
    """Produces the values b"0", b"1", ... (partition = seq % partitions) from a
    background thread at about `rate` records/s with an idempotent acks=all
    producer, recording every acknowledgement and every failed delivery."""
    bootstrap: str
    topic: str
    partitions: int = 1
    rate: float = 500.0
    extra_conf: dict = field(default_factory=dict)
    acks: list[Ack] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # client-level errors (error_cb)
    fatal: str | None = None
    sent: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_timeout = 30.0
        self.unflushed = 0  # records still undelivered when stop()'s flush gave up

    def conf(self) -> dict:
        c = {"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "acks": "all",
             "linger.ms": 5, "message.timeout.ms": 60000, "socket.timeout.ms": 10000,
             "error_cb": self._on_error, "logger": RDKAFKA_LOGGER}
        c.update(self.extra_conf)
        return c

    def _on_error(self, err) -> None:
        with self._lock:
            self.errors.append(str(err))
            if err.fatal():
                self.fatal = str(err)

    def start(self) -> "SeqProducer":
        from confluent_kafka import Producer
        self._producer = Producer(self.conf())
        self._thread = threading.Thread(target=self._run, name="seq-producer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        p = self._producer
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set() and self.fatal is None:
            now = time.monotonic()
            while next_at <= now and not self._stop.is_set():
                seq = self.sent
                try:
                    p.produce(self.topic, value=str(seq).encode(), partition=seq % self.partitions,
                              on_delivery=self._delivery(seq, now))
                except BufferError:
                    break  # the queue is full: poll, then retry this seq
                self.sent += 1
                next_at += interval
            p.poll(min(0.01, max(0.0, next_at - time.monotonic())))
        remaining = p.flush(self._flush_timeout)
        with self._lock:
            self.unflushed = remaining

    def _delivery(self, seq: int, sent_at: float):
        def cb(err, msg):
            t = time.monotonic()
            with self._lock:
                if err is not None:
                    self.failures.append((seq, str(err)))
                    if err.fatal():
                        self.fatal = str(err)
                else:
                    self.acks.append(Ack(seq, msg.partition(), msg.offset(), sent_at, t))
        return cb

    def stop(self, flush_timeout: float = 30.0) -> None:
        """Stops producing and waits (bounded) for every outstanding delivery report."""
        self._flush_timeout = flush_timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(flush_timeout + 15)
            assert not self._thread.is_alive(), "the producer thread did not stop"

    # ------------------------------------------------------------------ queries
    def acked_count(self, sent_after: float | None = None) -> int:
        with self._lock:
            if sent_after is None:
                return len(self.acks)
            return sum(1 for a in self.acks if a.sent_at > sent_after)

    def first_ack_sent_after(self, t: float) -> Ack | None:
        """The first acknowledgement (in ack time) of a record produced after `t`."""
        with self._lock:
            later = [a for a in self.acks if a.sent_at > t]
        return min(later, key=lambda a: a.acked_at) if later else None

    def wait_acks(self, n: int, timeout: float, sent_after: float | None = None) -> None:
        def enough():
            if self.fatal:
                raise AssertionError(f"producer fatal error: {self.fatal}")
            return self.acked_count(sent_after) >= n
        try:
            wait_for(enough, timeout, f"{n} acknowledged records"
                     + (" produced after the fault" if sent_after else ""), interval=0.02)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.summary()}") from None

    def summary(self) -> str:
        with self._lock:
            errs = sorted(set(self.errors))[:10]
            fails = sorted({e for _, e in self.failures})[:10]
            return (f"producer: sent {self.sent}, acked {len(self.acks)}, failed deliveries "
                    f"{len(self.failures)} {fails}, client errors {errs}, fatal {self.fatal}")


def read_all(bootstrap: str, topic: str, partitions: int, *, min_end: dict[int, int] | None = None,
             timeout: float = 30.0) -> tuple[dict[int, list[tuple[int, int]]], dict[int, int]]:
    """Reads every partition from the beginning with a fresh consumer (assign, no
    group; default isolation) up to its high watermark. If `min_end` names an end
    offset a partition must reach (the last acked offset + 1), waits (bounded)
    for the watermark to get there first. Returns ({p: [(offset, seq)]}, {p: hw})."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "gregor-cluster-read-all",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000,
                  "logger": RDKAFKA_LOGGER})
    try:
        deadline = time.monotonic() + timeout
        hw = {}
        for p in range(partitions):
            want = (min_end or {}).get(p, 0)
            while True:
                try:
                    hw[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                except Exception:  # noqa: BLE001 - retried until the deadline
                    hw[p] = -1
                if hw[p] >= want or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        got: dict[int, list[tuple[int, int]]] = {p: [] for p in range(partitions)}
        pos = {p: 0 for p in range(partitions)}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        while any(pos[p] < hw[p] for p in range(partitions)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic}: positions {pos}, high watermarks {hw}")
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    if not m.error().fatal() and m.topic() != topic:
                        continue
                    if m.error().code() == KafkaError._TRANSPORT:
                        continue  # librdkafka reconnects (e.g. to a node that was killed)
                    raise AssertionError(f"consume error on {m.topic()}[{m.partition()}]: {m.error()}")
                got[m.partition()].append((m.offset(), int(m.value())))
                pos[m.partition()] = m.offset() + 1
        return got, hw
    finally:
        c.close()


def acked_problems(acks: list[Ack], got: dict[int, list[tuple[int, int]]]) -> list[str]:
    """The invariants of acks=all + idempotence, as a list of violations:
    1. no acknowledged record is lost: every acked value is read back,
    2. nor moved: at the partition and offset its acknowledgement named,
    3. no record is written twice (idempotence),
    4. each partition holds its values in production (sequence) order."""
    problems = []
    where: dict[int, list[tuple[int, int]]] = {}
    for p, recs in got.items():
        for off, seq in recs:
            where.setdefault(seq, []).append((p, off))
    dups = {s: w for s, w in where.items() if len(w) > 1}
    if dups:
        ex = sorted(dups.items())[:10]
        problems.append(f"{len(dups)} values written more than once, e.g. {ex}")
    lost = [a for a in acks if a.seq not in where]
    if lost:
        problems.append(f"{len(lost)} of {len(acks)} acknowledged records lost, e.g. "
                        f"{[(a.seq, a.partition, a.offset) for a in lost[:10]]}")
    moved = [(a.seq, (a.partition, a.offset), where[a.seq]) for a in acks
             if a.seq in where and (a.partition, a.offset) not in where[a.seq]]
    if moved:
        problems.append(f"{len(moved)} acknowledged records not at their acknowledged offset, "
                        f"e.g. (seq, acked at, found at) {moved[:10]}")
    for p, recs in got.items():
        seqs = [s for _, s in recs]
        bad = [(recs[i - 1], recs[i]) for i in range(1, len(recs)) if seqs[i] <= seqs[i - 1]]
        if bad:
            problems.append(f"partition {p}: {len(bad)} values out of production order, "
                            f"e.g. (offset, seq) pairs {bad[:5]}")
    return problems


# ---------------------------------------------------------------- pytest fixtures
try:
    import pytest
except ImportError:  # the benchmark uses this module without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def cluster_factory(request, tmp_path):
        """`make(n=3, overrides=None)` starts a cluster that is stopped at teardown;
        its nodes' reports are attached to the test's failure report."""
        made: list[Cluster] = []

        def make(n: int = 3, overrides: dict | None = None) -> Cluster:
            c = Cluster(tmp_path / f"cluster{len(made) + 1}", n, overrides)
            made.append(c)
            request.node._gregor_brokers = getattr(request.node, "_gregor_brokers", []) + c.nodes
            return c.start()

        yield make
        problems = []
        for c in made:
            problems += c.stop()
        crashed = [p for p in problems if "on its own" in p]
        for p in problems:
            print(f"teardown: {p}")
        if crashed:
            raise ClusterError("\n".join(crashed) + "\n" + "\n\n".join(c.report() for c in made))

    @pytest.fixture
    def cluster(cluster_factory) -> Cluster:
        """A fresh 3-node combined cluster for one test."""
        return cluster_factory(3)
