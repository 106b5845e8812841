"""The page on a bad network, in a real browser: the WebSocket cut mid-answer, WebSockets blocked
(SSE fallback), and messages typed while offline.

The page is loaded through a FlakyProxy (browser/proxy.py) so a test can really cut or block
connections: Chromium's DevTools network emulation leaves open WebSockets alone and cannot block
WebSocket handshakes. CDP offline emulation is still used where a test wants the browser itself
to be offline (navigator.onLine false, new requests failing).

Timings are tuned through the page's test parameters (`?test=1&backoffCapMs=…`), so reconnects
happen within a second or two instead of the production defaults.
"""

from __future__ import annotations

import time

from browser.fixtures import driver, proxy, web_server  # noqa: F401  (pytest fixtures)
from browser.support import ChatPage, Rest, fresh_user, same_text, set_browser_offline

FAST = {"backoffBaseMs": 200, "backoffCapMs": 1000, "ackTimeoutMs": 4000}



def _signed_in(driver, proxy, user, expect_state="live", **params) -> ChatPage:
    page = ChatPage(driver, proxy.url)
    page.open(**{**FAST, **params})
    page.sign_in(user, expect_state=expect_state)
    page.record_states()
    return page


def _one_turn(rest: Rest) -> tuple[dict, dict]:
    messages = rest.messages(rest.only_conversation()["id"])
    assert [m["role"] for m in messages] == ["user", "assistant"], messages
    return messages[0], messages[1]


def test_browser_socket_cut_mid_answer_reconnects_and_resumes_exactly_once(driver, proxy, web_server):
    user = fresh_user("cut")
    page = _signed_in(driver, proxy, user)
    page.type_and_send("Any tips for jet lag? [[delay:70]] [[repeat:2]]")
    page.wait_status("streaming")
    page.wait_answer_text(60)
    before = page.stats()

    assert proxy.cut() >= 2, "there was no open connection to cut"
    answer = page.wait_status("complete")
    shown = page.answer_text()

    log = page.state_log()
    assert "reconnecting" in log or "offline" in log, f"the page never noticed the cut: {log}"
    assert page.state() == "live"
    after = page.stats()
    assert after["wsLive"] >= before["wsLive"] + 1, "the page did not open a new socket"
    assert after["resumes"] >= before["resumes"] + 1, "the answer was not resumed (stream.resume)"
    assert after["chatSends"] == before["chatSends"], "the question was sent again instead of resumed"

    rest = Rest(web_server.http_url, user)
    question, stored = _one_turn(rest)
    assert stored["status"] == "complete"
    assert same_text(shown, stored["text"]), f"shown:\n{shown}\n\nstored:\n{stored['text']}"
    assert answer.get_attribute("data-stream-id") == stored["streamId"]


def test_browser_longer_outage_goes_offline_then_resumes(driver, proxy, web_server):
    user = fresh_user("outage")
    page = _signed_in(driver, proxy, user)
    page.type_and_send("What helps with a headache? [[delay:60]] [[repeat:2]]")
    page.wait_answer_text(40)

    proxy.offline = True  # the network is gone: every new connection is reset
    proxy.cut()
    page.wait_state("offline")
    time.sleep(1.5)  # several reconnect attempts fail meanwhile
    assert page.answer().get_attribute("data-status") == "streaming"
    proxy.offline = False

    page.wait_state("live")
    page.wait_status("complete")
    rest = Rest(web_server.http_url, user)
    _, stored = _one_turn(rest)
    assert same_text(page.answer_text(), stored["text"])


def test_browser_websocket_blocked_falls_back_to_sse_and_later_returns(driver, proxy, web_server):
    user = fresh_user("sse")
    proxy.block_websockets = True
    page = _signed_in(driver, proxy, user, expect_state="fallback", wsRetryMs=1500)
    assert proxy.websocket_upgrades_blocked >= 2, "the page should try the WebSocket first"

    page.type_and_send("Is it fine to nap after lunch? [[delay:15]]")
    answer = page.wait_status("complete")
    shown = page.answer_text()
    stats = page.stats()
    assert stats["wsLive"] == 0, "a WebSocket got through: the test did not block it"
    assert stats["sseSends"] == 1 and stats["fallbacks"] == 1
    assert "not medical advice" in answer.text.lower()

    rest = Rest(web_server.http_url, user)
    question, stored = _one_turn(rest)
    assert question["text"] == "Is it fine to nap after lunch? [[delay:15]]"
    assert stored["status"] == "complete"
    assert same_text(shown, stored["text"])

    # WebSockets allowed again: the page retries and goes live without a reload.
    proxy.block_websockets = False
    page.wait_state("live")
    page.type_and_send("And a second question [[delay:0]]")
    page.wait_status("complete", index=1)
    assert page.stats()["sseSends"] == 1, "the second message should have gone over the WebSocket"


def test_browser_sse_stream_cut_resumes_with_after(driver, proxy, web_server):
    user = fresh_user("sseresume")
    proxy.block_websockets = True
    page = _signed_in(driver, proxy, user, expect_state="fallback", wsRetryMs=600000)
    page.type_and_send("Tell me about hydration [[delay:70]] [[repeat:2]]")
    page.wait_answer_text(60)
    proxy.cut()
    page.wait_status("complete")
    stats = page.stats()
    assert stats["sseResumes"] >= 1, "the SSE answer was not resumed with GET /v1/streams/{id}?after="
    assert stats["sseSends"] == 1

    rest = Rest(web_server.http_url, user)
    _, stored = _one_turn(rest)
    assert same_text(page.answer_text(), stored["text"])


def test_browser_messages_typed_offline_are_sent_once_in_order_after_reconnecting(driver, proxy, web_server):
    user = fresh_user("offline")
    page = _signed_in(driver, proxy, user)

    # The network goes away: the browser is offline and the open socket dies.
    set_browser_offline(driver, True)
    proxy.offline = True
    proxy.cut()
    page.wait_state("offline")

    first, second = "First message typed offline [[delay:5]]", "Second message typed offline [[delay:5]]"
    page.type_and_send(first)
    page.type_and_send(second)
    answers = page.wait_answers(2)
    assert [a.get_attribute("data-status") for a in answers] == ["pending", "pending"]
    assert "sent automatically" in answers[0].text
    time.sleep(1.0)
    rest = Rest(web_server.http_url, user)
    assert rest.conversations() == [], "nothing can have reached the server while offline"

    set_browser_offline(driver, False)
    proxy.offline = False
    page.wait_state("live")
    page.wait_status("complete", index=0)
    page.wait_status("complete", index=1)

    # Exactly once, in order, in one conversation.
    conversations = rest.conversations()
    assert len(conversations) == 1, conversations
    messages = rest.messages(conversations[0]["id"])
    assert [(m["role"], m["text"] if m["role"] == "user" else m["status"]) for m in messages] == [
        ("user", first), ("assistant", "complete"), ("user", second), ("assistant", "complete"),
    ]
    assert page.user_messages() == [first, second]
    for index, stored in enumerate(m for m in messages if m["role"] == "assistant"):
        assert same_text(page.answer_text(index), stored["text"])
    assert "offline" in page.state_log()
