"""Bedrock end to end: the real `medview serve --model bedrock:...` against the Bedrock stand-in
(`medview dev bedrock-standin`), driven by WebSocket and SSE clients; and a real boto3
`bedrock-runtime` client against the same stand-in.

The stand-in checks every request's SigV4 signature with its fixed test keys, so a passing answer
also proves the server signed the request the way AWS expects.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import LISTENING, STARTUP_TIMEOUT, LiveServer, _child_environment, _pump_stdout, medview_binary
from test_live_clients import (
    assert_complete_stream,
    assert_gap_free,
    bearer,
    chunk_text,
    collect_stream,
    expect_ack,
    get_messages,
    http_client,
    new_id,
    run,
    send_cmd,
    sse_request,
    ws_open,
)

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
STANDIN_LISTENING = re.compile(r"Bedrock stand-in listening on (?P<endpoint>http://\S+)")
SETTING = re.compile(r"^\s+(?P<name>AWS_[A-Z_]+)=(?P<value>\S+)\s*$")


def _start(args: list[str], env: dict[str, str], pattern: re.Pattern, log_path) -> tuple[subprocess.Popen, list[str], re.Match, threading.Thread, object]:
    log = open(log_path, "w")
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1, env=env)
    lines: list[str] = []
    announced: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump_stdout, args=(process.stdout, announced, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            process.kill()
            raise AssertionError(f"{args[1]} did not start within {STARTUP_TIMEOUT:.0f}s")
        try:
            line = announced.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if line is None:
            process.wait(timeout=10)
            raise AssertionError(f"{args[1]} exited ({process.returncode}):\n" + open(log_path).read()[-4000:])
        match = pattern.search(line)
        if match:
            # The stand-in prints its settings right after the listening line.
            time.sleep(0.2)
            return process, lines, match, reader, log


def _stop(process: subprocess.Popen, reader: threading.Thread, log) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    reader.join(timeout=5)
    log.close()


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A running `medview dev bedrock-standin`: its endpoint and the settings it printed."""
    binary = medview_binary()
    if not binary.is_file():
        pytest.fail(f"medview binary not found at {binary}", pytrace=False)
    directory = tmp_path_factory.mktemp("bedrock-standin")
    process, lines, match, reader, log = _start(
        [str(binary), "dev", "bedrock-standin", "--port", "0"], _child_environment(), STANDIN_LISTENING, directory / "standin.log"
    )
    try:
        settings = {m.group("name"): m.group("value") for m in (SETTING.match(line) for line in lines) if m}
        assert settings["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == match.group("endpoint")
        yield {"endpoint": match.group("endpoint"), "settings": settings}
    finally:
        _stop(process, reader, log)


def _serve_bedrock(standin, tmp_path_factory, setting: str):
    """Starts `medview serve --model <setting>` with the Bedrock endpoint pointed at the stand-in."""
    binary = medview_binary()
    data_dir = tmp_path_factory.mktemp("medview-bedrock")
    env = {k: v for k, v in _child_environment().items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": standin["endpoint"],
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": standin["settings"]["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": standin["settings"]["AWS_SECRET_ACCESS_KEY"],
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(data_dir),
    })
    stderr_path = data_dir.parent / f"{data_dir.name}-server.log"
    process, lines, match, reader, log = _start(
        [str(binary), "serve", "--port", "0", "--data-dir", str(data_dir), "--model", setting],
        env, LISTENING, stderr_path,
    )
    server = LiveServer(binary, data_dir, match.group("host"), int(match.group("port")), process, lines, stderr_path)
    return server, lambda: _stop(process, reader, log)


@pytest.fixture(scope="module")
def bedrock_server(standin, tmp_path_factory):
    """`medview serve --model bedrock:<id>` with the Bedrock endpoint pointed at the stand-in."""
    server, stop = _serve_bedrock(standin, tmp_path_factory, f"bedrock:{MODEL_ID}")
    try:
        lines = server.stdout_lines
        assert any(f"Model: bedrock:{MODEL_ID}" in line for line in lines), lines
        expected = f"Bedrock: ConverseStream in us-east-1 at {standin['endpoint']}; auth: SigV4, AWS credential chain"
        assert any(expected in line for line in lines), lines
        assert not any(standin["settings"]["AWS_SECRET_ACCESS_KEY"] in line for line in lines)
        yield server
    finally:
        stop()


def test_bedrock_invoke_setting_streams_through_invoke_model_with_response_stream(standin, tmp_path_factory, user):
    server, stop = _serve_bedrock(standin, tmp_path_factory, f"bedrock-invoke:{MODEL_ID}")
    try:
        assert any("Bedrock: InvokeModelWithResponseStream in us-east-1" in line for line in server.stdout_lines), server.stdout_lines
        token = server.token(user)
        answer = "Anthropic events arrive base64-encoded inside chunk events."

        async def scenario():
            async with http_client(server) as client:
                created = await client.post("/v1/conversations", headers=bearer(token), json={"title": "invoke"})
                conversation_id = created.json()["id"]
                _, events, _ = await sse_request(
                    client, "POST", f"/v1/conversations/{conversation_id}/messages",
                    token=token, json_body={"id": new_id("sse"), "text": f"[[say:{answer}]][[delta:6]]"},
                )
                stream = [e.json() for e in events][1:]
                assert_complete_stream(stream)
                assert chunk_text(stream) == answer
                assert stream[-1]["usage"]["outputTokens"] == len(range(0, len(answer), 6))

        run(scenario())
    finally:
        stop()


def test_websocket_client_gets_the_whole_bedrock_answer_and_it_is_stored(bedrock_server, user):
    server = bedrock_server
    token = server.token(user)
    answer = "Keep a regular bedtime, dim the lights in the evening, and bring a sleep diary to your next visit."
    text = f"How can I sleep better? [[say:{answer}]][[delta:5]][[delay:2]]"

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            command_id = new_id("send")
            await send_cmd(ws, {"type": "chat.send", "id": command_id, "text": text})
            ack = await expect_ack(ws, command_id)
            events = await collect_stream(ws, ack["streamId"])
        assert_complete_stream(events)
        assert events[0]["model"] == {"provider": "bedrock", "id": MODEL_ID, "demo": False}
        assert chunk_text(events) == answer
        usage = events[-1].get("usage")
        assert usage and usage["outputTokens"] == len(range(0, len(answer), 5)) and usage["inputTokens"] > 0
        async with http_client(server) as client:
            messages = await get_messages(client, token, ack["conversationId"])
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["status"] == "complete" and messages[1]["text"] == answer
        # Logs carry sizes and timings, never the question or the answer.
        log = server.stderr_path.read_text(errors="replace")
        assert "sleep better" not in log and "sleep diary" not in log

    run(scenario())


def test_sse_client_gets_the_whole_bedrock_answer(bedrock_server, user):
    server = bedrock_server
    token = server.token(user)
    answer = "Keep a symptom diary and bring it to your next appointment."

    async def scenario():
        async with http_client(server) as client:
            created = await client.post("/v1/conversations", headers=bearer(token), json={"title": "Bedrock SSE"})
            assert created.status_code == 201, created.text
            conversation_id = created.json()["id"]
            _, events, _ = await sse_request(
                client, "POST", f"/v1/conversations/{conversation_id}/messages",
                token=token, json_body={"id": new_id("sse"), "text": f"[[say:{answer}]][[delta:3]]"},
            )
            payloads = [e.json() for e in events]
            assert payloads[0]["type"] == "ack"
            stream = payloads[1:]
            assert_complete_stream(stream)
            assert chunk_text(stream) == answer
            messages = await get_messages(client, token, conversation_id)
            assert messages[1]["status"] == "complete" and messages[1]["text"] == answer

    run(scenario())


def test_throttled_then_successful_request_succeeds_after_retry(bedrock_server, user):
    server = bedrock_server
    token = server.token(user)
    answer = "This answer arrived after two throttled attempts."

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            command_id = new_id("send")
            await send_cmd(ws, {"type": "chat.send", "id": command_id, "text": f"[[throttle:2]][[say:{answer}]]"})
            ack = await expect_ack(ws, command_id)
            events = await collect_stream(ws, ack["streamId"])
        assert_complete_stream(events)
        assert chunk_text(events) == answer

    run(scenario())


def test_mid_stream_model_error_ends_with_retryable_error_and_stored_partial_answer(bedrock_server, user):
    server = bedrock_server
    token = server.token(user)
    answer = "abcdefghijklmnopqrstuvwxyz0123456789"

    async def scenario():
        async with await ws_open(server, token=token) as ws:
            command_id = new_id("send")
            await send_cmd(ws, {"type": "chat.send", "id": command_id, "text": f"[[say:{answer}]][[delta:4]][[fail-after:3]][[delay:5]]"})
            ack = await expect_ack(ws, command_id)
            events = await collect_stream(ws, ack["streamId"])
        assert events[0]["type"] == "stream.start"
        assert not any(e["type"] == "stream.end" for e in events)
        error = events[-1]
        assert error["type"] == "error" and error["retryable"] is True and error["code"] == "model_error"
        assert_gap_free(events)
        partial = chunk_text(events)
        assert partial == answer[:12]
        async with http_client(server) as client:
            messages = await get_messages(client, token, ack["conversationId"])
        assert messages[1]["status"] == "failed" and messages[1]["text"] == partial

    run(scenario())


# --------------------------------------------------------------------------------------------
# boto3 against the stand-in: the reference client agrees with the stand-in's wire format
# --------------------------------------------------------------------------------------------


def _boto3_client(standin, secret: str | None = None):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    settings = standin["settings"]
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=standin["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=settings["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or settings["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=15),
    )


def _converse_events(client, text: str, model_id: str = MODEL_ID):
    """The event iterator of a converse_stream call (exceptions in the stream raise while iterating)."""
    response = client.converse_stream(
        modelId=model_id,
        system=[{"text": "You are a careful health companion."}],
        messages=[{"role": "user", "content": [{"text": text}]}],
        inferenceConfig={"maxTokens": 256, "temperature": 0.2, "topP": 0.9},
    )
    return response["stream"]


def _converse(client, text: str, model_id: str = MODEL_ID) -> list[dict]:
    return list(_converse_events(client, text, model_id))


def test_boto3_converse_stream_sees_every_event(standin):
    client = _boto3_client(standin)
    events = _converse(client, "[[say:Hello from the stand-in.]][[delta:4]]")
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and events[0]["messageStart"]["role"] == "assistant"
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert set(kinds[1:-3]) == {"contentBlockDelta"}
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Hello from the stand-in."
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    usage = events[-1]["metadata"]["usage"]
    assert usage["outputTokens"] == kinds.count("contentBlockDelta") and usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]


def test_boto3_retries_the_stand_ins_throttling_and_succeeds(standin):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    settings = standin["settings"]
    client = boto3.client(
        "bedrock-runtime", endpoint_url=standin["endpoint"], region_name="us-east-1",
        aws_access_key_id=settings["AWS_ACCESS_KEY_ID"], aws_secret_access_key=settings["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
    )
    response = client.converse_stream(
        modelId=MODEL_ID, messages=[{"role": "user", "content": [{"text": "[[throttle:2]][[say:third time lucky]]"}]}],
    )
    # botocore read ThrottlingException from x-amzn-ErrorType, treated it as retryable, and retried twice.
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in response["stream"] if "contentBlockDelta" in e)
    assert text == "third time lucky"


def test_boto3_sees_the_stream_exception_after_the_deltas(standin):
    from botocore.exceptions import EventStreamError

    client = _boto3_client(standin)
    seen = []
    with pytest.raises(EventStreamError) as raised:
        for event in _converse_events(client, "[[say:abcdefghijkl]][[delta:4]][[fail-after:2]]"):
            seen.append(event)
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in seen if "contentBlockDelta" in e) == "abcdefgh"


def test_boto3_sees_http_errors_and_signature_rejection(standin):
    from botocore.exceptions import ClientError

    client = _boto3_client(standin)
    with pytest.raises(ClientError) as throttled:
        _converse(client, "[[throttle:1]] a request boto3 does not retry")
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(ClientError) as invalid:
        _converse(client, "[[http:400:ValidationException]]")
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as forged:
        _converse(_boto3_client(standin, secret="not-the-secret"), "hello")
    assert forged.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert forged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_boto3_invoke_model_with_response_stream(standin):
    import base64
    import json

    client = _boto3_client(standin)
    response = client.invoke_model_with_response_stream(
        modelId=MODEL_ID,
        body=json.dumps({
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 128,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "[[say:Invoke works.]][[delta:5]]"}]}],
        }),
    )
    anthropic = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    types = [e["type"] for e in anthropic]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert "".join(e["delta"]["text"] for e in anthropic if e["type"] == "content_block_delta") == "Invoke works."
    assert anthropic[-2]["delta"]["stop_reason"] == "end_turn"
