"""The Lambda / API Gateway stand-in (`medview dev lambda-standin`) against real clients:
botocore's `apigatewaymanagementapi` model and SigV4 signing, a `websockets` client on the WebSocket
API, `httpx` on the function URL, and a function written here in Python against the Runtime API.

A passing run proves the stand-in speaks the Management API as botocore expects it (paths with
`@` and `=` signed twice-encoded, modeled errors raised as GoneException / PayloadTooLargeException)
and that a function URL's streamed answer reaches an SSE client before the function finishes.
"""

from __future__ import annotations

import http.client
import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import STARTUP_TIMEOUT, _child_environment, medview_binary

RUNTIME_BASE = "/2018-06-01/runtime"


class StandIn:
    def __init__(self, process: subprocess.Popen, addresses: dict, log_path: Path):
        self.process = process
        self.addresses = addresses
        self.log_path = log_path
        self.events: queue.Queue = queue.Queue()
        #: Set to let the streaming function URL handler finish its answer.
        self.finish_stream = threading.Event()

    @property
    def runtime(self) -> str:
        return self.addresses["runtimeAPI"]["handler"]

    def management(self, secret: str | None = None):
        return boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=self.addresses["managementEndpoint"],
            region_name=self.addresses["region"],
            aws_access_key_id=self.addresses["accessKeyId"],
            aws_secret_access_key=secret or self.addresses["secretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )

    def next_event(self, event_type: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.get("requestContext", {}).get("eventType") == event_type or (event_type == "HTTP" and event.get("version") == "2.0"):
                return event


def _post(address: str, path: str, body: bytes, headers: dict | None = None) -> int:
    conn = http.client.HTTPConnection(address, timeout=30)
    conn.request("POST", path, body=body, headers=headers or {})
    status = conn.getresponse().status
    conn.close()
    return status


def _stream(address: str, request_id: str, parts: list, wait: threading.Event) -> int:
    """A streamed response: the http-integration prelude and the first SSE event, then (after
    `wait`) the second, written as HTTP/1.1 chunks."""
    conn = http.client.HTTPConnection(address, timeout=30)
    conn.putrequest("POST", f"{RUNTIME_BASE}/invocation/{request_id}/response")
    conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "application/vnd.awslambda.http-integration-response")
    conn.endheaders()

    def chunk(data: bytes) -> None:
        conn.send(b"%x\r\n%s\r\n" % (len(data), data))

    chunk(parts[0])
    wait.wait(timeout=15)
    chunk(parts[1])
    conn.send(b"0\r\n\r\n")
    status = conn.getresponse().status
    conn.close()
    return status


def _function(stand_in: StandIn) -> None:
    """One execution environment of the function `handler`: accepts `medview.*` subprotocols,
    answers messages with 200, streams SSE on the function URL."""
    address = stand_in.runtime
    while True:
        try:
            conn = http.client.HTTPConnection(address, timeout=None)
            conn.request("GET", f"{RUNTIME_BASE}/invocation/next")
            response = conn.getresponse()
            body = response.read()
            conn.close()
        except (OSError, http.client.HTTPException):
            return  # the stand-in stopped
        if response.status != 200:
            return
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        event = json.loads(body)
        stand_in.events.put(event)
        path = f"{RUNTIME_BASE}/invocation/{request_id}/response"
        try:
            if event.get("version") == "2.0":
                prelude = json.dumps({"statusCode": 200, "headers": {"Content-Type": "text/event-stream"}}).encode() + b"\0" * 8
                _stream(address, request_id, [prelude + b"id: 1\ndata: one\n\n", b"id: 2\ndata: two\n\n"], stand_in.finish_stream)
                continue
            reply: dict = {"statusCode": 200}
            if event["requestContext"]["eventType"] == "CONNECT":
                offered = next((v for k, v in event.get("headers", {}).items() if k.lower() == "sec-websocket-protocol"), None)
                if offered:
                    chosen = [p.strip() for p in offered.split(",") if p.strip().startswith("medview.")]
                    if not chosen:
                        reply = {"statusCode": 200}  # no Sec-WebSocket-Protocol: API Gateway refuses
                    else:
                        reply["headers"] = {"Sec-WebSocket-Protocol": chosen[0]}
            _post(address, path, json.dumps(reply).encode(), {"Content-Type": "application/json"})
        except (OSError, http.client.HTTPException):
            return


@pytest.fixture
def stand_in(tmp_path):
    binary = medview_binary()
    if not binary.exists():
        pytest.skip(f"no medview binary at {binary} (build it with `swift build`)")
    port_file = tmp_path / "lambda-standin.json"
    log_path = tmp_path / "lambda-standin.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [str(binary), "dev", "lambda-standin", "--port-file", str(port_file)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=_child_environment(),
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not port_file.exists():
        if process.poll() is not None:
            raise AssertionError(f"the stand-in exited ({process.returncode}):\n" + log_path.read_text()[-4000:])
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the stand-in did not start within {STARTUP_TIMEOUT:.0f}s")
        time.sleep(0.05)
    result = StandIn(process, json.loads(port_file.read_text()), log_path)
    environments = [threading.Thread(target=_function, args=(result,), daemon=True) for _ in range(2)]
    for thread in environments:
        thread.start()
    try:
        yield result
    finally:
        result.finish_stream.set()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for thread in environments:
            thread.join(timeout=10)
        log.close()


def test_management_api_through_botocore(stand_in: StandIn):
    with connect(stand_in.addresses["webSocketURL"] + "?client=pytest", subprotocols=["medview.v1", "medview.bearer.e30"], max_size=2**20) as ws:
        assert ws.subprotocol == "medview.v1"
        connect_event = stand_in.next_event("CONNECT")
        connection_id = connect_event["requestContext"]["connectionId"]
        assert connection_id.endswith("=")  # so the path's `=` must be signed twice-encoded
        assert connect_event["queryStringParameters"] == {"client": "pytest"}

        ws.send("hello")
        message = stand_in.next_event("MESSAGE")
        assert message["body"] == "hello" and message["isBase64Encoded"] is False
        assert message["requestContext"]["connectionId"] == connection_id

        client = stand_in.management()
        client.post_to_connection(ConnectionId=connection_id, Data=b"from botocore")
        assert ws.recv(timeout=10) == "from botocore"

        described = client.get_connection(ConnectionId=connection_id)
        assert described["Identity"]["SourceIp"] == "127.0.0.1"
        assert described["ConnectedAt"] <= described["LastActiveAt"]

        with pytest.raises(client.exceptions.PayloadTooLargeException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"x" * 131073)
        client.post_to_connection(ConnectionId=connection_id, Data=b"y" * 131072)
        assert ws.recv(timeout=10) == "y" * 131072

        with pytest.raises(ClientError) as refused:
            stand_in.management(secret="not-the-secret").post_to_connection(ConnectionId=connection_id, Data=b"x")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"

        client.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        disconnect = stand_in.next_event("DISCONNECT")
        assert disconnect["requestContext"]["connectionId"] == connection_id
        assert disconnect["requestContext"]["disconnectStatusCode"] == 1000

        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"late")
        with pytest.raises(client.exceptions.GoneException):
            client.get_connection(ConnectionId=connection_id)


def test_connect_without_the_offered_subprotocol_is_refused(stand_in: StandIn):
    with pytest.raises(InvalidStatus) as refused:
        connect(stand_in.addresses["webSocketURL"], subprotocols=["chat.other"])
    assert refused.value.response.status_code == 400


def test_function_url_streams_sse_before_the_function_finishes(stand_in: StandIn):
    with httpx.Client(timeout=20) as client:
        with client.stream("GET", stand_in.addresses["functionURL"] + "events?since=0", headers={"Last-Event-ID": "0"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            lines = response.iter_lines()
            first = [next(lines) for _ in range(2)]
            assert first == ["id: 1", "data: one"]
            # The function is still waiting: the first event came through before it finished.
            assert not stand_in.finish_stream.is_set()
            stand_in.finish_stream.set()
            rest = "\n".join(lines)
            assert "id: 2\ndata: two" in rest
    event = stand_in.next_event("HTTP")
    assert event["rawPath"] == "/events" and event["rawQueryString"] == "since=0"
    assert event["headers"]["last-event-id"] == "0"
    assert event["requestContext"]["http"]["method"] == "GET"
