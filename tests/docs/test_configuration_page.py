"""The Configuration page lists every setting: each parameter of the configurable functions and
classes, and each environment variable the package or the examples read.

A parameter added to ``create_resumable_chat``, ``HttpBasin`` or a router without a row on
``docs/configuration.md`` fails here, as does a new ``os.environ`` read.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resumable_chat import create_resumable_chat, create_resumable_stream_context
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.fastapi.agui import agui_router
from resumable_chat.fastapi.streams import resumable_stream_router
from resumable_chat.s2 import HttpBasin, MemoryBasin
from resumable_chat.sources import ai_sdk_chunks, openai_chunks_from_jsonl, tanstack_chunks
from resumable_chat.testing.s2_server import create_app

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "configuration.md").read_text()

#: Positional inputs that are data, not settings.
_NOT_SETTINGS = {"self", "chat", "context", "source", "make_stream", "stream", "path_or_lines"}

CONFIGURABLE: list[Callable[..., Any]] = [
    create_resumable_chat,
    create_resumable_stream_context,
    HttpBasin,
    MemoryBasin,
    ai_sdk_router,
    tanstack_router,
    agui_router,
    resumable_stream_router,
    ai_sdk_chunks,
    tanstack_chunks,
    openai_chunks_from_jsonl,
    create_app,
]


@pytest.mark.parametrize("target", CONFIGURABLE, ids=lambda t: t.__qualname__)
def test_every_parameter_is_on_the_page(target: Callable[..., Any]) -> None:
    names = [p for p in inspect.signature(target).parameters if p not in _NOT_SETTINGS]
    missing = [name for name in names if f"`{name}`" not in PAGE and f"`{name}=" not in PAGE]
    assert not missing, f"docs/configuration.md does not list {missing} of {target.__qualname__}"


def test_every_environment_variable_is_on_the_page() -> None:
    read = set()
    pattern = re.compile(
        r"""(?:environ(?:\.get)?\(\s*|environ\[|getenv\(|_ENV(?::\s*Final)?\s*=\s*|env\.get\(\s*)"""
        r"""["']([A-Z][A-Z0-9_]+)["']"""
    )
    files = [*ROOT.glob("src/**/*.py"), *ROOT.glob("examples/*/*.py")]
    files += [
        ROOT / "examples" / "react-chat" / "vite.config.js",
        ROOT / "tests/e2e/chat_browser.py",
    ]
    for path in files:
        read |= set(pattern.findall(path.read_text()))
    read |= {"CHAT_API"}  # process.env.CHAT_API in vite.config.js
    assert {"S2_ACCESS_TOKEN", "S2_BASIN", "CHAT_MODEL", "CHAT_STARTUP_CHECK"} <= read
    missing = sorted(name for name in read if f"`{name}`" not in PAGE)
    assert not missing, f"docs/configuration.md does not list {missing}"
