"""The playground page in headless Chromium against a live uvicorn server on loopback.

The browser is driven through the Chrome DevTools Protocol over a pipe
(``--remote-debugging-pipe``: the browser reads JSON messages ending in a NUL byte from
file descriptor 3 and writes its replies to descriptor 4), so no WebSocket client and no
downloaded browser build are needed. The test skips when no Chromium is installed; on
Debian, ``apt-get install -y chromium`` provides one.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra (FastAPI) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from graphix.api import Answer, transpile  # noqa: E402
from graphix.server import create_app  # noqa: E402

DEMO_DB = Path(__file__).resolve().parent.parent / "data" / "demo" / "bookshop.sqlite"
QUESTION = "Which books cost more than 20? Show title and price."
SQL = "SELECT title, price FROM book WHERE price > 20 ORDER BY price DESC"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class FixedSQL:
    """A model stand-in that returns one valid SQL query for every question."""

    def ask_many(self, questions, db, *, num_beams, execute, dialect):
        return [Answer(question, SQL, [(SQL, -0.1)]) for question in questions]


class DevToolsPipe:
    """A minimal Chrome DevTools Protocol client over the browser's debugging pipe."""

    def __init__(self, to_browser: int, from_browser: int):
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.events: list[dict] = []
        self.next_id = 0

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 30.0) -> dict:
        """Send one command and return its result; raise AssertionError on a protocol error."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read(deadline, f"the reply to {method}")
            if reply.get("id") == self.next_id:
                assert "error" not in reply, f"{method} failed: {reply['error']}"
                return reply["result"]
            self.events.append(reply)

    def wait_for_event(self, method: str, session: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event
            self.events.append(self._read(deadline, f"the event {method}"))

    def _read(self, deadline: float, waiting_for: str) -> dict:
        while b"\0" not in self.buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.from_browser], [], [], max(remaining, 0))
            assert ready, f"timed out waiting for {waiting_for}"
            chunk = os.read(self.from_browser, 1 << 16)
            assert chunk, f"the browser closed the pipe while waiting for {waiting_for}"
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def _find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_fd(fd: int) -> int:
    """Move `fd` to a number of 10 or more, so it cannot collide with descriptors 3 and 4."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@pytest.fixture
def live_server(tmp_path, monkeypatch):
    """A uvicorn server on 127.0.0.1 and a free port, serving the demo database."""
    monkeypatch.setenv("GRAPHIX_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "dbs"
    folder.mkdir()
    shutil.copy(DEMO_DB, folder / "bookshop.sqlite")
    app = create_app(folder, text2sql=FixedSQL())

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    listener.close()


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium with a DevTools pipe; skips when no Chromium is installed."""
    executable = _find_browser()
    if executable is None:
        pytest.skip("no Chromium found (looked for " + ", ".join(BROWSERS) + "); on Debian "
                    "install it with: apt-get install -y chromium")

    command_reader, command_writer = (_high_fd(fd) for fd in os.pipe())
    reply_reader, reply_writer = (_high_fd(fd) for fd in os.pipe())
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--remote-debugging-pipe",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "about:blank"]
    # A small Python launcher moves the pipe ends to descriptors 3 and 4, where Chromium
    # expects them, then becomes the browser.
    launcher = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                "os.execv(sys.argv[3], sys.argv[3:])")
    process = subprocess.Popen([sys.executable, "-c", launcher, str(command_reader),
                                str(reply_writer), executable, *flags],
                               pass_fds=(command_reader, reply_writer),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(command_reader)
    os.close(reply_writer)

    pipe = DevToolsPipe(command_writer, reply_reader)
    try:
        yield pipe
    finally:
        try:
            pipe.call("Browser.close", timeout_s=5)
        except (AssertionError, OSError):
            pass
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        os.close(command_writer)
        os.close(reply_reader)


# Runs in the page: pick the database, type the question, press Ask, read the result.
ASK_IN_PAGE = """
(async () => {
  const until = async (check, what) => {
    for (let step = 0; step < 400; step++) {
      const value = check();
      if (value) return value;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("timed out waiting for " + what + "; status: "
                    + document.getElementById("status").textContent);
  };
  await until(() => document.body.dataset.ready === "true", "the page to start");
  const select = document.getElementById("database");
  select.value = "bookshop";
  select.dispatchEvent(new Event("change"));
  await until(() => document.querySelector("#schema h3"), "the schema");
  document.getElementById("question").value = QUESTION;
  document.getElementById("dialect").value = "postgres";
  document.getElementById("ask").click();
  const table = await until(() => document.querySelector("#result table"), "the result table");
  const graph = document.getElementById("graph");
  await until(() => graph.complete && graph.naturalWidth > 0, "the link graph");
  const texts = (selector, root = document) =>
    [...root.querySelectorAll(selector)].map((node) => node.textContent);
  return {
    databases: texts("#database option"),
    tables: texts("#schema h3"),
    sql: document.getElementById("sql").textContent,
    header: texts("thead th", table),
    rows: [...table.querySelectorAll("tbody tr")].map((row) => texts("td", row)),
    status: document.getElementById("status").textContent,
  };
})()
"""


def test_playground_answers_question(live_server, browser):
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"]
    browser.call("Page.enable", session=session)
    browser.call("Page.navigate", {"url": live_server + "/"}, session=session)
    browser.wait_for_event("Page.loadEventFired", session)

    script = ASK_IN_PAGE.replace("QUESTION", json.dumps(QUESTION))
    result = browser.call("Runtime.evaluate", {"expression": script, "awaitPromise": True,
                                               "returnByValue": True},
                          session=session, timeout_s=60)
    assert "exceptionDetails" not in result, result.get("exceptionDetails")
    page = result["result"]["value"]

    with sqlite3.connect(DEMO_DB) as connection:
        expected = connection.execute(SQL).fetchall()
    assert page["databases"] == ["bookshop"]
    assert page["tables"] == ["author", "book", "customer", "purchase"]
    assert page["sql"] == transpile(SQL, "postgres")
    assert page["header"] == ["title", "price"]
    assert len(page["rows"]) == len(expected) > 0
    # JavaScript's String() writes 35.0 as "35"; other prices are the same as Python's repr.
    assert page["rows"] == [[title, f"{price:.15g}"] for title, price in expected]
    assert page["status"] == ""
