"""Production sign-in in a real browser: the page signs in through a Cognito Hosted UI stand-in
(authorization code + PKCE), chats, refreshes its short-lived token on the open socket, refuses a
redirect whose state it did not send, and signs out after inactivity (also at the Hosted UI).

The server is the real `medview serve --environment production`, trusting the stand-in's JWKS.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from browser.fixtures import driver  # noqa: F401  (pytest fixture)
from browser.hosted_ui import ISSUER, HostedUI
from browser.production import cognito_args, free_port, serve
from browser.support import WAIT_SECONDS, ChatPage

CLIENT_ID = "pagestandin1"
#: Token lifetime at the stand-in: short, so the page must refresh during the test.
TOKEN_SECONDS = 10


def _start(tmp_path_factory, *, idle_seconds: int = 900):
    stand_in = HostedUI(client_id=CLIENT_ID, token_seconds=TOKEN_SECONDS).start()
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/?test=1"
    stand_in.redirect_uris.add(redirect)
    data_dir = tmp_path_factory.mktemp("medview-cognito-page")
    # Like the other browser tests: MEDVIEW_WEB_DIR tests page edits without a rebuild.
    web_dir = os.environ.get("MEDVIEW_WEB_DIR", "").strip()
    served = serve(
        data_dir, "--port", str(port), "--keepalive-seconds", "1", "--idle-timeout-seconds", str(idle_seconds),
        *(["--web-dir", web_dir] if web_dir else []),
        *cognito_args(issuer=ISSUER, jwks_url=stand_in.jwks_url, client_id=CLIENT_ID, domain=stand_in.url, redirect_uri=redirect),
    )
    return stand_in, served


@pytest.fixture(scope="module")
def cognito_site(tmp_path_factory):
    stand_in, served = _start(tmp_path_factory)
    yield stand_in, served
    served.stop()
    stand_in.close()


@pytest.fixture
def idle_site(tmp_path_factory):
    stand_in, served = _start(tmp_path_factory, idle_seconds=4)
    yield stand_in, served
    served.stop()
    stand_in.close()


def _sign_in_through_hosted_ui(page: ChatPage, stand_in: HostedUI, username: str) -> None:
    driver = page.driver
    page.open()
    page.wait.until(lambda d: d.find_element("id", "cognito-button").is_displayed(), "no Cognito sign-in button")
    driver.find_element("id", "cognito-button").click()
    page.wait.until(lambda d: d.current_url.startswith(stand_in.url + "/oauth2/authorize"), "the page did not go to the Hosted UI")
    page.wait.until(lambda d: d.find_elements("id", "username"), "no login form at the Hosted UI")
    driver.find_element("id", "username").send_keys(username)
    driver.find_element("id", "login").click()
    page.wait.until(lambda d: d.execute_script("return Boolean(window.__medview)"), "the chat did not start after the redirect")


def _session(driver) -> dict:
    return driver.execute_script(
        "const s = JSON.parse(sessionStorage.getItem('medview.session') || 'null');"
        "return s && {expiresAt: s.expiresAt, mode: s.mode, user: s.user, hasRefresh: Boolean(s.refreshToken)};"
    )


def test_hosted_ui_stand_in_checks_the_pkce_verifier(cognito_site):
    # The fixture must refuse what Cognito refuses, or the sign-in test below proves nothing.
    stand_in, _ = cognito_site
    redirect = next(iter(stand_in.redirect_uris))
    verifier = "v" * 64
    from browser.hosted_ui import b64url
    import hashlib

    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "redirect_uri": redirect}
    wrong = httpx.post(stand_in.url + "/oauth2/token", data={**form, "code": stand_in.issue_code("x", redirect, challenge), "code_verifier": "w" * 64}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    right = httpx.post(stand_in.url + "/oauth2/token", data={**form, "code": stand_in.issue_code("x", redirect, challenge), "code_verifier": verifier}, timeout=10)
    assert right.status_code == 200 and right.json()["refresh_token"]


def test_browser_signs_in_with_pkce_chats_and_refreshes_on_the_open_socket(driver, cognito_site):
    stand_in, served = cognito_site
    page = ChatPage(driver, served.http_url)
    _sign_in_through_hosted_ui(page, stand_in, "patient-refresh")
    page.wait_state("live")

    authorize = stand_in.recorded("authorize")[-1]
    assert authorize["ok"] and authorize["query"]["code_challenge_method"] == "S256"
    assert [r["ok"] for r in stand_in.recorded("token") if r["grant"] == "authorization_code"][-1] is True
    assert "code=" not in driver.current_url and "state=" not in driver.current_url, "the code stays out of the address bar"
    assert driver.find_element("id", "account-name").text == "patient-refresh"
    first = _session(driver)
    assert first["mode"] == "cognito" and first["hasRefresh"]

    page.type_and_send("How much water should I drink? [[delay:0]]")
    page.wait_status("complete")

    # The page renews ahead of expiry with the refresh token and passes the new token to the
    # socket (auth.refresh), which the server acknowledges with the new expiry.
    page.wait.until(lambda d: page.stats()["authRefreshes"] >= 1, "no auth.refresh was acknowledged on the open socket")
    stats = page.stats()
    assert stats["lastRefreshExpiresAt"] > first["expiresAt"]
    assert any(r["grant"] == "refresh_token" and r["ok"] for r in stand_in.recorded("token"))

    # Past the first token's expiry the same socket is still live (no 4401, no reconnect).
    page.wait.until(lambda d: d.execute_script("return Date.now() / 1000") > first["expiresAt"] + 1.5, "clock")
    page.type_and_send("And in hot weather? [[delay:0]]")
    page.wait_status("complete")
    after = page.stats()
    assert after["wsLive"] == 1 and after["drops"] == 0 and after["wsAttempts"] == 1, after
    assert page.state() == "live"


def test_browser_refuses_a_redirect_whose_state_it_did_not_send(driver, cognito_site):
    stand_in, served = cognito_site
    page = ChatPage(driver, served.http_url)
    page.open()
    page.wait.until(lambda d: d.find_element("id", "cognito-button").is_displayed(), "no Cognito sign-in button")
    driver.find_element("id", "cognito-button").click()
    page.wait.until(lambda d: d.find_elements("id", "username"), "no login form at the Hosted UI")
    # A valid code for this client, but delivered with a state this tab never sent (a login-CSRF
    # or a mixed-up tab): the page must not exchange it.
    authorize = stand_in.recorded("authorize")[-1]["query"]
    code = stand_in.issue_code("attacker", authorize["redirect_uri"], authorize["code_challenge"])
    exchanges = len(stand_in.recorded("token"))
    driver.get(f"{served.http_url}/?test=1&code={code}&state=not-the-state-we-sent")
    page.wait.until(lambda d: d.find_element("id", "signin-error").is_displayed(), "no sign-in error shown")
    assert "did not match" in driver.find_element("id", "signin-error").text
    assert driver.execute_script("return Boolean(window.__medview)") is False
    assert _session(driver) is None
    assert len(stand_in.recorded("token")) == exchanges, "the page exchanged a code it should have refused"
    assert "code=" not in driver.current_url


def test_browser_signs_out_after_inactivity_and_ends_the_hosted_ui_session(driver, idle_site):
    stand_in, served = idle_site
    page = ChatPage(driver, served.http_url)
    _sign_in_through_hosted_ui(page, stand_in, "patient-idle")
    page.wait_state("live")
    page.type_and_send("A question before walking away [[delay:0]]")
    page.wait_status("complete")
    logouts = len(stand_in.recorded("logout"))

    # Nobody touches the page: heartbeats and token refreshes go on, but after the idle timeout
    # (4 s here) the page signs out, at the Hosted UI too, and comes back to a signed-out screen.
    page.wait.until(lambda d: d.find_elements("css selector", "#signin[data-signed-out=idle]:not([hidden])"), "the page did not sign out after inactivity")
    assert len(stand_in.recorded("logout")) == logouts + 1
    notice = driver.find_element("id", "signin-error").text
    assert "signed out after 4 seconds without activity" in notice
    assert _session(driver) is None
    assert driver.find_elements("css selector", "[data-role=assistant]") == [] or not driver.find_element("id", "app").is_displayed()
    assert "A question before walking away" not in driver.find_element("tag name", "body").text
    # And it stays signed out: no token requests, no socket, until someone signs in.
    tokens_before = len(stand_in.recorded("token"))
    deadline = time.monotonic() + 3
    page.wait.until(lambda d: time.monotonic() > deadline, "clock")
    assert len(stand_in.recorded("token")) == tokens_before
    assert driver.find_element("id", "signin").is_displayed()
    assert driver.execute_script("return Boolean(window.__medview)") is False


def _metric(base_url: str, name: str) -> float:
    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def _accepted_websockets(base_url: str) -> float:
    """WebSocket connections the server accepted so far (`medview_connection_attempts_total`)."""
    total = 0.0
    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("medview_connection_attempts_total{") and 'transport="websocket"' in line and 'result="accepted"' in line:
            total += float(line.split()[-1])
    return total


def test_browser_development_mode_idle_logoff_clears_the_screen_and_does_not_reconnect(driver, tmp_path_factory):
    # Development sign-in, no Hosted UI: the same idle logoff, checked from the server's side too.
    web_dir = os.environ.get("MEDVIEW_WEB_DIR", "").strip()
    served = serve(tmp_path_factory.mktemp("medview-idle-dev"), "--port", "0", "--idle-timeout-seconds", "3",
                   *(["--web-dir", web_dir] if web_dir else []))
    try:
        page = ChatPage(driver, served.http_url)
        page.open()
        page.sign_in("walked-away")
        page.type_and_send("Private question [[delay:0]]")
        page.wait_status("complete")
        assert _metric(served.http_url, "medview_websocket_connections") == 1
        page.wait.until(lambda d: d.find_elements("css selector", "#signin[data-signed-out=idle]:not([hidden])"), "no idle logoff")
        assert "without activity" in driver.find_element("id", "signin-error").text
        assert driver.find_element("id", "dev-user").get_attribute("value") == "", "the last user's name stays on screen"
        assert "Private question" not in driver.find_element("tag name", "body").text
        assert _session(driver) is None
        page.wait.until(lambda d: _metric(served.http_url, "medview_websocket_connections") == 0, "the socket stayed open")
        opened = _accepted_websockets(served.http_url)
        assert opened >= 1
        deadline = time.monotonic() + 3
        page.wait.until(lambda d: time.monotonic() > deadline, "clock")
        assert _accepted_websockets(served.http_url) == opened, "the page reconnected on its own"
    finally:
        served.stop()
