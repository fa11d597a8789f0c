"""pytest fixtures for the third-party client compatibility tests.

`broker` starts the real `gregor` binary (target/debug/gregor, or $GREGOR_BIN)
on an ephemeral loopback port with a fresh log dir, waits for its
`gregor: listening on PLAINTEXT://127.0.0.1:<port>` line on stdout, and stops
it with SIGTERM at teardown, asserting a clean exit (code 0). The broker's
stderr is attached to the report of any failing test.

Per-test broker overrides: `@pytest.mark.broker_overrides({"num.partitions": "3"})`.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compat_util import stderr_tails  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMPAT_DIR = REPO / "tests" / "compat"
DEPS = REPO / ".test-deps"

LISTEN_RE = re.compile(r"^gregor: listening on PLAINTEXT://127\.0\.0\.1:(\d+)$")
# One more line per extra listener (`listeners=PLAINTEXT://...,SSL://...`), after the first.
ANY_LISTEN_RE = re.compile(r"^gregor: listening on ([A-Za-z0-9_]+)://(.+):(\d+)$")
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0  # "SIGTERM shuts it down cleanly within a few seconds"
SAME_PORT_RETRY_S = 15.0  # how long restart() keeps retrying the previous port
STDERR_TAIL_LINES = 300


def gregor_bin() -> Path:
    return Path(os.environ.get("GREGOR_BIN", REPO / "target" / "debug" / "gregor"))


class BrokerError(AssertionError):
    pass


class Broker:
    """One broker (one log dir) across possibly several process incarnations."""

    def __init__(self, work_dir: Path, overrides: dict[str, str] | None = None):
        self.work_dir = work_dir
        self.log_dir = work_dir / "data"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.overrides = dict(overrides or {})
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.incarnation = 0
        self.stderr_paths: list[Path] = []
        self.stdout_lines: list[str] = []
        self.events: list[str] = []  # human-readable history, for failure reports
        # How long stop() (and restart(), and the fixture's teardown) waits after SIGTERM.
        self.stop_timeout = STOP_TIMEOUT_S
        self._lines: queue.Queue | None = None
        self._stderr_file = None
        self.killed = False  # last incarnation was SIGKILLed by the test
        self.stopped = False  # last incarnation was stopped (SIGTERM) by the test

    # ------------------------------------------------------------------ info
    @property
    def bootstrap(self) -> str:
        assert self.port is not None, "broker not started"
        return f"127.0.0.1:{self.port}"

    def listener_port(self, name: str, timeout: float = 10.0) -> int:
        """The port of listener `name` as printed by the running incarnation."""
        deadline = time.monotonic() + timeout
        while True:
            for line in reversed(self.stdout_lines):
                m = ANY_LISTEN_RE.match(line)
                if m and m.group(1) == name:
                    return int(m.group(3))
            if time.monotonic() > deadline:
                raise self._fail(f"gregor printed no listening line for listener {name}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self, tail: int | None = STDERR_TAIL_LINES) -> str:
        return stderr_tails(self.stderr_paths, "gregor stderr", tail)

    def report(self) -> str:
        return "\n".join(
            ["broker events:"] + [f"  {e}" for e in self.events]
            + ["gregor stdout:"] + [f"  {line}" for line in self.stdout_lines]
            + [self.stderr_text()]
        )

    def _fail(self, msg: str) -> BrokerError:
        return BrokerError(f"{msg}\n{self.report()}")

    # ------------------------------------------------------------------ lifecycle
    def _spawn(self, port: int) -> int | None:
        """Start one process on `port` (0 = ephemeral). Returns the listening port,
        or None if the process exited before listening (e.g. the port was busy)."""
        binary = gregor_bin()
        if not binary.exists():
            raise self._fail(f"broker binary {binary} does not exist (run `cargo build -p gregor-cli`)")
        self.incarnation += 1
        stderr_path = self.work_dir / f"gregor-stderr-{self.incarnation}.log"
        self.stderr_paths.append(stderr_path)
        self._stderr_file = open(stderr_path, "wb")
        cmd = [
            str(binary), "server",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={self.log_dir}",
        ]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        self.events.append(f"incarnation {self.incarnation}: {' '.join(cmd)}")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr_file,
            cwd=self.work_dir, env=env,
        )
        lines: queue.Queue = queue.Queue()
        self._lines = lines
        proc = self.proc

        def reader():
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                self.stdout_lines.append(line)
                lines.put(line)
            lines.put(None)  # EOF

        threading.Thread(target=reader, name=f"gregor-stdout-{self.incarnation}", daemon=True).start()

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill_now()
                raise self._fail(
                    f"gregor did not print its listening line within {STARTUP_TIMEOUT_S:.0f}s")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:  # stdout closed: the process is exiting
                try:
                    rc = proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self._kill_now()
                    rc = "killed (closed stdout but kept running)"
                self.events.append(f"incarnation {self.incarnation} exited before listening: rc={rc}")
                self._stderr_file.close()
                return None
            m = LISTEN_RE.match(line)
            if m:
                got = int(m.group(1))
                if port != 0 and got != port:
                    raise self._fail(f"asked for port {port} but gregor listens on {got}")
                self.events.append(f"incarnation {self.incarnation} (pid {proc.pid}) listening on {got}")
                return got

    def start(self) -> "Broker":
        assert not self.running(), "broker already running"
        self.killed = self.stopped = False
        if self.port is None:
            port = self._spawn(0)
            if port is None:
                raise self._fail("gregor exited before listening")
            self.port = port
            return self

        # Restart on the same port so the same bootstrap keeps working. The broker sets
        # SO_REUSEADDR, so this should succeed at once; retry briefly in case it does not.
        deadline = time.monotonic() + SAME_PORT_RETRY_S
        while True:
            port = self._spawn(self.port)
            if port is not None:
                return self
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # Could not rebind the old port (another process took it, or the broker does not
        # set SO_REUSEADDR): fall back to a fresh port; tests read .bootstrap after restart.
        old = self.port
        port = self._spawn(0)
        if port is None:
            raise self._fail("gregor exited before listening on an ephemeral port")
        self.port = port
        msg = f"WARNING: could not rebind port {old} within {SAME_PORT_RETRY_S:.0f}s; restarted on {port}"
        self.events.append(msg)
        print(msg)
        return self

    def _kill_now(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._stderr_file is not None:
            self._stderr_file.close()

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM; SIGKILL after `timeout` (default `self.stop_timeout`). Returns the exit
        code (raises if it had to be killed or exited non-zero)."""
        assert self.proc is not None, "broker not started"
        timeout = self.stop_timeout if timeout is None else timeout
        self.stopped = True
        rc = self.proc.poll()
        if rc is not None:
            self._stderr_file.close()
            self.events.append(f"incarnation {self.incarnation} had already exited: rc={rc}")
            raise self._fail(f"gregor exited on its own (rc={rc}) before it was stopped")
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_now()
            self.events.append(f"incarnation {self.incarnation}: no exit {timeout:.0f}s after SIGTERM; SIGKILLed")
            raise self._fail(f"gregor did not exit within {timeout:.0f}s of SIGTERM")
        self._stderr_file.close()
        self.events.append(
            f"incarnation {self.incarnation}: SIGTERM -> exit {rc} in {time.monotonic() - t0:.2f}s")
        if rc != 0:
            raise self._fail(f"gregor exited with code {rc} after SIGTERM (expected 0)")
        return rc

    def kill9(self) -> None:
        """SIGKILL the process (simulated crash). Call restart() to bring it back."""
        assert self.running(), "broker not running"
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._stderr_file.close()
        self.killed = True
        self.events.append(f"incarnation {self.incarnation}: SIGKILL -> rc {rc}")

    def restart(self) -> "Broker":
        """Clean stop (SIGTERM, must exit 0) if running, then start again on the same
        log dir and (if possible) the same port."""
        if self.running():
            self.stop()
        return self.start()


def _overrides_for(request) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for mark in request.node.iter_markers("broker_overrides"):
        for k, v in mark.args[0].items():
            overrides.setdefault(k, str(v))
    return overrides


@pytest.fixture
def broker(request, tmp_path):
    """A fresh single-node gregor broker for one test."""
    b = Broker(tmp_path / "broker", _overrides_for(request))
    request.node._gregor_brokers = getattr(request.node, "_gregor_brokers", []) + [b]
    b.start()
    yield b
    if b.running():
        b.stop()  # raises unless it exits 0 within b.stop_timeout of SIGTERM
    elif not (b.killed or b.stopped):
        rc = b.proc.returncode if b.proc else None
        raise b._fail(f"gregor exited on its own during the test (rc={rc})")
    # else: the test stopped or SIGKILLed it itself (and any failure was reported then)


@pytest.fixture
def topic(request) -> str:
    """A unique topic name for this test (legal Kafka chars, < 249)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:150]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def java_classpath() -> str:
    """Kafka Java client 3.9 jars (installed by scripts/install-test-deps.sh)."""
    env = os.environ.get("GREGOR_JAVA_CLASSPATH")
    if env:
        return env
    cp_file = DEPS / "java-classpath"
    if cp_file.exists():
        cp = cp_file.read_text().strip()
        if all(Path(p).exists() for p in cp.split(":")):
            return cp
    # Discover inside the running venv.
    import glob
    libs = glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "pyflink", "lib"))
    assert libs, "pyflink/lib not found: run scripts/install-test-deps.sh"
    jars = []
    for pat in ("kafka-clients*.jar", "lz4-java*.jar", "snappy-java*.jar", "zstd-jni*.jar", "slf4j-api*.jar"):
        found = sorted(glob.glob(os.path.join(libs[0], pat)))
        assert found, f"no {pat} in {libs[0]}"
        jars.append(found[0])
    return ":".join(jars)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "broker_overrides(dict): extra `--override key=value` for the broker fixture")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, b in enumerate(getattr(item, "_gregor_brokers", [])):
            report.sections.append((f"gregor broker {i + 1} ({report.when})", b.report()))
