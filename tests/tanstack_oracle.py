"""The TanStack fold's oracle: the real ``StreamProcessor`` of ``@tanstack/ai-client`` 0.33.2
and 0.10.0 (``tests/js/tanstack_fold.mjs``), run on many chunk sequences in ONE node process.

Only ids the processor generates itself (``msg-<Date.now()>-<random>``, e.g. for a
``RUN_ERROR`` with no assistant message) are replaced by placeholders in order of first
appearance, because the JavaScript ones are random and the Python fold makes deterministic
ones on purpose. ``createdAt`` needs none: the harness freezes the clock at ``NOW_MS`` and the
Python fold gets ``now_ms=NOW_MS``. Without Node or ``npm ci`` in ``tests/js`` the calling
test is skipped and says why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import key_order

JS_DIR = Path(__file__).resolve().parent / "js"
FOLD_SCRIPT = JS_DIR / "tanstack_fold.mjs"
CLIENT_PACKAGES = {"ai-client": "@tanstack/ai-client", "v010": "tanstack-ai-client-v010"}
NOW_MS = 1_700_000_000_000


def run_js_fold(sequences: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Fold every sequence with a fresh real ``StreamProcessor`` of each client, in ONE node
    process. Returns ``{client: [{"messages", "errors", "logs", "state"}, ...]}``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the real TanStack client checks need Node 20+")
    for package in CLIENT_PACKAGES.values():
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            pytest.skip(f"tests/js/node_modules/{package} is missing: run `npm ci` in {JS_DIR}")
    items = [{"chunks": s, "nowMs": NOW_MS} for s in sequences]
    proc = subprocess.run(
        [node, str(FOLD_SCRIPT), "--clients", ",".join(CLIENT_PACKAGES)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"tanstack_fold.mjs failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, list[dict[str, Any]]] = json.loads(proc.stdout)
    return result


GENERATED_ID = re.compile(r"msg-\d+-[a-z0-9]+")


def normalise_ids(value: Any, seen: dict[str, str] | None = None) -> Any:
    """Processor-generated ids → ``<generated-N>`` (N in order of first appearance)."""
    seen = {} if seen is None else seen
    if isinstance(value, dict):
        return {k: normalise_ids(v, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_ids(v, seen) for v in value]
    if isinstance(value, str) and GENERATED_ID.fullmatch(value):
        return seen.setdefault(value, f"<generated-{len(seen)}>")
    return value


def assert_same_messages(python: list[dict[str, Any]], js: list[dict[str, Any]]) -> None:
    a, b = normalise_ids(python), normalise_ids(js)
    assert a == b
    assert key_order(a) == key_order(b)


def fold_by_js(sequences: dict[str, list[Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{client: {name: result}}`` for every named sequence (:func:`run_js_fold`)."""
    names = list(sequences)
    results = run_js_fold([sequences[n] for n in names])
    return {c: dict(zip(names, rs, strict=True)) for c, rs in results.items()}


def user_turn(message_id: str, text: str, timestamp: int = NOW_MS) -> list[dict[str, Any]]:
    """The user message as the session writer stores it: ``TEXT_MESSAGE_START`` (role user),
    ``TEXT_MESSAGE_CONTENT``, ``TEXT_MESSAGE_END``."""
    chunks: list[dict[str, Any]] = [
        {
            "type": "TEXT_MESSAGE_START",
            "timestamp": timestamp,
            "messageId": message_id,
            "role": "user",
        },
    ]
    if text:
        chunks.append(
            {
                "type": "TEXT_MESSAGE_CONTENT",
                "timestamp": timestamp,
                "messageId": message_id,
                "delta": text,
            }
        )
    chunks.append({"type": "TEXT_MESSAGE_END", "timestamp": timestamp, "messageId": message_id})
    return chunks


def iso(ms: int) -> str:
    """``new Date(ms).toISOString()``: UTC, milliseconds, ``Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def assistant_message(messages: list[dict[str, Any]], message_id: str) -> dict[str, Any]:
    """The one message of ``messages`` with id ``message_id`` (fails when not exactly one)."""
    matches = [m for m in messages if m["id"] == message_id]
    assert len(matches) == 1, [m["id"] for m in messages]
    return matches[0]


def parts_of(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The parts of ``message`` whose ``type`` is ``kind``."""
    return [p for p in message["parts"] if p["type"] == kind]
