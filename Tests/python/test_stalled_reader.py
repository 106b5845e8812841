"""A client that stops reading mid-answer (a frozen tab, a dead network path): the server keeps
at most its bounded outbound buffer for it, closes the socket once its writes have made no
progress for `--write-stall-seconds`, stores the whole answer anyway, and the client resumes it
on a new connection with nothing missed or repeated (issue 16, item 5).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import time

import httpx

from conftest import start_medview, stop_medview
from test_live_clients import assert_complete_stream, chunk_text, collect_stream, expect_ack, new_id, run, send_cmd, ws_open

STALL_SECONDS = 2
# About 8.6 million characters of answer (some 11 MB of events): more than the client's 4 KiB
# receive window, the kernel's send buffer (at most 4 MiB here: net.ipv4.tcp_wmem) and the
# server's own outbound buffer together, so the server's writes must wait.
SENTENCE = "Keep a regular bedtime, dim the lights an hour before, and avoid caffeine after noon. " * 10
REPEATS = 10_000
#: What may reach a client that reads nothing more: the kernel's buffers and the server's
#: outbound high-water mark, with room to spare; the rest of the answer must not be queued.
DELIVERED_BOUND = 6 * 1024 * 1024


def _frame(text: str) -> bytes:
    """One masked client text frame."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_frame(sock: socket.socket, buffer: bytearray) -> str:
    """The next server text frame (unmasked, unfragmented)."""
    while True:
        if len(buffer) >= 2:
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    length = None
                else:
                    length, offset = struct.unpack("!H", bytes(buffer[2:4]))[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    length = None
                else:
                    length, offset = struct.unpack("!Q", bytes(buffer[2:10]))[0], 10
            if length is not None and len(buffer) >= offset + length:
                text = bytes(buffer[offset:offset + length]).decode()
                del buffer[:offset + length]
                return text
        data = sock.recv(4096)
        assert data, "the server closed the connection early"
        buffer.extend(data)


def test_a_stalled_reader_is_dropped_with_bounded_memory_and_resumes_the_whole_answer(tmp_path_factory, make_user):
    server, stderr_file = start_medview(tmp_path_factory, "stalled", [
        "--model", "scripted", "--write-stall-seconds", str(STALL_SECONDS), "--keepalive-seconds", "1",
    ])
    try:
        user = make_user("stalled")
        token = server.token(user)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A tiny receive window, fixed (no autotuning), so the server's writes back up quickly.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((
            f"GET /v1/ws HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            assert chunk, "no upgrade answer"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        send_id = new_id("stall")
        text = f"[[say:{SENTENCE.strip()}]] [[repeat:{REPEATS}]] [[delay:0]] [[delta:200]] How do I sleep better?"
        sock.sendall(_frame(json.dumps({"type": "chat.send", "id": send_id, "text": text})))
        buffer = bytearray()
        ack = json.loads(_read_frame(sock, buffer))
        assert ack["type"] == "ack" and ack["id"] == send_id, ack
        stream_id = ack["streamId"]

        # Stop reading. Once its writes have made no progress for the stall limit, the server
        # must drop the socket (reading now would be progress, so only the log is watched).
        deadline = time.monotonic() + 120
        while "ws.write_stalled" not in server.stderr_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the server never gave up on the stalled socket"
            time.sleep(0.5)
        received = len(buffer)
        sock.settimeout(30)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += len(data)
        sock.close()
        assert received < DELIVERED_BOUND, f"the stalled client was sent {received} bytes of a {len(SENTENCE) * REPEATS}-character answer"
        metrics = httpx.get(server.http_url + "/metrics", timeout=10, trust_env=False).text
        stalled = re.search(r'medview_connections_stalled_total\{transport="websocket"\} (\d+)', metrics)
        assert stalled and int(stalled.group(1)) == 1, "the stall is not counted on /metrics"

        # The answer went on without the client and is whole: a new connection resumes it.
        async def resume():
            ws = await ws_open(server, token=token)
            try:
                resume_id = new_id("resume")
                await send_cmd(ws, {"type": "stream.resume", "id": resume_id, "streamId": stream_id, "after": 0})
                await expect_ack(ws, resume_id)
                return await collect_stream(ws, stream_id)
            finally:
                await ws.close()

        events = run(resume(), timeout=120)
        assert_complete_stream(events)
        assert chunk_text(events).count("Keep a regular bedtime") == SENTENCE.count("Keep a regular bedtime") * REPEATS
    finally:
        stop_medview(server, stderr_file)
