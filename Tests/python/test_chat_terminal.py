"""`medview chat` driven in a pseudo-terminal, as a person at a terminal uses it.

The chat is the terminal client built on the Swift library (MedViewClient); it runs against the
session's live server, in development mode, so it gets its token from the development issuer.
Every read is bounded, so a hung client fails a test instead of hanging the run.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
import uuid

import httpx

#: Longest wait for one expected piece of output.
TIMEOUT = 30.0

ANSI = re.compile(r"\x1b\[[0-9;]*m")
EMERGENCY = "I have crushing chest pain going down my left arm and I'm sweating"


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")} | {"TERM": "xterm"}


class ChatTerminal:
    """`medview chat` on a pseudo-terminal: type lines, press Ctrl-C, read the screen's text."""

    def __init__(self, server, *args: str):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes `medview chat` with the pty as its terminal
            binary = str(server.binary)
            os.execve(binary, [binary, "chat", "--url", server.http_url, *args], _environment())
        self.raw = b""
        self.output = ""
        #: (time, length of the output after the read) for every read.
        self.reads: list[tuple[float, int]] = []
        self.status: int | None = None

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def ctrl_c(self) -> None:
        # The terminal turns ^C into SIGINT for its foreground process, as for a person.
        os.write(self.fd, b"\x03")

    def _read_some(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child exited and the pty closed
            return False
        if not data:
            return False
        self.raw += data
        # Decoded from the start each time: a character, an escape sequence or a CRLF may span two reads.
        self.output = ANSI.sub("", self.raw.decode(errors="replace")).replace("\r\n", "\n")
        self.reads.append((time.monotonic(), len(self.output)))
        return True

    def expect(self, pattern: str, start: int = 0, timeout: float = TIMEOUT) -> re.Match:
        """Reads until `pattern` (a regex) appears in the output after `start`."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.output, start)
            if match:
                return match
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {pattern!r}; output so far:\n{self.output[-3000:]}"
            if not self._read_some(min(remaining, 0.5)):
                match = regex.search(self.output, start)
                assert match, f"the chat exited before {pattern!r}; output:\n{self.output[-3000:]}"
                return match

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read_some(0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError(f"the chat did not exit; output:\n{self.output[-3000:]}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


def stored_messages(server, user: str) -> list[dict]:
    """The user's messages in their most recent conversation, as the server stored them."""
    headers = {"Authorization": f"Bearer {server.token(user)}"}
    with httpx.Client(base_url=server.http_url, headers=headers, timeout=TIMEOUT) as http:
        conversations = http.get("/v1/conversations").json()["conversations"]
        assert conversations, "no conversation was stored"
        return http.get(f"/v1/conversations/{conversations[0]['id']}/messages").json()["messages"]


def user_id(tag: str) -> str:
    return f"chat-{tag}-{uuid.uuid4().hex[:8]}"


def test_question_streams_the_answer(server):
    user = user_id("stream")
    chat = ChatTerminal(server, "--user", user)
    try:
        chat.expect(r"you> ")
        chat.expect(r"\[connection: connected \(WebSocket\)\]")
        mark = len(chat.output)
        chat.type("How can I sleep better? [[delay:40]]\n")
        header = chat.expect(r"assistant \[demo model scripted-v1: not medical advice\]\n", mark)
        done = chat.expect(r"\nyou> ", header.end())
        shown = chat.output[header.end():done.start()].strip()
        stored = stored_messages(server, user)
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[1]["status"] == "complete"
        assert shown == stored[1]["text"].strip(), "the terminal shows exactly the stored answer"
        # Streamed: the answer text reached the terminal in several pieces, over time.
        pieces = [at for at, length in chat.reads if header.end() < length <= done.start() + 1]
        assert len(pieces) >= 3, "the answer arrived in pieces"
        assert pieces[-1] - pieces[0] > 0.2, "spread over time"
        chat.type("\x04")  # Ctrl-D leaves
        assert chat.wait_exit() == 0
    finally:
        chat.close()


def test_emergency_alert_is_shown_before_the_answer(server):
    chat = ChatTerminal(server, "--user", user_id("alert"))
    try:
        chat.expect(r"you> ")
        mark = len(chat.output)
        chat.type(EMERGENCY + "\n")
        header = chat.expect(r"assistant \[demo model", mark)
        done = chat.expect(r"\nyou> ", header.end())
        answer = chat.output[header.end():done.start()]
        lines = [line for line in answer.split("\n")[1:] if line.strip()]
        assert lines[0].startswith("!!! EMERGENCY: "), f"the alert comes first:\n{answer}"
        assert re.search(r"!!! Call \d+: tel:\d+", answer), f"with the number to call:\n{answer}"
        first_text = next(i for i, line in enumerate(lines) if not line.startswith("!!!"))
        assert all(line.startswith("!!!") for line in lines[:first_text])
        assert first_text < len(lines), "and the answer follows"
    finally:
        chat.close()


def test_ctrl_c_stops_the_answer_and_a_second_ctrl_c_leaves(server):
    user = user_id("cancel")
    chat = ChatTerminal(server, "--user", user)
    try:
        chat.expect(r"you> ")
        mark = len(chat.output)
        chat.type("Tell me more [[delay:150]] [[repeat:3]]\n")
        header = chat.expect(r"assistant \[demo model[^\n]*\n", mark)
        chat.expect(r"\S", header.end())  # some answer text arrived
        chat.ctrl_c()
        stopped = chat.expect(r"\[answer stopped\]", header.end())
        chat.expect(r"you> ", stopped.end())
        stored = stored_messages(server, user)
        assert stored[1]["status"] == "cancelled"
        chat.ctrl_c()
        assert chat.wait_exit() == 0
    finally:
        chat.close()


def run_chat(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(server.binary), "chat", "--url", server.http_url, *args],
        capture_output=True, text=True, timeout=90, env=_environment(), stdin=subprocess.DEVNULL,
    )


def test_once_for_scripts_and_list(server):
    user = user_id("once")
    ok = run_chat(server, "--user", user, "--once", "Is it fine to nap after lunch? [[delay:0]]")
    assert ok.returncode == 0, ok.stderr
    stored = stored_messages(server, user)
    assert stored[1]["text"].strip() in ok.stdout
    failed = run_chat(server, "--user", user, "--once", "Question [[fail:before]]")
    assert failed.returncode == 1
    assert "model_unavailable" in failed.stdout
    listed = run_chat(server, "--user", user, "--list")
    assert listed.returncode == 0
    assert len([line for line in listed.stdout.splitlines() if line.startswith("c_")]) == 2
    continued = run_chat(server, "--user", user, "--conversation", listed.stdout.split()[0], "--once", "And after dinner? [[delay:0]]")
    assert continued.returncode == 0, continued.stderr
    no_token = subprocess.run(
        [str(server.binary), "chat", "--url", "http://127.0.0.1:1", "--once", "hi"],
        capture_output=True, text=True, timeout=60, env=_environment(), stdin=subprocess.DEVNULL,
    )
    assert no_token.returncode == 2
