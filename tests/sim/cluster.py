"""Chat instances over one embedded basin in virtual time, for the lease and clock tests.

Each instance has its own ownership registry, as separate processes have, and its own clock,
which may run ahead of or behind the basin's (S2 stamps the records with its own time). A
"crash" makes every call of one instance hang and cancels its generations, which is what a
killed process leaves behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

from resumable_chat import ResumableChat, StopSignal, create_resumable_chat
from resumable_chat.clock import LoopClock
from resumable_chat.log import Ownership, RecordKind, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.virtual_time import run_virtual

#: Wall time (ms) that virtual loop time 0 stands for, on S2's clock.
EPOCH_MS = LoopClock().epoch_ms
STREAM = "chat-1"
MESSAGE = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}


def now_ms() -> float:
    """The running loop's virtual time, in ms."""
    return asyncio.get_running_loop().time() * 1000


class Cluster:
    """One instance per entry of ``clock_offsets`` (ms its clock runs ahead of S2's), over
    one basin, each behind its own crashable view of it."""

    def __init__(
        self, *, lease_ms: int, heartbeat_ms: int, clock_offsets: Sequence[int] = (0, 0)
    ) -> None:
        self.memory = MemoryBasin(clock=LoopClock())
        self.basins = [FaultPlanBasin(self.memory, FaultPlan()) for _ in clock_offsets]
        self.chats: list[ResumableChat] = [
            create_resumable_chat(
                protocol="ai-sdk",
                mode="session",
                basin=basin,
                lease_ms=lease_ms,
                heartbeat_ms=heartbeat_ms,
                keepalive_s=0,
                clock=LoopClock(EPOCH_MS + offset),
                ownership=Ownership(),
            )
            for basin, offset in zip(self.basins, clock_offsets, strict=True)
        ]
        self.tasks: list[asyncio.Task[Any]] = []

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    async def crash(self, index: int) -> None:
        """Instance ``index`` dies: its calls hang, its generations and clients are cancelled."""
        self.basins[index].crash()
        engine = self.chats[index].engine
        tasks = [g.task for g in engine.running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def kinds(self) -> list[RecordKind]:
        """The kind of every record of :data:`STREAM`, in order."""
        return [classify(r) for r in await read_range(self.memory, STREAM, 0)]

    async def last_record_ms(self) -> float:
        """Virtual ms at which the last record of :data:`STREAM` arrived."""
        return (await self.memory.check_tail(STREAM)).timestamp - EPOCH_MS

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for chat in self.chats:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(chat.aclose(drain_timeout_s=0.1), 5)


def model(*, silent_s: float, after: int = 1) -> Any:
    """A model that sends ``after`` deltas, then says nothing for ``silent_s``, then ends."""

    async def stream(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        for i in range(after):
            yield {"type": "text-delta", "id": "t", "delta": f"w{i} "}
        await asyncio.sleep(silent_s)
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish", "finishReason": "stop"}

    return stream


async def read_chunks(response: Any) -> list[tuple[float, dict[str, Any]]]:
    """Every chunk of an SSE response with the virtual ms it arrived at."""
    out: list[tuple[float, dict[str, Any]]] = []
    async for data in response.body_iterator:
        text = data if isinstance(data, str) else data.decode()
        for line in text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append((now_ms(), json.loads(line[6:])))
    return out


async def chunk_types(response: Any) -> list[str]:
    """The ``type`` of every chunk of an SSE response."""
    return [chunk["type"] for _, chunk in await read_chunks(response)]


def run(scenario: Any, **cluster: Any) -> Any:
    """Run ``scenario(cluster)`` on a virtual-time loop with a :class:`Cluster` built from
    ``cluster`` (its keyword arguments), closed afterwards."""

    async def main() -> Any:
        built = Cluster(**cluster)
        try:
            return await scenario(built)
        finally:
            await built.aclose()

    return run_virtual(main())
