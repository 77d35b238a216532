"""An independent reading of a recorded OpenAI chat-completions stream: what the answer must
contain, whichever protocol it is converted to (the oracle of tests/sources)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_recording(path: Path) -> list[Any]:
    """The JSON payloads of a ``*.jsonl`` recording, in order."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def read_answer(lines: list[Any]) -> dict[str, Any]:
    """Text, reasoning, tool calls ``(id, name, input)``, the provider's ``finish_reason``,
    usage, model and error, straight from the lines."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    by_index: dict[Any, dict[str, Any]] = {}
    finish_reason = None
    usage = None
    model = None
    error = None
    for line in lines:
        if not isinstance(line, dict):
            continue
        if isinstance(line.get("model"), str) and line["model"]:
            model = line["model"]
        if line.get("error"):
            error = line["error"]
            break
        for choice in line.get("choices") or []:
            if choice.get("index") not in (0, None):
                continue
            delta = choice.get("delta") or {}
            piece = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(piece, str):
                reasoning.append(piece)
            for key in ("content", "refusal"):  # a refusal is shown as text
                if isinstance(delta.get(key), str):
                    text.append(delta[key])
            for tc in delta.get("tool_calls") or []:
                fn = tc.get("function") or {}
                known = [c for c in calls if tc.get("id") and c["id"] == tc["id"]]
                if known:
                    call = known[0]
                elif tc.get("id"):
                    call = {"id": tc["id"], "name": "", "args": ""}
                    calls.append(call)
                elif tc.get("index") in by_index:
                    call = by_index[tc["index"]]
                else:
                    call = calls[-1]
                if tc.get("index") is not None:
                    by_index[tc["index"]] = call
                if not call["name"] and fn.get("name"):
                    call["name"] = fn["name"]
                call["args"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
        if isinstance(line.get("usage"), dict):
            usage = line["usage"]
    return {
        "text": "".join(text),
        "reasoning": "".join(reasoning),
        "tool_calls": [(c["id"], c["name"], json.loads(c["args"] or "{}")) for c in calls],
        "provider_finish_reason": finish_reason,
        "usage": usage,
        "model": model,
        "error": error,
    }
