"""Every code sample of the documentation site runs as written (see ``docs_samples.py``).

Python samples are executed, then the check their ``docs-test`` comment names drives what they
built (a FastAPI ``app`` over real HTTP, a log on a basin) and asserts what a user would see.
Bash samples are not run, but every file, module, extra and tool of this repository they name
must exist, and every JSON body they send must parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from docs_samples import (
    ANSWER,
    ROOT,
    Sample,
    chain,
    code_blocks,
    fake_openai,
    masked,
    python_samples,
    run_sample,
    shell_words,
    sse_data,
)

from helpers import tanstack_run_chunks
from resumable_chat import ResumableChat
from resumable_chat.s2 import Basin, is_fence, is_terminal_fence
from resumable_chat.testing.app_server import serve_app
from resumable_chat.text_streams.context import ResumableStreamContext

SAMPLES = python_samples()
USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
Check = Callable[[dict[str, Any]], Awaitable[None]]
CHECKS: dict[str, Check] = {}


def check(function: Check) -> Check:
    """Register ``function`` as the check named like it."""
    CHECKS[function.__name__] = function
    return function


@contextlib.asynccontextmanager
async def client_for(namespace: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The sample's ``app`` served by uvicorn on 127.0.0.1, and a client for it."""
    async with (
        serve_app(namespace["app"]) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


# -- checks -------------------------------------------------------------------------------


@check
async def ai_sdk_app(namespace: dict[str, Any]) -> None:
    """The AI SDK routes answer, persist, rebuild history and report nothing running."""
    async with client_for(namespace) as client:
        response = await client.post("/api/chat", json={"id": "d1", "messages": [USER]})
        assert response.status_code == 200, response.text
        chunks = sse_data(response.text)
        assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
        text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
        assert text == "".join(ANSWER)
        assert response.text.endswith("data: [DONE]\n\n")
        for _ in range(200):  # the end fence lands right after the last chunk
            if (await client.get("/api/chat/d1/stream")).status_code == 204:
                break
            await asyncio.sleep(0.02)
        assert (await client.get("/api/chat/d1/stream")).status_code == 204
        assert (await client.delete("/api/chat/d1/stream")).status_code == 204
        messages = (await client.get("/api/chat/d1/messages")).json()
        assert [m["role"] for m in messages] == ["user", "assistant"]


@check
async def access_control(namespace: dict[str, Any]) -> None:
    """The owner uses her chat; anyone else gets 404 on every route, nobody at all 401; the
    S2 stream names carry the app's prefix."""
    alice, bob = {"x-user": "alice"}, {"x-user": "bob"}
    async with client_for(namespace) as client:
        body = {"id": "d1", "messages": [USER]}
        assert (await client.post("/api/chat", json=body)).status_code == 401
        answer = await client.post("/api/chat", json=body, headers=alice)
        assert answer.status_code == 200 and sse_data(answer.text)[-1]["type"] == "finish"
        for _ in range(200):
            if (await client.get("/api/chat/d1/stream", headers=alice)).status_code == 204:
                break
            await asyncio.sleep(0.02)
        mine = await client.get("/api/chat/d1/messages", headers=alice)
        assert [m["role"] for m in mine.json()] == ["user", "assistant"]
        for method, path in [
            ("GET", "/api/chat/d1/messages"),
            ("GET", "/api/chat/d1/stream"),
            ("DELETE", "/api/chat/d1/stream"),
        ]:
            response = await client.request(method, path, headers=bob)
            assert response.status_code == 404, (method, path, response.text)
        assert (await client.post("/api/chat", json=body, headers=bob)).status_code == 404
        user = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}
        tanstack = {"id": "t1", "messages": [user]}
        assert (
            await client.post("/api/tanstack/chat", json=tanstack, headers=bob)
        ).status_code == 202
        replay = await client.get("/api/tanstack/chat/replay", params={"id": "t1"}, headers=alice)
        assert replay.status_code == 404
        assert (await client.get("/api/chat/nobody/messages", headers=alice)).status_code == 404
    names = namespace["chat"].basin.inner.stream_names()
    assert "support-bot/chat-d1" in names and all(n.startswith("support-bot/") for n in names)


@check
async def sse_not_compressed(namespace: dict[str, Any]) -> None:
    """With compression middleware, the SSE answer still goes out uncompressed."""
    async with client_for(namespace) as client:
        headers = {"Accept-Encoding": "gzip"}
        body = {"id": "d1", "messages": [USER]}
        response = await client.post("/api/chat", json=body, headers=headers)
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        assert sse_data(response.text)[-1]["type"] == "finish"


@check
async def tanstack_app(namespace: dict[str, Any]) -> None:
    """The TanStack session routes: 202, then the run on the replay subscription."""
    async with client_for(namespace) as client:
        user = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}
        response = await client.post("/api/tanstack/chat", json={"id": "d1", "messages": [user]})
        assert response.status_code == 202, response.text
        chunks = await tanstack_run_chunks(client, "d1")
        assert chunks[-1]["type"] == "RUN_FINISHED"
        deltas = [c["delta"] for c in chunks if c["type"] == "TEXT_MESSAGE_CONTENT"]
        assert "".join(deltas).endswith("".join(ANSWER))
        messages = (await client.get("/api/tanstack/chat/d1/messages")).json()
        assert [m["role"] for m in messages] == ["user", "assistant"]


@check
async def text_stream_app(namespace: dict[str, Any]) -> None:
    """A POST produces the stream; once done, a resume answers 422."""
    async with client_for(namespace) as client:
        created = await client.post("/api/streams/j1")
        assert created.status_code == 200, created.text
        assert created.text == "".join(namespace["FRAMES"])
        ctx = namespace["ctx"]
        for _ in range(200):  # the end fence lands after the linger
            if await ctx.has_existing_stream("j1") == "done":
                break
            await asyncio.sleep(0.05)
        assert await ctx.has_existing_stream("j1") == "done"
        assert (await client.get("/api/streams/j1")).status_code == 422


@check
async def log_layout(namespace: dict[str, Any]) -> None:
    """The concepts page's generation: claim fence, message, answer, end fence."""
    records = namespace["records"]
    assert is_fence(records[0]) and records[0].body.startswith(b"session-")
    assert is_terminal_fence(records[-1]) and records[-1].body.startswith(b"end-")
    kinds = [json.loads(r.body)["type"] for r in records[1:-1]]
    assert kinds[0] == "ui-message" and kinds[1] == "start" and kinds[-1] == "finish"


@check
async def stopped_answer(namespace: dict[str, Any]) -> None:
    """A stop from the other instance ended the answer early, with the stop terminal."""
    assert namespace["stopped"].status_code == 202
    answer = namespace["messages"][-1]
    assert answer["role"] == "assistant"
    text = "".join(p.get("text", "") for p in answer["parts"])
    assert 0 < len(text.split()) < 100


@check
async def lease_settings(namespace: dict[str, Any]) -> None:
    """The chat took the lease settings the page shows."""
    assert namespace["chat"].lease_ms == 5000
    assert namespace["chat"].heartbeat_ms == 1000


@check
async def s2_basin_ready(namespace: dict[str, Any]) -> None:
    """The basin exists and creates streams on append."""
    basin = namespace["basin"]
    await basin.create_stream("docs-probe")
    assert (await basin.check_tail("docs-probe")).seq_num == 0


# -- running ------------------------------------------------------------------------------


async def _close_everything(namespace: dict[str, Any]) -> None:
    """Close what a sample opened and left open (chats, contexts, basins, OpenAI clients)."""
    values = list(namespace.values())
    for value in values:
        if isinstance(value, ResumableChat | ResumableStreamContext):
            await value.aclose()
    for value in values:
        if isinstance(value, Basin):
            await value.aclose()
        elif type(value).__name__ == "AsyncOpenAI":
            await value.close()


@pytest.fixture
def s2_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """S2 variables pointing at the bundled S2 test server (a fresh basin each time)."""
    url = request.getfixturevalue("s2_server_url")
    monkeypatch.setenv("S2_ACCESS_TOKEN", "test")
    monkeypatch.setenv("S2_BASIN", f"docs-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", url)
    monkeypatch.setenv("S2_BASIN_ENDPOINT", url)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
async def test_python_sample(
    sample: Sample, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN", "S2_ACCOUNT_ENDPOINT", "S2_BASIN_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    if any(s.options.get("env") == "s2" for s in chain(SAMPLES, sample)):
        request.getfixturevalue("s2_env")
    namespace: dict[str, Any] = {"__name__": "docs_sample"}
    async with serve_app(fake_openai()) as model_url:
        monkeypatch.setenv("OPENAI_BASE_URL", model_url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        try:
            for part in chain(SAMPLES, sample):
                printed = await run_sample(part, namespace)
            if "output" in sample.options:
                assert sample.next_block is not None and sample.next_block[0] == "text"
                assert masked(printed) == masked(sample.next_block[1])
            name = sample.options.get("check")
            if name:
                await CHECKS[name](namespace)
        finally:
            await _close_everything(namespace)


def test_samples_name_known_checks() -> None:
    """Every ``check=`` names a check here, and every check is used by some sample."""
    used = {s.options["check"] for s in SAMPLES if "check" in s.options}
    assert used <= CHECKS.keys(), f"unknown checks: {sorted(used - CHECKS.keys())}"
    assert CHECKS.keys() <= used, f"checks no sample uses: {sorted(CHECKS.keys() - used)}"
    for sample in code_blocks():
        assert sample.language != "python" or sample in SAMPLES
        if sample.options:
            assert sample.language == "python", f"{sample.id}: docs-test on a non-python block"


_REPO_DIRS = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
_EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
#: Tools a bash sample may run from the project's virtualenv (all from the package's extras).
_VENV_TOOLS = {"python", "pip", "pytest", "mkdocs", "uvicorn", "ruff", "mypy"}


def _check_words(sample: Sample, words: list[str]) -> None:
    while words and re.fullmatch(r"[A-Z0-9_]+=.*", words[0]):
        words = words[1:]  # VAR=value prefixes
    if not words:
        return
    program = words[0]
    if program.startswith(".venv/bin/"):
        tool = program.removeprefix(".venv/bin/")
        assert tool in _VENV_TOOLS, f"{sample.id}: unknown tool {program}"
    for index, word in enumerate(words):
        extras = re.fullmatch(r"\.\[([a-z0-9,-]+)\]", word)
        if extras:
            for extra in extras.group(1).split(","):
                assert extra in _EXTRAS, f"{sample.id}: pyproject.toml has no extra {extra!r}"
        elif word.split("/")[0] in _REPO_DIRS and "/" in word:
            assert (ROOT / word).exists(), f"{sample.id}: {word} does not exist"
        elif index > 0 and words[index - 1] == "-m" and word.startswith("resumable_chat"):
            assert importlib.util.find_spec(word), f"{sample.id}: no module {word}"
        elif index > 0 and words[index - 1] in ("-d", "--data") and word.startswith("{"):
            json.loads(word)


def test_bash_samples_name_real_things() -> None:
    """Files, modules, extras and tools named in bash blocks exist; JSON bodies parse."""
    samples = code_blocks("bash")
    assert samples
    for sample in samples:
        for words in shell_words(sample.code):
            _check_words(sample, words)


# -- JavaScript samples -------------------------------------------------------------------

JS_DIR = ROOT / "tests" / "js"
#: Where the named imports of JS/TSX samples are looked up: the packages tests/js installs,
#: and the adapter the package ships. Other modules (react, @ai-sdk/react, vite...) are not
#: installed here and are not checked.
_MODULES = {
    "ai": "ai",
    "@tanstack/ai-client": "@tanstack/ai-client",
    "./tanstack-connection.js": str(
        ROOT / "src" / "resumable_chat" / "static" / "tanstack-connection.js"
    ),
}
_IMPORT = re.compile(r"^import\s+\{([^}]*)\}\s+from\s+\"([^\"]+)\";", re.M)


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules").is_dir():
        pytest.skip("node or tests/js/node_modules missing (bash scripts/test.sh installs them)")
    return node


def test_js_samples_parse(tmp_path: Path) -> None:
    """Every ``js`` block is valid JavaScript (``node --check``, as an ES module)."""
    node = _node()
    samples = code_blocks("js")
    assert samples
    for sample in samples:
        path = tmp_path / f"sample-{sample.line}.mjs"
        path.write_text(sample.code)
        result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{sample.id}: {result.stderr}"


def test_js_sample_imports_exist() -> None:
    """Names that JS/TSX samples import from the clients and the adapter are exported there."""
    node = _node()
    wanted: dict[str, set[str]] = {}
    for sample in code_blocks("tsx") + code_blocks("js"):
        for names, module in _IMPORT.findall(sample.code):
            if module in _MODULES:
                for name in names.split(","):
                    name = name.strip()
                    if name and not name.startswith("type "):  # type-only: no runtime value
                        wanted.setdefault(_MODULES[module], set()).add(name)
    assert wanted
    script = (
        "const wanted = JSON.parse(process.argv[1]); const missing = [];"
        "for (const [m, names] of Object.entries(wanted)) {"
        "  const mod = await import(m.startsWith('/') ? 'file://' + m : m);"
        "  for (const n of names) if (!(n in mod)) missing.push(m + ': ' + n); }"
        "console.log(JSON.stringify(missing));"
    )
    result = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            script,
            json.dumps({m: sorted(n) for m, n in wanted.items()}),
        ],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
