"""Real-client tests: a live `medview serve` driven the way apps and browsers drive it.

Every test talks to the session's server over loopback with a fresh user, and every network wait
is bounded, so a broken server fails a test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import hashlib
import json
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

#: Longest wait for any single network operation (connect, one frame, one HTTP response head).
TIMEOUT = 15.0
#: Longest a whole test scenario may take.
SCENARIO_TIMEOUT = 90.0
#: The protocol's default message limit (64 KiB) and the transport's hard frame limit (1 MiB).
MAX_FRAME_BYTES = 64 * 1024
HARD_FRAME_BYTES = 1024 * 1024


def run(coro, timeout: float = SCENARIO_TIMEOUT):
    """Runs one async scenario to completion with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------------
# WebSocket helpers (the `websockets` library)
# --------------------------------------------------------------------------------------------


async def ws_open(server, *, token: str | None = None, subprotocols: list[str] | None = None) -> ClientConnection:
    """Opens a WebSocket to /v1/ws; `token` goes in an Authorization header (non-browser clients)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return await asyncio.wait_for(
        connect(
            server.ws_url,
            additional_headers=headers,
            subprotocols=subprotocols,
            proxy=None,
            compression=None,
            open_timeout=TIMEOUT,
            close_timeout=5,
            max_size=HARD_FRAME_BYTES,
        ),
        TIMEOUT,
    )


async def send_cmd(ws: ClientConnection, command: dict) -> None:
    await asyncio.wait_for(ws.send(json.dumps(command)), TIMEOUT)


async def recv_event(ws: ClientConnection, timeout: float = TIMEOUT) -> dict:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), f"the server sent a binary frame: {message[:80]!r}"
    event = json.loads(message)
    assert isinstance(event, dict) and isinstance(event.get("type"), str), f"not an event: {message[:200]}"
    return event


def is_terminal(event: dict) -> bool:
    return event["type"] == "stream.end" or (event["type"] == "error" and event.get("seq") is not None)


async def collect_stream(ws: ClientConnection, stream_id: str) -> list[dict]:
    """Reads the events of `stream_id` up to and including its terminal event."""
    events: list[dict] = []
    while True:
        event = await recv_event(ws)
        assert event.get("streamId") == stream_id, f"unexpected event while streaming {stream_id}: {event}"
        events.append(event)
        if is_terminal(event):
            return events


async def expect_ack(ws: ClientConnection, command_id: str) -> dict:
    event = await recv_event(ws)
    assert event["type"] == "ack" and event["id"] == command_id, f"expected ack of {command_id}, got {event}"
    return event


def assert_gap_free(events: list[dict], first: int = 1) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(first, first + len(events))), f"seq is not gap-free from {first}: {seqs}"


def assert_complete_stream(events: list[dict]) -> None:
    """stream.start (seq 1), chunks, stream.end with finish reason `complete`; seq gap-free."""
    assert events[0]["type"] == "stream.start" and events[0]["seq"] == 1, events[0]
    assert events[-1]["type"] == "stream.end", events[-1]
    assert events[-1]["finishReason"] == "complete", events[-1]
    assert all(e["type"] == "stream.chunk" for e in events[1:-1]), [e["type"] for e in events]
    assert all(e["text"] for e in events[1:-1]), "a chunk is empty"
    assert_gap_free(events)


def chunk_text(events: list[dict]) -> str:
    return "".join(e["text"] for e in sorted(events, key=lambda e: e["seq"]) if e["type"] == "stream.chunk")


# --------------------------------------------------------------------------------------------
# HTTP helpers (httpx)
# --------------------------------------------------------------------------------------------


def http_client(server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http_url, timeout=httpx.Timeout(TIMEOUT), trust_env=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get_messages(client: httpx.AsyncClient, token: str, conversation_id: str) -> list[dict]:
    response = await client.get(f"/v1/conversations/{conversation_id}/messages", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["conversationId"] == conversation_id
    return body["messages"]


def assert_error_body(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.json()["error"]["code"] == code, response.text


# --------------------------------------------------------------------------------------------
# Server-Sent Events parser (the WHATWG event-stream format, fed incrementally)
# --------------------------------------------------------------------------------------------


@dataclass
class SSEEvent:
    event: str
    data: str
    #: The `id:` field of this event's own block, or None when the block had none.
    id: str | None
    #: The last-event-ID buffer after this event (the value a client would send on reconnect).
    last_event_id: str

    def json(self) -> dict:
        return json.loads(self.data)


class SSEParser:
    """Incremental event-stream parser: UTF-8 split anywhere, CRLF/CR/LF, comments, multi-line data."""

    _EOL = re.compile(r"\r\n|\r|\n")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""
        self._started = False
        self._data: list[str] = []
        self._type = ""
        self._own_id: str | None = None
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self.comments: list[str] = []

    def feed(self, raw: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(raw)
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        self._buffer += text
        return self._drain(final=False)

    def close(self) -> list[SSEEvent]:
        """End of stream: a trailing block without its blank line is discarded, as the spec says."""
        self._buffer += self._decoder.decode(b"", final=True)
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[SSEEvent]:
        events = []
        while True:
            match = self._EOL.search(self._buffer)
            if match is None:
                break
            # A lone CR at the end may be the first half of a CRLF that has not arrived yet.
            if match.group() == "\r" and match.end() == len(self._buffer) and not final:
                break
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end():]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._own_id = value
        elif name == "retry":
            if value and value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        own_id, self._own_id = self._own_id, None
        if not self._data:
            self._type = ""
            return None
        event = SSEEvent(self._type or "message", "\n".join(self._data), own_id, self.last_event_id)
        self._data, self._type = [], ""
        return event


async def sse_request(client: httpx.AsyncClient, method: str, url: str, *, token: str, json_body=None,
                      headers: dict | None = None) -> tuple[httpx.Headers, list[SSEEvent], SSEParser]:
    """Sends a request answered with an event stream and reads the stream to its end."""
    request_headers = {**bearer(token), "Accept": "text/event-stream", **(headers or {})}
    async with client.stream(method, url, headers=request_headers, json=json_body) as response:
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"{method} {url}: {response.status_code} {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        parser = SSEParser()
        events: list[SSEEvent] = []
        async for raw in response.aiter_raw():
            events += parser.feed(raw)
        events += parser.close()
        return response.headers, events, parser


def assert_sse_framing(events: list[SSEEvent]) -> None:
    """Each event's `event:` names its JSON type, and stream events carry `id: <seq>`."""
    for e in events:
        payload = e.json()
        assert e.event == payload["type"], f"event field {e.event!r} but data type {payload['type']!r}"
        if payload.get("seq") is not None:
            assert e.id == str(payload["seq"]), f"id field {e.id!r} for seq {payload['seq']}"


# --------------------------------------------------------------------------------------------
# A minimal hand-written WebSocket client (RFC 6455) over a raw socket, for frames that a
# well-behaved library refuses to send (a text frame that is not UTF-8, split fragments).
# --------------------------------------------------------------------------------------------


class RawWebSocket:
    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self._buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        request = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode("latin-1"))
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        if self.status != 101:
            self.sock.close()
            raise ConnectionError(f"upgrade refused: {status_line}")
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        assert self.headers.get("sec-websocket-accept") == accept, "bad Sec-WebSocket-Accept"

    def _recv_some(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the TCP connection")
        self._buffer += data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._recv_some()
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._recv_some()
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        """Sends one client frame, masked as RFC 6455 requires of clients."""
        header = bytearray([(0x80 if fin else 0x00) | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header.append(0x80 | 126)
            header += n.to_bytes(2, "big")
        else:
            header.append(0x80 | 127)
            header += n.to_bytes(8, "big")
        mask = os.urandom(4)
        header += mask
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + masked)

    def _recv_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._read_exact(2), "big")
        elif n == 127:
            n = int.from_bytes(self._read_exact(8), "big")
        assert not b1 & 0x80, "a server frame is masked (RFC 6455 forbids it)"
        return bool(b0 & 0x80), b0 & 0x0F, self._read_exact(n)

    def recv_text(self, timeout: float = TIMEOUT) -> str:
        """The next text message; answers pings, skips pongs, fails on close or binary."""
        deadline = time.monotonic() + timeout
        parts: list[bytes] = []
        while time.monotonic() < deadline:
            fin, opcode, payload = self._recv_frame()
            if opcode == self.PING:
                self.send_frame(self.PONG, payload)
                continue
            if opcode == self.PONG:
                continue
            if opcode == self.CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                raise ConnectionError(f"the server closed the WebSocket ({code}): {payload[2:]!r}")
            assert opcode in (self.TEXT, self.CONTINUATION), f"unexpected opcode {opcode}"
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8")
        raise TimeoutError(f"no text message within {timeout}s")

    def recv_event(self) -> dict:
        return json.loads(self.recv_text())

    def close(self) -> None:
        try:
            self.send_frame(self.CLOSE, (1000).to_bytes(2, "big"))
            self.sock.settimeout(2)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                _, opcode, _ = self._recv_frame()
                if opcode == self.CLOSE:
                    break
        except (OSError, ConnectionError, AssertionError):
            pass
        finally:
            self.sock.close()


# ============================================================================================
# 1. Browser-style authentication and a complete answer
# ============================================================================================

ANSWER = "Take one tablet with water, twice daily — café naïve 💊👍🏽 ok."


def test_browser_subprotocol_auth_streams_answer_that_matches_the_stored_message(server, user):
    token = server.token(user)
    text = f"How should I take my medicine? [[say:{ANSWER}]][[repeat:6]][[delay:1]]"
    expected = " ".join([ANSWER] * 6)

    async def scenario():
        ws = await ws_open(server, subprotocols=["medview.v1", f"medview.bearer.{token}"])
        async with ws:
            # Authenticated by subprotocol alone: no Authorization header was sent, and the server
            # answers `medview.v1` only, never echoing the token entry.
            assert "Authorization" not in ws.request.headers
            assert ws.subprotocol == "medview.v1"
            assert ws.response.headers.get_all("Sec-WebSocket-Protocol") == ["medview.v1"]
            assert all(token not in value for value in ws.response.headers.values())

            command_id = new_id("send")
            await send_cmd(ws, {"type": "chat.send", "id": command_id, "text": text})
            ack = await expect_ack(ws, command_id)
            assert ack["streamId"] and ack["conversationId"]
            assert not ack.get("duplicate")
            events = await collect_stream(ws, ack["streamId"])

        assert_complete_stream(events)
        start = events[0]
        assert start["conversationId"] == ack["conversationId"]
        streamed = chunk_text(events)
        assert streamed == expected

        async with http_client(server) as client:
            messages = await get_messages(client, token, ack["conversationId"])
        assert [m["role"] for m in messages] == ["user", "assistant"]
        question, answer = messages
        assert question["id"] == start["userMessageId"] and question["text"] == text
        assert answer["id"] == start["messageId"]
        assert answer["streamId"] == ack["streamId"]
        assert answer["status"] == "complete"
        assert answer["text"] == streamed

    run(scenario())


def test_bearer_header_auth_for_non_browser_clients(server, user):
    """Apps send `Authorization: Bearer`; no subprotocol is offered, so none is answered."""
    token = server.token(user)

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            assert ws.subprotocol is None
            ping_id = new_id("ping")
            await send_cmd(ws, {"type": "ping", "id": ping_id})
            ack = await expect_ack(ws, ping_id)
            assert "streamId" not in ack

    run(scenario())


# ============================================================================================
# 2. Unauthenticated upgrades are refused before any WebSocket exists (HTTP 401 specified)
# ============================================================================================


def _forged(token: str, subject: str) -> str:
    """The same signed token with its payload's `sub` changed (its signature no longer matches)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = subject
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# Without valid credentials the server opens the socket only to say why: one typed `error`
# (`unauthorized` or `token_expired`), then close code 4401; no command is ever served on it.
# (A refused upgrade would reach clients as an empty 400, and browsers cannot read it at all.)
REJECTIONS = {
    # case: (valid token, expired token) -> (Authorization token or None, subprotocols or None, code)
    "no-token": lambda t, x: (None, None, "unauthorized"),
    "no-token-only-v1-subprotocol": lambda t, x: (None, ["medview.v1"], "unauthorized"),
    "garbage-bearer-header": lambda t, x: ("not-a-jwt", None, "unauthorized"),
    "garbage-bearer-subprotocol": lambda t, x: (None, ["medview.v1", "medview.bearer.not-a-jwt"], "unauthorized"),
    "forged-subject": lambda t, x: (_forged(t, "someone-else"), None, "unauthorized"),
    "valid-token-subprotocol-without-v1": lambda t, x: (None, [f"medview.bearer.{t}"], "unauthorized"),
    "expired-token-subprotocol": lambda t, x: (None, ["medview.v1", f"medview.bearer.{x}"], "token_expired"),
}


@pytest.fixture(scope="module")
def expired_token(server) -> str:
    token = server.token(f"expired-{uuid.uuid4().hex[:8]}", ttl=1)
    time.sleep(2.2)
    return token


async def _rejected_socket(server, header_token, subprotocols):
    """Opens a socket without valid credentials; returns the error event and the close code."""
    ws = await ws_open(server, token=header_token, subprotocols=subprotocols)
    try:
        assert ws.subprotocol in (None, "medview.v1"), ws.subprotocol  # never the token
        # Speak first, as the protocol allows; the server must not serve the command.
        await send_cmd(ws, {"type": "ping", "id": "should-not-be-answered"})
        error = await recv_event(ws)
        with pytest.raises(ConnectionClosed):
            extra = await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise AssertionError(f"a rejected socket must close, got {extra!r}")
        return error, ws.close_code
    finally:
        await ws.close()


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_socket_without_valid_credentials_gets_typed_error_and_close_4401(server, user, expired_token, case):
    """No command is served without valid credentials; the client learns why (typed code, 4401)."""
    header_token, subprotocols, code = REJECTIONS[case](server.token(user), expired_token)
    error, close_code = run(_rejected_socket(server, header_token, subprotocols))
    assert error["type"] == "error", f"{case}: {error}"
    assert error["code"] == code, f"{case}: {error}"
    assert "seq" not in error and error.get("id") is None, error
    assert close_code == 4401, f"{case}: closed with {close_code}"


MAX_CONNECTIONS_PER_USER = 8  # the server's default


def test_connection_over_the_per_user_limit_is_told_why_and_closed_with_4429(server, user):
    """The server upgrades a connection over the limit, sends a typed error, and closes with 4429."""
    token = server.token(user)

    async def scenario():
        open_connections = []
        try:
            for _ in range(MAX_CONNECTIONS_PER_USER):
                ws = await ws_open(server, token=token)
                open_connections.append(ws)
                ping_id = new_id("ping")  # an answered ping proves this connection holds a slot
                await send_cmd(ws, {"type": "ping", "id": ping_id})
                await expect_ack(ws, ping_id)

            extra = await ws_open(server, token=token)
            error = await recv_event(extra)
            assert error["type"] == "error" and error["code"] == "too_many_connections", error
            assert error["retryable"] is True
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(extra.recv(), TIMEOUT)
            assert extra.close_code == 4429, (extra.close_code, extra.close_reason)

            # The connections within the limit were not disturbed.
            ping_id = new_id("ping")
            await send_cmd(open_connections[0], {"type": "ping", "id": ping_id})
            await expect_ack(open_connections[0], ping_id)
        finally:
            for ws in open_connections:
                await ws.close()

        # Closing connections frees their slots (the server notices the close asynchronously).
        for _ in range(50):
            ws = await ws_open(server, token=token)
            async with ws:
                ping_id = new_id("ping")
                await send_cmd(ws, {"type": "ping", "id": ping_id})
                event = await recv_event(ws)
                if event["type"] == "ack" and event["id"] == ping_id:
                    return
                assert event["type"] == "error" and event["code"] == "too_many_connections", event
            await asyncio.sleep(0.1)
        raise AssertionError("closing connections did not free the user's connection slots")

    run(scenario())


# ============================================================================================
# 3. A dropped connection resumes mid-answer with no gap and no duplicate
# ============================================================================================

LINE = "Rest, drink fluids and take the medicine exactly as prescribed."


def test_drop_mid_answer_then_resume_on_new_connection_is_gap_free(server, user):
    token = server.token(user)
    text = f"What helps? [[say:{LINE}]][[repeat:30]][[delay:5]]"
    expected = " ".join([LINE] * 30)

    async def scenario():
        first = await ws_open(server, token=token)
        command_id = new_id("send")
        await send_cmd(first, {"type": "chat.send", "id": command_id, "text": text})
        ack = await expect_ack(first, command_id)
        stream_id, conversation_id = ack["streamId"], ack["conversationId"]
        before: list[dict] = []
        while sum(e["type"] == "stream.chunk" for e in before) < 3:
            event = await recv_event(first)
            assert event["streamId"] == stream_id
            assert not is_terminal(event), "the answer ended before the connection could be dropped"
            before.append(event)
        assert_gap_free(before)
        # Drop abruptly: no close frame, just the TCP connection going away (a phone losing signal).
        first.transport.abort()
        await asyncio.wait_for(first.wait_closed(), TIMEOUT)

        last_seq = before[-1]["seq"]
        async with await ws_open(server, token=token) as second:
            resume_id = new_id("resume")
            await send_cmd(second, {"type": "stream.resume", "id": resume_id, "streamId": stream_id, "after": last_seq})
            resume_ack = await expect_ack(second, resume_id)
            assert resume_ack["streamId"] == stream_id
            after = await collect_stream(second, stream_id)

        assert after[0]["seq"] == last_seq + 1, f"resume restarted at {after[0]['seq']}, not {last_seq + 1}"
        union = before + after
        seqs = [e["seq"] for e in union]
        assert len(seqs) == len(set(seqs)), f"duplicate seqs across the reconnect: {seqs}"
        assert_complete_stream(union)
        streamed = chunk_text(union)
        assert streamed == expected

        async with http_client(server) as client:
            messages = await get_messages(client, token, conversation_id)
        answer = [m for m in messages if m["role"] == "assistant"]
        assert len(answer) == 1 and answer[0]["status"] == "complete"
        assert answer[0]["text"] == streamed

    run(scenario())


# ============================================================================================
# 4. Bad frames get typed errors and the connection stays usable
# ============================================================================================


async def _expect_error_then_ping(ws: ClientConnection, code: str, command_id: str | None = None) -> None:
    error = await recv_event(ws)
    assert error["type"] == "error", f"expected error {code}, got {error}"
    assert error["code"] == code, error
    assert error["retryable"] is False, error
    assert error.get("seq") is None, "a frame error must not look like a stream's terminal event"
    assert isinstance(error["message"], str) and error["message"]
    if command_id is not None:
        assert error.get("id") == command_id, error
    ping_id = new_id("ping")
    await send_cmd(ws, {"type": "ping", "id": ping_id})
    await expect_ack(ws, ping_id)


def test_bad_frames_get_typed_errors_and_the_connection_stays_usable(server, user):
    token = server.token(user)

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            await ws.send(b'{"type":"ping","id":"binary-ping"}')
            await _expect_error_then_ping(ws, "unsupported_frame")

            await ws.send('{"type": "ping", "id": ')
            await _expect_error_then_ping(ws, "malformed_json")

            await ws.send(json.dumps({"type": "chat.explode", "id": "unknown-1"}))
            await _expect_error_then_ping(ws, "unknown_type", command_id="unknown-1")

            # A valid ping padded past the 64 KiB message limit (but under the 1 MiB frame limit).
            oversized = json.dumps({"type": "ping", "id": "big-1", "pad": "x" * (100 * 1024)})
            assert MAX_FRAME_BYTES < len(oversized) < HARD_FRAME_BYTES
            await ws.send(oversized)
            await _expect_error_then_ping(ws, "frame_too_large")

            # The limit is per message: fragments that are each small but add up past it are refused too.
            fragments = ['{"type":"ping","id":"frag-big","pad":"'] + ["y" * 30_000] * 3 + ['"}']
            await ws.send(fragments)
            await _expect_error_then_ping(ws, "frame_too_large")

            # Just under the limit is still a normal command.
            near_limit = json.dumps({"type": "ping", "id": "near-limit", "pad": "z" * (MAX_FRAME_BYTES - 200)})
            assert len(near_limit) <= MAX_FRAME_BYTES
            await ws.send(near_limit)
            await expect_ack(ws, "near-limit")

    run(scenario())


def test_text_frame_with_invalid_utf8_gets_invalid_utf8_error(server, user):
    token = server.token(user)
    raw = RawWebSocket(server.host, server.port, "/v1/ws", {"Authorization": f"Bearer {token}"})
    try:
        raw.send_frame(RawWebSocket.TEXT, b"\xff\xfe")
        error = raw.recv_event()
        assert error["type"] == "error" and error["code"] == "invalid_utf8", error
        assert error["retryable"] is False and error.get("seq") is None

        raw.send_frame(RawWebSocket.TEXT, json.dumps({"type": "ping", "id": "after-utf8"}).encode())
        ack = raw.recv_event()
        assert (ack["type"], ack["id"]) == ("ack", "after-utf8"), ack

        # UTF-8 is checked on the whole message: a code point split across two fragments is valid.
        whole = json.dumps({"type": "ping", "id": "frag-é"}, ensure_ascii=False).encode()
        cut = whole.index("é".encode()) + 1
        raw.send_frame(RawWebSocket.TEXT, whole[:cut], fin=False)
        raw.send_frame(RawWebSocket.CONTINUATION, whole[cut:], fin=True)
        ack = raw.recv_event()
        assert (ack["type"], ack["id"]) == ("ack", "frag-é"), ack
    finally:
        raw.close()


# ============================================================================================
# 5. Retrying chat.send with the same id never asks the model twice
# ============================================================================================


def test_retried_chat_send_is_idempotent(server, user):
    token = server.token(user)
    text = f"Is this safe? [[say:{LINE}]][[repeat:4]][[delay:5]]"
    expected = " ".join([LINE] * 4)
    command = {"type": "chat.send", "id": new_id("send"), "text": text}

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            await send_cmd(ws, command)
            first = await expect_ack(ws, command["id"])
            assert not first.get("duplicate")
            # Retry at once, while the answer is still streaming (a client that timed out waiting).
            await send_cmd(ws, command)
            before_retry_ack: list[dict] = []
            while True:
                event = await recv_event(ws)
                if event["type"] == "ack":
                    second = event
                    break
                assert event.get("streamId") == first["streamId"], event
                before_retry_ack.append(event)
            assert second["id"] == command["id"]
            assert second.get("duplicate") is True
            assert second["streamId"] == first["streamId"]
            assert second["conversationId"] == first["conversationId"]
            # Re-attaching replays the stream from its start; every seq arrives, with identical content.
            replay = await collect_stream(ws, first["streamId"])
            by_seq: dict[int, dict] = {}
            for event in replay:
                assert by_seq.setdefault(event["seq"], event) == event, f"seq {event['seq']} changed"
            live = [by_seq[s] for s in sorted(by_seq)]
            assert_complete_stream(live)
            assert chunk_text(live) == expected

        # Retry again after the answer finished, from a new connection (an app restarted offline).
        async with await ws_open(server, token=token) as ws:
            await send_cmd(ws, command)
            third = await expect_ack(ws, command["id"])
            assert third.get("duplicate") is True
            assert third["streamId"] == first["streamId"]
            assert third["conversationId"] == first["conversationId"]
            replayed = await collect_stream(ws, first["streamId"])
            assert replayed == live, "the finished stream replays differently"

        async with http_client(server) as client:
            messages = await get_messages(client, token, first["conversationId"])
        assert [m["role"] for m in messages] == ["user", "assistant"], messages
        assert messages[0]["text"] == text
        assert messages[1]["status"] == "complete" and messages[1]["text"] == expected

    run(scenario())


# ============================================================================================
# 6. Server-Sent Events with httpx
# ============================================================================================


def test_sse_parser_handles_the_wire_format():
    """Self-check of the parser the SSE tests rely on, fed one byte at a time."""
    wire = (
        "\ufeffretry: 2000\r\n\r\n"
        ": keep-alive\n\n"
        "id: 1\nevent: stream.start\ndata: {\"a\":\r\ndata:1}\n\n"
        "event: ack\rdata: caf\u00e9 \U0001f48a\r\r"
        "id: 2\ndata:x\n: comment inside\nevent: e2\n\n"
        "data: no terminator"
    ).encode()
    parser = SSEParser()
    events: list[SSEEvent] = []
    for i in range(len(wire)):
        events += parser.feed(wire[i:i + 1])
    events += parser.close()
    assert [(e.event, e.data, e.id, e.last_event_id) for e in events] == [
        ("stream.start", '{"a":\n1}', "1", "1"),
        ("ack", "caf\u00e9 \U0001f48a", None, "1"),
        ("e2", "x", "2", "2"),
    ]
    assert parser.retry_ms == 2000
    assert parser.comments == ["keep-alive", "comment inside"]


def test_sse_send_then_resume_with_last_event_id(server, user):
    token = server.token(user)
    text = f"[[say:{ANSWER}]][[repeat:6]][[delay:1]]"
    expected = " ".join([ANSWER] * 6)

    async def scenario():
        async with http_client(server) as client:
            created = await client.post("/v1/conversations", headers=bearer(token), json={"title": "SSE"})
            assert created.status_code == 201, created.text
            conversation_id = created.json()["id"]

            message_id = new_id("sse")
            headers, events, _ = await sse_request(
                client, "POST", f"/v1/conversations/{conversation_id}/messages",
                token=token, json_body={"id": message_id, "text": text},
            )
            assert_sse_framing(events)
            payloads = [e.json() for e in events]
            ack, stream = payloads[0], payloads[1:]
            assert ack["type"] == "ack" and ack["id"] == message_id and events[0].id is None
            assert ack["conversationId"] == conversation_id
            assert headers["x-stream-id"] == ack["streamId"]
            assert all(p["streamId"] == ack["streamId"] for p in stream)
            assert_complete_stream(stream)
            assert chunk_text(stream) == expected
            assert len(stream) > 4, "the answer is too short to test resuming after seq 3"

            _, resumed, _ = await sse_request(
                client, "GET", f"/v1/streams/{ack['streamId']}", token=token, headers={"Last-Event-ID": "3"},
            )
            assert_sse_framing(resumed)
            resumed_payloads = [e.json() for e in resumed]
            assert resumed_payloads == [p for p in stream if p["seq"] > 3]
            assert resumed_payloads[-1]["type"] == "stream.end"

            messages = await get_messages(client, token, conversation_id)
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[1]["id"] == stream[0]["messageId"]
            assert messages[1]["status"] == "complete" and messages[1]["text"] == expected

    run(scenario())


def test_sse_requires_accept_event_stream(server, user):
    token = server.token(user)

    async def scenario():
        async with http_client(server) as client:
            created = await client.post("/v1/conversations", headers=bearer(token))
            assert created.status_code == 201, created.text
            conversation_id = created.json()["id"]
            url = f"/v1/conversations/{conversation_id}/messages"
            body = {"id": new_id("sse"), "text": "Hello"}

            client.headers.pop("Accept", None)  # httpx sends `Accept: */*` unless told otherwise
            request = client.build_request("POST", url, headers=bearer(token), json=body)
            assert "accept" not in request.headers
            assert_error_body(await client.send(request), 406, "not_acceptable")
            wrong = await client.post(url, headers={**bearer(token), "Accept": "application/json"}, json=body)
            assert_error_body(wrong, 406, "not_acceptable")

            # A refused request has no side effect: nothing was stored or sent to the model.
            assert await get_messages(client, token, conversation_id) == []

    run(scenario())


def test_sse_keep_alive_comments_during_a_slow_answer_are_ignored(server, user):
    """With the server's keep-alive at 1 s, a model that pauses 1.5 s produces `:` comments."""
    token = server.token(user)

    async def scenario():
        async with http_client(server) as client:
            created = await client.post("/v1/conversations", headers=bearer(token))
            conversation_id = created.json()["id"]
            _, events, parser = await sse_request(
                client, "POST", f"/v1/conversations/{conversation_id}/messages", token=token,
                json_body={"id": new_id("slow"), "text": "[[say:slow reply]][[delta:6]][[delay:1500]]"},
            )
            assert parser.comments, "no keep-alive comment arrived during a 3 s answer"
            assert_sse_framing(events)
            stream = [e.json() for e in events][1:]
            assert_complete_stream(stream)
            assert chunk_text(stream) == "slow reply"

    run(scenario())


# ============================================================================================
# 7. One user never sees another user's conversations or streams
# ============================================================================================


def test_users_are_isolated(server, make_user):
    alice, mallory = make_user("alice"), make_user("mallory")
    alice_token, mallory_token = server.token(alice), server.token(mallory)
    text = f"[[say:{LINE}]][[repeat:20]][[delay:5]]"

    async def attempts_by_mallory(client, conversation_id, stream_id, ws):
        response = await client.get(f"/v1/conversations/{conversation_id}/messages", headers=bearer(mallory_token))
        assert_error_body(response, 404, "not_found")
        response = await client.get(
            f"/v1/streams/{stream_id}",
            headers={**bearer(mallory_token), "Accept": "text/event-stream", "Last-Event-ID": "0"},
        )
        assert_error_body(response, 404, "not_found")
        response = await client.post(
            f"/v1/conversations/{conversation_id}/messages",
            headers={**bearer(mallory_token), "Accept": "text/event-stream"},
            json={"id": new_id("intrude"), "text": "let me in"},
        )
        assert_error_body(response, 404, "not_found")
        response = await client.post(f"/v1/streams/{stream_id}/cancel", headers=bearer(mallory_token))
        assert_error_body(response, 404, "not_found")

        for command in (
            {"type": "stream.resume", "id": new_id("resume"), "streamId": stream_id, "after": 0},
            {"type": "stream.cancel", "id": new_id("cancel"), "streamId": stream_id},
            {"type": "chat.send", "id": new_id("send"), "conversationId": conversation_id, "text": "hi"},
        ):
            await send_cmd(ws, command)
            error = await recv_event(ws)
            assert error["type"] == "error" and error["code"] == "not_found", (command["type"], error)
            assert error["id"] == command["id"]
            assert error.get("seq") is None

    async def scenario():
        async with http_client(server) as client, \
                await ws_open(server, token=alice_token) as alice_ws, \
                await ws_open(server, token=mallory_token) as mallory_ws:
            command_id = new_id("send")
            await send_cmd(alice_ws, {"type": "chat.send", "id": command_id, "text": text})
            ack = await expect_ack(alice_ws, command_id)
            first = await recv_event(alice_ws)
            assert first["type"] == "stream.start"

            # While Alice's answer is still streaming (the live stream) ...
            await attempts_by_mallory(client, ack["conversationId"], ack["streamId"], mallory_ws)
            rest = await collect_stream(alice_ws, ack["streamId"])
            assert_complete_stream([first] + rest)
            # ... and after it finished (the stored one).
            await attempts_by_mallory(client, ack["conversationId"], ack["streamId"], mallory_ws)

            listed = await client.get("/v1/conversations", headers=bearer(mallory_token))
            assert listed.status_code == 200
            assert ack["conversationId"] not in [c["id"] for c in listed.json()["conversations"]]

            # Alice's conversation is untouched by the attempts.
            messages = await get_messages(client, alice_token, ack["conversationId"])
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[1]["status"] == "complete"
            assert messages[1]["text"] == chunk_text(rest)

    run(scenario())


# ============================================================================================
# 8. A model failure mid-answer ends the stream with a typed, retryable error
# ============================================================================================

FAILING = "Drink plenty of water and rest for the next two days, then see how you feel."


def test_model_failure_mid_answer_ends_with_retryable_error_and_keeps_partial_text(server, user):
    token = server.token(user)
    text = f"[[say:{FAILING}]][[fail:after:5]][[delay:2]]"
    # Five deltas of six scalars each reach the client before the scripted failure.
    partial = FAILING[:30]

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            command_id = new_id("send")
            await send_cmd(ws, {"type": "chat.send", "id": command_id, "text": text})
            ack = await expect_ack(ws, command_id)
            events = await collect_stream(ws, ack["streamId"])

            assert events[0]["type"] == "stream.start"
            assert all(e["type"] == "stream.chunk" for e in events[1:-1])
            assert not any(e["type"] == "stream.end" for e in events)
            error = events[-1]
            assert error["type"] == "error"
            assert error["code"] == "model_error"
            assert error["retryable"] is True
            assert error["streamId"] == ack["streamId"]
            assert isinstance(error["message"], str) and error["message"]
            assert_gap_free(events)  # the error carries the next seq: it is the stream's terminal event
            streamed = chunk_text(events)
            assert streamed == partial

            # The failed stream replays identically, terminal error included.
            resume_id = new_id("resume")
            await send_cmd(ws, {"type": "stream.resume", "id": resume_id, "streamId": ack["streamId"], "after": 0})
            await expect_ack(ws, resume_id)
            assert await collect_stream(ws, ack["streamId"]) == events

        async with http_client(server) as client:
            messages = await get_messages(client, token, ack["conversationId"])
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["id"] == events[0]["messageId"]
        assert messages[1]["status"] == "failed"
        assert messages[1]["text"] == streamed

    run(scenario())
