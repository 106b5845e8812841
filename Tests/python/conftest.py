"""Fixtures for the real-client tests: one live `medview serve` per test session.

The server binary comes from `MEDVIEW_BIN` (default: `.build/debug/medview` under the repository
root, found from this file's location). The suite never builds it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Seconds the server gets to print its listening line (a debug build on a busy machine is slow).
STARTUP_TIMEOUT = 60.0
#: Seconds the server gets to drain and exit after SIGINT before it is killed.
SHUTDOWN_TIMEOUT = 30.0
#: SSE keep-alive (and WebSocket ping) interval given to the server, so keep-alive comments
#: actually appear during a test; every other setting is the server's default.
KEEPALIVE_SECONDS = 1

LISTENING = re.compile(r"MedView Companion listening on http://(?P<host>[^:/\s]+):(?P<port>\d+)")


def medview_binary() -> Path:
    """The `medview` executable: `$MEDVIEW_BIN`, else `<repo>/.build/debug/medview`."""
    raw = os.environ.get("MEDVIEW_BIN", "").strip()
    if raw:
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
    else:
        path = REPO_ROOT / ".build" / "debug" / "medview"
    return path.resolve()


def _child_environment() -> dict[str, str]:
    """The caller's environment without MEDVIEW_* settings, so the server runs on its defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}


def mint_token(data_dir: Path, user: str, ttl: int | None = None) -> str:
    """A development token for `user`, minted by `medview token` with a server's data dir."""
    args = [str(medview_binary()), "token", "--user", user, "--data-dir", str(data_dir)]
    if ttl is not None:
        args += ["--ttl", str(ttl)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, env=_child_environment(), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"medview token failed ({result.returncode}): {result.stderr.strip()}"
    token = result.stdout.strip()
    assert token.count(".") == 2, f"medview token printed something that is not a JWT: {token!r}"
    return token


def interrupt_and_wait(process: subprocess.Popen) -> None:
    """SIGINT (the server drains gracefully), then a kill if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class LiveServer:
    binary: Path
    data_dir: Path
    host: str
    port: int
    process: subprocess.Popen
    stdout_lines: list[str]
    stderr_path: Path
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/ws"

    def token(self, user: str, ttl: int | None = None) -> str:
        """A development token for `user`, minted by `medview token` with the server's data dir."""
        key = f"{user}\0{ttl}"
        if ttl is None and key in self._tokens:
            return self._tokens[key]
        token = mint_token(self.data_dir, user, ttl)
        if ttl is None:
            self._tokens[key] = token
        return token

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _pump_stdout(stream, sink: queue.Queue, lines: list[str]) -> None:
    # Keeps reading for the server's whole life so its stdout pipe never fills up.
    for line in stream:
        lines.append(line)
        sink.put(line)
    sink.put(None)


def start_medview(tmp_path_factory, name: str, args: list[str], env: dict[str, str] | None = None):
    """`medview serve --port 0` on loopback with its own data directory and `args`; returns the
    server once it announced its port, and its stderr file (pass both to ``stop_medview``)."""
    binary = medview_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"medview binary not found at {binary}: build it (swift build) or set MEDVIEW_BIN", pytrace=False)
    data_dir = tmp_path_factory.mktemp(name)
    stderr_path = data_dir.parent / f"{data_dir.name}-server.log"
    stderr_file = open(stderr_path, "w")
    process = subprocess.Popen(
        [str(binary), "serve", "--port", "0", "--data-dir", str(data_dir), *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file, text=True, bufsize=1,
        env={**_child_environment(), **(env or {})},
    )
    lines: list[str] = []
    announced: queue.Queue = queue.Queue()
    threading.Thread(target=_pump_stdout, args=(process.stdout, announced, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        match = None
        while match is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"medview did not announce its port within {STARTUP_TIMEOUT:.0f}s")
            try:
                line = announced.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                process.wait(timeout=10)
                raise AssertionError(
                    f"medview serve exited ({process.returncode}) before listening:\n"
                    + stderr_path.read_text(errors="replace")[-4000:]
                )
            match = LISTENING.search(line)
        host, port = match.group("host"), int(match.group("port"))
        assert host in ("127.0.0.1", "localhost", "::1"), f"server is not on loopback: {host}"
        assert port > 0
    except BaseException:
        if process.poll() is None:
            process.kill()
        stderr_file.close()
        raise
    return LiveServer(binary, data_dir, host, port, process, lines, stderr_path), stderr_file


def stop_medview(server: LiveServer, stderr_file) -> None:
    """SIGINT (graceful drain), then a kill if it does not exit in time."""
    interrupt_and_wait(server.process)
    stderr_file.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> LiveServer:
    # The scripted model: deterministic, and never downloads the local model.
    live, stderr_file = start_medview(tmp_path_factory, "medview-data", ["--keepalive-seconds", str(KEEPALIVE_SECONDS), "--model", "scripted"])
    try:
        yield live
    finally:
        stop_medview(live, stderr_file)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:48]


@pytest.fixture
def make_user(request):
    """Returns a function giving a fresh user id per call, unique to this test."""
    base = _slug(request.node.name)

    def make(tag: str = "u") -> str:
        return f"{base}-{tag}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def user(make_user) -> str:
    return make_user("user")
