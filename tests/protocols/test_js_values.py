"""Dates and partial JSON as the JavaScript clients compute them, checked against Node.

The folds use :mod:`resumable_chat.protocols.js_values` for ``Date`` and
:mod:`resumable_chat.protocols.partial_json` for streamed tool arguments; here thousands of
seeded inputs go through both them and the real JavaScript (``Date`` in Node; the AI SDK's
``parsePartialJson`` and ``partial-json``, TanStack's parser, from tests/js/node_modules).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from resumable_chat.protocols.js_values import UNDEFINED, iso_from_ms, parse_date_ms
from resumable_chat.protocols.partial_json import ai_sdk_partial_json, tanstack_partial_json

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: no JavaScript oracle")


def node(script: str, payload: Any) -> Any:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _date_strings(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        year = rng.choice([rng.randint(-280_000, 280_000), rng.randint(1, 9999), 0, 1970])
        year_text = (
            f"{year:04d}" if 0 <= year <= 9999 else f"{'-' if year < 0 else '+'}{abs(year):06d}"
        )
        text = f"{year_text}-{rng.randint(1, 12):02d}-{rng.randint(1, 31):02d}"
        if rng.random() < 0.8:
            text += f"T{rng.randint(0, 24):02d}:{rng.randint(0, 59):02d}"
            if rng.random() < 0.8:
                text += f":{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}"
            text += rng.choice(["Z", "+05:30", "-11:00", "+23:59", ""])
        out.append(text)
    return out


@needs_node
def test_dates_parse_and_print_like_javascript() -> None:
    rng = random.Random(7)
    strings = _date_strings(rng, 3000)
    numbers = [rng.randint(-8_640_000_000_000_000, 8_640_000_000_000_000) for _ in range(3000)]
    script = (
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const parsed = input.strings.map(s => {"
        " const v = Date.parse(s); return isNaN(v) ? null : v; });"
        "const printed = input.numbers.map(n => new Date(n).toISOString());"
        "console.log(JSON.stringify({parsed, printed}));"
    ).replace("require('fs')", "(await import('fs'))")
    js = node(script, {"strings": strings, "numbers": numbers})
    assert [parse_date_ms(s) for s in strings] == js["parsed"]
    assert [iso_from_ms(n) for n in numbers] == js["printed"]


def _js_value(value: Any) -> Any:
    """JSON as JavaScript holds it: one number type (``-12500.0`` is ``-12500``); a lone
    surrogate (a string cut inside a ``\\uXXXX`` pair) as U+FFFD, which is what we give on
    purpose (it can be encoded as UTF-8)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {k: _js_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_value(v) for v in value]
    return value


def _prefixes(rng: random.Random) -> list[str]:
    values: list[Any] = [
        {"city": "Paris", "units": ["c", "f"], "n": -12.5e3, "ok": True, "z": None},
        [1, 2, {"a": [True, False, None]}, "x"],
        {"q": 'a"b\u00e9\U0001f600c\n\t  ', "deep": {"b": {"c": [1.5, -0.25, 1e-7]}}},
        "plain text with  spaces ",
        12345,
    ]
    out = []
    for value in values:
        text = json.dumps(value, indent=rng.choice([None, 1]))
        out += [text[:i] for i in range(len(text) + 1)]
    return out


@needs_node
@pytest.mark.skipif(
    not (JS_DIR / "node_modules" / "ai").exists(), reason="tests/js/node_modules/ai is missing"
)
def test_ai_sdk_partial_json_matches_parse_partial_json() -> None:
    texts = _prefixes(random.Random(3))
    script = (
        "import { parsePartialJson } from 'ai';"
        "const input = JSON.parse((await import('fs')).readFileSync(0, 'utf8'));"
        "const out = [];"
        "for (const t of input) { const r = await parsePartialJson(t);"
        " out.push(r.value === undefined ? {u: 1} : {v: r.value}); }"
        "console.log(JSON.stringify(out));"
    )
    js = node(script, texts)
    ours = [_js_value(ai_sdk_partial_json(t)) for t in texts]
    expected = [UNDEFINED if "u" in r else _js_value(r["v"]) for r in js]
    assert [(t, repr(o)) for t, o in zip(texts, ours, strict=True)] == [
        (t, repr(e)) for t, e in zip(texts, expected, strict=True)
    ]


@needs_node
@pytest.mark.skipif(
    not (JS_DIR / "node_modules" / "@tanstack" / "ai").exists(),
    reason="tests/js/node_modules/@tanstack/ai is missing",
)
def test_tanstack_partial_json_matches_parse_partial_json() -> None:
    texts = _prefixes(random.Random(4))
    script = (
        "import { parsePartialJSON } from '@tanstack/ai';"
        "const input = JSON.parse((await import('fs')).readFileSync(0, 'utf8'));"
        "const out = input.map(t => { const v = parsePartialJSON(t);"
        " return v === undefined ? {u: 1} : {v}; });"
        "console.log(JSON.stringify(out));"
    )
    js = node(script, texts)
    ours = [_js_value(tanstack_partial_json(t)) for t in texts]
    expected = [UNDEFINED if "u" in r else _js_value(r["v"]) for r in js]
    assert [(t, repr(o)) for t, o in zip(texts, ours, strict=True)] == [
        (t, repr(e)) for t, e in zip(texts, expected, strict=True)
    ]
