"""Issue 12, items 1 and 2, against the real `medview serve`, with raw sockets.

A raw socket writes exactly the bytes given (an HTTP client library would refuse to send most of
these requests). The last test is the issue's own scenario: with a low open-file limit, hundreds of
half-open connections must not make `/healthz` time out.
"""

from __future__ import annotations

import json
import queue
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import LISTENING, _child_environment, _pump_stdout, medview_binary


def _exchange(port: int, raw: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Sends `raw`, then reads until the server closes or `timeout` passes: (bytes, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_until_closed(sock, timeout)


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _status_and_body(data: bytes) -> tuple[int, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {}


def _request(method: str, path: str, host: str | None, headers: list[str] = (), body: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + ([f"Host: {host}"] if host else []) + list(headers)
    if body is not None:
        lines.append(f"Content-Length: {len(body.encode())}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n" + (body or "")).encode()


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b"GET /healthz?" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414, "uri_too_long"),
        (b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 1_000_000 + b"\r\n\r\n", 431, "headers_too_large"),
        (b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + b"X-A: 1\r\n" * 10_000 + b"\r\n", 431, "headers_too_large"),
        (b"POST /v1/conversations HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n", 400, "malformed_request"),
    ],
    ids=["1MB-url", "1MB-header", "10000-headers", "content-length-minus-1"],
)
def test_bad_requests_are_answered_and_closed(server, raw, status, code):
    data, closed = _exchange(server.port, raw)
    assert closed, "the connection stayed open"
    # A large request may be cut off (reset) before its answer is read; when the answer arrives, it is typed.
    if data or len(raw) < 100_000:
        got, body = _status_and_body(data)
        assert got == status
        assert body["error"]["code"] == code


def test_cross_origin_websocket_upgrade_is_refused_with_403(server):
    token = server.token("alice")
    raw = _request("GET", "/v1/ws", f"127.0.0.1:{server.port}", [
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", f"Authorization: Bearer {token}",
        "Origin: http://attacker.example",
    ])
    data, closed = _exchange(server.port, raw.replace(b"Connection: close\r\n", b""))
    status, body = _status_and_body(data)
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"
    assert closed


def test_dev_token_needs_a_loopback_host(server):
    body = '{"user": "alice"}'
    rebound = _request("POST", "/v1/dev/token", f"attacker.example:{server.port}", ["Content-Type: application/json", f"Origin: http://attacker.example:{server.port}"], body)
    status, answer = _status_and_body(_exchange(server.port, rebound)[0])
    assert status == 403 and answer["error"]["code"] == "host_not_allowed"
    local = _request("POST", "/v1/dev/token", f"127.0.0.1:{server.port}", ["Content-Type: application/json"], body)
    status, answer = _status_and_body(_exchange(server.port, local)[0])
    assert status == 200 and answer["token"].count(".") == 2


def test_page_csp_connects_to_its_own_origin_only(server):
    data, _ = _exchange(server.port, _request("GET", "/", f"127.0.0.1:{server.port}"))
    head = data.partition(b"\r\n\r\n")[0].decode()
    csp = next(line.split(":", 1)[1] for line in head.split("\r\n") if line.lower().startswith("content-security-policy:"))
    connect = next(part.split() for part in csp.split(";") if part.strip().startswith("connect-src"))
    assert "ws:" not in connect and "wss:" not in connect
    assert f"ws://127.0.0.1:{server.port}" in connect


def _start(args: list[str], env: dict[str, str], nofile: int | None = None):
    """Starts `medview serve` with `args`; returns (process, lines, port or None if it exited)."""
    def limit_files():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(
        [str(medview_binary()), "serve", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1, env={**_child_environment(), **env}, preexec_fn=limit_files,
    )
    lines: list[str] = []
    announced: queue.Queue = queue.Queue()
    threading.Thread(target=_pump_stdout, args=(process.stdout, announced, lines), daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = announced.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            return process, lines, None
        match = LISTENING.search(line)
        if match:
            return process, lines, int(match.group("port"))
    process.kill()
    raise AssertionError("medview did not start")


def _stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_development_mode_refuses_a_network_bind(tmp_path):
    process, _, port = _start(["--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path), "--model", "scripted"], {})
    try:
        assert port is None, "development mode listened on 0.0.0.0"
        assert process.wait(timeout=30) != 0
        assert "--allow-dev-tokens-on-network" in process.stderr.read()
    finally:
        _stop(process)


def test_half_open_connections_with_a_low_file_limit_do_not_stop_healthz(tmp_path):
    # Settings by environment, so the same test runs against a server that does not know them.
    env = {"MEDVIEW_MAX_UNAUTHENTICATED_CONNECTIONS": "32", "MEDVIEW_HTTP_HEADER_TIMEOUT_SECONDS": "60"}
    process, _, port = _start(["--port", "0", "--data-dir", str(tmp_path), "--model", "scripted"], env, nofile=128)
    assert port is not None
    held: list[socket.socket] = []
    try:
        for _ in range(300):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
                held.append(sock)
            except OSError:
                pass
        started = time.monotonic()
        data, _ = _exchange(port, _request("GET", "/healthz", "localhost"), timeout=30)
        assert data.startswith(b"HTTP/1.1 200"), f"/healthz got {data[:80]!r} after {time.monotonic() - started:.1f}s"
        # Held behind the half-open ones, it would wait out their 60 s header timeout.
        assert time.monotonic() - started < 20
    finally:
        for sock in held:
            sock.close()
        _stop(process)
