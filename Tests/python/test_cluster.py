"""Answers that outlive their process, with real `medview serve` processes.

- On PostgreSQL (MEDVIEW_TEST_DATABASE_URL, a schema per test): two processes on one database;
  a client resumes on B (WebSocket and SSE) an answer A is streaming, and gets each missed event
  once, in order, then the live tail; A is killed with SIGKILL and B's client gets the persisted
  events, then a retryable `interrupted` error, and the answer is stored `failed` with that text;
  a `chat.send` retried on B never runs the model again; a cancel sent to B stops A's answer.
- On SQLite (one process): SIGKILL mid-answer, restart, and the answer reads back `failed` with
  the text that was persisted, its replay ending with `interrupted`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from test_postgres import DATABASE_URL, Serve, schema_url  # noqa: F401 (fixture)

TIMEOUT = 30.0
# A slow scripted answer: 40 ms between deltas of 6 characters, several seconds in all.
SLOW = "[[delay:40]] Tell me about sleep hygiene."
FAST_DEATH = ["--heartbeat-interval-ms", "250", "--instance-stale-after-ms", "2500"]

needs_postgres = pytest.mark.skipif(not DATABASE_URL, reason="MEDVIEW_TEST_DATABASE_URL is not set")


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ws_url(server: Serve) -> str:
    return server.url.replace("http://", "ws://") + "/v1/ws"


async def ws_open(server: Serve, token: str):
    return await connect(ws_url(server), additional_headers={"Authorization": f"Bearer {token}"},
                         proxy=None, compression=None, open_timeout=TIMEOUT, close_timeout=5)


async def send(ws, command: dict) -> None:
    await ws.send(json.dumps(command))


async def recv(ws, timeout: float = TIMEOUT) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def is_terminal(event: dict) -> bool:
    return event["type"] == "stream.end" or (event["type"] == "error" and event.get("seq") is not None)


async def events_until(ws, stream_id: str, *, min_seq: int | None = None, stamps: list | None = None) -> list[dict]:
    """Stream events of `stream_id` until the terminal one (or until seq reaches `min_seq`)."""
    events = []
    while True:
        event = await recv(ws)
        if event.get("type") == "pong":
            continue
        assert event.get("streamId") == stream_id, event
        events.append(event)
        if stamps is not None:
            stamps.append(time.monotonic())
        if is_terminal(event) or (min_seq is not None and event["seq"] >= min_seq):
            return events


def chunks(events: list[dict]) -> str:
    return "".join(e["text"] for e in events if e["type"] == "stream.chunk")


def messages(server: Serve, token: str, conversation: str) -> list[dict]:
    response = httpx.get(server.url + f"/v1/conversations/{conversation}/messages",
                         headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT, trust_env=False)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["messages"] if isinstance(body, dict) else body


def parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.split("\n\n"):
        data = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


def wait_for(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def pair(schema_url, tmp_path):
    """Two processes on one PostgreSQL schema, sharing a data directory (one dev-token key)."""
    a = Serve(schema_url, tmp_path, FAST_DEATH, log_name="a.log")
    try:
        b = Serve(schema_url, tmp_path, FAST_DEATH, log_name="b.log")
    except BaseException:
        a.stop()  # a failed start of the second must not leave the first running
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def start_answer(server: Serve, token: str, *, text: str = SLOW, min_seq: int = 6, message_id: str | None = None):
    """Sends a slow message on `server` and reads its events up to `min_seq`; returns (ws, ack, events)."""
    ws = await ws_open(server, token)
    message_id = message_id or "m-" + uuid.uuid4().hex[:10]
    await send(ws, {"type": "chat.send", "id": message_id, "text": text})
    ack = await recv(ws)
    assert ack["type"] == "ack" and ack["id"] == message_id, ack
    events = await events_until(ws, ack["streamId"], min_seq=min_seq)
    return ws, ack, events


@needs_postgres
def test_websocket_resume_on_the_other_instance_gets_each_missed_event_once_then_the_live_tail(pair):
    a, b = pair
    user = "cl-" + uuid.uuid4().hex[:8]
    token = a.token(user)

    async def scenario():
        ws_a, ack, seen = await start_answer(a, token)
        await ws_a.close()  # the client loses A (a load balancer moves it) mid-answer
        await asyncio.sleep(0.3)  # events keep coming on A meanwhile: these are the missed ones
        ws_b = await ws_open(b, token)
        await send(ws_b, {"type": "stream.resume", "id": "r-1", "streamId": ack["streamId"], "after": seen[-1]["seq"]})
        resumed_ack = await recv(ws_b)
        assert resumed_ack["type"] == "ack" and resumed_ack["streamId"] == ack["streamId"], resumed_ack
        rest = await events_until(ws_b, ack["streamId"])
        await ws_b.close()
        return ack, seen, rest

    ack, seen, rest = run(scenario())
    everything = seen + rest
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1)), "gap or repeat"
    assert len(rest) > 3 and rest[-1]["type"] == "stream.end" and rest[-1]["finishReason"] == "complete"
    stored = messages(b, token, ack["conversationId"])
    assert stored[-1]["status"] == "complete" and stored[-1]["text"] == chunks(everything)


@needs_postgres
def test_sse_resume_with_last_event_id_on_the_other_instance(pair):
    a, b = pair
    user = "cl-" + uuid.uuid4().hex[:8]
    token = a.token(user)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        conversation = client.post(a.url + "/v1/conversations", headers=headers, json={"title": "SSE"}).json()["id"]
        seen: list[dict] = []
        with client.stream("POST", a.url + f"/v1/conversations/{conversation}/messages",
                           headers={**headers, "Accept": "text/event-stream"}, json={"id": "m-sse", "text": SLOW}) as response:
            assert response.status_code == 200
            buffer = ""
            for piece in response.iter_text():
                buffer += piece
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    seen += parse_sse(block + "\n\n")
                if any(e.get("seq", 0) >= 6 for e in seen):
                    break
        stream_events = [e for e in seen if "seq" in e and e.get("type") != "ack"]
        stream_id = stream_events[0]["streamId"]
        last = stream_events[-1]["seq"]
        time.sleep(0.3)
        resumed = client.get(b.url + f"/v1/streams/{stream_id}",
                             headers={**headers, "Accept": "text/event-stream", "Last-Event-ID": str(last)})
        assert resumed.status_code == 200
        rest = [e for e in parse_sse(resumed.text) if "seq" in e]
    everything = stream_events + rest
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1)), "gap or repeat"
    assert rest[-1]["type"] == "stream.end" and rest[-1]["finishReason"] == "complete"
    assert messages(b, token, conversation)[-1]["text"] == chunks(everything)


@needs_postgres
def test_sigkill_of_the_answering_instance_gives_the_other_instances_client_the_partial_answer_and_interrupted(pair):
    a, b = pair
    user = "cl-" + uuid.uuid4().hex[:8]
    token = a.token(user)

    async def scenario():
        ws_a, ack, seen = await start_answer(a, token)
        # A second client follows the same answer on B while A still streams it.
        ws_b = await ws_open(b, token)
        await send(ws_b, {"type": "stream.resume", "id": "r-kill", "streamId": ack["streamId"], "after": 0})
        assert (await recv(ws_b))["type"] == "ack"
        followed = await events_until(ws_b, ack["streamId"], min_seq=seen[-1]["seq"] + 2)
        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        a.process.wait(timeout=10)
        rest = await events_until(ws_b, ack["streamId"])
        recovered_after = time.monotonic() - killed_at
        await ws_b.close()
        return ack, followed + rest, recovered_after

    ack, events, recovered_after = run(scenario())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "gap or repeat"
    terminal = events[-1]
    assert terminal["type"] == "error" and terminal["code"] == "interrupted" and terminal["retryable"] is True, terminal
    # Recovered once A's heartbeat went stale (2.5 s) and B's next sweep ran (0.25 s); the bound
    # leaves a busy machine room while still far below an answer that is never recovered.
    assert recovered_after < 25, recovered_after
    stored = messages(b, token, ack["conversationId"])
    assert stored[-1]["status"] == "failed"
    assert stored[-1]["text"] == chunks(events) and stored[-1]["text"], "the partial text sent is kept"
    # Resuming from the start later replays exactly what B's client saw.
    replay = httpx.get(b.url + f"/v1/streams/{ack['streamId']}", headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream",
                                                                      "Last-Event-ID": "0"}, timeout=TIMEOUT, trust_env=False)
    assert [e for e in parse_sse(replay.text) if "seq" in e] == events


@needs_postgres
def test_a_chat_send_retried_on_the_other_instance_never_runs_the_model_twice(pair):
    a, b = pair
    user = "cl-" + uuid.uuid4().hex[:8]
    token = a.token(user)

    async def scenario():
        ws_a, ack, seen = await start_answer(a, token, message_id="m-retry", min_seq=3)
        await ws_a.close()
        ws_b = await ws_open(b, token)
        await send(ws_b, {"type": "chat.send", "id": "m-retry", "text": SLOW})
        again = await recv(ws_b)
        assert again["type"] == "ack" and again.get("duplicate") is True, again
        assert again["streamId"] == ack["streamId"]
        # A duplicate re-attaches from the start: the whole answer, once.
        whole = await events_until(ws_b, ack["streamId"])
        await ws_b.close()
        return ack, whole

    ack, whole = run(scenario())
    assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1))
    assert whole[-1]["type"] == "stream.end"
    stored = messages(a, token, ack["conversationId"])
    assert [m["role"] for m in stored] == ["user", "assistant"], "one answer only"
    assert stored[-1]["text"] == chunks(whole)


@needs_postgres
def test_a_cancel_sent_to_the_other_instance_stops_the_answer(pair):
    a, b = pair
    user = "cl-" + uuid.uuid4().hex[:8]
    token = a.token(user)

    async def scenario():
        ws_a, ack, seen = await start_answer(a, token, min_seq=3)
        ws_b = await ws_open(b, token)
        await send(ws_b, {"type": "stream.cancel", "id": "c-1", "streamId": ack["streamId"]})
        reply = await recv(ws_b)
        assert reply["type"] == "ack" and reply["id"] == "c-1", reply
        started = time.monotonic()
        rest = await events_until(ws_a, ack["streamId"])
        await ws_a.close()
        await ws_b.close()
        return ack, seen + rest, time.monotonic() - started

    ack, events, took = run(scenario())
    assert events[-1]["type"] == "stream.end" and events[-1]["finishReason"] == "cancelled", events[-1]
    # Cancelled, not finished (above); the bound only leaves a busy machine room.
    assert took < 20, took
    stored = messages(a, token, ack["conversationId"])
    assert stored[-1]["status"] == "cancelled" and stored[-1]["text"] == chunks(events)


def test_sqlite_sigkill_mid_answer_then_restart_reads_back_failed_with_the_persisted_text(tmp_path):
    server = Serve(None, tmp_path, log_name="first.log")
    user = "cl-" + uuid.uuid4().hex[:8]
    token = server.token(user)
    stamps: list[float] = []

    async def scenario():
        ws = await ws_open(server, token)
        await send(ws, {"type": "chat.send", "id": "m-kill", "text": SLOW})
        ack = await recv(ws)
        seen = await events_until(ws, ack["streamId"], min_seq=12, stamps=stamps)
        server.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        server.process.wait(timeout=10)
        return ack, seen, killed_at

    try:
        ack, seen, killed_at = run(scenario())
    finally:
        server.stop()
    restarted = Serve(None, tmp_path, log_name="second.log")
    try:
        stored = messages(restarted, token, ack["conversationId"])
        assert stored[-1]["status"] == "failed"
        text = stored[-1]["text"]
        assert chunks(seen).startswith(text), "the stored text is what the client was sent"
        # Everything the client had received half a second before the kill was persisted
        # (the journal writes every 20 ms).
        settled = [e for e, at in zip(seen, stamps) if at < killed_at - 0.5]
        assert text.startswith(chunks(settled)) and len(text) >= len(chunks(settled))
        replay = httpx.get(restarted.url + f"/v1/streams/{ack['streamId']}",
                           headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream", "Last-Event-ID": "0"},
                           timeout=TIMEOUT, trust_env=False)
        events = [e for e in parse_sse(replay.text) if "seq" in e]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "error" and events[-1]["code"] == "interrupted" and events[-1]["retryable"] is True
        assert chunks(events) == text
        assert events[:-1] == seen[:len(events) - 1]
    finally:
        restarted.stop()


@needs_postgres
def test_per_user_limits_hold_across_instances_and_a_dead_instance_releases_its_share(schema_url, tmp_path):
    limits = ["--max-connections-per-user", "2", "--max-streams-per-user", "1", *FAST_DEATH]
    a = Serve(schema_url, tmp_path, limits, log_name="a.log")
    b = Serve(schema_url, tmp_path, limits, log_name="b.log")
    user = "cl-" + uuid.uuid4().hex[:8]
    token = a.token(user)

    async def refused_connection(server: Serve) -> dict:
        ws = await ws_open(server, token)
        event = await recv(ws)
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        return {"event": event, "close": ws.close_code}

    async def scenario():
        # Connections: one on A and one on B use the user's two; a third, on either, is refused.
        ws_a = await ws_open(a, token)
        ws_b = await ws_open(b, token)
        # A connection is recorded in the database just after its handshake; an acknowledged
        # ping shows it was. Without it, the third connection could be counted before the second
        # was recorded (a CI run once waited in vain for its refusal).
        for ws in (ws_a, ws_b):
            ping = "p-" + uuid.uuid4().hex[:8]
            await send(ws, {"type": "ping", "id": ping})
            reply = await recv(ws)
            assert reply["type"] == "ack" and reply["id"] == ping, reply
        third = await refused_connection(a)
        assert third["event"]["code"] == "too_many_connections" and third["close"] == 4429, third
        # Streams: one running on A; a new message on B is refused while it runs.
        await send(ws_a, {"type": "chat.send", "id": "m-one", "text": SLOW})
        ack = await recv(ws_a)
        await events_until(ws_a, ack["streamId"], min_seq=3)
        await send(ws_b, {"type": "chat.send", "id": "m-two", "text": "Hello"})
        refused = await recv(ws_b)
        assert refused["type"] == "error" and refused["code"] == "too_many_streams" and refused["id"] == "m-two", refused
        # A dies with its connection and its answer: within the staleness (2.5 s heartbeat timeout
        # plus a sweep) B accepts a new connection and a new answer.
        a.process.send_signal(signal.SIGKILL)
        a.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while True:
            await send(ws_b, {"type": "chat.send", "id": "m-" + uuid.uuid4().hex[:8], "text": "Hello again"})
            reply = await recv(ws_b)
            if reply["type"] == "ack":
                break
            assert reply["code"] == "too_many_streams" and time.monotonic() < deadline, reply
            await asyncio.sleep(0.2)
        await events_until(ws_b, reply["streamId"])
        second = await ws_open(b, token)
        await send(second, {"type": "ping", "id": "p-1"})
        pong = await recv(second)
        assert pong["type"] in ("pong", "ack"), pong
        await second.close()
        await ws_b.close()

    try:
        run(scenario())
    finally:
        a.stop()
        b.stop()


@needs_postgres
def test_the_database_going_away_mid_answer_gives_a_retryable_error_and_the_text_is_saved_when_it_is_back(schema_url, tmp_path):
    from test_postgres import TCPProxy
    import re
    port = int(re.search(r"@[^:/]+:(\d+)/", schema_url).group(1))
    proxy = TCPProxy(port)
    proxy.start()
    server = Serve(schema_url.replace(f":{port}/", f":{proxy.port}/"), tmp_path)
    user = "cl-" + uuid.uuid4().hex[:8]
    token = server.token(user)

    async def scenario():
        ws, ack, seen = await start_answer(server, token, min_seq=3)
        proxy.cut()  # the database goes away while the answer streams
        rest = await events_until(ws, ack["streamId"])
        proxy.start()
        await ws.close()
        return ack, seen + rest

    try:
        ack, events = run(scenario())
        terminal = events[-1]
        assert terminal["type"] == "error" and terminal["code"] == "storage_unavailable" and terminal["retryable"] is True, terminal
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

        def saved():
            response = httpx.get(server.url + f"/v1/conversations/{ack['conversationId']}/messages",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT, trust_env=False)
            if response.status_code != 200:
                return None
            body = response.json()
            stored = body["messages"] if isinstance(body, dict) else body
            return stored if stored[-1]["status"] != "streaming" else None

        stored = wait_for(saved, timeout=40, what="the answer to be saved once the database is back")
        assert stored[-1]["status"] == "failed" and stored[-1]["text"] == chunks(events)
    finally:
        server.stop()
        proxy.cut()


@needs_postgres
def test_a_postgresql_restart_loses_nothing_that_was_acknowledged(schema_url, tmp_path):
    import os
    import subprocess
    import threading
    restart = os.environ.get("MEDVIEW_TEST_DATABASE_RESTART")
    if not restart:
        pytest.skip("MEDVIEW_TEST_DATABASE_RESTART is not set")
    server = Serve(schema_url, tmp_path)
    user = "cl-" + uuid.uuid4().hex[:8]
    token = server.token(user)
    restarted = threading.Event()

    def restart_database():
        time.sleep(1.0)
        try:
            subprocess.run(restart, shell=True, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
        finally:
            restarted.set()

    async def scenario():
        ws = await ws_open(server, token)
        results = {}
        refusals = 0
        threading.Thread(target=restart_database, daemon=True).start()
        stop_after = None
        index = 0
        while stop_after is None or time.monotonic() < stop_after:
            if restarted.is_set() and stop_after is None:
                stop_after = time.monotonic() + 2
            message_id = f"m-{index}"
            text = f"How can I keep a regular bedtime? ({index})"
            index += 1
            while True:  # a refused send is retried with the same id, as clients do
                await send(ws, {"type": "chat.send", "id": message_id, "text": text})
                reply = await recv(ws)
                if reply["type"] == "ack":
                    break
                assert reply["type"] == "error" and reply["retryable"] is True, reply
                refusals += 1
                await asyncio.sleep(0.2)
            results[message_id] = (text, reply, await events_until(ws, reply["streamId"]))
        await ws.close()
        return results, refusals

    try:
        results, refusals = run(scenario(), timeout=240)
        assert restarted.is_set()
        assert len(results) >= 5
        for message_id, (text, ack, events) in results.items():
            def settled():
                stored = messages(server, token, ack["conversationId"])
                return stored if stored and stored[-1]["status"] != "streaming" else None
            stored = wait_for(settled, timeout=40, what=f"{message_id} to be settled")
            assert stored[0]["text"] == text, "an acknowledged message is stored"
            terminal = events[-1]
            if terminal["type"] == "stream.end":
                assert stored[-1]["status"] == "complete" and stored[-1]["text"] == chunks(events)
            else:
                assert terminal["retryable"] is True, terminal
                assert stored[-1]["status"] == "failed" and stored[-1]["text"] == chunks(events)
        print(f"messages acknowledged: {len(results)}, sends refused and retried during the restart: {refusals}")
    finally:
        server.stop()
