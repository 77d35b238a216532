"""The one source of time: wall-clock milliseconds for S2 timestamps and leases, and the
event loop's clock for intervals.

Every part of the library that needs "now" asks a :class:`Clock`: the log engine (lease ages,
heartbeats, takeover windows), the embedded :class:`~resumable_chat.s2.memory.MemoryBasin`
(record timestamps) and the chat core. Intervals and sleeps run on the asyncio event loop, so a
loop whose time is virtual (:mod:`resumable_chat.testing.virtual_time`) makes every lease,
heartbeat, linger and keep-alive virtual too; :class:`LoopClock` then derives wall time from the
same loop, so record timestamps and lease checks agree with it.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod

__all__ = ["SYSTEM_CLOCK", "Clock", "LoopClock", "SystemClock"]


class Clock(ABC):
    """Where the library reads the time."""

    @abstractmethod
    def now_ms(self) -> int:
        """Wall-clock time in milliseconds since the Unix epoch (the unit of S2 record
        timestamps, ``SequencedRecord.timestamp``)."""

    def monotonic(self) -> float:
        """Seconds on the running event loop's clock (``loop.time()``), for intervals.

        Raises ``RuntimeError`` outside a running event loop.
        """
        return asyncio.get_running_loop().time()


class SystemClock(Clock):
    """The host's wall clock (``time.time_ns``) and the event loop's monotonic clock."""

    def now_ms(self) -> int:
        """``time.time_ns() // 1_000_000``."""
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "SystemClock()"


class LoopClock(Clock):
    """Wall time derived from the running event loop: ``epoch_ms + loop.time() * 1000``.

    With a virtual-time loop every reading is virtual and deterministic; with a real loop it
    runs at real speed from ``epoch_ms``. Args: ``epoch_ms``: the wall time (ms since the Unix
    epoch) that loop time 0 stands for.
    """

    def __init__(self, epoch_ms: int = 1_767_225_600_000) -> None:
        self.epoch_ms = epoch_ms

    def now_ms(self) -> int:
        """``epoch_ms`` plus the running loop's time in ms (``RuntimeError`` without a loop)."""
        return self.epoch_ms + int(asyncio.get_running_loop().time() * 1000)

    def __repr__(self) -> str:
        return f"LoopClock(epoch_ms={self.epoch_ms})"


#: The default clock of every component.
SYSTEM_CLOCK: Clock = SystemClock()
