"""Headless Chromium for the browser tests of the example chat pages.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or ``CHROMIUM_PATH``),
driven by Playwright's Python API with its ``executable_path`` set: Playwright's own browser
downloads are never used. :class:`ChatTab` drives one tab of any of the four chat pages
(``/``, ``/tanstack``, ``/react/``, ``/react/tanstack/``), which share their element ids:
``#log`` with ``.msg.user`` / ``.msg.assistant`` boxes, ``#input``, ``#send``, ``#stop``,
``#status``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, Playwright

#: Flags that let Chromium run headless as root in a container without a GPU, and keep it
#: off the network except for the app under test.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: How long (ms) one step may take before the test fails: a demo answer takes ~5 s.
STEP_TIMEOUT_MS = 20_000

# The page's state as one JSON value, read in the page so it is consistent: every message box
# as {role, text, error, stopped} (text without the `.mark` that says how an answer ended:
# `.mark.error` with the error text, `.mark.stopped`), whether an answer is running (Stop
# enabled, Send disabled), the status line and what the composer holds.
_STATE_JS = """() => {
  const messages = Array.from(document.querySelectorAll("#log .msg"), (box) => {
    const copy = box.cloneNode(true);
    copy.querySelectorAll(".mark").forEach((mark) => mark.remove());
    return {
      role: box.classList.contains("user") ? "user"
        : box.classList.contains("assistant") ? "assistant" : box.className,
      text: copy.textContent,
      error: box.querySelector(".mark.error")?.textContent ?? null,
      stopped: Boolean(box.querySelector(".mark.stopped")),
    };
  });
  const stop = document.querySelector("#stop");
  const send = document.querySelector("#send");
  const running = Boolean(stop && !stop.disabled && send && send.disabled);
  const idle = Boolean(stop && stop.disabled && send && !send.disabled);
  return { messages, running, idle, status: document.querySelector("#status")?.textContent,
           input: document.querySelector("#input")?.value ?? "" };
}"""

# Resolves to the state once the last message is the assistant's answer to `question`, with
# more than `minChars` characters, while the answer is still running.
_STREAMING_JS = f"""([question, minChars]) => {{
  const state = ({_STATE_JS})();
  const [user, answer] = state.messages.slice(-2);
  return state.running && user?.role === "user" && user.text === question
    && answer?.role === "assistant" && answer.text.length > minChars ? state : null;
}}"""

# Resolves to the state once no answer runs and the last message answers `question`.
_SETTLED_JS = f"""([question]) => {{
  const state = ({_STATE_JS})();
  const [user, answer] = state.messages.slice(-2);
  return state.idle && user?.role === "user" && user.text === question
    && answer?.role === "assistant" && answer.text.length > 0 ? state : null;
}}"""

# Resolves to the state once no answer runs and the last message answers `question` with
# the `mark` ("error" or "stopped") that says how it ended.
_ENDED_JS = f"""([question, mark]) => {{
  const state = ({_STATE_JS})();
  const [user, answer] = state.messages.slice(-2);
  const marked = mark === "error" ? answer?.error : answer?.stopped;
  return state.idle && user?.role === "user" && user.text === question
    && answer?.role === "assistant" && marked ? state : null;
}}"""


def find_chromium() -> str | None:
    """The Chromium binary: ``CHROMIUM_PATH``, else ``chromium`` on PATH, else ``None``."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_browser(playwright: Playwright, executable: str, user_data_dir: Path) -> BrowserContext:
    """Headless Chromium with a fresh profile in ``user_data_dir``; its tabs share the profile.

    Raises playwright's ``Error`` when Chromium does not start.
    """
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=executable,
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport={"width": 900, "height": 700},
    )


@dataclass
class Message:
    """One message box as the page shows it: its text, and how the answer ended (the error
    text of a failed answer, whether it was stopped)."""

    role: str
    text: str
    error: str | None = None
    stopped: bool = False


@dataclass
class PageState:
    """A snapshot of a chat page: its messages and whether an answer is running."""

    messages: list[Message]
    running: bool
    idle: bool
    status: str
    input: str = ""

    @classmethod
    def from_js(cls, value: dict[str, Any]) -> PageState:
        """Build from the value of ``_STATE_JS``."""
        messages = [
            Message(m["role"], m["text"], m.get("error"), bool(m.get("stopped")))
            for m in value["messages"]
        ]
        running, idle = bool(value["running"]), bool(value["idle"])
        return cls(messages, running, idle, value["status"] or "", value.get("input") or "")

    @property
    def answer(self) -> str:
        """The text of the last message (the answer being checked)."""
        return self.messages[-1].text if self.messages else ""


class ChatTab:
    """One browser tab on a chat page, with the steps the tests take and screenshots."""

    def __init__(self, page: Page, name: str, screenshots: Path) -> None:
        self.page = page
        self.name = name
        self.screenshots = screenshots
        self.errors: list[str] = []
        page.set_default_timeout(STEP_TIMEOUT_MS)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, url: str) -> None:
        """Load ``url`` and wait until the composer is there."""
        self.page.goto(url)
        self.page.wait_for_selector("#input")

    def reload(self) -> None:
        """Reload the page (a user pressing F5) and wait until the composer is there."""
        self.page.reload()
        self.page.wait_for_selector("#input")

    def send(self, text: str) -> None:
        """Type ``text`` and press Send."""
        self.page.fill("#input", text)
        self.page.click("#send")

    def stop(self) -> None:
        """Press Stop."""
        self.page.click("#stop")

    def state(self) -> PageState:
        """The page's messages and running state, now."""
        return PageState.from_js(self.page.evaluate(_STATE_JS))

    def wait_streaming(self, question: str, min_chars: int = 40) -> PageState:
        """Wait until the answer to ``question`` shows more than ``min_chars`` characters while
        it is still running; return that state. Fails (playwright ``TimeoutError``) when the
        answer does not show up or ended first."""
        handle = self.page.wait_for_function(_STREAMING_JS, arg=[question, min_chars])
        return PageState.from_js(handle.json_value())

    def wait_settled(self, question: str) -> PageState:
        """Wait until no answer runs and the last message answers ``question``."""
        handle = self.page.wait_for_function(_SETTLED_JS, arg=[question])
        return PageState.from_js(handle.json_value())

    def wait_ended(self, question: str, mark: str) -> PageState:
        """Wait until no answer runs and the last message answers ``question`` marked
        ``mark`` (``"error"`` or ``"stopped"``)."""
        handle = self.page.wait_for_function(_ENDED_JS, arg=[question, mark])
        return PageState.from_js(handle.json_value())

    def screenshot(self, step: str) -> Path:
        """Save a full-page PNG as ``<screenshots>/<step>-<tab name>.png``; return its path."""
        path = self.screenshots / f"{step}-{self.name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
