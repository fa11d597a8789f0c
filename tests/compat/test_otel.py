"""OpenTelemetry trace export (gregor built with the `otel` feature): a span
per Kafka request, sent over OTLP/HTTP (protobuf) to the endpoint the
standard environment variables name. The receiver here is a plain
http.server on 127.0.0.1:0 decoding ExportTraceServiceRequest with the
opentelemetry-proto package; confluent-kafka produces and consumes.

One invariant: every answered request is exported as a server span named
after its API, carrying the API version, client id, principal, listener,
error code and phase times, under the configured service name.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cluster_util import wait_for
from test_metrics import consume_all, produce

TIMEOUT = 30.0
CLIENT_ID = "otel-compat"

pytestmark = pytest.mark.timeout(120)


def attr_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Receiver:
    """An OTLP/HTTP traces endpoint: keeps every span with its resource's attributes."""

    def __init__(self):
        self.spans: list[tuple[dict, Span]] = []
        self.posts: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                with receiver.lock:
                    receiver.posts.append(f"{self.path} {self.headers.get('Content-Type')}")
                    for rs in req.resource_spans:
                        resource = {a.key: attr_value(a.value) for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            receiver.spans.extend((resource, s) for s in ss.spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def find(self, name: str, **attrs) -> list[tuple[dict, Span, dict]]:
        with self.lock:
            spans = list(self.spans)
        out = []
        for resource, s in spans:
            a = {kv.key: attr_value(kv.value) for kv in s.attributes}
            if s.name == name and all(a.get(k) == v for k, v in attrs.items()):
                out.append((resource, s, a))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp(monkeypatch):
    """The receiver, named by the environment the broker fixture (requested
    after this one) passes to gregor."""
    r = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", r.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gregor-compat")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    # Export every 100 ms instead of every 5 s.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    yield r
    r.close()


def test_spans_per_request_reach_the_otlp_endpoint(otlp, broker, topic):
    if "OpenTelemetry: exporting" not in broker.stderr_text(tail=None):
        pytest.fail("gregor was built without the otel feature: "
                    "cargo build -p gregor-cli --features otel (scripts/test.sh does)")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "client.id": CLIENT_ID})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT)
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT)
    assert err.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    produce(broker.bootstrap, topic, {0: 5})
    consume_all(broker.bootstrap, topic, f"{topic}-g", 5).close()

    produced = wait_for(lambda: otlp.find("Produce", **{"kafka.error_code": 0}), TIMEOUT,
                        "a Produce span", on_timeout=lambda: str(otlp.posts[:5]))
    resource, span, a = produced[0]
    assert resource["service.name"] == "gregor-compat"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
    assert len(span.trace_id) == 16 and len(span.span_id) == 8
    assert a["rpc.system"] == "kafka" and a["rpc.method"] == "Produce"
    assert a["kafka.api_key"] == 0 and a["kafka.api_version"] >= 3
    assert a["kafka.listener"] == "PLAINTEXT"
    assert a["enduser.id"] == "User:ANONYMOUS"
    for phase in ("local", "remote", "response_send", "throttle"):
        assert a[f"kafka.{phase}_time_ms"] >= 0, phase
    assert otlp.posts[0].startswith("/v1/traces application/x-protobuf"), otlp.posts[0]

    fetched = wait_for(lambda: otlp.find("Fetch"), TIMEOUT, "a Fetch span")
    assert fetched[0][2]["kafka.api_key"] == 1

    # The failed CreateTopics: its error code and an error status.
    failed = wait_for(lambda: otlp.find("CreateTopics", **{"kafka.error_code": 36}), TIMEOUT,
                      "the failed CreateTopics span")
    _, span, a = failed[0]
    assert a["kafka.client_id"] == CLIENT_ID
    assert a["kafka.error"] == "TOPIC_ALREADY_EXISTS"
    assert span.status.code == Status.STATUS_CODE_ERROR
    ok = otlp.find("CreateTopics", **{"kafka.error_code": 0})
    assert ok and ok[0][1].status.code != Status.STATUS_CODE_ERROR
