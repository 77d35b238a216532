"""``encode_chunk``: the bytes stored and sent for a chunk are ``JSON.stringify``-style compact
UTF-8 JSON, byte for byte what ``json.dumps(ensure_ascii=False, separators=(",", ":"),
allow_nan=False)`` gives, and bad chunks fail the same way whether or not the C encoder runs."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resumable_chat.chat import producer
from resumable_chat.chat.producer import encode_chunk

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def reference(chunk: Any) -> bytes:
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@pytest.fixture(params=["c-encoder", "json-module"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "json-module":
        monkeypatch.setattr(producer, "_c_encoder", None)
    else:
        assert producer._c_encoder is not None, "CPython's C encoder was not picked up"
    return str(request.param)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_bytes_match_the_json_module(chunk: dict[str, Any]) -> None:
    assert encode_chunk({"type": "data-x", **chunk}) == reference({"type": "data-x", **chunk})


def test_bad_chunks_fail_as_the_json_module_fails(encoder: str) -> None:
    circular: dict[str, Any] = {"type": "data-x"}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular reference"):
        encode_chunk(circular)
    with pytest.raises(ValueError, match="Out of range float"):
        encode_chunk({"type": "data-x", "data": math.nan})
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_chunk({"type": "data-x", "data": {1, 2}})
    with pytest.raises(UnicodeEncodeError):
        encode_chunk({"type": "text-delta", "delta": "\ud800"})


def test_a_failed_encode_leaves_nothing_behind(encoder: str) -> None:
    """The circular-reference check starts afresh: an object that was being encoded when an
    encode failed is encoded normally afterwards (a shared ``markers`` dict would keep it)."""
    shared: dict[str, list[Any]] = {"a": [1, object()]}
    chunk = {"type": "data-x", "data": shared}
    with pytest.raises(TypeError):
        encode_chunk(chunk)
    shared["a"].pop()
    assert encode_chunk(chunk) == reference(chunk)


def test_deep_nesting_and_a_circular_reference_are_told_apart(encoder: str) -> None:
    """Nesting deeper than the recursion limit raises ``RecursionError``, as the json module
    does; a circular reference, however deep in the chunk, ``ValueError``; and the next
    chunk is encoded as usual."""
    deep: list[Any] = []
    # past the interpreter's limit (Python 3.11: sys.getrecursionlimit(); from 3.12 the C
    # encoder counts against a C stack limit of its own, thousands of levels deeper)
    for _ in range(max(sys.getrecursionlimit() * 2, 100_000)):
        deep = [deep]
    with pytest.raises(RecursionError):
        reference({"type": "data-x", "data": deep})
    with pytest.raises(RecursionError):
        encode_chunk({"type": "data-x", "data": deep})
    loop: list[Any] = [1]
    loop.append({"back": loop})
    with pytest.raises(ValueError, match="Circular reference"):
        encode_chunk({"type": "data-x", "data": [[{"x": loop}]]})
    shallow = {"type": "data-x", "data": [[[1]], {"a": [None]}]}
    assert encode_chunk(shallow) == reference(shallow)
