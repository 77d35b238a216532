"""The AI SDK chunk check's shortcut for text and reasoning deltas gives the same verdict as
the full schema (``uiMessageChunkSchema``: ``id`` and ``delta`` strings, other keys free)."""

from __future__ import annotations

from typing import Any

import pytest

from resumable_chat.protocols.ai_sdk import schema
from resumable_chat.protocols.ai_sdk.schema import chunk_problem


class Text(str):
    """A str subclass: not the shortcut's exact type, so the schema decides."""


CASES: list[dict[str, Any]] = [
    {"id": "t0", "delta": "Hello"},
    {"id": "t0", "delta": ""},
    {"id": "t0", "delta": "x", "providerMetadata": {"a": {"b": 1}}},
    {"id": "t0"},
    {"delta": "x"},
    {"id": 0, "delta": "x"},
    {"id": "t0", "delta": None},
    {"id": "t0", "delta": 5},
    {"id": "t0", "delta": b"x"},
    {"id": Text("t0"), "delta": Text("x")},
]


@pytest.mark.parametrize("kind", ["text-delta", "reasoning-delta"])
@pytest.mark.parametrize("fields", CASES)
@pytest.mark.parametrize("version", [5, 6, 7])
def test_a_delta_gets_the_schemas_verdict(kind: str, fields: dict[str, Any], version: int) -> None:
    chunk = {"type": kind, **fields}
    validators = schema._VALIDATORS_V7 if version >= 7 else schema._VALIDATORS
    try:
        validators[kind].validate_python(chunk)
        accepted = True
    except Exception:
        accepted = False
    problem = chunk_problem(chunk, version)
    assert (problem is None) == accepted, problem
    if not accepted:
        assert kind in problem  # type: ignore[operator]
