"""Safety events on the page: the emergency banner (safety.alert) and inline warnings
(safety.warning).

Two kinds of test:

- recorded events replayed into the page's renderer through the test hook
  `window.__medview.renderEvents(events)` (only present with `?test=1`): exact control over the
  sequence (several actions, an unsafe action href, a replayed duplicate chunk, a non-demo
  model). The events take the same path as network events: the connection manager's seq
  deduplication, then the renderer.
- real messages through the live server, whose safety layer sends `safety.alert` (an emergency,
  before the model is called) and `safety.warning` (a medication interaction).
"""

from __future__ import annotations

from browser.fixtures import driver, web_server  # noqa: F401  (pytest fixtures)
from browser.support import ChatPage, fresh_user

STREAM = "s_recordedalert0000000000000001"

RECORD_ORDER = """
window.__order = [];
const turns = document.getElementById('turns');
new MutationObserver(() => {
  const banner = turns.querySelector('[role=alert]');
  const text = turns.querySelector('[data-role=assistant] [data-part=text]');
  if (banner && !window.__order.includes('banner')) window.__order.push('banner');
  if (text && text.textContent && !window.__order.includes('text')) {
    window.__order.push('text');
    window.__bannerWhenTextAppeared = Boolean(turns.querySelector('[role=alert]'));
  }
}).observe(turns, {subtree: true, childList: true, characterData: true});
"""

EMERGENCY_EVENTS = [
    {"type": "ack", "id": "recorded", "streamId": STREAM, "conversationId": "c_recorded"},
    {"type": "stream.start", "streamId": STREAM, "seq": 1, "conversationId": "c_recorded",
     "userMessageId": "m_u", "messageId": "m_a", "model": {"provider": "scripted", "id": "scripted-v1", "demo": True}},
    {"type": "safety.alert", "streamId": STREAM, "seq": 2, "category": "cardiac", "severity": "emergency",
     "guidance": "Chest pain with shortness of breath can be a heart attack. Call emergency services now.",
     "actions": [
         {"label": "Call 911", "href": "tel:911"},
         {"label": "Text 988", "href": "sms:988"},
         {"label": "Bad action", "href": "javascript:alert(1)"},
     ]},
    {"type": "stream.chunk", "streamId": STREAM, "seq": 3, "text": "While you wait for help, "},
    {"type": "stream.chunk", "streamId": STREAM, "seq": 3, "text": "While you wait for help, "},  # a replayed duplicate
    {"type": "stream.chunk", "streamId": STREAM, "seq": 4, "text": "sit down and rest. "},
    {"type": "stream.chunk", "streamId": STREAM, "seq": 5, "text": "Unlock your door if you can."},
    {"type": "stream.end", "streamId": STREAM, "seq": 6, "finishReason": "complete"},
]


def _render(driver, events, interval_ms=40):
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__medview.renderEvents(arguments[0], {question: arguments[1], intervalMs: arguments[2]})"
        ".then(done, (e) => done('error: ' + e));",
        events, "I have crushing chest pain", interval_ms,
    )


def test_browser_emergency_banner_is_shown_above_and_before_the_answer(driver, web_server):
    page = ChatPage(driver, web_server.http_url)
    page.open()
    page.sign_in(fresh_user("alert"))
    driver.execute_script(RECORD_ORDER)
    assert not str(_render(driver, EMERGENCY_EVENTS)).startswith("error")

    answer = page.wait_status("complete")
    banner = driver.find_element("css selector", "#turns [role=alert]")
    assert driver.execute_script("return window.__order") == ["banner", "text"]
    assert driver.execute_script("return window.__bannerWhenTextAppeared") is True

    # Above the answer (layout and document order), and outside its aria-busy region so screen
    # readers announce it at once.
    assert banner.rect["y"] + banner.rect["height"] <= answer.rect["y"] + 1
    assert driver.execute_script("return Boolean(arguments[0].compareDocumentPosition(arguments[1]) & Node.DOCUMENT_POSITION_FOLLOWING)", banner, answer)
    assert driver.execute_script("return arguments[0].closest('[aria-busy]')", banner) is None

    assert "heart attack" in banner.text
    links = [(a.text, a.get_attribute("href")) for a in banner.find_elements("css selector", "a")]
    assert links == [("Call 911", "tel:911"), ("Text 988", "sms:988")], links
    for link in banner.find_elements("css selector", "a"):
        assert link.size["height"] >= 44, "call/text links must be easy to tap"
    assert page.answer_text() == "While you wait for help, sit down and rest. Unlock your door if you can."
    assert "not medical advice" in answer.text.lower()


def test_browser_medication_warning_is_shown_inside_the_answer(driver, web_server):
    page = ChatPage(driver, web_server.http_url)
    page.open()
    page.sign_in(fresh_user("warning"))
    stream = "s_recordedwarning00000000000001"
    events = [
        {"type": "stream.start", "streamId": stream, "seq": 1, "conversationId": "c_x", "userMessageId": "m_1",
         "messageId": "m_2", "model": {"provider": "bedrock", "id": "claude", "demo": False}},
        {"type": "stream.chunk", "streamId": stream, "seq": 2, "text": "Ibuprofen can help with pain. "},
        {"type": "safety.warning", "streamId": stream, "seq": 3, "kind": "medication_interaction",
         "drugs": ["ibuprofen", "warfarin"], "severity": "high",
         "advice": "Taking these together raises the risk of bleeding. Ask your pharmacist first."},
        {"type": "stream.chunk", "streamId": stream, "seq": 4, "text": "Take it with food."},
        {"type": "stream.end", "streamId": stream, "seq": 5, "finishReason": "complete"},
    ]
    _render(driver, events, 10)
    answer = page.wait_status("complete")
    warning = answer.find_element("css selector", ".safety-warning")
    assert warning.get_attribute("role") == "note"
    assert "risk of bleeding" in warning.text and "ibuprofen + warfarin" in warning.text
    assert driver.find_elements("css selector", "#turns [role=alert]") == [], "a warning is not an emergency banner"
    assert "not medical advice" not in answer.text.lower(), "no demo marker for a non-demo model"


def test_browser_live_emergency_message_shows_banner_before_answer_text(driver, web_server):
    # The server's safety layer detects the emergency and sends safety.alert (seq 2) before the
    # model is called; the page must show it before, and above, any answer text.
    page = ChatPage(driver, web_server.http_url)
    page.open()
    user = fresh_user("liveemergency")
    page.sign_in(user)
    driver.execute_script(RECORD_ORDER)
    page.type_and_send("I have crushing chest pain and I can't breathe [[delay:20]]")
    answer = page.wait_status("complete")
    banners = driver.find_elements("css selector", "#turns [role=alert]")
    assert len(banners) == 1, "no emergency banner"
    assert driver.execute_script("return window.__order") == ["banner", "text"]
    assert banners[0].rect["y"] + banners[0].rect["height"] <= answer.rect["y"] + 1
    assert banners[0].get_attribute("data-category") == "cardiac"
    assert ("Call 911", "tel:911") in [(a.text, a.get_attribute("href")) for a in banners[0].find_elements("css selector", "a")]

    # The banner comes back when the page is reloaded (the conversation reopens from REST and
    # its recent streams are replayed for their safety events); the text is not repeated.
    text = page.answer_text()
    driver.refresh()
    page.wait.until(lambda d: d.execute_script("return Boolean(window.__medview)"), "the chat did not restart")
    page.wait.until(lambda d: len(d.find_elements("css selector", "#turns [role=alert]")) == 1, "the banner did not come back")
    assert page.answer_text() == text
    assert page.answer().get_attribute("data-status") == "complete"


def test_browser_live_medication_interaction_shows_inline_warning(driver, web_server):
    page = ChatPage(driver, web_server.http_url)
    page.open()
    page.sign_in(fresh_user("livewarning"))
    page.type_and_send("I take warfarin every day. Can I take ibuprofen for my back? [[delay:5]]")
    answer = page.wait_status("complete")
    warnings = answer.find_elements("css selector", ".safety-warning")
    assert len(warnings) == 1, "no medication warning"
    assert "ibuprofen + warfarin" in warnings[0].text
    assert warnings[0].rect["y"] < answer.find_element("css selector", "[data-part=text]").rect["y"], "the warning belongs above the answer text"
    assert driver.find_elements("css selector", "#turns [role=alert]") == []
