"""Pytest fixtures of the browser tests; each test module imports the ones it uses.

- `web_server` (session): where the page is served. The session `server` fixture of
  conftest.py (the built-in copy of the page), or, when MEDVIEW_WEB_DIR is set, a server of our
  own started with `--web-dir`, so page edits are tested without rebuilding.
- `driver` (function): a fresh headless Chromium with a fresh profile; skips cleanly when the
  browser, its driver or Selenium is missing. Console errors from the page fail the test.
- `proxy` (function): a FlakyProxy in front of `web_server`, to cut or block connections.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .proxy import FlakyProxy
from .support import WebServer, chromium_or_skip, start_web_server, stop_web_server

REPO_ROOT = Path(__file__).resolve().parents[3]

#: Console messages that are expected when a test breaks the network on purpose.
#: (An HTTP error status such as a 404 for a page file is NOT in this list: it fails the test.)
EXPECTED_CONSOLE = (
    "WebSocket connection to",  # a socket refused, blocked or cut
    "net::ERR_",                # a request failed at the network level (offline, reset)
)


@pytest.fixture(scope="session")
def web_server(request, tmp_path_factory):
    web_dir = os.environ.get("MEDVIEW_WEB_DIR", "").strip()
    if not web_dir:
        live = request.getfixturevalue("server")
        yield WebServer(live.host, live.port)
        return
    raw = os.environ.get("MEDVIEW_BIN", "").strip()
    binary = Path(raw).resolve() if raw else REPO_ROOT / ".build" / "debug" / "medview"
    if not binary.is_file():
        pytest.fail(f"medview binary not found at {binary}", pytrace=False)
    own = start_web_server(binary, tmp_path_factory.mktemp("medview-web-data"), web_dir)
    yield own
    stop_web_server(own)


@pytest.fixture
def driver():
    browser = chromium_or_skip()
    # A test that provokes an error on purpose adds its text here.
    browser.expected_console = list(EXPECTED_CONSOLE)
    yield browser
    try:
        problems = []
        for entry in browser.get_log("browser"):
            if entry.get("level") != "SEVERE":
                continue
            message = entry.get("message", "")
            if any(expected in message for expected in browser.expected_console):
                continue
            problems.append(message)
    finally:
        browser.quit()
    assert not problems, "the page logged errors:\n" + "\n".join(problems)


@pytest.fixture
def proxy(web_server):
    flaky = FlakyProxy(web_server.host, web_server.port)
    yield flaky
    flaky.close()
