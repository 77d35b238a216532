"""Fixtures for the resumable text stream tests.

``basin`` comes from the ``resumable_chat.testing`` pytest plugin: every test runs on the
embedded ``MemoryBasin``, on ``HttpBasin`` against the S2-compatible test server over real
HTTP, and on real S2 when ``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from resumable_chat import create_resumable_stream_context
from resumable_chat.log import Ownership
from resumable_chat.s2 import Basin
from resumable_chat.text_streams.context import ResumableStreamContext


@pytest.fixture
def basin_kind(request: pytest.FixtureRequest) -> str:
    """``memory``, ``http`` or ``s2``: which ``basin`` parameter this test runs on."""
    callspec = getattr(request.node, "callspec", None)
    return str(callspec.params.get("basin", "memory")) if callspec is not None else "memory"


@pytest.fixture
def key_prefix() -> str:
    """A key prefix unique to this test, so runs on one real basin never collide."""
    return f"test-streams-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
async def make_context(
    basin: Basin, key_prefix: str
) -> AsyncIterator[Callable[..., ResumableStreamContext]]:
    """Factory of contexts on ``basin`` sharing ``key_prefix`` (two contexts = two processes).

    Defaults: ``batch_size=10``, ``linger_ms=0``. All are closed after the test.
    """
    made: list[ResumableStreamContext] = []

    def factory(**options: Any) -> ResumableStreamContext:
        options.setdefault("batch_size", 10)
        options.setdefault("linger_ms", 0)
        options.setdefault("key_prefix", key_prefix)
        options.setdefault("ownership", Ownership())  # each context plays its own process
        context = create_resumable_stream_context(basin=basin, **options)
        made.append(context)
        return context

    yield factory
    for context in made:
        await context.aclose(drain_timeout_s=1)


@pytest.fixture
def context(make_context: Callable[..., ResumableStreamContext]) -> ResumableStreamContext:
    """One context on ``basin`` with the factory defaults."""
    return make_context()
