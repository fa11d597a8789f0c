#!/usr/bin/env python3
"""RSS of an idle node after a clean start, broker binaries alternated on one log dir.

    bench/idle_rss_ab.py DATA_DIR OLD_BIN NEW_BIN

DATA_DIR is the `log.dirs` of a node that already holds the partitions (e.g.
one left by `bench/scale.py`-style creation). Starts OLD once to leave the dir
cleanly stopped, then OLD, NEW, OLD, NEW: each until its listening line, then
RSS once it moves by < 0.25 MiB in a second (at most 20 s), then SIGTERM.
Prints each binary's RSS. Not a test: note the machine's load.
"""
import re, signal, subprocess, sys, time
from pathlib import Path
LISTEN_RE = re.compile(r"gregor: listening on \S+://[^:]+:(\d+)")
data = Path(sys.argv[1]); bins = sys.argv[2:]
def rss(pid):
    for l in Path(f"/proc/{pid}/status").read_text().splitlines():
        if l.startswith("VmRSS"): return int(l.split()[1]) / 1024
def run(b):
    p = subprocess.Popen([b, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override", f"log.dirs={data}"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for raw in p.stdout:
        if LISTEN_RE.search(raw.decode(errors="replace")): break
    last = rss(p.pid)
    for _ in range(20):
        time.sleep(1); now = rss(p.pid)
        if abs(now - last) < 0.25: break
        last = now
    p.send_signal(signal.SIGTERM); p.wait(timeout=600)
    return now
run(bins[0])  # a clean stop first (the dir was left by kill -9)
for r in range(2):
    for b in bins:
        print(b, round(run(b), 1), "MiB", flush=True)
