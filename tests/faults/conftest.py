"""Fixtures for the fault tests: the S2-compatible test server with a per-test ``FaultPlan``,
served by a real uvicorn in the test's event loop, and ``HttpBasin`` s with fast retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from resumable_chat.claims import read_range
from resumable_chat.s2 import HttpBasin
from resumable_chat.s2.records import SequencedRecord
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import S2TestServer, create_app


@dataclass
class FaultyS2:
    """A running fault-injecting S2 test server: URL, plan, server state and its clients."""

    url: str
    plan: FaultPlan
    server: S2TestServer
    basins: list[HttpBasin] = field(default_factory=list)

    def basin(self, name: str | None = None, **options: Any) -> HttpBasin:
        """An ``HttpBasin`` on this server with millisecond retries (closed after the test)."""
        options.setdefault("retry_base_s", 0.005)
        options.setdefault("retry_max_backoff_s", 0.02)
        options.setdefault("heartbeat_timeout_s", 5.0)
        options.setdefault("access_token", "test")
        basin = HttpBasin(
            name or unique_basin_name(),
            account_endpoint=self.url,
            basin_endpoint=self.url,
            **options,
        )
        self.basins.append(basin)
        return basin

    async def stored(self, basin: HttpBasin, stream: str) -> list[SequencedRecord]:
        """Every record the server holds on ``stream``, read behind the faults' back."""
        return await read_range(self.server.memory_basin(basin.name), stream, 0)


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
