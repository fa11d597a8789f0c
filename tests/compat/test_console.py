"""The web console in headless Chromium (Debian's `chromium`, driven by
Playwright for Python through executable_path: no browser download).

A real gregor with `http.listeners=http://127.0.0.1:0`; a topic, records and
a consumer group made with confluent-kafka. Every page must load without
console errors and show them: brokers, topics (search), topic detail
(partitions, configs edited through the confirmation step), the message
browser finding a record by offset (JSON pretty-printed, binary as hex,
headers), producing a test message, the group with its member while active
(a reset refused with Kafka's message), then empty: the lag shown equals
`gregor consumer-groups --describe`'s, and an offset reset goes through (dry
run, then execute). A screenshot of each page is saved under
tests/compat/artifacts/console/.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from cluster_util import run_tool
from compat_util import ck_admin, ck_create_topic, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "console"
HTTP_RE = re.compile(r"^gregor: http listening on (http://\S+)$")
STEP_TIMEOUT_MS = 20_000

pytestmark = [pytest.mark.timeout(240)]


def http_base(broker, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(broker.stdout_lines):
            m = HTTP_RE.match(line)
            if m:
                return m.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no 'gregor: http listening' line in {broker.stdout_lines}")


def tool_lag(bootstrap: str, group: str) -> dict[tuple[str, int], str]:
    """(topic, partition) -> LAG as `gregor consumer-groups --describe` prints it."""
    out = run_tool(["consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group]).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group:
            rows[(cols[1], int(cols[2]))] = cols[5]
    return rows


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/install-test-deps.sh installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


class Console:
    """One page; collects console errors and uncaught exceptions."""

    def __init__(self, browser, base: str):
        self.base = base
        self.page = browser.new_page(viewport={"width": 1360, "height": 900})
        self.page.set_default_timeout(STEP_TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def open(self, hash_: str) -> None:
        """Navigates to #hash and waits until the page rendered it."""
        url = f"{self.base}/#{hash_}"
        if self.page.url == url:
            self.page.reload()  # the same hash would not render again
        else:
            self.page.goto(url)
        want = "#" + hash_.split("?")[0]
        self.page.wait_for_function("w => document.getElementById('app').dataset.loaded === w", arg=want)
        self.assert_clean(hash_)

    def assert_clean(self, where: str) -> None:
        err = self.page.locator("#error")
        shown = "" if err.is_hidden() else err.inner_text()
        assert not shown, f"{where}: the page shows an error: {shown}"
        assert not self.errors, f"{where}: console errors: {self.errors}"

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.broker_overrides({"http.listeners": "http://127.0.0.1:0", "num.partitions": "1"})
def test_console_pages(broker, topic, browser):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import ConfigResource

    base = http_base(broker)
    group = f"{topic}-readers"
    ck_create_topic(broker.bootstrap, topic, 3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(30):
        value = json.dumps({"n": i, "kind": "order"}).encode()
        p.produce(topic, key=f"k{i}".encode(), value=value, partition=i % 3, headers=[("source", b"test")])
    p.produce(topic, key=b"bin", value=bytes([0, 1, 0xfe, 0xff]), partition=0)
    assert p.flush(30) == 0
    # The group: consume some records, commit, stay a member.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 12 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) >= 12, f"consumed only {len(got)} records"
    c.commit(asynchronous=False)

    ui = Console(browser, base)
    page = ui.page

    # Brokers: the one node, on the broker's port.
    ui.open("/brokers")
    assert page.locator("#brokers tbody tr").count() == 1
    assert str(broker.port) in page.locator("#brokers").inner_text()
    ui.shot("brokers")

    # Topics, searched.
    ui.open(f"/topics?q={topic[-12:]}&page=0")
    page.locator("#topics").get_by_role("link", name=topic).wait_for()
    ui.shot("topics")

    # Topic detail: three partitions with leader and offsets.
    ui.open(f"/topics/{topic}")
    rows = page.locator("#partitions tbody tr")
    assert rows.count() == 3
    assert page.locator("#topic-name").inner_text() == topic
    ui.shot("topic-partitions")

    # Configs: edit retention.ms, review (validate_only), confirm.
    ui.open(f"/topics/{topic}/configs")
    page.locator('input[data-config="retention.ms"]').fill("3600000")
    page.locator("#config-review").click()
    page.locator("#config-diff").wait_for()
    ui.shot("topic-configs-review")
    page.locator("#config-confirm").click()
    page.locator("#config-applied").wait_for()
    ui.assert_clean("configs")
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = ck_admin(broker.bootstrap)  # kept: the futures need the handle alive
    fs = admin.describe_configs([res])
    assert fs[res].result(timeout=30)["retention.ms"].value == "3600000"

    # Message browser: partition 0 from offset 2 (record n=6), JSON pretty-printed.
    ui.open(f"/topics/{topic}/messages?partition=0&offset=2")
    row = page.locator('#messages tr[data-offset="2"]')
    row.wait_for()
    text = row.inner_text()
    assert '"n": 6' in text and "k6" in text and "source" in text, text
    ui.shot("topic-messages-json")
    # The binary value (offset 10 of partition 0) as hex.
    page.locator("#browse-at").fill("10")
    page.locator("#browse-go").click()
    bin_row = page.locator('#messages tr[data-offset="10"]')
    bin_row.wait_for()
    assert "00 01 fe ff" in bin_row.inner_text()
    ui.assert_clean("messages")
    ui.shot("topic-messages-binary")

    # Produce a test message to partition 2, then find it.
    ui.open(f"/topics/{topic}/produce")
    page.locator("#produce-partition").select_option("2")
    page.locator("#produce-key").fill("console-key")
    page.locator("#produce-value").fill('{"from": "console"}')
    page.locator("#produce-headers").fill("trace=abc")
    page.locator("#produce-send").click()
    result = page.locator("#produce-result .notice")
    result.wait_for()
    assert "Written to partition 2 at offset 10" in result.inner_text(), result.inner_text()
    ui.shot("topic-produce")
    ui.open(f"/topics/{topic}/messages?partition=2&offset=10")
    produced = page.locator('#messages tr[data-offset="10"]')
    produced.wait_for()
    assert "console-key" in produced.inner_text() and '"from": "console"' in produced.inner_text()

    # Groups: the active group with its member; a reset is refused.
    ui.open("/groups")
    page.locator("#groups").get_by_role("link", name=group).wait_for()
    ui.shot("groups")
    ui.open(f"/groups/{group}")
    wait_until(lambda: page.locator("#group-state").inner_text() == "Stable", 30, "the group page to show Stable")
    assert page.locator("#group-members tbody tr").count() == 1
    page.locator("#reset-dry-run").click()
    refused = page.locator("#reset-error")
    refused.wait_for()
    assert "can only be reset if the group" in refused.inner_text() and "inactive" in refused.inner_text()
    ui.shot("group-active")
    # The browser logs the API's 409 as a failed resource load: expected here.
    ui.errors = [e for e in ui.errors if "409" not in e]
    ui.assert_clean("group (active)")

    # Empty group: lag equals the tool's.
    c.close()
    wait_until(lambda: "Empty" in run_tool(["consumer-groups", "--bootstrap-server", broker.bootstrap,
                                            "--describe", "--group", group, "--state"]).stdout,
               30, "the group to be Empty")
    expected = tool_lag(broker.bootstrap, group)
    assert expected, "the tool printed no partitions"
    ui.open(f"/groups/{group}")
    page.locator("#group-lag tbody tr").first.wait_for()
    shown = {}
    for r in page.locator("#group-lag tbody tr").all():
        cells = [c.inner_text().strip() for c in r.locator("td").all()]
        shown[(cells[0], int(cells[1]))] = cells[4].replace(",", "")
    assert shown == expected, f"console {shown} != tool {expected}"
    page.locator("#lag-chart polyline").wait_for(state="attached")
    ui.shot("group-lag")

    # Reset to earliest: dry run shows the plan, execute applies it.
    page.locator("#reset-topic").select_option(topic)
    page.locator("#reset-to").select_option("earliest")
    page.locator("#reset-dry-run").click()
    page.locator("#reset-plan").wait_for()
    plan = page.locator("#reset-plan tbody tr")
    assert plan.count() == 3
    after_dry_run = tool_lag(broker.bootstrap, group)
    assert after_dry_run == expected, "a dry run changed offsets"
    ui.shot("group-reset-plan")
    page.locator("#reset-execute").click()
    page.locator("#reset-executed").wait_for()
    ui.assert_clean("reset")
    ui.shot("group-reset-done")
    after = run_tool(["consumer-groups", "--bootstrap-server", broker.bootstrap, "--describe", "--group", group]).stdout
    offsets = {}
    for line in after.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group:
            offsets[int(cols[2])] = cols[3]
    assert offsets == {0: "0", 1: "0", 2: "0"}, after
    page.close()


SASL_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
             'user_admin="admin-secret" user_alice="alice-secret";')


@pytest.mark.broker_overrides({
    "http.listeners": "http://127.0.0.1:0",
    # The listener named PLAINTEXT speaks SASL_PLAINTEXT (as Kafka allows), so
    # the fixture still finds its line; the console must log in.
    "listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT",
    "sasl.enabled.mechanisms": "PLAIN",
    "listener.name.plaintext.plain.sasl.jaas.config": SASL_JAAS,
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin",
})
def test_console_logs_in_with_basic_auth(broker, topic, browser):
    """On a SASL listener the console asks for basic credentials and uses them
    as its SASL login: no credentials or a wrong password is 401 (with a
    Basic challenge); each user's own login works, with that user's ACLs
    (alice, without any, sees no topic and may not produce)."""
    import base64
    import urllib.error
    import urllib.request

    base = http_base(broker)
    ck_conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
               "sasl.username": "admin", "sasl.password": "admin-secret"}
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **ck_conf})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)

    def get(path, user=None, password=None, data=None):
        req = urllib.request.Request(base + path, data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read())

    status, headers, _ = get("/api/topics")
    assert status == 401 and headers.get("www-authenticate", headers.get("WWW-Authenticate", "")).startswith("Basic")
    status, _, body = get("/api/topics", "admin", "wrong")
    assert status == 401, body
    assert "Authentication failed" in body["error"]
    wait_until(lambda: topic in [t["name"] for t in get(f"/api/topics?q={topic}", "admin", "admin-secret")[2]["topics"]],
               30, "the admin to see the topic")
    status, _, body = get(f"/api/topics?q={topic}", "alice", "alice-secret")
    assert status == 200, body
    assert topic not in [t["name"] for t in body["topics"]], body
    produce = json.dumps({"partition": 0, "value": "from alice"}).encode()
    status, _, body = get(f"/api/topics/{topic}/produce", "alice", "alice-secret", produce)
    assert status == 403, (status, body)
    status, _, body = get(f"/api/topics/{topic}/produce", "admin", "admin-secret", produce)
    assert status == 200, (status, body)

    # The page in the browser, logged in as admin.
    ctx = browser.new_context(http_credentials={"username": "admin", "password": "admin-secret"},
                              viewport={"width": 1360, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/#/topics?q={topic}&page=0")
    page.locator("#topics").get_by_role("link", name=topic).wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "topics-sasl-admin.png"), full_page=True)
    assert not errors, errors
    ctx.close()
