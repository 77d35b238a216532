"""Replaying recorded OpenAI streams (one SSE ``data`` payload per line) as async iterators."""

from __future__ import annotations

import json
import os
from collections.abc import (
    AsyncIterator,
    Iterable,
)
from typing import Any

import anyio

__all__ = ["openai_chunks_from_jsonl"]


async def openai_chunks_from_jsonl(
    path_or_lines: str | os.PathLike[str] | Iterable[str | bytes],
    delay_ms: float = 0,
) -> AsyncIterator[dict[str, Any]]:
    """Replay a recorded OpenAI streaming response as an async iterator of chunk dicts.

    The format is that of ``fixtures/openai-streams/*.jsonl``: one SSE ``data`` payload per
    line. Also tolerated: blank lines and SSE comments (``:``) are skipped, a leading
    ``data:`` is stripped, other SSE fields (``event:``, ``id:``, ``retry:``) are skipped, and
    a ``[DONE]`` payload ends the replay.

    Args:
        path_or_lines: a file path (``str`` or ``PathLike``; read as UTF-8 in a worker thread)
            or an iterable of lines (``str`` or ``bytes``).
        delay_ms: pause before every chunk after the first, in milliseconds (0: no pacing).

    Yields:
        each payload parsed as JSON, unchanged (error payloads and odd chunks included: the
        converter deals with them).

    Raises:
        OSError: the file cannot be read.
        ValueError: a payload is not valid JSON (message names the 1-based line number).
    """
    if isinstance(path_or_lines, str | os.PathLike):
        text = await anyio.Path(os.fspath(path_or_lines)).read_text(encoding="utf-8")
        lines: Iterable[str | bytes] = text.splitlines()
    else:
        lines = path_or_lines
    first = True
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.decode("utf-8") if isinstance(raw_line, bytes | bytearray) else raw_line
        line = line.strip()
        if not line or line.startswith(":"):
            continue
        if line.startswith("data:"):
            line = line[5:].strip()
        elif line.split(":", 1)[0] in {"event", "id", "retry"}:
            continue
        if line == "[DONE]":
            return
        try:
            payload = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: not a JSON payload ({exc})") from exc
        if not first and delay_ms > 0:
            await anyio.sleep(delay_ms / 1000)
        first = False
        yield payload
