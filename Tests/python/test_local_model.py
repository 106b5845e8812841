"""End to end: `medview serve` with no model setting runs the embedded local model and streams a
real answer to a WebSocket client.

The server gets a fresh data directory whose model cache already holds the model file (linked from
the cache that scripts/test.sh fills with `medview model fetch`), so the test does not download it;
without that file the test is skipped with a message.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from conftest import LISTENING, REPO_ROOT, medview_binary

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cached_model() -> Path | None:
    candidates = []
    if os.environ.get("MEDVIEW_LOCAL_MODEL"):
        candidates.append(Path(os.environ["MEDVIEW_LOCAL_MODEL"]))
    candidates.append(REPO_ROOT / ".build" / "medview-model-cache" / "models" / MODEL_FILE)
    return next((p for p in candidates if p.is_file()), None)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    model = cached_model()
    if model is None:
        pytest.skip("local model file not cached: run `medview model fetch --data-dir .build/medview-model-cache`")
    data_dir = tmp_path_factory.mktemp("medview-local")
    (data_dir / "models").mkdir()
    (data_dir / "models" / MODEL_FILE).symlink_to(model.resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    log = open(data_dir.parent / f"{data_dir.name}-server.log", "w")
    # No --model: the default must be the embedded local model.
    process = subprocess.Popen(
        [str(medview_binary()), "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1, env=env,
    )
    lines: list[str] = []
    found: queue.Queue = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.append(line)
            found.put(line)
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        match = None
        while match is None and time.monotonic() < deadline:
            try:
                line = found.get(timeout=1)
            except queue.Empty:
                continue
            assert line is not None, f"medview serve exited early: {''.join(lines)}"
            match = LISTENING.search(line)
        assert match, "medview serve did not start"
        time.sleep(0.5)  # let the rest of the announcement arrive
        yield {"host": match["host"], "port": int(match["port"]), "data_dir": data_dir, "lines": lines, "binary": medview_binary()}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_default_model_is_the_local_demo_model_and_says_so(local_server):
    text = "".join(local_server["lines"])
    assert "Model: local:SmolLM2-135M-Instruct-Q4_1 (demo model, not medical-grade)" in text
    assert "not medical advice" in text
    assert "fetching" not in text.lower(), "the cached model should have been used, not fetched again"


def test_websocket_client_gets_a_coherent_streamed_answer_from_the_local_model(local_server):
    token = subprocess.run(
        [str(local_server["binary"]), "token", "--user", "local-e2e", "--data-dir", str(local_server["data_dir"])],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    ).stdout.strip()
    url = f"ws://{local_server['host']}:{local_server['port']}/v1/ws"

    async def scenario():
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, proxy=None, open_timeout=15) as ws:
            await ws.send(json.dumps({"type": "chat.send", "id": "q1", "text": "What is the capital of France?"}))
            events = []
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 60))
                events.append(event)
                if event["type"] == "stream.end" or event["type"] == "error":
                    return events

    events = asyncio.run(asyncio.wait_for(scenario(), 120))
    types = [e["type"] for e in events]
    assert types[0] == "ack", types
    start = events[1]
    assert start["type"] == "stream.start"
    assert start["model"] == {"provider": "local", "id": "SmolLM2-135M-Instruct-Q4_1", "demo": True}
    assert events[-1]["type"] == "stream.end", events[-1]
    assert events[-1]["finishReason"] == "complete", events[-1]
    chunks = [e for e in events if e["type"] == "stream.chunk"]
    assert len(chunks) >= 2, "the answer should arrive in several chunks"
    answer = "".join(c["text"] for c in chunks)
    assert "Paris" in answer, answer
    assert "<|im_end|>" not in answer and "<|im_start|>" not in answer
    usage = events[-1].get("usage") or {}
    assert usage.get("outputTokens", 0) > 0, events[-1]
