"""Shared pieces of the browser tests (Tests/python/test_browser_*.py).

- `chromium_or_skip()`: the Selenium driver for Debian's headless Chromium, or a clean skip when
  Selenium, chromium or chromedriver is missing.
- `start_web_server()`: when `MEDVIEW_WEB_DIR` is set, the tests start their own
  `medview serve --web-dir $MEDVIEW_WEB_DIR`, so page edits are tested without a rebuild (the
  session `server` fixture strips MEDVIEW_* variables and always serves the built-in copy).
- `ChatPage`: drives the page through its stable hooks (docs/WEB.md), with a hard timeout on
  every wait.
- `Rest`: reads what the server stored, to compare with what the page showed.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

#: The longest any single wait in these tests may take.
WAIT_SECONDS = 20

SCREEN_DIR = Path("/tmp/medview-screens")

CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
CHROMEDRIVER_CANDIDATES = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]


def _first_executable(env_name: str, candidates: list[str], name: str) -> str | None:
    raw = os.environ.get(env_name, "").strip()
    if raw:
        return raw if os.access(raw, os.X_OK) else None
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def chromium_or_skip(width: int = 1280, height: int = 800, reduced_motion: bool = False):
    """A fresh headless Chromium (new temporary profile each time), or pytest.skip."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (python3 -m pip install selenium==4.52.0)")
    chromium = _first_executable("CHROMIUM_BIN", CHROMIUM_CANDIDATES, "chromium")
    driver_path = _first_executable("CHROMEDRIVER_BIN", CHROMEDRIVER_CANDIDATES, "chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--window-size={width},{height}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    if reduced_motion:
        options.add_argument("--force-prefers-reduced-motion")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(driver_path)
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except Exception as error:  # a broken browser install is an environment problem, not a test failure
        pytest.skip(f"could not start headless Chromium: {str(error).splitlines()[0]}")
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    driver.execute_cdp_cmd("Network.enable", {})
    set_viewport(driver, width, height)
    return driver


def set_viewport(driver, width: int, height: int, mobile: bool = False) -> None:
    """Exact CSS viewport size (window-size includes no browser chrome in headless, but be sure)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def set_browser_offline(driver, offline: bool) -> None:
    """CDP network emulation: new requests fail and navigator.onLine flips (open sockets stay)."""
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


# ---------------------------------------------------------------------------- server


@dataclass
class WebServer:
    """Where the page is served; `process` is set only when these tests started the server."""

    host: str
    port: int
    process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"


_LISTENING = re.compile(r"MedView Companion listening on http://(?P<host>[^:/\s]+):(?P<port>\d+)")


def start_web_server(binary: Path, data_dir: Path, web_dir: str) -> WebServer:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    log = open(data_dir.parent / f"{data_dir.name}-web-server.log", "w")
    process = subprocess.Popen(
        [str(binary), "serve", "--port", "0", "--data-dir", str(data_dir), "--keepalive-seconds", "1", "--web-dir", web_dir, "--model", "scripted"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1, env=env,
    )
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stdout:  # keep reading so the pipe never fills
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        match = _LISTENING.search(line)
        if match:
            return WebServer(match.group("host"), int(match.group("port")), process)
    process.kill()
    raise AssertionError("medview serve --web-dir did not start")


def stop_web_server(server: WebServer) -> None:
    if server.process and server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()


# ---------------------------------------------------------------------------- REST


class Rest:
    """What the server stored for a user, read with a development token from /v1/dev/token."""

    def __init__(self, base_url: str, user: str) -> None:
        self.base_url = base_url
        answer = httpx.post(f"{base_url}/v1/dev/token", json={"user": user}, timeout=10)
        answer.raise_for_status()
        self.headers = {"Authorization": "Bearer " + answer.json()["token"]}

    def get(self, path: str):
        answer = httpx.get(self.base_url + path, headers=self.headers, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def conversations(self) -> list[dict]:
        return self.get("/v1/conversations")["conversations"]

    def messages(self, conversation_id: str) -> list[dict]:
        return self.get(f"/v1/conversations/{conversation_id}/messages")["messages"]

    def only_conversation(self) -> dict:
        conversations = self.conversations()
        assert len(conversations) == 1, f"expected one conversation, found {len(conversations)}"
        return conversations[0]

    def wait_for_stored_answer(self, conversation_id: str, stream_id: str, timeout: float = WAIT_SECONDS) -> dict:
        """The stored assistant message of `stream_id` once it is no longer `streaming`."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages(conversation_id):
                if message["role"] == "assistant" and message["streamId"] == stream_id and message["status"] != "streaming":
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"the answer of {stream_id} was not stored within {timeout}s")
            time.sleep(0.2)


# ---------------------------------------------------------------------------- page


def fresh_user(tag: str) -> str:
    """A new user name for one test: short enough for the page's 64-character limit."""
    return f"{tag[:20]}-{uuid.uuid4().hex[:12]}"


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class ChatPage:
    """The chat page in one browser, driven like a patient would (plus `?test=1` hooks)."""

    def __init__(self, driver, base_url: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.base_url = base_url
        self.wait = WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.05)

    # -- navigation and sign-in

    def open(self, **params) -> None:
        query = "&".join(["test=1"] + [f"{key}={value}" for key, value in params.items()])
        self.driver.get(f"{self.base_url}/?{query}")

    def sign_in(self, user: str, expect_state: str | None = "live") -> None:
        from selenium.webdriver.common.by import By

        self.wait.until(lambda d: d.find_element(By.ID, "dev-user").is_displayed(), "the sign-in form did not appear")
        field = self.driver.find_element(By.ID, "dev-user")
        field.clear()
        field.send_keys(user)
        self.driver.find_element(By.CSS_SELECTOR, "#dev-signin button[type=submit]").click()
        self.wait.until(lambda d: d.execute_script("return Boolean(window.__medview)"), "the chat did not start")
        shown = self.driver.find_element(By.ID, "account-name").get_attribute("textContent")
        assert shown == user, f"signed in as {shown!r}, not {user!r}"
        if expect_state:
            self.wait_state(expect_state)

    # -- connection state

    def state(self) -> str:
        return self.driver.find_element("css selector", "[data-connection-state]").get_attribute("data-connection-state")

    def wait_state(self, *states: str, timeout: float = WAIT_SECONDS) -> str:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, min(timeout, WAIT_SECONDS), poll_frequency=0.05).until(
            lambda d: self.state() in states, f"connection state never became {states} (last: {self.state()})"
        )
        return self.state()

    def record_states(self) -> None:
        """Starts recording every value data-connection-state takes."""
        self.driver.execute_script(
            """
            const box = document.querySelector('[data-connection-state]');
            window.__stateLog = [box.dataset.connectionState];
            new MutationObserver(() => window.__stateLog.push(box.dataset.connectionState))
              .observe(box, {attributes: true, attributeFilter: ['data-connection-state']});
            """
        )

    def state_log(self) -> list[str]:
        return self.driver.execute_script("return window.__stateLog || []")

    def stats(self) -> dict:
        return self.driver.execute_script("return window.__medview.stats()")

    # -- messages

    def type_and_send(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        box = self.driver.find_element(By.NAME, "message")
        box.clear()
        # send_keys types a newline as Enter, which sends: set the value for multi-line text.
        if "\n" in text:
            self.driver.execute_script("arguments[0].value = arguments[1]", box, text)
        else:
            box.send_keys(text)
        self.driver.find_element(By.CSS_SELECTOR, "form:has(textarea[name=message]) [type=submit]").click()

    def click(self, css: str) -> None:
        """Clicks the element matching `css`, finding it again if the page re-rendered it."""
        from selenium.common.exceptions import StaleElementReferenceException

        def attempt(driver):
            try:
                driver.find_element("css selector", css).click()
                return True
            except StaleElementReferenceException:
                return False

        self.wait.until(attempt, f"could not click {css}")

    def answers(self):
        return self.driver.find_elements("css selector", "[data-role=assistant]")

    def wait_answers(self, count: int):
        self.wait.until(lambda d: len(self.answers()) >= count, f"fewer than {count} answers appeared")
        return self.answers()

    def answer(self, index: int = -1):
        answers = self.wait_answers(1 if index < 0 else index + 1)
        return answers[index]

    def wait_status(self, status: str, index: int = -1, timeout: float = WAIT_SECONDS):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, min(timeout, WAIT_SECONDS), poll_frequency=0.05).until(
            lambda d: self.answer(index).get_attribute("data-status") == status,
            f"answer {index} never reached status {status!r}",
        )
        return self.answer(index)

    def answer_text(self, index: int = -1) -> str:
        return self.answer(index).find_element("css selector", "[data-part=text]").text

    def wait_answer_text(self, min_length: int, index: int = -1) -> str:
        self.wait.until(lambda d: len(self.answer_text(index)) >= min_length, f"answer text never reached {min_length} characters")
        return self.answer_text(index)

    def stream_id(self, index: int = -1) -> str:
        self.wait.until(lambda d: self.answer(index).get_attribute("data-stream-id"), "the answer has no stream id")
        return self.answer(index).get_attribute("data-stream-id")

    def user_messages(self) -> list[str]:
        return [e.text for e in self.driver.find_elements("css selector", "[data-role=user] .user-text")]

    # -- diagnostics

    def console(self) -> list[dict]:
        try:
            return self.driver.get_log("browser")
        except Exception:
            return []

    def screenshot(self, name: str) -> Path:
        SCREEN_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREEN_DIR / name
        self.driver.save_screenshot(str(path))
        return path


def same_text(shown: str, stored: str) -> bool:
    """Equal up to whitespace (rendering turns blank lines into paragraphs)."""
    return _normalize(shown) == _normalize(stored)


def events_json(events) -> str:
    return json.dumps(events)
