"""Metrics and CloudWatch logs, with a real `medview serve` and real clients.

One server with `--log-format json`, `/metrics` on its own loopback port and EMF records flushed
every 200 ms. Real WebSocket and SSE clients (accepted, refused, an emergency, a medication
warning, a throttled model call) drive it; then the test reads the values (not only the names)
on `/metrics` and in the EMF records, and checks that neither they nor any JSON log line carries
the message text or the token (docs/METRICS.md, docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import LISTENING, SHUTDOWN_TIMEOUT, STARTUP_TIMEOUT, _child_environment, interrupt_and_wait, medview_binary, mint_token

METRICS_LINE = re.compile(r"Metrics: http://(?P<host>[^:/\s]+):(?P<port>\d+)/metrics")
NAMESPACE = "MedViewTest"
SERVICE = "medview-pytest"
FLUSH_MS = 200


class JsonServer:
    """`medview serve --log-format json --metrics-port 0`, its stderr (logs, EMF) in a file."""

    def __init__(self, tmp_path, extra: list[str] | None = None):
        self.data_dir = tmp_path / "data"
        self.data_dir.mkdir()
        self.log_path = tmp_path / "metrics-server.log"
        self.stderr = open(self.log_path, "w")
        environment = _child_environment()
        environment["MEDVIEW_METRICS_NAMESPACE"] = NAMESPACE
        environment["MEDVIEW_METRICS_SERVICE"] = SERVICE
        self.process = subprocess.Popen(
            [str(medview_binary()), "serve", "--port", "0", "--data-dir", str(self.data_dir), "--model", "scripted",
             "--log-format", "json", "--log-level", "debug", "--metrics-port", "0",
             "--metrics-flush-ms", str(FLUSH_MS), *(extra or [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1, env=environment,
        )
        lines: queue.Queue = queue.Queue()
        self.output: list[str] = []

        def pump():
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.url = self.metrics_url = None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self.url is None or self.metrics_url is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "medview serve exited:\n" + self.log_path.read_text()[-3000:]
            if match := LISTENING.search(line):
                self.url = f"http://{match.group('host')}:{match.group('port')}"
            if match := METRICS_LINE.search(line):
                assert match.group("host") == "127.0.0.1"
                self.metrics_url = f"http://127.0.0.1:{match.group('port')}/metrics"

    def token(self, user: str) -> str:
        return mint_token(self.data_dir, user)

    def stop(self):
        interrupt_and_wait(self.process)
        self.stderr.close()

    def stderr_lines(self) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if line.strip()]


def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    """{(name, frozenset(labels)): value} for every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def ws_answer(url: str, token: str, message_id: str, text: str) -> list[dict]:
    """Sends `text` over a new WebSocket; returns the answer's events (ack first) up to its end."""
    async with connect(url.replace("http://", "ws://") + "/v1/ws", additional_headers={"Authorization": f"Bearer {token}"},
                       proxy=None, compression=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "chat.send", "id": message_id, "text": text}))
        events = []
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            events.append(event)
            if event["type"] == "stream.end" or (event["type"] == "error" and "seq" in event) or (event["type"] == "error" and event.get("id") == message_id):
                return events


def malformed_upgrade(url: str) -> tuple[int, dict]:
    """A WebSocket upgrade request without a Sec-WebSocket-Key, over a raw socket."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


async def ws_refused(url: str) -> dict:
    async with connect(url.replace("http://", "ws://") + "/v1/ws", additional_headers={"Authorization": "Bearer not.a.token"},
                       proxy=None, compression=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)
        return event


def parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.split("\n\n"):
        data = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


def emf_records(lines: list[str]) -> list[dict]:
    records = []
    for line in lines:
        obj = json.loads(line)
        if "_aws" in obj:
            records.append(obj)
    return records


def emf_sum(records, name: str, **dimensions) -> float:
    """Sum of metric `name` over records whose dimension values match."""
    total = 0.0
    for r in records:
        if name not in r or any(r.get(k) != v for k, v in dimensions.items()):
            continue
        v = r[name]
        total += sum(v) if isinstance(v, list) else v
    return total


def emf_count(records, name: str) -> int:
    return sum(len(r[name]) if isinstance(r[name], list) else 1 for r in records if name in r)


@pytest.fixture
def json_server(tmp_path):
    server = JsonServer(tmp_path)
    yield server
    server.stop()


def test_metrics_and_emf_count_real_connections_and_never_carry_text_or_tokens(json_server):
    server = json_server
    marker = "zqmarker" + uuid.uuid4().hex[:12]
    user = "metrics-" + uuid.uuid4().hex[:8]
    token = server.token(user)
    # The main port no longer serves /metrics once it has its own listener.
    assert httpx.get(server.url + "/metrics", timeout=10, trust_env=False).status_code == 404

    plain = f"How can I sleep better {marker}? [[repeat:3]]"
    emergency = f"I have crushing chest pain going down my left arm {marker}"
    medication = f"I take warfarin and ibuprofen every day {marker}"
    throttled = f"[[throttle]] hello {marker}"

    async def drive():
        answers = []
        for i, text in enumerate([plain, emergency, medication, throttled]):
            answers.append(await ws_answer(server.url, token, f"m-{i}-{marker}", text))
        refused = await ws_refused(server.url)
        return answers, refused

    answers, refused = asyncio.run(asyncio.wait_for(drive(), 120))
    assert refused["type"] == "error" and refused["code"] == "unauthorized"
    # A malformed upgrade (no Sec-WebSocket-Key) gets a typed 400 and counts as upgrade_error.
    status, body = malformed_upgrade(server.url)
    assert status == 400 and body["error"]["code"] == "malformed_request", (status, body)
    ws_chunks = [e for events in answers for e in events if e["type"] == "stream.chunk"]
    ws_completed = [events for events in answers if events[-1]["type"] == "stream.end"]
    assert len(ws_completed) == 3, answers
    assert answers[3][-1]["type"] == "error" and answers[3][-1]["code"] == "model_throttled", answers[3]
    assert any(e["type"] == "safety.alert" and e["category"] == "cardiac" for e in answers[1])
    warnings = [e for e in answers[2] if e["type"] == "safety.warning"]
    assert warnings, answers[2]

    # SSE: one accepted answer, one refused request.
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    with httpx.Client(timeout=30, trust_env=False) as client:
        conversation = client.post(server.url + "/v1/conversations", headers={"Authorization": f"Bearer {token}"}, json={}).json()["id"]
        response = client.post(server.url + f"/v1/conversations/{conversation}/messages", headers=headers,
                               json={"id": "sse-" + marker, "text": plain})
        assert response.status_code == 200
        sse_events = parse_sse(response.text)
        refused_sse = client.post(server.url + f"/v1/conversations/{conversation}/messages",
                                  headers={"Authorization": "Bearer not.a.token", "Accept": "text/event-stream"},
                                  json={"id": "sse-2", "text": plain})
        assert refused_sse.status_code == 401
    sse_chunks = [e for e in sse_events if e["type"] == "stream.chunk"]
    assert sse_events[-1]["type"] == "stream.end"

    # /metrics: the values, by label.
    def scrape():
        text = httpx.get(server.metrics_url, timeout=10, trust_env=False).text
        return text, parse_prometheus(text)

    deadline = time.monotonic() + 10
    while True:
        text, m = scrape()
        if value(m, "medview_websocket_connections") == 0 and value(m, "medview_sse_connections") == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "summary" not in text, "histograms, not summaries"
    assert value(m, "medview_websocket_connections") == 0 and value(m, "medview_sse_connections") == 0
    assert value(m, "medview_connection_attempts_total", transport="websocket", result="accepted") == 4
    assert value(m, "medview_connection_attempts_total", transport="websocket", result="auth_refused") == 1
    assert value(m, "medview_connection_attempts_total", transport="websocket", result="upgrade_error") == 1
    assert value(m, "medview_connection_attempts_total", transport="sse", result="accepted") == 1
    assert value(m, "medview_connection_attempts_total", transport="sse", result="auth_refused") == 1
    # Every answer that produced text had its first chunk timed as the patient sees it.
    ws_with_text = sum(1 for events in answers if any(e["type"] == "stream.chunk" for e in events))
    assert value(m, "medview_time_to_first_chunk_seconds_count", transport="websocket") == ws_with_text
    assert value(m, "medview_time_to_first_chunk_seconds_count", transport="sse") == 1
    assert value(m, "medview_first_chunk_server_seconds_count") == ws_with_text + 1
    assert value(m, "medview_chunks_delivered_total", transport="websocket") == len(ws_chunks)
    assert value(m, "medview_chunks_delivered_total", transport="sse") == len(sse_chunks)
    assert value(m, "medview_characters_delivered_total", transport="websocket") == sum(len(e["text"]) for e in ws_chunks)
    assert value(m, "medview_chunk_delivery_seconds_count", transport="websocket") == len(ws_chunks)
    chunk_answers = ws_with_text + 1
    assert value(m, "medview_inter_chunk_gap_seconds_count") == len(ws_chunks) + len(sse_chunks) - chunk_answers
    assert value(m, "medview_streams_ended_total", status="complete") == 4
    assert value(m, "medview_streams_ended_total", status="failed") == 1
    assert value(m, "medview_stream_errors_total", code="model_throttled") >= 1
    assert value(m, "medview_stream_errors_total", code="unauthorized") >= 1
    assert value(m, "medview_model_calls_total", provider="scripted") == 5
    assert value(m, "medview_model_throttles_total", provider="scripted") == 1
    assert value(m, "medview_model_first_delta_seconds_count", provider="scripted") == 4
    assert value(m, "medview_safety_alerts_total", category="cardiac") == 1
    assert sum(v for (name, _), v in m.items() if name == "medview_safety_warnings_total") == len(warnings)
    assert value(m, "medview_ready") == 1
    assert value(m, "medview_store_operation_seconds_count", operation="begin_turn") == 5
    assert value(m, "medview_store_operation_seconds_count", operation="finish_turn") == 5
    # Every store call is timed, not only those on an answer's path: the journal's group commits,
    # the heartbeat at start-up, the conversation created over HTTP.
    assert value(m, "medview_store_operation_seconds_count", operation="append_stream_events") >= 1
    assert value(m, "medview_store_operation_seconds_count", operation="record_heartbeat") >= 1
    assert value(m, "medview_store_operation_seconds_count", operation="create_conversation") >= 1
    assert value(m, "medview_key_provider_seconds_count", provider="local", operation="generate") >= 1
    # 2 s is a bucket bound of every latency histogram (alarm 1 reads le="2").
    for name in ("medview_time_to_first_chunk_seconds", "medview_inter_chunk_gap_seconds", "medview_first_chunk_server_seconds"):
        assert any(s == name + "_bucket" and float(dict(l)["le"]) == 2.0 for (s, l) in m if dict(l).get("le") not in (None, "+Inf"))

    # EMF records: written within a flush interval, the same values under the CloudWatch names.
    # Waited for (a busy machine flushes late), then checked exactly.
    deadline = time.monotonic() + 30
    while True:
        lines = server.stderr_lines()
        records = emf_records(lines)
        settled = emf_sum(records, "ModelCalls", Provider="scripted") >= 5 and emf_sum(records, "StreamsEnded", Status="complete") >= 4 \
            and emf_count(records, "TimeToFirstChunkMs") >= ws_with_text + 1 and emf_sum(records, "ConnectionAttempts") >= 8
        if settled or time.monotonic() > deadline:
            break
        time.sleep(FLUSH_MS / 1000)
    assert records, "no EMF records"
    for r in records:
        directive = r["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == NAMESPACE
        assert r["Service"] == SERVICE
        assert all(d[0] == "Service" and all(k in r for k in d) for d in directive["Dimensions"])
        for metric in directive["Metrics"]:
            assert metric["Name"] in r and metric["Unit"] in ("Count", "Milliseconds")
            if isinstance(r[metric["Name"]], list):
                assert 1 <= len(r[metric["Name"]]) <= 100
    assert emf_sum(records, "ConnectionAttempts") == 8
    assert emf_sum(records, "ConnectionFailures") == 3
    assert emf_sum(records, "ConnectionFailures", Reason="auth_refused") == 2
    assert emf_sum(records, "ConnectionFailures", Reason="upgrade_error") == 1
    assert emf_count(records, "TimeToFirstChunkMs") == ws_with_text + 1
    assert all(0 <= v < 30_000 for r in records if "TimeToFirstChunkMs" in r for v in r["TimeToFirstChunkMs"])
    assert emf_count(records, "FirstChunkLatencyMs") == ws_with_text + 1
    assert emf_sum(records, "ChunksDelivered") == len(ws_chunks) + len(sse_chunks)
    assert emf_sum(records, "CharactersDelivered") == sum(len(e["text"]) for e in ws_chunks + sse_chunks)
    assert emf_count(records, "InterChunkGapMs") == len(ws_chunks) + len(sse_chunks) - chunk_answers
    assert emf_sum(records, "StreamsEnded", Status="complete") == 4
    assert emf_sum(records, "ModelCalls", Provider="scripted") == 5
    assert emf_sum(records, "ModelThrottles", Provider="scripted") == 1
    assert emf_sum(records, "SafetyAlerts", Category="cardiac") == 1
    assert emf_sum(records, "StreamErrors", Code="unauthorized") >= 1
    open_records = [r for r in records if "ConnectionsOpen" in r]
    assert {r["Transport"] for r in open_records} == {"websocket", "sse"}

    # Logs: every line is one JSON object; lines about a connection name it; no PHI anywhere.
    logs = [json.loads(line) for line in lines if "_aws" not in line]
    assert logs and all({"timestamp", "level", "message", "logger"} <= set(entry) for entry in logs)
    ws_lines = [entry for entry in logs if "ws.id" in entry]
    assert ws_lines and all(entry.get("connection.id") == entry["ws.id"] for entry in ws_lines)
    alert_lines = [entry for entry in logs if entry["message"] == "safety.alert"]
    assert alert_lines and all("connection.id" in entry for entry in alert_lines)
    # Lines about an answer name its connection (WebSocket) or request (SSE, whose body is
    # written after the route returned).
    answer_lines = [entry for entry in logs if entry["message"].startswith(("stream.", "store.turn.", "safety."))]
    assert answer_lines and all("connection.id" in entry or "request.id" in entry for entry in answer_lines), \
        [entry["message"] for entry in answer_lines if "connection.id" not in entry and "request.id" not in entry]
    assert any("request.id" in entry for entry in answer_lines if entry["message"] == "stream.ended"), "SSE answer lines carry request.id"
    everything = "\n".join(lines) + "\n" + text + "\n" + "".join(server.output)
    for secret in (marker, token, token.split(".")[2], "crushing chest pain", "warfarin and ibuprofen", "sleep better"):
        assert secret not in everything, f"{secret[:12]}… leaked into logs, EMF or /metrics"
    assert user not in text and all(user not in json.dumps(r) for r in records), "a user id in a label"


def test_metrics_stay_on_the_main_port_without_a_metrics_port_and_text_logs_by_default(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    log_path = tmp_path / "metrics-text.log"
    with open(log_path, "w") as stderr:
        process = subprocess.Popen([str(medview_binary()), "serve", "--port", "0", "--data-dir", str(data_dir), "--model", "scripted"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
                                   env=_child_environment())
        try:
            url = None
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while url is None and time.monotonic() < deadline:
                line = process.stdout.readline()
                assert line, log_path.read_text()
                if match := LISTENING.search(line):
                    url = f"http://{match.group('host')}:{match.group('port')}"
            response = httpx.get(url + "/metrics", timeout=10, trust_env=False)
            assert response.status_code == 200
            m = parse_prometheus(response.text)
            assert ("medview_ready", frozenset()) in m
            assert "# TYPE medview_time_to_first_chunk_seconds histogram" in response.text
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=SHUTDOWN_TIMEOUT)
    text = log_path.read_text()
    assert "_aws" not in text, "EMF records only with JSON logs"
    assert not any(line.startswith("{") for line in text.splitlines())
