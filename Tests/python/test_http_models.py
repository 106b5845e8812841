"""End to end with the HTTP model providers: `medview serve --model openai:...` and
`--model anthropic:...` (ANTHROPIC_BASE_URL pointed at a stand-in) stream a full answer to a
WebSocket client.

The stand-in is a small loopback HTTP server written here that answers like the real APIs:
OpenAI-compatible `POST /v1/chat/completions` and Anthropic `POST /v1/messages`, both as chunked
Server-Sent Events, with a rate-limited first try or a mid-stream error when the patient's message
asks for one. It records what it was sent, so the tests check the request the server built.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import LiveServer, start_medview, stop_medview
from test_live_clients import collect_stream, expect_ack, get_messages, http_client, new_id, run, send_cmd, ws_open

API_KEY = "sk-test-standin-key-0123456789"
ANSWER_PIECES = [
    "Gentle ", "stretching ", "and a ", "regular ", "sleep ", "schedule ", "often ", "help ", "with ",
    "back ", "stiffness. ", "If the pain ", "spreads or ", "you feel ", "numbness, ", "see your ", "doctor. ☺",
]
ANSWER = "".join(ANSWER_PIECES)
#: Markers in the patient's message that steer the stand-in.
THROTTLE_ONCE = "(please be patient)"
FAIL_MIDWAY = "(tell me a long story)"


@dataclass
class StandIn:
    """What the stand-in saw, shared with its handler threads."""

    requests: list[dict] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    # The server's model triage (a one-word classification asked alongside each answer, see
    # docs/SAFETY.md): answered "none" and kept apart from the answers' requests.
    triage: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _is_triage(body: dict) -> bool:
    system = body.get("system") or next((m.get("content", "") for m in body.get("messages", []) if m.get("role") == "system"), "")
    return "safety triage classifier" in json.dumps(system)


def _make_handler(state: StandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _start(self, status: int, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()

        def _json_error(self, status: int, body: dict) -> None:
            self._start(status, "application/json")
            self._chunk(json.dumps(body).encode())
            self._chunk(b"")

        def _triage_none(self, stream: bool) -> None:
            if not stream:
                # The unstreamed reply the server asks for (ChatModel.reply): one JSON object.
                if self.path == "/v1/chat/completions":
                    reply = {"id": "t", "object": "chat.completion", "model": "test",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "none"}, "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
                else:
                    reply = {"id": "t", "type": "message", "role": "assistant", "model": "claude-test",
                             "content": [{"type": "text", "text": "none"}], "stop_reason": "end_turn",
                             "usage": {"input_tokens": 1, "output_tokens": 1}}
                self._start(200, "application/json")
                self._chunk(json.dumps(reply).encode())
                self._chunk(b"")
                return
            self._start(200, "text/event-stream")
            if self.path == "/v1/chat/completions":
                for obj in ({"id": "t", "object": "chat.completion.chunk", "model": "test", "choices": [{"index": 0, "delta": {"content": "none"}, "finish_reason": None}]},
                            {"id": "t", "object": "chat.completion.chunk", "model": "test", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}):
                    self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")
                self._chunk(b"data: [DONE]\n\n")
            else:
                for name, obj in (("message_start", {"type": "message_start", "message": {"id": "t", "type": "message", "role": "assistant", "content": [], "model": "claude-test", "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}),
                                  ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                                  ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "none"}}),
                                  ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                                  ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}),
                                  ("message_stop", {"type": "message_stop"})):
                    self._chunk(f"event: {name}\r\ndata: {json.dumps(obj)}\r\n\r\n".encode())
            self._chunk(b"")

        def do_POST(self):  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            last = body.get("messages", [{}])[-1].get("content", "")
            if _is_triage(body):
                with state.lock:
                    state.triage.append({"path": self.path, "body": body})
                self._triage_none(body.get("stream") is not False)
                return
            with state.lock:
                state.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                key = f"{self.path} {last}"
                state.attempts[key] = state.attempts.get(key, 0) + 1
                attempt = state.attempts[key]
            if self.path == "/v1/chat/completions":
                self._openai(last, attempt)
            elif self.path == "/v1/messages":
                self._anthropic(last, attempt)
            else:
                self._json_error(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

        def _openai(self, last: str, attempt: int) -> None:
            if THROTTLE_ONCE in last and attempt == 1:
                self._json_error(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
                return
            self._start(200, "text/event-stream")

            def send(obj) -> None:
                self._chunk(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")

            def choice(delta: dict, finish=None) -> dict:
                return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "test",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

            send(choice({"role": "assistant", "content": ""}))
            for index, piece in enumerate(ANSWER_PIECES):
                if FAIL_MIDWAY in last and index == 5:
                    send({"error": {"message": "The server had an error", "type": "server_error", "code": None}})
                    self._chunk(b"")
                    return
                send(choice({"content": piece}))
                time.sleep(0.005)
            send(choice({}, "stop"))
            send({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                  "usage": {"prompt_tokens": 57, "completion_tokens": len(ANSWER_PIECES)}})
            send(b"[DONE]")
            self._chunk(b"")

        def _anthropic(self, last: str, attempt: int) -> None:
            if self.headers.get("x-api-key") != API_KEY or self.headers.get("anthropic-version") != "2023-06-01":
                self._json_error(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
                return
            if THROTTLE_ONCE in last and attempt == 1:
                self._json_error(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
            self._start(200, "text/event-stream")

            def event(name: str, obj: dict) -> None:
                self._chunk(f"event: {name}\r\ndata: {json.dumps(obj)}\r\n\r\n".encode())

            event("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-test",
                "stop_reason": None, "usage": {"input_tokens": 61, "output_tokens": 1}}})
            event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            self._chunk(b": keep-alive\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n")
            for index, piece in enumerate(ANSWER_PIECES):
                if FAIL_MIDWAY in last and index == 5:
                    event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                    self._chunk(b"")
                    return
                event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
                time.sleep(0.005)
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
            event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": len(ANSWER_PIECES)}})
            event("message_stop", {"type": "message_stop"})
            self._chunk(b"")

    return Handler


@pytest.fixture(scope="module")
def standin():
    state = StandIn()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory, standin):
    _, port = standin
    server, stderr_file = start_medview(
        tmp_path_factory, "medview-openai",
        ["--model", f"openai:http://127.0.0.1:{port}/v1#test", "--max-output-tokens", "300"],
        {"MEDVIEW_TEMPERATURE": "0.3", "OPENAI_API_KEY": API_KEY},
    )
    yield server
    stop_medview(server, stderr_file)


@pytest.fixture(scope="module")
def anthropic_server(tmp_path_factory, standin):
    _, port = standin
    server, stderr_file = start_medview(
        tmp_path_factory, "medview-anthropic",
        ["--model", "anthropic:claude-test"],
        {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"},
    )
    yield server
    stop_medview(server, stderr_file)


def _ask(server: LiveServer, user: str, text: str) -> tuple[dict, list[dict], list[dict]]:
    """Sends `text` over a WebSocket; returns the ack, the stream's events and the stored messages."""
    token = server.token(user)

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            command_id = new_id("send")
            await send_cmd(ws, {"type": "chat.send", "id": command_id, "text": text})
            ack = await expect_ack(ws, command_id)
            events = await collect_stream(ws, ack["streamId"])
        async with http_client(server) as client:
            messages = await get_messages(client, token, ack["conversationId"])
        return ack, events, messages

    return run(scenario())


def _requests_for(state: StandIn, path: str, text: str) -> list[dict]:
    with state.lock:
        return [r for r in state.requests if r["path"] == path and r["body"]["messages"][-1]["content"] == text]


def _text(events: list[dict]) -> str:
    return "".join(e["text"] for e in events if e["type"] == "stream.chunk")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_full_answer_streams_from_the_provider_to_a_websocket_client(request, standin, provider, make_user):
    state, _ = standin
    server = request.getfixturevalue(f"{provider}_server")
    text = f"My back is stiff in the mornings, what helps? ({provider} {new_id('q')})"
    ack, events, messages = _ask(server, make_user(provider), text)

    start, end = events[0], events[-1]
    assert start["type"] == "stream.start"
    expected_id = "test" if provider == "openai" else "claude-test"
    assert start["model"] == {"provider": provider, "id": expected_id, "demo": False}
    assert end["type"] == "stream.end" and end["finishReason"] == "complete", end
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert _text(events) == ANSWER
    expected_usage = {"inputTokens": 57 if provider == "openai" else 61, "outputTokens": len(ANSWER_PIECES)}
    assert end["usage"] == expected_usage
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["status"] == "complete" and messages[1]["text"] == ANSWER

    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    sent = _requests_for(state, path, text)
    assert len(sent) == 1
    # The model triage asked the same provider about the same message, alongside the answer.
    with state.lock:
        asked = [t for t in state.triage if t["path"] == path and t["body"]["messages"][-1]["content"] == text]
    assert asked
    # It asks for one unstreamed reply: a word needs no stream. The stand-in's JSON reply "none"
    # was read as a clear triage.
    assert all(t["body"]["stream"] is False for t in asked)
    metrics = httpx.get(server.http_url + "/metrics", timeout=10).text
    assert re.search(r'^medview_safety_triage_total\{[^}]*outcome="clear"[^}]*\} [1-9]', metrics, re.M), "no clear triage counted"
    body, headers = sent[0]["body"], {k.lower(): v for k, v in sent[0]["headers"].items()}
    assert body["stream"] is True
    if provider == "openai":
        assert body["model"] == "test"
        assert headers["authorization"] == f"Bearer {API_KEY}"
        assert body["messages"][0]["role"] == "system" and body["messages"][0]["content"]
        assert body["max_tokens"] == 300 and body["temperature"] == 0.3
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert body["model"] == "claude-test"
        assert body["system"] and body["max_tokens"] == 1024 and "temperature" not in body
        assert [m["role"] for m in body["messages"]] == ["user"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_throttled_or_overloaded_first_try_is_retried_and_the_answer_completes(request, standin, provider, make_user):
    state, _ = standin
    server = request.getfixturevalue(f"{provider}_server")
    text = f"Is stretching safe for me? {THROTTLE_ONCE} {new_id('q')}"
    _, events, messages = _ask(server, make_user(provider), text)
    assert events[-1]["type"] == "stream.end" and events[-1]["finishReason"] == "complete", events[-1]
    assert _text(events) == ANSWER
    assert messages[1]["status"] == "complete"
    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    assert len(_requests_for(state, path, text)) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_provider_error_mid_answer_ends_with_a_retryable_error_and_keeps_the_partial_text(request, standin, provider, make_user):
    state, _ = standin
    server = request.getfixturevalue(f"{provider}_server")
    text = f"What else can I do? {FAIL_MIDWAY} {new_id('q')}"
    _, events, messages = _ask(server, make_user(provider), text)
    error = events[-1]
    assert error["type"] == "error", error
    assert error["retryable"] is True
    assert error["code"] == "model_unavailable"
    assert not any(e["type"] == "stream.end" for e in events)
    partial = "".join(ANSWER_PIECES[:5])
    assert _text(events) == partial
    assert messages[1]["status"] == "failed" and messages[1]["text"] == partial
    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    # Text had reached the patient: the request is not repeated.
    assert len(_requests_for(state, path, text)) == 1
    # The provider's message and the patient's words never reach the server log.
    log = server.stderr_path.read_text(errors="replace")
    assert "tell me a long story" not in log and API_KEY not in log
