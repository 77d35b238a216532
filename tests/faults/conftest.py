"""Fixtures for the fault tests: the S2-compatible test server with a per-test ``FaultPlan``,
served by a real uvicorn in the test's event loop, and ``HttpBasin`` s with fast retries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fault_helpers import FaultyS2

from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.s2_server import create_app


@pytest.fixture
async def faulty_s2() -> AsyncIterator[FaultyS2]:
    """The S2 test server with an empty :class:`FaultPlan` (add rules in the test)."""
    plan = FaultPlan()
    app = create_app(faults=plan, ping_interval_s=0.5)
    async with serve_app(app) as url:
        faulty = FaultyS2(url, plan, app.state.s2)
        try:
            yield faulty
        finally:
            for basin in faulty.basins:
                await basin.aclose()
