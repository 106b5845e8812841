"""The page's JavaScript modules, checked piece by piece inside the real browser (loaded with a
dynamic import() from /static/js/, under the page's own Content-Security-Policy): the PKCE code
of the Cognito sign-in (which cannot run end to end here: the server has no Cognito settings
yet), the backoff, the SSE parser, and where the token is (and is not) kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

from browser.fixtures import driver, web_server  # noqa: F401  (pytest fixtures)
from browser.support import ChatPage, fresh_user


def _run(driver, body: str):
    """Runs an async function body in the page; returns its result or raises with its error."""
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"(async () => {{ {body} }})().then((value) => done({{value}}), (error) => done({{error: String(error && error.stack || error)}}));"
    )
    assert "error" not in result, result["error"]
    return result["value"]


def _blank_page(driver, web_server):
    # The page itself, so module imports run under its CSP; sign-in is not needed.
    page = ChatPage(driver, web_server.http_url)
    page.open()
    page.wait.until(lambda d: d.find_element("id", "dev-user").is_displayed(), "the page did not load")
    return page


def test_browser_pkce_challenge_settings_and_token_expiry(driver, web_server):
    _blank_page(driver, web_server)
    verifiers = [secrets.token_urlsafe(48) for _ in range(3)] + ["a" * 43, "-._~" * 32]
    value = _run(
        driver,
        """
        const pkce = await import('/static/js/pkce.js');
        const challenges = [];
        for (const verifier of VERIFIERS) challenges.push(await pkce.challengeFor(verifier));
        const settings = pkce.cognitoSettings({domain: 'auth.example.com', clientId: 'abc', redirectUri: 'https://app.example.com/'});
        const insecure = pkce.cognitoSettings({domain: 'http://auth.example.com', clientId: 'abc', redirectUri: 'x'});
        const missing = pkce.cognitoSettings({domain: 'auth.example.com'});
        const loopback = pkce.cognitoSettings({domain: 'http://127.0.0.1:9000', clientId: 'abc'});
        const payload = btoa(JSON.stringify({sub: 'u', exp: 1900000000})).replace(/=+$/, '');
        return {challenges, settings, insecure, missing, loopback, origin: location.origin, exp: pkce.jwtExpiry('h.' + payload + '.s'),
                bad: pkce.jwtExpiry('not a jwt'), logout: pkce.signOutUrl(settings)};
        """.replace("VERIFIERS", json.dumps(verifiers)),
    )
    # S256: BASE64URL(SHA256(verifier)) without padding, checked against Python's own SHA-256.
    expected = [base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode() for v in verifiers]
    assert value["challenges"] == expected
    assert value["settings"] == {
        "domain": "https://auth.example.com", "clientId": "abc", "redirectUri": "https://app.example.com/",
        "scopes": "openid", "tokenUse": "access",
    }
    assert value["insecure"] is None and value["missing"] is None
    # Plain http only for a Hosted UI on this machine; without a redirect URI, back to this page.
    assert value["loopback"]["domain"] == "http://127.0.0.1:9000"
    assert value["loopback"]["redirectUri"] == value["origin"] + "/"
    assert value["exp"] == 1900000000 and value["bad"] is None
    assert value["logout"] == "https://auth.example.com/logout?client_id=abc&logout_uri=https%3A%2F%2Fapp.example.com%2F"


def test_browser_backoff_has_full_jitter_a_cap_and_a_limit(driver, web_server):
    _blank_page(driver, web_server)
    value = _run(
        driver,
        """
        const {Backoff} = await import('/static/js/backoff.js');
        const top = new Backoff({baseMs: 500, capMs: 15000, maxAttempts: 8, random: () => 0.999999});
        const ceilings = []; while (!top.exhausted()) ceilings.push(top.next());
        const low = new Backoff({baseMs: 500, capMs: 15000, maxAttempts: 3, random: () => 0});
        const lows = [low.next(), low.next(), low.next()];
        const real = new Backoff({baseMs: 1000, capMs: 1000, maxAttempts: Infinity});
        const spread = new Set(Array.from({length: 50}, () => real.next()));
        return {ceilings, lows, spread: spread.size, max: Math.max(...spread)};
        """,
    )
    assert value["ceilings"] == [499, 999, 1999, 3999, 7999, 14999, 14999, 14999]
    assert value["lows"] == [0, 0, 0], "full jitter starts at zero"
    assert value["spread"] > 10 and value["max"] < 1000, "delays are random below the ceiling"


def test_browser_sse_parser_handles_split_lines_comments_and_crlf(driver, web_server):
    _blank_page(driver, web_server)
    value = _run(
        driver,
        """
        const {readEventStream} = await import('/static/js/sse.js');
        const pieces = ['retry: 2000\\r\\n\\r\\n: keep-alive\\n\\nevent: ack\\ndata: {"type":"ack","id":"m"}\\n\\nid: 1\\nev',
                        'ent: stream.start\\ndata: {"type":"stream.start","seq":1}\\r', '\\n\\r\\nid: 2\\ndata: {"type":"stream.chunk",',
                        '"seq":2,"text":"é 🇨🇦"}\\n\\n', 'data: {"type":"stream.end"'];
        const encoder = new TextEncoder();
        const bytes = pieces.map((p) => encoder.encode(p));
        // split a multi-byte character across reads too
        const flag = bytes[3];
        const body = new ReadableStream({start(c) { for (const b of [bytes[0], bytes[1], bytes[2], flag.slice(0, 30), flag.slice(30), bytes[4]]) c.enqueue(b); c.close(); }});
        const events = [];
        await readEventStream(new Response(body), (event, lastId) => events.push([event.type, event.seq ?? null, event.text ?? null, lastId]));
        return events;
        """,
    )
    assert value == [
        ["ack", None, None, ""],
        ["stream.start", 1, None, "1"],
        ["stream.chunk", 2, "é 🇨🇦", "2"],
    ], "the unterminated last event must be dropped"


def test_browser_token_lives_in_session_storage_only(driver, web_server):
    page = ChatPage(driver, web_server.http_url)
    page.open()
    user = fresh_user("storage")
    page.sign_in(user)
    storage = driver.execute_script(
        "return {local: localStorage.length, cookie: document.cookie, url: location.href,"
        " session: JSON.parse(sessionStorage.getItem('medview.session') || 'null')}"
    )
    token = storage["session"]["token"]
    assert token.count(".") == 2 and storage["session"]["user"] == user
    assert storage["local"] == 0 and storage["cookie"] == ""
    assert token not in storage["url"]

    # A reload of the same tab keeps the patient signed in...
    driver.refresh()
    page.wait.until(lambda d: d.execute_script("return Boolean(window.__medview)"), "the reload signed the patient out")
    page.wait_state("live")
    # ...and signing out forgets the token.
    page.click("#sign-out")
    page.wait.until(lambda d: d.find_element("id", "dev-user").is_displayed(), "no sign-in form after signing out")
    assert driver.execute_script("return sessionStorage.getItem('medview.session')") is None
    assert page.state() == "offline"


def test_browser_markdown_holds_back_a_bullet_that_has_no_text_yet(driver, web_server):
    _blank_page(driver, web_server)
    value = _run(
        driver,
        """
        const {renderMarkdownInto} = await import('/static/js/markdown.js');
        const items = (text) => {
          const box = document.createElement('div');
          renderMarkdownInto(box, text);
          return [...box.querySelectorAll('li')].map((li) => li.textContent);
        };
        return {streaming: items('Tips:\\n\\n- Sleep well\\n- '), next: items('Tips:\\n\\n- Sleep well\\n- Walk'),
                middle: items('1. a\\n2. \\n3. c'), only: items('- ')};
        """,
    )
    # The item being written appears with its first word, not as an empty dot before it.
    assert value["streaming"] == ["Sleep well"]
    assert value["next"] == ["Sleep well", "Walk"]
    # Only the last item is held back, so numbering never shifts.
    assert value["middle"] == ["a", "", "c"]
    assert value["only"] == []
