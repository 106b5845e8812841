"""Availability measured: a rolling restart of two `medview serve` processes on one PostgreSQL
database, behind a small load-balancing TCP proxy, while WebSocket clients stream answers
continuously (docs/AVAILABILITY.md).

Each client sends message after message; when its connection drops it reconnects through the
proxy (backoff with jitter) and resumes its answer with `stream.resume` after the last `seq` it
saw, or sends its `chat.send` again with the same id if it had no `ack` yet (idempotent). The
restart, as a load balancer and ECS do it: take A out of the proxy's rotation, cut A's open
connections half a second later (mid-answer), SIGTERM A (it drains: running answers finish and are
stored), start A' and put it in; then the same for B.
Every answer must end `complete` with gap-free `seq`s and the text the database stored. The test
prints how many answers completed intact.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from test_postgres import DATABASE_URL, Serve, schema_url  # noqa: F401 (fixture)

needs_postgres = pytest.mark.skipif(not DATABASE_URL, reason="MEDVIEW_TEST_DATABASE_URL is not set")

CLIENTS = 6
# About 1.5 s per answer: 25 ms between deltas of 6 characters.
TEXT = "[[delay:25]] Tell me about sleep hygiene, please."
FAST_DEATH = ["--heartbeat-interval-ms", "250", "--instance-stale-after-ms", "2500"]


class Proxy:
    """Round-robin TCP proxy on a free loopback port; backends can be taken out and put in.
    A connection already piped to a backend stays with it until either side closes."""

    def __init__(self):
        self.backends: list[tuple[str, int]] = []
        self.turn = 0
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.open: dict[tuple[str, int], set] = {}

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        self.connections += 1
        upstream = None
        for _ in range(max(1, len(self.backends))):
            if not self.backends:
                break
            host, port = self.backends[self.turn % len(self.backends)]
            self.turn += 1
            try:
                upstream = await asyncio.open_connection(host, port)
                break
            except OSError:
                continue
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        backend = (host, port)
        pair = (writer, up_writer)
        self.open.setdefault(backend, set()).add(pair)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                try:
                    dst.close()
                except Exception:
                    pass

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.open.get(backend, set()).discard(pair)

    def cut(self, backend: tuple[str, int]) -> int:
        """Closes every connection piped to `backend` (a load balancer's deregistration delay
        running out): clients lose their sockets mid-answer."""
        pairs = self.open.pop(backend, set())
        for client_side, server_side in pairs:
            for w in (client_side, server_side):
                try:
                    w.transport.abort()
                except Exception:
                    pass
        return len(pairs)

    async def close(self):
        self.server.close()


def address(server: Serve) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


class Client:
    """Streams answers one after another until told to stop; resumes across dropped connections."""

    def __init__(self, index: int, port: int, token: str):
        self.index = index
        self.url = f"ws://127.0.0.1:{port}/v1/ws"
        self.token = token
        self.answers: list[dict] = []  # {"id", "streamId", "conversationId", "events"}
        self.reconnects = 0
        self.resumes = 0

    async def _open(self):
        delay = 0.05
        while True:
            try:
                return await connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                     proxy=None, compression=None, open_timeout=5, close_timeout=2)
            except (OSError, asyncio.TimeoutError, Exception):
                await asyncio.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 1.0)

    async def run(self, stop: asyncio.Event):
        ws = await self._open()
        conversation = None
        n = 0
        while not stop.is_set():
            n += 1
            answer = {"id": f"c{self.index}-m{n}-{uuid.uuid4().hex[:6]}", "streamId": None, "conversationId": conversation, "events": []}
            self.answers.append(answer)
            while True:
                try:
                    if answer["streamId"] is None:
                        command = {"type": "chat.send", "id": answer["id"], "text": TEXT}
                        if conversation:
                            command["conversationId"] = conversation
                    else:
                        last = answer["events"][-1]["seq"] if answer["events"] else 0
                        command = {"type": "stream.resume", "id": f"r-{uuid.uuid4().hex[:6]}", "streamId": answer["streamId"], "after": last}
                        self.resumes += 1
                    await ws.send(json.dumps(command))
                    if await self._read(ws, answer, command["id"]):
                        break
                    await asyncio.sleep(0.1 + random.random() * 0.2)  # refused (shutting_down): retry
                except Exception:
                    pass
                # The connection dropped, or the server refused while draining: reconnect, go on.
                try:
                    await ws.close()
                except Exception:
                    pass
                self.reconnects += 1
                ws = await self._open()
            conversation = answer["conversationId"]
        await ws.close()

    async def _read(self, ws, answer, command_id) -> bool:
        """Reads until the answer's terminal event (True) or a refusal of `command_id` (False)."""
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if event["type"] == "ack" and event.get("id") == command_id:
                answer["streamId"] = event["streamId"]
                answer["conversationId"] = event.get("conversationId") or answer["conversationId"]
                continue
            if event["type"] == "error" and "seq" not in event:
                if not event.get("retryable"):
                    answer["events"].append({"type": "refused", "seq": -1, "error": event})
                    return True
                return False
            if event.get("streamId") != answer["streamId"] or "seq" not in event:
                continue
            answer["events"].append(event)
            if event["type"] == "stream.end" or event["type"] == "error":
                return True


@needs_postgres
def test_rolling_restart_of_both_instances_loses_no_answer(schema_url, tmp_path):
    a = Serve(schema_url, tmp_path, FAST_DEATH, log_name="metrics-roll-a.log")
    b = Serve(schema_url, tmp_path, FAST_DEATH, log_name="metrics-roll-b.log")
    servers = [a, b]
    token_users = ["roll-" + uuid.uuid4().hex[:8] + f"-{i}" for i in range(CLIENTS)]
    tokens = [a.token(u) for u in token_users]

    async def scenario():
        proxy = Proxy()
        port = await proxy.start()
        proxy.backends = [address(a), address(b)]
        stop = asyncio.Event()
        clients = [Client(i, port, tokens[i]) for i in range(CLIENTS)]
        tasks = [asyncio.create_task(c.run(stop)) for c in clients]
        await asyncio.sleep(3)
        cut: list[int] = []
        for old in (a, b):
            # Like a load balancer's deregistration: no new connections, then SIGTERM.
            proxy.backends.remove(address(old))
            await asyncio.sleep(0.5)
            cut.append(proxy.cut(address(old)))
            old.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(old.process.wait, 60)
            replacement = await asyncio.to_thread(Serve, schema_url, tmp_path, FAST_DEATH, f"metrics-roll-{len(servers)}.log")
            servers.append(replacement)
            proxy.backends.append(address(replacement))
            await asyncio.sleep(3)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 90)
        await proxy.close()
        return clients, proxy.connections, cut

    try:
        clients, connections, cut = asyncio.run(asyncio.wait_for(scenario(), 240))
        survivor = servers[-1]
        intact = 0
        problems = []
        with httpx.Client(timeout=30, trust_env=False) as http:
            stored_by_stream = {}
            for client, token in zip(clients, tokens):
                conversations = {answer["conversationId"] for answer in client.answers}
                for conversation in conversations:
                    body = http.get(survivor.url + f"/v1/conversations/{conversation}/messages",
                                    headers={"Authorization": f"Bearer {token}"}).json()
                    for message in body["messages"]:
                        if message["role"] == "assistant":
                            stored_by_stream[message["streamId"]] = message
                for answer in client.answers:
                    events = answer["events"]
                    seqs = [e["seq"] for e in events]
                    text = "".join(e["text"] for e in events if e["type"] == "stream.chunk")
                    stored = stored_by_stream.get(answer["streamId"])
                    ok = (bool(events) and seqs == list(range(1, len(events) + 1)) and events[-1]["type"] == "stream.end"
                          and events[-1].get("finishReason") == "complete" and stored is not None
                          and stored["status"] == "complete" and stored["text"] == text and text)
                    if ok:
                        intact += 1
                    else:
                        problems.append((answer["id"], seqs[-5:], events[-1] if events else None, stored and stored["status"]))
        total = sum(len(c.answers) for c in clients)
        reconnects = sum(c.reconnects for c in clients)
        resumes = sum(c.resumes for c in clients)
        print(f"\nrolling restart: {intact} of {total} answers completed intact "
              f"({CLIENTS} clients, {sum(cut)} connections cut mid-stream, {reconnects} reconnects, {resumes} resumes, "
              f"{connections} proxied connections)")
        assert total >= CLIENTS * 3
        assert reconnects >= 1 and resumes >= 1, "the restart never cut an answer: the test measured nothing"
        assert not problems, problems
        assert intact == total
    finally:
        for server in servers:
            server.stop()
