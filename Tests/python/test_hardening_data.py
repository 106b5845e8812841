"""Issue 12, items 4-6 against the real server with real clients: per-user rate limits, text
rules, and typed answers for bad `after` values (the server runs with its default limits)."""

from __future__ import annotations

import httpx

from test_live_clients import (
    assert_error_body,
    bearer,
    collect_stream,
    http_client,
    new_id,
    recv_event,
    run,
    send_cmd,
    ws_open,
)

#: The default burst of `--rate-limit-burst`.
DEFAULT_BURST = 20


def test_a_flood_of_messages_is_cut_off_with_rate_limited_and_retry_after_on_websocket_and_sse(server, user):
    token = server.token(user)

    async def scenario():
        ws = await ws_open(server, token=token)
        async with ws:
            conversation = None
            for i in range(DEFAULT_BURST):
                command_id = new_id("flood")
                command = {"type": "chat.send", "id": command_id, "text": "Hi [[delay:0]] [[say:ok]]"}
                if conversation:
                    command["conversationId"] = conversation
                await send_cmd(ws, command)
                ack = await recv_event(ws)
                assert ack["type"] == "ack" and ack["id"] == command_id, (i, ack)
                conversation = ack["conversationId"]
                await collect_stream(ws, ack["streamId"])
            # Past the burst: refused (a slow machine may earn a refill or two, 1 per 3 s).
            error = None
            for _ in range(10):
                refused_id = new_id("flood")
                await send_cmd(ws, {"type": "chat.send", "id": refused_id, "text": "One more [[delay:0]] [[say:ok]]"})
                event = await recv_event(ws)
                if event["type"] == "error":
                    error = event
                    break
                assert event["type"] == "ack", event
                await collect_stream(ws, event["streamId"])
            assert error is not None and error["code"] == "rate_limited", error
            assert error["id"] == refused_id and error["retryable"] is True and "seq" not in error
            assert isinstance(error["retryAfter"], int) and 1 <= error["retryAfter"] <= 60, error

        async with http_client(server) as client:
            response = await client.post(
                f"/v1/conversations/{conversation}/messages",
                headers={**bearer(token), "Accept": "text/event-stream"},
                json={"id": new_id("sse"), "text": "And another"},
            )
            assert_error_body(response, 429, "rate_limited")
            retry_after = int(response.headers["retry-after"])
            assert 1 <= retry_after <= 60
            assert response.json()["error"]["retryAfter"] == retry_after

    run(scenario())


def test_nul_and_control_characters_are_refused_and_invisible_text_is_empty(server, user):
    token = server.token(user)

    async def scenario():
        ws = await ws_open(server, token=token)
        async with ws:
            for text, code in [("before\u0000after", "invalid_text"), ("bell\u0007", "invalid_text"), ("\u200b\u200d\ufeff", "empty_message")]:
                command_id = new_id("text")
                await send_cmd(ws, {"type": "chat.send", "id": command_id, "text": text})
                error = await recv_event(ws)
                assert error["type"] == "error" and error["code"] == code and error["id"] == command_id, (text, error)
        async with http_client(server) as client:
            response = await client.post("/v1/conversations", headers=bearer(token), json={"title": "Sleep\u0000notes"})
            assert_error_body(response, 400, "invalid_text")
            response = await client.post("/v1/conversations", headers=bearer(token), json={"title": "\u200b\u2060"})
            assert response.status_code == 201 and response.json()["title"] == "New conversation", response.text

    run(scenario())


def test_resume_with_a_fraction_or_huge_after_is_invalid_command(server, user):
    token = server.token(user)

    async def scenario():
        ws = await ws_open(server, token=token)
        async with ws:
            for after in ["1.5", "1e30", "99999999999999999999"]:
                command_id = new_id("resume")
                await ws.send('{"type":"stream.resume","id":"%s","streamId":"s_none","after":%s}' % (command_id, after))
                error = await recv_event(ws)
                assert error["type"] == "error" and error["code"] == "invalid_command" and error["id"] == command_id, (after, error)

    run(scenario())
