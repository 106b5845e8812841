"""`medview serve` started with any arguments (production mode with Cognito, short idle timeouts),
and moto's server for real Cognito-shaped tokens. Both on loopback, both always stopped.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[3]
_LISTENING = re.compile(r"MedView Companion listening on http://(?P<host>[^:/\s]+):(?P<port>\d+)")


def medview_binary() -> Path:
    raw = os.environ.get("MEDVIEW_BIN", "").strip()
    return Path(raw).resolve() if raw else REPO_ROOT / ".build" / "debug" / "medview"


def free_port() -> int:
    """A port that was free a moment ago (for a redirect URI that must name the port up front)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:  # keep reading so the pipe never fills
        sink.put(line)
    sink.put(None)


@dataclass
class Served:
    """A running `medview serve`; `output` holds what it announced."""

    process: subprocess.Popen
    host: str
    port: int
    output: list[str]
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/ws"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def serve(data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Served:
    """Starts `medview serve --data-dir DATA_DIR ARGS...` and waits for its listening line."""
    binary = medview_binary()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    child_env.update(env or {})
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        # The scripted model unless the test names one (the default, the local model, is slow and fetched).
        [str(binary), "serve", "--data-dir", str(data_dir), *([] if "--model" in args else ["--model", "scripted"]), *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1, env=child_env,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    output: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        output.append(line)
        match = _LISTENING.search(line)
        if match:
            served = Served(process, match.group("host"), int(match.group("port")), output, log_path)
            threading.Thread(target=_drain, args=(lines, output), daemon=True).start()
            return served
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    raise AssertionError(f"medview serve did not start ({process.returncode}):\n{''.join(output)}\n{log_path.read_text(errors='replace')[-3000:]}")


def _drain(lines: queue.Queue, output: list[str]) -> None:
    while (line := lines.get()) is not None:
        output.append(line)


def cognito_args(*, issuer: str, jwks_url: str, client_id: str, domain: str | None = None, redirect_uri: str | None = None) -> list[str]:
    args = ["--environment", "production", "--cognito-issuer", issuer, "--cognito-jwks-url", jwks_url, "--cognito-client-id", client_id]
    if domain:
        args += ["--cognito-domain", domain]
    if redirect_uri:
        args += ["--cognito-redirect-uri", redirect_uri]
    return args


@dataclass
class Moto:
    """moto's server (`python3 -m moto.server`) on a free loopback port."""

    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_moto(timeout: float = 30) -> Moto:
    port = free_port()
    process = subprocess.Popen(
        ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    moto = Moto(process, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"moto server exited ({process.returncode})")
        try:
            if httpx.get(moto.url + "/moto-api/data.json", timeout=1).status_code == 200:
                return moto
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    moto.stop()
    raise AssertionError("moto server did not answer within 30 s")
