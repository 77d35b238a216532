"""``resumable_chat.scalar_values``: strings made what UTF-8 can hold, as ``TextEncoder`` does."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from resumable_chat.scalar_values import scalar_value_json, scalar_value_string

# every code point, surrogates included (what JSON's \\uXXXX escapes can make)
ANY_TEXT = st.text(alphabet=st.characters(codec=None, categories=None))


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def test_pairs_are_joined_and_lone_surrogates_replaced() -> None:
    assert scalar_value_string("a\ud83d\ude00b") == "a\U0001f600b"
    assert scalar_value_string("cut \ud83d") == "cut \ufffd"
    assert scalar_value_string("\ude00\ud83d") == "\ufffd\ufffd"  # low before high: no pair
    assert scalar_value_string("caf\u00e9 \U0001f600") == "caf\u00e9 \U0001f600"


@given(ANY_TEXT)
def test_any_string_becomes_utf8_with_its_utf16_length(text: str) -> None:
    fixed = scalar_value_string(text)
    fixed.encode("utf-8")  # never raises
    assert _utf16_units(fixed) == _utf16_units(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert fixed == text  # text UTF-8 could hold is kept as it is


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


@given(JSON)
def test_a_json_value_is_fixed_everywhere_and_copied_only_where_needed(value: Any) -> None:
    before = repr(value)
    fixed = scalar_value_json(value)
    assert repr(value) == before  # the input is not changed
    for text in _strings(fixed):
        text.encode("utf-8")
    if all(s == scalar_value_string(s) for s in _strings(value)):
        assert fixed is value


def test_keys_and_nested_values_are_fixed() -> None:
    value = {"type": "data-x", "data": {"\ud800": ["ok", "\udfff"]}, "n": 1}
    assert scalar_value_json(value) == {
        "type": "data-x",
        "data": {"\ufffd": ["ok", "\ufffd"]},
        "n": 1,
    }
