#!/usr/bin/env python3
"""Helpers for scripts/run-client-suites.sh (standard library only).

  suites.py rdk-tests TEST_C SCENARIO       test numbers with broker tests in SCENARIO
  suites.py rdk-expected TEST_C SCENARIO    names of those broker tests, one a line
  suites.py rdk-results TEST_C SCENARIO LOGDIR OUT.tsv
        read LOGDIR/<num>.log (test-runner output) and LOGDIR/<num>.rc, write
        name<TAB>state<TAB>reason for every broker test of SCENARIO
  suites.py kp-render TEMPLATE DATADIR CONTROLLER_PORT
        print kafka-python's kafka.properties template as key=value lines, filled in
        as its KafkaFixture would for node 0, PLAINTEXT on 127.0.0.1, port 0
  suites.py kp-results JUNIT.xml OUT.tsv    pytest junit xml -> name<TAB>state<TAB>reason
  suites.py summary TSV                     print "passed failed skipped" counts
"""
import re
import sys
import xml.etree.ElementTree as ET

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# test.c's failure banner: ### Test "NAME (SUBTEST:LINE)" failed at FILE:LINE:FUNC() at DATE: ###
PASSED_RE = re.compile(r"=+ Test (\d{4}_\w+) PASSED =+")
SKIP_RE = re.compile(r"\[(\d{4}_\w+)\s*/[^\]]*\] WARN: SKIPPING TEST: ([^\n]*)")
FAIL_RE = re.compile(r'### Test "(\d{4}_\w+)(?: \(([^\n]*?)\))?" failed at (\S+) at [^\n]*###\n([^\n]*)')


def rdk_entries(test_c):
    """(name, flags, scenario) of every _TEST(...) in librdkafka's tests/test.c."""
    text = open(test_c, encoding="utf-8", errors="replace").read()
    start = text.find("struct test tests[]")
    text = text[start:]
    entries = []
    for m in re.finditer(r"_TEST\(", text):
        i, depth = m.end(), 1
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        body = text[m.end():i - 1]
        parts = [p.strip() for p in body.split(",")]
        name, flags = parts[0], (parts[1] if len(parts) > 1 else "0")
        if not re.match(r"^\d{4}_\w+$", name):
            continue
        sc = re.search(r'\.scenario\s*=\s*"([^"]*)"', body)
        entries.append((name, flags, sc.group(1) if sc else "default"))
    return entries


def rdk_broker_tests(test_c, scenario):
    """Broker (non-local, non-manual) tests that run in `scenario`."""
    out = []
    for name, flags, sc in rdk_entries(test_c):
        if "TEST_F_LOCAL" in flags or "TEST_F_MANUAL" in flags:
            continue
        if scenario not in sc:  # test.c uses strstr(scenario, test_scenario)
            continue
        out.append(name)
    return out


def rdk_results(test_c, scenario, logdir, out_tsv):
    rows = {}
    for name in rdk_broker_tests(test_c, scenario):
        rows[name] = None
    nums = sorted({n[:4] for n in rows})
    row_re = re.compile(
        r"^\|\s*(\d{4}_\w+)\s*\|\s*(PASSED|FAILED|SKIPPED|RUNNING|DNS)\s*\|\s*[\d.]+s\s*\|\s?(.*)$")
    for num in nums:
        try:
            log = open(f"{logdir}/{num}.log", encoding="utf-8", errors="replace").read()
        except OSError:
            log = ""
        try:
            rc = open(f"{logdir}/{num}.rc").read().strip()
        except OSError:
            rc = "?"
        clean = ANSI.sub("", log)
        first_failure = {}
        for m in FAIL_RE.finditer(clean):
            name, sub, where, msg = m.group(1), m.group(2), m.group(3), m.group(4).strip()
            where = where.split(":")[0] + ":" + where.split(":")[1] if where.count(":") >= 1 else where
            first_failure.setdefault(name, f"{'[' + sub + '] ' if sub else ''}{msg} ({where})")
        seen = {}
        # Without a summary table (test-runner aborted), the per-test banners tell.
        for m in PASSED_RE.finditer(clean):
            seen[m.group(1)] = ("PASSED", "")
        for m in SKIP_RE.finditer(clean):
            seen.setdefault(m.group(1), ("SKIPPED", m.group(2).strip()))
        for name in first_failure:
            seen[name] = ("FAILED", "")
        for line in clean.splitlines():
            m = row_re.match(line.strip())
            if m and m.group(1) in rows:
                seen[m.group(1)] = (m.group(2), m.group(3).strip())
        # The last "TEST ... SUMMARY" table wins (a timeout prints one, then kills the run).
        for name in [n for n in rows if n.startswith(num)]:
            state, reason = seen.get(name, (None, ""))
            if state in ("RUNNING", "DNS") or (state is None and rc != "0"):
                state = "FAILED"
                why = {"124": "killed by the script's per-test timeout",
                       "137": "test-runner killed (a test timed out)",
                       "143": "test-runner terminated by a SIGTERM from outside, twice"}.get(
                    rc, f"test-runner exited {rc} without finishing this test")
                reason = f"{why}; see {logdir}/{num}.log"
            elif state is None:
                state, reason = "SKIPPED", "not run by test-runner"
            elif state == "FAILED" and not reason:
                reason = f"timed out or failed without a message (exit {rc}); see {logdir}/{num}.log"
            if state == "FAILED" and name in first_failure:
                reason = first_failure[name] + ("" if rc in ("0", "1") else f" [exit {rc}]")
            rows[name] = (state, reason)
    with open(out_tsv, "w") as f:
        for name, (state, reason) in rows.items():
            f.write(f"{name}\t{state}\t{reason.replace(chr(9), ' ')}\n")


def kp_render(template, datadir, controller_port):
    text = open(template).read()
    binding = dict(broker_id=0, transport="PLAINTEXT", host="127.0.0.1", port=0,
                   controller_bootstrap_host="127.0.0.1", controller_port=controller_port,
                   sasl_config="", ssl_dir="", tmp_dir=datadir, partitions=4, replicas=1,
                   zk_host="127.0.0.1", zk_port=2181, zk_chroot="")
    for line in text.format(**binding).splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            print(line)


def kp_results(junit, out_tsv):
    rows = []
    for tc in ET.parse(junit).getroot().iter("testcase"):
        cls = tc.get("classname", "")
        name = f"{cls.replace('.', '/')}.py::{tc.get('name')}" if cls else tc.get("name")
        state, reason = "PASSED", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                state = "FAILED"
                msg = child.get("message") or (child.text or "")
                reason = ("error: " if child.tag == "error" else "") + msg
                break
            if child.tag == "skipped":
                state, reason = "SKIPPED", child.get("message", "")
        reason = " ".join(reason.split())[:300]
        rows.append((name, state, reason))
    with open(out_tsv, "w") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")


def summary(tsv):
    counts = {"PASSED": 0, "FAILED": 0, "SKIPPED": 0}
    for line in open(tsv):
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2:
            counts[parts[1]] = counts.get(parts[1], 0) + 1
    print(counts["PASSED"], counts["FAILED"], counts["SKIPPED"])


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "rdk-tests":
        print(" ".join(sorted({n[:4] for n in rdk_broker_tests(*args)})))
    elif cmd == "rdk-expected":
        print("\n".join(rdk_broker_tests(*args)))
    elif cmd == "rdk-results":
        rdk_results(*args)
    elif cmd == "kp-render":
        kp_render(*args)
    elif cmd == "kp-results":
        kp_results(*args)
    elif cmd == "summary":
        summary(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
