"""The web chat page in a real browser (headless Chromium via Selenium), against a live server
with the scripted model: streaming, stop, retry, conversations, keyboard and screen-reader
behaviour, token refresh, and rendering model text safely.

Each test uses a fresh browser profile and a fresh user. Every wait is bounded (20 s at most).
"""

from __future__ import annotations

import time

import pytest

from browser.fixtures import driver, web_server  # noqa: F401  (pytest fixtures)
from browser.support import ChatPage, Rest, fresh_user, same_text

# Records what the first answer's text looked like after every DOM change, and every
# non-empty announcement of the polite live region.
RECORD_PAINTS = """
window.__paints = [];
window.__busy = [];
window.__announcements = [];
const turns = document.getElementById('turns');
new MutationObserver(() => {
  const answer = turns.querySelector('[data-role=assistant]');
  if (!answer) return;
  const text = answer.querySelector('[data-part=text]').textContent;
  const last = window.__paints[window.__paints.length - 1];
  if (text !== last) {
    window.__paints.push(text);
    window.__busy.push(answer.getAttribute('aria-busy'));
  }
}).observe(turns, {subtree: true, childList: true, characterData: true, attributes: true});
const announcer = document.getElementById('announcer');
new MutationObserver(() => {
  if (announcer.textContent.trim()) window.__announcements.push(announcer.textContent);
}).observe(announcer, {subtree: true, childList: true, characterData: true});
"""


def _page(driver, web_server, user, **params) -> ChatPage:
    page = ChatPage(driver, web_server.http_url)
    page.open(**params)
    page.sign_in(user)
    return page


def test_browser_streamed_answer_appears_in_order_and_matches_the_stored_message(driver, web_server):
    user = fresh_user("stream")
    page = _page(driver, web_server, user)
    driver.execute_script(RECORD_PAINTS)

    page.type_and_send("How do I keep a symptom diary? [[delay:25]] [[delta:4]] [[repeat:2]]")
    answer = page.wait_status("complete")
    shown = page.answer_text()

    rest = Rest(web_server.http_url, user)
    conversation = rest.only_conversation()
    stored = rest.wait_for_stored_answer(conversation["id"], page.stream_id())
    assert stored["status"] == "complete"
    assert same_text(shown, stored["text"]), f"shown:\n{shown}\n\nstored:\n{stored['text']}"

    # The text grew chunk by chunk, each view a prefix of the next (in order, nothing repeated),
    # and it was aria-busy while it grew.
    paints = driver.execute_script("return window.__paints")
    busy = driver.execute_script("return window.__busy")
    growing = [p for p in paints if p]
    assert len(growing) >= 5, f"the answer did not stream: only {len(growing)} distinct states"
    for before, after in zip(growing, growing[1:]):
        assert after.startswith(before), f"text changed out of order: {before[-40:]!r} -> {after[-40:]!r}"
    assert " ".join(growing[-1].split()) == " ".join(stored["text"].split())
    assert "true" in busy[:-1], "the streaming answer was never aria-busy"
    assert answer.get_attribute("aria-busy") == "false"

    # The demo-model marker, the question once, and one stored question.
    assert "not medical advice" in answer.text.lower()
    assert page.user_messages() == ["How do I keep a symptom diary? [[delay:25]] [[delta:4]] [[repeat:2]]"]
    users = [m for m in rest.messages(conversation["id"]) if m["role"] == "user"]
    assert len(users) == 1


def test_browser_keyboard_only_and_one_announcement_per_answer(driver, web_server):
    from selenium.webdriver.common.keys import Keys

    user = fresh_user("keys")
    page = ChatPage(driver, web_server.http_url)
    page.open()
    # Sign in with the keyboard: the user-name field has focus, Enter submits.
    page.wait.until(lambda d: d.switch_to.active_element.get_attribute("id") == "dev-user", "the sign-in field has no focus")
    driver.switch_to.active_element.send_keys(user, Keys.ENTER)
    page.wait_state("live")
    page.wait.until(lambda d: d.switch_to.active_element.get_attribute("name") == "message", "the message box has no focus")
    driver.execute_script(RECORD_PAINTS)

    box = driver.switch_to.active_element
    box.send_keys("First line", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "second line [[delay:150]] [[delta:20]]")
    assert box.get_attribute("value") == "First line\nsecond line [[delay:150]] [[delta:20]]", "Shift+Enter must start a new line"
    assert page.answers() == [], "Shift+Enter must not send"
    box.send_keys(Keys.ENTER)

    page.wait_status("complete")
    assert page.user_messages() == ["First line\nsecond line [[delay:150]] [[delta:20]]"]
    assert box.get_attribute("value") == "", "the box is emptied after sending"

    # The finished answer is announced exactly once, with its text, after it ended.
    page.wait.until(lambda d: d.execute_script("return window.__announcements.length") >= 1, "nothing was announced")
    time.sleep(0.5)  # a second announcement would arrive within this time
    announcements = driver.execute_script("return window.__announcements")
    assert len(announcements) == 1, announcements
    assert same_text(announcements[0], "Answer: " + page.answer_text())

    # Focus is visible: Tab from the message box reaches the Send button, which shows an outline.
    box.send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    assert focused.get_attribute("id") == "send"
    outline = driver.execute_script("const s = getComputedStyle(arguments[0]); return [s.outlineStyle, s.outlineWidth]", focused)
    assert outline[0] != "none" and outline[1] != "0px", outline


def test_browser_stop_cancels_the_answer(driver, web_server):
    user = fresh_user("stop")
    page = _page(driver, web_server, user)
    page.type_and_send("Tell me about sleep [[delay:120]] [[repeat:3]]")
    page.wait_status("streaming")
    page.wait_answer_text(20)

    page.answer().find_element("css selector", "[data-action=stop]").click()
    answer = page.wait_status("cancelled")
    shown = page.answer_text()
    assert not answer.find_element("css selector", "[data-action=stop]").is_displayed()

    rest = Rest(web_server.http_url, user)
    stored = rest.wait_for_stored_answer(rest.only_conversation()["id"], page.stream_id())
    assert stored["status"] == "cancelled"
    assert same_text(shown, stored["text"])
    assert len(stored["text"]) < 600, "the answer ran to the end: stop did nothing"


def test_browser_failed_answer_offers_retry_with_a_new_id(driver, web_server):
    user = fresh_user("retry")
    page = _page(driver, web_server, user)
    question = "Will this work? [[fail:after:3]] [[delay:5]]"
    page.type_and_send(question)
    failed = page.wait_status("failed")
    first_stream = page.stream_id()
    retry = failed.find_element("css selector", "[data-action=retry]")
    assert retry.is_displayed()
    assert "could not be finished" in failed.text

    retry.click()
    page.wait_answers(2)
    page.wait_status("failed", index=1)  # the scripted model fails this question every time
    second_stream = page.stream_id(index=1)
    assert second_stream != first_stream, "a retry must be a new message (new id), not a replay"
    assert not retry.is_displayed(), "retry is offered once per failed answer"

    rest = Rest(web_server.http_url, user)
    messages = rest.messages(rest.only_conversation()["id"])
    users = [m for m in messages if m["role"] == "user"]
    assert [m["text"] for m in users] == [question, question]
    assert len({m["id"] for m in users}) == 2
    assert [m["status"] for m in messages if m["role"] == "assistant"] == ["failed", "failed"]


def test_browser_conversations_list_open_new_and_delete(driver, web_server):
    from selenium.webdriver.common.by import By

    user = fresh_user("convs")
    page = _page(driver, web_server, user)
    page.type_and_send("First conversation question [[delay:0]]")
    page.wait_status("complete")
    first_answer = page.answer_text()

    page.click("#new-conversation")
    assert page.answers() == [], "a new conversation starts empty"
    page.type_and_send("Second conversation question [[delay:0]]")
    page.wait_status("complete")

    rows = lambda: driver.find_elements(By.CSS_SELECTOR, "#conversation-list [data-conversation-id]")  # noqa: E731
    page.wait.until(lambda d: len(rows()) == 2, "the list does not show both conversations")
    rest = Rest(web_server.http_url, user)
    stored = {c["title"]: c["id"] for c in rest.conversations()}
    assert set(stored) == {"First conversation question [[delay:0]]", "Second conversation question [[delay:0]]"}

    # Open the first one: its stored messages are loaded.
    page.click(f'[data-conversation-id="{stored["First conversation question [[delay:0]]"]}"] .conversation-open')
    page.wait.until(lambda d: page.user_messages() == ["First conversation question [[delay:0]]"], "the first conversation did not open")
    assert page.answer().get_attribute("data-status") == "complete"
    assert same_text(page.answer_text(), first_answer)

    # Delete the second one, declining once first.
    delete = f'[data-conversation-id="{stored["Second conversation question [[delay:0]]"]}"] .conversation-delete'
    page.click(delete)
    dialog = driver.find_element(By.ID, "confirm-delete")
    page.wait.until(lambda d: dialog.get_attribute("open") is not None, "no confirmation was asked")
    dialog.find_element(By.CSS_SELECTOR, "button[value=cancel]").click()
    page.wait.until(lambda d: dialog.get_attribute("open") is None, "the dialog did not close")
    assert len(rest.conversations()) == 2, "declining must keep the conversation"

    page.click(delete)
    page.wait.until(lambda d: dialog.get_attribute("open") is not None, "no confirmation was asked")
    driver.find_element(By.ID, "confirm-delete-yes").click()
    page.wait.until(lambda d: len(rows()) == 1, "the deleted conversation is still listed")
    assert [c["id"] for c in rest.conversations()] == [stored["First conversation question [[delay:0]]"]]


def test_browser_token_is_refreshed_on_the_open_socket(driver, web_server):
    user = fresh_user("refresh")
    page = _page(driver, web_server, user)
    before = driver.execute_script("return window.__medview.stats()")
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__medview.refreshTokenNow().then(done, (e) => done({error: String(e)}));"
    )
    assert "error" not in result, result
    assert result["refreshes"] == before["authRefreshes"] + 1, "auth.refresh was not acknowledged on the socket"
    assert result["expiresAt"] > time.time() + 3000, "the ack should carry the new token's expiry"
    assert abs(result["expiresAt"] - result["tokenExpiresAt"]) < 5
    assert page.state() == "live"
    assert page.stats()["wsAttempts"] == before["wsAttempts"], "refreshing must not reopen the socket"
    # The socket still serves commands with the new token.
    page.type_and_send("Still there? [[delay:0]]")
    page.wait_status("complete")


def test_browser_refused_token_is_renewed_and_the_page_reconnects(driver, web_server):
    # The saved token stops being accepted (e.g. the server's key changed): the socket is closed
    # with 4401, the page gets a new token and carries on without asking the patient.
    user = fresh_user("refused")
    driver.expected_console.append("status of 401")  # the first request with the stale token
    page = _page(driver, web_server, user)
    driver.execute_script(
        "const s = JSON.parse(sessionStorage.getItem('medview.session'));"
        "s.token = s.token.split('.').slice(0, 2).join('.') + '.invalidsignature';"
        "sessionStorage.setItem('medview.session', JSON.stringify(s));"
    )
    driver.refresh()
    page.wait.until(lambda d: d.execute_script("return Boolean(window.__medview)"), "the chat did not restart")
    page.wait_state("live")
    assert page.stats()["wsAttempts"] >= 2, "the first socket should have been refused"
    assert driver.find_element("id", "account-name").text == user
    page.type_and_send("Still me? [[delay:0]]")
    page.wait_status("complete")
    rest = Rest(web_server.http_url, user)
    assert len(rest.conversations()) == 1


def test_browser_model_html_and_javascript_links_render_inert(driver, web_server):
    from selenium.common.exceptions import NoAlertPresentException

    user = fresh_user("xss")
    page = _page(driver, web_server, user)
    driver.execute_script(
        """
        window.__alerts = [];
        window.__violations = [];
        window.alert = (m) => window.__alerts.push(String(m));
        document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective));
        """
    )
    payload = (
        "Hello <img src=x onerror=alert(1)> and [click me](javascript:alert(2)) "
        "and [spaced](  JaVaScRiPt:alert(3)) and [ok](https://example.org/a) and **bold** "
        "<a href=javascript:alert(4)>raw</a>"
    )
    page.type_and_send(f"[[say:{payload}]] [[delay:0]] [[delta:3]]")
    answer = page.wait_status("complete")
    time.sleep(0.3)  # give any injected handler the chance to fire

    assert driver.execute_script("return document.querySelectorAll('img').length") == 0, "model text created an <img>"
    hrefs = driver.execute_script("return [...document.querySelectorAll('[href]')].map(e => e.getAttribute('href'))")
    assert not [h for h in hrefs if "javascript" in h.lower()], hrefs
    assert driver.execute_script("return document.querySelectorAll('[onerror], [onclick], [onload]').length") == 0
    assert driver.execute_script("return window.__alerts") == []
    assert driver.execute_script("return window.__violations") == [], "something tried to run inline script"
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018

    text = page.answer_text()
    assert "<img src=x onerror=alert(1)>" in text, "the markup should be shown as text"
    assert "click me" in text and "spaced" in text
    links = answer.find_elements("css selector", "[data-part=text] a")
    assert [(a.text, a.get_attribute("href")) for a in links] == [("ok", "https://example.org/a")]
    assert links[0].get_attribute("rel") == "noopener noreferrer nofollow"
    assert [b.text for b in answer.find_elements("css selector", "[data-part=text] strong")] == ["bold"]


def test_browser_markdown_subset_is_rendered_with_safe_elements(driver, web_server):
    user = fresh_user("md")
    page = _page(driver, web_server, user)
    # [[say:…]] cannot contain "]]" or real newlines survive typing, so set the box directly.
    page.type_and_send(
        "[[say:Rest *well* and drink `water`.\n\n- one item\n- two **items**\n\n1. first\n2. second\n\n"
        "Call tel:911? No: [call](tel:911) or [mail](mailto:care@example.org).]] [[delay:0]]"
    )
    answer = page.wait_status("complete")
    body = answer.find_element("css selector", "[data-part=text]")
    tags = driver.execute_script("return [...arguments[0].querySelectorAll('*')].map(e => e.tagName.toLowerCase())", body)
    assert set(tags) <= {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "h3", "h4", "a"}, tags
    assert [e.text for e in body.find_elements("css selector", "em")] == ["well"]
    assert [e.text for e in body.find_elements("css selector", "code")] == ["water"]
    assert [e.text for e in body.find_elements("css selector", "ul > li")] == ["one item", "two items"]
    assert [e.text for e in body.find_elements("css selector", "ol > li")] == ["first", "second"]
    hrefs = [a.get_attribute("href") for a in body.find_elements("css selector", "a")]
    assert hrefs == ["tel:911", "mailto:care@example.org"]



def test_browser_chunks_are_painted_once_per_animation_frame(driver, web_server):
    # 50 chunks arriving within one task (a burst after a resume, say) cost one DOM update.
    page = _page(driver, web_server, fresh_user("frames"))
    stream = "s_recordedburst000000000000001"
    events = [{"type": "stream.start", "streamId": stream, "seq": 1, "model": {"provider": "scripted", "id": "x", "demo": True}}]
    events += [{"type": "stream.chunk", "streamId": stream, "seq": 2 + i, "text": f"word{i} "} for i in range(50)]
    before = page.stats()["paints"]
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__medview.renderEvents(arguments[0]).then(() => requestAnimationFrame(() => setTimeout(done, 50)));",
        events,
    )
    assert page.stats()["paints"] - before == 1
    assert page.answer_text() == " ".join(f"word{i}" for i in range(50))
    assert page.answer().get_attribute("data-status") == "streaming"
