"""The example app's four chat pages in a real browser (headless Chromium via Playwright).

Pages: the plain AI SDK page ``/`` and TanStack page ``/tanstack`` of ``examples/chat``, and
the React example ``examples/react-chat`` (``/react/``: ``@ai-sdk/react`` ``useChat`` with
``resume: true``; ``/react/tanstack/``: ``@tanstack/ai-react`` ``useChat`` on the shipped
connection adapter), built with npm by the ``react_build`` fixture and served by the app.

For each page, with two tabs (A and B) on the same chat URL:

1. A sends a question and the answer streams in A (a partial answer, still running);
2. B, opened before the question, follows the same answer while it streams;
3. A reloads mid-answer: the answer goes on in A from where it was;
4. both tabs end with the question and the whole answer once, the one the server stored;
5. A asks again, B follows, B presses Stop: both tabs end with the same partial answer, the
   one the server stored, and nothing runs any more.

A screenshot of each state goes to ``artifacts/screenshots/<page>/`` (gitignored; CI keeps
it as an artifact). The tests skip, saying why, when Chromium is not installed (Debian's
``chromium`` package; ``CHROMIUM_PATH`` overrides) and, for the React pages, when Node.js and
npm are not.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_browser import ChatTab, PageState, find_chromium, launch_browser
from playwright.sync_api import BrowserContext, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
REACT_DIR = REPO_ROOT / "examples" / "react-chat"
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
FIRST_QUESTION = "Tell me about resumable streams"
SECOND_QUESTION = "And what does Stop do?"
#: Pacing of the demo model: its ~95-word answer takes ~5 s, long enough for a reload and a
#: second tab mid-answer, short enough to keep the four pages under a minute.
TOKEN_DELAY_MS = "50"
_NPM_TIMEOUT_S = 300


@dataclass(frozen=True)
class ChatPage:
    """One page under test: its path, its protocol, and whether it needs the React build."""

    name: str
    path: str
    protocol: str  # "ai-sdk" | "tanstack"
    react: bool

    def messages_route(self, chat_id: str) -> str:
        """The route of the chat's history (``UIMessage[]`` rebuilt from the log)."""
        prefix = "/api/chat" if self.protocol == "ai-sdk" else "/api/tanstack/chat"
        return f"{prefix}/{chat_id}/messages"


PAGES = [
    ChatPage("plain-ai-sdk", "/", "ai-sdk", react=False),
    ChatPage("plain-tanstack", "/tanstack", "tanstack", react=False),
    ChatPage("react-ai-sdk", "/react/", "ai-sdk", react=True),
    ChatPage("react-tanstack", "/react/tanstack/", "tanstack", react=True),
]


def _demo_answer(question: str) -> str:
    """The text the offline demo model streams for ``question`` (examples/chat/models.py).

    ``demo_stream`` sends ``demo_reply`` a word at a time, each followed by a space. (Not by
    running ``demo_stream``: Playwright's sync API holds this thread's event loop.)
    """
    path = REPO_ROOT / "examples" / "chat" / "models.py"
    spec = importlib.util.spec_from_file_location("example_chat_models_browser", path)
    assert spec is not None and spec.loader is not None
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    messages = [{"id": "u", "role": "user", "parts": [{"type": "text", "text": question}]}]
    return "".join(f"{word} " for word in models.demo_reply(messages).split(" "))


def _build_react() -> str | None:
    """``npm ci`` (when node_modules is missing) and ``npm run build`` in examples/react-chat.

    Returns ``None`` when ``dist/`` is fresh, else why the React pages cannot be tested
    (no Node.js/npm). Fails the test session when npm fails.
    """
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return "Node.js and npm are not installed: the React example cannot be built"
    steps = [[npm, "run", "build"]]
    if not (REACT_DIR / "node_modules" / ".package-lock.json").is_file():
        steps.insert(0, [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
    for step in steps:
        proc = subprocess.run(
            step, cwd=REACT_DIR, capture_output=True, text=True, timeout=_NPM_TIMEOUT_S
        )
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(step)} failed in {REACT_DIR}:\n{proc.stdout}\n{proc.stderr}")
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary, else skip the module."""
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH): "
            "the browser tests need it"
        )
    return executable


@pytest.fixture(scope="module")
def react_skip_reason(chromium: str) -> str | None:
    """Builds the React example before the app starts; why React pages skip, or ``None``."""
    return _build_react()


@pytest.fixture
def page(request: pytest.FixtureRequest, react_skip_reason: str | None) -> ChatPage:
    """The page under test (parametrized indirectly); a React page skips, saying why, when
    the React example cannot be built."""
    chat_page: ChatPage = request.param
    if chat_page.react and react_skip_reason:
        pytest.skip(react_skip_reason)
    return chat_page


@pytest.fixture(scope="module")
def browser_app(start_app: Callable[..., Any], react_skip_reason: str | None) -> Any:
    """The example app (demo model, embedded log) serving the freshly built React example."""
    return start_app(CHAT_TOKEN_DELAY_MS=TOKEN_DELAY_MS)


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Headless Chromium (fresh profile) for the module; closed at the end."""
    with sync_playwright() as playwright:
        context = launch_browser(playwright, chromium, tmp_path_factory.mktemp("chromium-profile"))
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def answers() -> dict[str, str]:
    """The demo model's whole answer to each question of the scenario."""
    return {q: _demo_answer(q) for q in (FIRST_QUESTION, SECOND_QUESTION)}


def _stored_texts(app: Any, page: ChatPage, chat_id: str) -> list[tuple[str, str]]:
    """The chat's history from the server as ``(role, text)``: AI SDK parts carry ``text``,
    TanStack parts ``content``."""
    response = httpx.get(app.base_url + page.messages_route(chat_id), timeout=10)
    assert response.status_code == 200, response.text
    return [
        (
            m["role"],
            "".join(p.get("text", p.get("content", "")) for p in m["parts"] if p["type"] == "text"),
        )
        for m in response.json()
    ]


def _texts(state: PageState) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in state.messages]


@contextlib.contextmanager
def _tabs(browser: BrowserContext, shots_name: str, *names: str) -> Iterator[list[ChatTab]]:
    """Tabs named ``names``, their screenshots in ``SCREENSHOTS/<shots_name>`` (emptied
    first). A step that fails saves each tab's "failure" screenshot; the tabs are closed at
    the end, and then no tab may have seen a page error."""
    shots = SCREENSHOTS / shots_name
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    tabs = [ChatTab(browser.new_page(), name, shots) for name in names]
    try:
        yield tabs
    except Exception:
        for tab in tabs:
            tab.screenshot("failure")
        raise
    finally:
        for tab in tabs:
            tab.page.close()
    errors = {tab.name: tab.errors for tab in tabs if tab.errors}
    assert not errors, errors


def _assert_one_partial_answer(state: PageState, full: str, what: str) -> None:
    """The page shows the question and one partial answer (no copy of the answer)."""
    assert [m.role for m in state.messages] == ["user", "assistant"], f"{what}: {state}"
    _assert_partial(state.answer, full, what)


def _assert_partial(text: str, full: str, what: str) -> None:
    assert text and full.startswith(text) and len(text) < len(full), (
        f"{what}: expected a strict prefix of the answer, got {text!r}"
    )


def _nothing_running(app: Any, page: ChatPage, chat_id: str) -> None:
    """The server runs no answer for the chat: the AI SDK resume route answers 204, and so
    does a TanStack stop (its replay route never answers 204)."""
    if page.protocol == "tanstack":
        response = httpx.request(
            "DELETE", app.base_url + "/api/tanstack/chat", json={"id": chat_id}, timeout=10
        )
    else:
        response = httpx.get(f"{app.base_url}/api/chat/{chat_id}/stream", timeout=10)
    assert response.status_code == 204, (response.status_code, response.text[:500])


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES], indirect=True)
def test_page_streams_resumes_follows_and_stops(
    page: ChatPage,
    browser_app: Any,
    browser: BrowserContext,
    answers: dict[str, str],
    chat_id: str,
) -> None:
    url = f"{browser_app.base_url}{page.path}?chat={chat_id}"
    with _tabs(browser, page.name, "tab-a", "tab-b") as (tab_a, tab_b):
        _scenario(page, browser_app, chat_id, url, tab_a, tab_b, answers)


def _scenario(
    page: ChatPage,
    app: Any,
    chat_id: str,
    url: str,
    tab_a: ChatTab,
    tab_b: ChatTab,
    answers: dict[str, str],
) -> None:
    first, second = answers[FIRST_QUESTION], answers[SECOND_QUESTION]
    tab_a.open(url)
    tab_b.open(url)
    tab_a.screenshot("01-empty")

    # 1. Type a message and see the answer stream.
    tab_a.send(FIRST_QUESTION)
    streaming = tab_a.wait_streaming(FIRST_QUESTION)
    _assert_one_partial_answer(streaming, first, "tab A while streaming")
    tab_a.screenshot("02-streaming")

    # 2. The second tab follows the same answer while it streams.
    following = tab_b.wait_streaming(FIRST_QUESTION)
    _assert_one_partial_answer(following, first, "tab B while following")
    tab_b.screenshot("03-following")

    # 3. Reload mid-answer: the answer goes on from where it was.
    tab_a.reload()
    resumed = tab_a.wait_streaming(FIRST_QUESTION, min_chars=0)
    _assert_one_partial_answer(resumed, first, "tab A after the reload")
    tab_a.screenshot("04-resumed-after-reload")

    # 4. Both tabs end with the question and the whole answer, once: what the server stored.
    expected = [("user", FIRST_QUESTION), ("assistant", first)]
    for tab in (tab_a, tab_b):
        done = tab.wait_settled(FIRST_QUESTION)
        tab.screenshot("05-complete")
        assert _texts(done) == expected, f"{tab.name}: {_texts(done)}"
    assert _stored_texts(app, page, chat_id) == expected

    # 5. Ask again; Stop in tab B stops the answer in both tabs.
    tab_a.send(SECOND_QUESTION)
    tab_a.wait_streaming(SECOND_QUESTION)
    tab_b.wait_streaming(SECOND_QUESTION)
    tab_b.screenshot("06-before-stop")
    tab_b.stop()
    stopped = {tab.name: tab.wait_settled(SECOND_QUESTION) for tab in (tab_a, tab_b)}
    for tab in (tab_a, tab_b):
        tab.screenshot("07-stopped")
    _nothing_running(app, page, chat_id)
    stored = _stored_texts(app, page, chat_id)
    assert stored[:2] == expected and [r for r, _ in stored[2:]] == ["user", "assistant"], stored
    assert stored[2][1] == SECOND_QUESTION
    _assert_partial(stored[3][1], second, "the stored answer after Stop")
    for name, state in stopped.items():
        assert _texts(state) == stored, f"{name}: {_texts(state)}"


# -- how an answer ended stays visible: an error, a stop, live and after a reload ------------

ERROR_QUESTION = "Will this one fail?"
STOP_QUESTION = "Tell me a long story"
_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
_DONE = {**_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def _recorded(deltas: list[str], tail: list[dict[str, Any]]) -> str:
    """A recorded OpenAI stream (one ``data`` payload per line): ``deltas``, then ``tail``."""
    lines = [{**_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    lines += [{**_CHUNK, "choices": [{"index": 0, "delta": {"content": d}}]} for d in deltas]
    return "".join(json.dumps(line) + "\n" for line in lines + tail)


@pytest.fixture(scope="module")
def outcome_app(
    start_app: Callable[..., Any],
    react_skip_reason: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """The example app replaying two recordings in turn: answer 2k fails mid-way (the
    provider's in-stream error object), answer 2k+1 is long enough to be stopped."""
    error = {"error": {"message": "upstream overloaded", "code": "overloaded"}}
    words = [f"word{i} " for i in range(300)]
    recordings = {
        "0-error": _recorded(["Half ", "an ", "answer"], [error]),
        "1-long": _recorded(words, [_DONE]),
    }
    return _replaying_app(start_app, tmp_path_factory, recordings, token_delay_ms=25)


def _replaying_app(
    start_app: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
    recordings: dict[str, str],
    *,
    token_delay_ms: int,
) -> Any:
    """The example app answering each question with the next of ``recordings`` (name →
    :func:`_recorded` text, replayed in name order), ``token_delay_ms`` (ms) per chunk."""
    folder = tmp_path_factory.mktemp("recordings")
    for name, text in recordings.items():
        (folder / f"{name}.jsonl").write_text(text)
    return start_app(CHAT_RECORDINGS=str(folder), CHAT_TOKEN_DELAY_MS=str(token_delay_ms))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES], indirect=True)
def test_error_and_stop_stay_visible_after_a_reload(
    page: ChatPage,
    outcome_app: Any,
    browser: BrowserContext,
    chat_id: str,
) -> None:
    """Each page: an answer that fails shows the error, keeps its question (never "not
    sent", never given back to resend) and shows the same after a reload; a stopped answer
    shows "stopped", live and after a reload, and the status does not stay "stopping…". The
    server's history says the same: each question once, ``metadata.error`` / ``stopped``."""
    with _tabs(browser, f"{page.name}-outcomes", "tab") as (tab,):
        tab.open(f"{outcome_app.base_url}{page.path}?chat={chat_id}")
        tab.send(ERROR_QUESTION)
        failed = tab.wait_ended(ERROR_QUESTION, "error")
        tab.screenshot("01-error-live")
        assert [m.role for m in failed.messages] == ["user", "assistant"], failed
        assert failed.messages[-1].text.startswith("Half an answer"), failed
        assert "not sent" not in failed.status and failed.input == "", failed
        tab.reload()
        reloaded = tab.wait_ended(ERROR_QUESTION, "error")
        tab.screenshot("02-error-after-reload")
        assert reloaded.messages == failed.messages, (reloaded, failed)

        tab.send(STOP_QUESTION)
        tab.wait_streaming(STOP_QUESTION, min_chars=20)
        tab.stop()
        stopped = tab.wait_ended(STOP_QUESTION, "stopped")
        tab.page.wait_for_function(
            "() => document.querySelector('#status')?.textContent !== 'stopping…'"
        )
        tab.screenshot("03-stopped-live")
        tab.reload()
        again = tab.wait_ended(STOP_QUESTION, "stopped")
        tab.screenshot("04-stopped-after-reload")
        assert again.messages == stopped.messages, (again, stopped)
        assert again.messages[-1].error is None
    history = httpx.get(outcome_app.base_url + page.messages_route(chat_id), timeout=10).json()
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"], history
    assert history[1]["metadata"]["error"] == reloaded.messages[-1].error
    assert history[3]["metadata"]["stopped"] is True
    assert _stored_texts(outcome_app, page, chat_id)[::2] == [
        ("user", ERROR_QUESTION),
        ("user", STOP_QUESTION),
    ]


# -- a reload as the answer ends: history and resume are two requests ------------------------

AI_SDK_PAGES = [p for p in PAGES if p.protocol == "ai-sdk"]


def _hold_until_answer_ended(app: Any, chat_id: str) -> None:
    """Return once the chat's answer has ended and the resume route says so (204).

    Follows the answer with the route the page resumes from (a replay, read to its end), then
    asks again; a 200 (the answer's generation not yet cleared) is read to its end too.
    """
    url = f"{app.base_url}/api/chat/{chat_id}/stream"
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            with client.stream("GET", url) as response:
                if response.status_code == 204:
                    return
                assert response.status_code == 200, response.status_code
                for _chunk in response.iter_bytes():
                    pass
    pytest.fail("the resume route still replays an answer that ended")


@pytest.mark.parametrize("page", AI_SDK_PAGES, ids=[p.name for p in AI_SDK_PAGES], indirect=True)
def test_a_reload_as_the_answer_ends_still_shows_it(
    page: ChatPage,
    browser_app: Any,
    browser: BrowserContext,
    answers: dict[str, str],
    chat_id: str,
) -> None:
    """The AI SDK pages load the history (which leaves the running answer out) and resume the
    running answer in two requests. A reload whose resume reaches the server just after the
    answer ended gets 204: the page still ends with the whole answer, once (it fetches the
    history again), not with the question alone. The page's first resume is held until the
    answer has ended, so the race is taken every time."""
    held: list[str] = []

    def hold_first_resume(route: Any) -> None:
        if route.request.method == "GET" and not held:
            held.append(route.request.url)
            _hold_until_answer_ended(browser_app, chat_id)
        route.continue_()

    with _tabs(browser, f"{page.name}-reload-at-the-end", "tab") as (tab,):
        tab.open(f"{browser_app.base_url}{page.path}?chat={chat_id}")
        tab.send(FIRST_QUESTION)
        tab.wait_streaming(FIRST_QUESTION)
        tab.page.route(f"**/api/chat/{chat_id}/stream", hold_first_resume)
        tab.reload()
        done = tab.wait_settled(FIRST_QUESTION)
        tab.screenshot("01-after-reload")
    assert held, "the page never resumed"
    expected = [("user", FIRST_QUESTION), ("assistant", answers[FIRST_QUESTION])]
    assert _texts(done) == expected, _texts(done)
    assert _stored_texts(browser_app, page, chat_id) == expected


# -- an idle tab shows a turn it never saw running -------------------------------------------

SHORT_QUESTION = "Quick one?"


@pytest.fixture(scope="module")
def short_answer_app(
    start_app: Callable[..., Any],
    react_skip_reason: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """The example app replaying one short recorded answer for every question."""
    recordings = {"0-short": _recorded(["Short ", "and ", "done."], [_DONE])}
    return _replaying_app(start_app, tmp_path_factory, recordings, token_delay_ms=5)


@pytest.mark.parametrize("page", AI_SDK_PAGES, ids=[p.name for p in AI_SDK_PAGES], indirect=True)
def test_an_idle_tab_shows_a_turn_that_ended_between_its_polls(
    page: ChatPage,
    short_answer_app: Any,
    browser: BrowserContext,
    chat_id: str,
) -> None:
    """A tab left open on a chat asks every 1.5 s whether an answer runs; an answer that
    starts and ends between two of its polls (a short one from another tab) is never seen
    running there. The tab still shows the turn: each poll that finds nothing running asks
    for the history again (304 while unchanged). Tab B's polls are all answered "nothing
    runs" here, so the answer is never followed live and only the history can bring it."""
    url = f"{short_answer_app.base_url}{page.path}?chat={chat_id}"
    polls: list[str] = []

    def nothing_runs(route: Any) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        polls.append(route.request.url)
        route.fulfill(status=204, headers={"Cache-Control": "no-store"})

    with _tabs(browser, f"{page.name}-idle-tab", "tab-a", "tab-b") as (tab_a, tab_b):
        tab_b.page.route(f"**/api/chat/{chat_id}/stream", nothing_runs)
        tab_a.open(url)
        tab_b.open(url)
        tab_a.send(SHORT_QUESTION)
        sent = tab_a.wait_settled(SHORT_QUESTION)
        shown = tab_b.wait_settled(SHORT_QUESTION)
        tab_b.screenshot("01-turn-shown")
    expected = [("user", SHORT_QUESTION), ("assistant", "Short and done.")]
    assert _texts(sent) == expected, _texts(sent)
    assert _texts(shown) == expected, _texts(shown)
    assert _stored_texts(short_answer_app, page, chat_id) == expected
    assert polls, "tab B never polled"


# -- a question sent the moment the page opens goes with the conversation --------------------


@pytest.mark.parametrize("page", AI_SDK_PAGES, ids=[p.name for p in AI_SDK_PAGES], indirect=True)
def test_a_question_sent_as_the_page_opens_goes_with_the_history(
    page: ChatPage,
    short_answer_app: Any,
    browser: BrowserContext,
    chat_id: str,
) -> None:
    """On a chat with a finished turn, the page's history request is held while a user types
    a question and presses Enter. The plain page keeps its composer and sends once the
    history came (with it: the next turn of the same chat); the React page shows no composer
    until then (nothing typed is lost when the chat mounts). Either way the page ends with
    both turns, as the server stores them."""
    body = {
        "id": chat_id,
        "messages": [
            {"id": "u-1", "role": "user", "parts": [{"type": "text", "text": SHORT_QUESTION}]}
        ],
    }
    first = httpx.post(f"{short_answer_app.base_url}/api/chat", json=body, timeout=30)
    assert first.status_code == 200 and first.text.rstrip().endswith("data: [DONE]")
    held: list[Any] = []

    def hold_history(route: Any) -> None:
        if route.request.method == "GET" and not held:
            held.append(route)  # continued below, once the question is typed
            return
        route.continue_()

    second = "And another?"
    with _tabs(browser, f"{page.name}-send-at-open", "tab") as (tab,):
        tab.page.route(f"**/api/chat/{chat_id}/messages", hold_history)
        with tab.page.expect_request(lambda request: request.url.endswith("/messages")):
            tab.page.goto(f"{short_answer_app.base_url}{page.path}?chat={chat_id}")
        tab.page.evaluate("1")  # the route handler has run
        assert len(held) == 1
        if page.react:
            assert tab.page.locator("#input").count() == 0, "a composer before the history"
            held[0].continue_()
            tab.send(second)
        else:
            tab.page.fill("#input", second)
            tab.page.press("#input", "Enter")
            held[0].continue_()
        done = tab.wait_settled(second)
        tab.screenshot("01-second-turn")
    expected = [
        ("user", SHORT_QUESTION),
        ("assistant", "Short and done."),
        ("user", second),
        ("assistant", "Short and done."),
    ]
    assert _texts(done) == expected, _texts(done)
    assert _stored_texts(short_answer_app, page, chat_id) == expected
