"""`medview migrate` and `medview serve` on PostgreSQL, as real processes.

Runs when MEDVIEW_TEST_DATABASE_URL is set (scripts/test.sh starts a throwaway cluster); each
test uses a schema of its own and drops it afterwards.
"""

from __future__ import annotations

import os
import json
import queue
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import LISTENING, STARTUP_TIMEOUT, _child_environment, interrupt_and_wait, medview_binary, mint_token

DATABASE_URL = os.environ.get("MEDVIEW_TEST_DATABASE_URL", "").strip()

pytestmark = pytest.mark.skipif(not DATABASE_URL, reason="MEDVIEW_TEST_DATABASE_URL is not set")


@pytest.fixture
def schema_url():
    """The test database URL with a fresh schema; the schema is dropped afterwards."""
    schema = "pytest_" + uuid.uuid4().hex[:16]
    yield f"{DATABASE_URL}&schema={schema}" if "?" in DATABASE_URL else f"{DATABASE_URL}?schema={schema}"
    if shutil.which("psql"):
        subprocess.run(["psql", DATABASE_URL, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def migrate(url: str) -> subprocess.Popen:
    return subprocess.Popen([str(medview_binary()), "migrate", "--database-url", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=_child_environment())


def test_migrate_from_several_processes_at_once_applies_each_migration_once(schema_url):
    processes = [migrate(schema_url) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
        assert "PostgreSQL schema at version" in out
        assert ":" in out and "@" in out
    applied = [out for out, _ in outputs if "applied 1" in out]
    assert len(applied) == 1, outputs
    assert sum("nothing to apply" in out for out, _ in outputs) == 3
    # The password never appears in what a person sees.
    password = re.search(r"//[^:/@]+:([^@]+)@", DATABASE_URL)
    if password:
        assert all(password.group(1) not in out + err for out, err in outputs)


class Serve:
    """One `medview serve --database-url URL` process on a free loopback port."""

    def __init__(self, url: str | None, data_dir: Path, extra: list[str] | None = None, log_name: str = "server.log"):
        self.data_dir = data_dir
        self.log_path = data_dir / log_name
        self.stderr = open(self.log_path, "a")
        database = ["--database-url", url, "--database-pool-size", "3"] if url else []
        self.process = subprocess.Popen(
            [str(medview_binary()), "serve", "--port", "0", "--data-dir", str(data_dir), "--model", "scripted",
             *database, *(extra or [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1,
            env=_child_environment(),
        )
        lines: queue.Queue = queue.Queue()
        self.output: list[str] = []

        def pump():
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "medview serve exited:\n" + self.log_path.read_text()[-3000:]
            match = LISTENING.search(line)
            if match:
                self.url = f"http://{match.group('host')}:{match.group('port')}"
                break

    def token(self, user: str) -> str:
        return mint_token(self.data_dir, user)

    def stop(self):
        interrupt_and_wait(self.process)
        self.stderr.close()


def test_two_servers_share_one_database(schema_url, tmp_path):
    # Both processes sign development tokens with the same key (one data directory).
    a = Serve(schema_url, tmp_path)
    b = Serve(schema_url, tmp_path)
    try:
        assert any("postgres://" in line and "Data:" in line for line in a.output)
        user = "pg-" + uuid.uuid4().hex[:8]
        headers = {"Authorization": f"Bearer {a.token(user)}"}
        with httpx.Client(timeout=30) as client:
            for server in (a, b):
                ready = client.get(server.url + "/readyz")
                assert ready.status_code == 200 and ready.json()["store"] == "ok"
            created = client.post(a.url + "/v1/conversations", headers=headers, json={"title": "Shared"})
            assert created.status_code == 201
            conversation = created.json()["id"]
            answer = client.post(a.url + f"/v1/conversations/{conversation}/messages",
                                 headers={**headers, "Accept": "text/event-stream"},
                                 json={"id": "m-1", "text": "Hello from A, tab\there"})
            assert answer.status_code == 200
            assert "stream.end" in answer.text
            # B sees what A stored: the conversation, both messages, the finished answer.
            listed = client.get(b.url + "/v1/conversations", headers=headers).json()
            conversations = listed["conversations"] if isinstance(listed, dict) else listed
            assert [c["id"] for c in conversations] == [conversation]
            deadline = time.monotonic() + 10
            while True:
                messages = client.get(b.url + f"/v1/conversations/{conversation}/messages", headers=headers).json()
                messages = messages["messages"] if isinstance(messages, dict) else messages
                if messages[-1]["status"] == "complete" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[0]["text"] == "Hello from A, tab\there"
            assert messages[1]["status"] == "complete" and messages[1]["text"]
            # Deleting through B erases it for A.
            assert client.delete(b.url + f"/v1/conversations/{conversation}", headers=headers).status_code in (200, 204)
            assert client.get(a.url + f"/v1/conversations/{conversation}/messages", headers=headers).status_code == 404
    finally:
        a.stop()
        b.stop()
    assert a.process.returncode == 0 and b.process.returncode == 0
    # Both processes audited into one table: one chain, intact, with both servers' entries.
    verify = subprocess.run([str(medview_binary()), "audit", "verify", "--database-url", schema_url],
                            capture_output=True, text=True, timeout=120, env=_child_environment(), stdin=subprocess.DEVNULL)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("intact:"), verify.stdout
    exported = subprocess.run([str(medview_binary()), "audit", "export", "--database-url", schema_url],
                              capture_output=True, text=True, timeout=120, env=_child_environment(), stdin=subprocess.DEVNULL)
    assert exported.returncode == 0, exported.stderr
    actions = [json.loads(line)["event"]["action"] for line in exported.stdout.splitlines()]
    assert "conversation.deleted" in actions and "message.sent" in actions
    assert not (tmp_path / "audit.sqlite").exists()


def test_serve_refuses_an_unreachable_database(tmp_path):
    url = "postgres://nobody@127.0.0.1:1/none"
    result = subprocess.run([str(medview_binary()), "serve", "--port", "0", "--data-dir", str(tmp_path), "--model", "scripted",
                             "--database-url", url], capture_output=True, text=True, timeout=120,
                            env=_child_environment(), stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "PostgreSQL is unreachable" in result.stderr


class TCPProxy:
    """A loopback TCP relay to PostgreSQL that the test can cut and restore (the database "going away")."""

    def __init__(self, target_port: int):
        import socket
        self.socket_module = socket
        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.connections: list = []
        self.listener = None
        self.lock = threading.Lock()

    def start(self):
        socket = self.socket_module
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener

        def accept():
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                with self.lock:
                    self.connections += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._relay, args=(a, b), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    @staticmethod
    def _relay(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        socket = self.socket_module
        # shutdown() wakes the thread blocked in accept(); close() alone would not (Linux).
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for s in self.connections:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.connections = []


def test_readyz_follows_the_database(schema_url, tmp_path):
    port = int(re.search(r"@[^:/]+:(\d+)/", schema_url).group(1))
    proxy = TCPProxy(port)
    proxy.start()
    server = Serve(schema_url.replace(f":{port}/", f":{proxy.port}/"), tmp_path)
    try:
        with httpx.Client(timeout=30) as client:
            assert client.get(server.url + "/readyz").status_code == 200
            proxy.cut()
            deadline = time.monotonic() + 30
            while (ready := client.get(server.url + "/readyz")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable", "store": "unreachable"}
            proxy.start()
            deadline = time.monotonic() + 30
            while (ready := client.get(server.url + "/readyz")).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert ready.status_code == 200
    finally:
        server.stop()
        proxy.cut()
