"""An asyncio event loop whose clock is virtual: time jumps to the next timer when nothing is
ready, so leases, heartbeats, lingers and keep-alives take no real time in tests.

Everything that sleeps or waits with a timeout on the loop (``asyncio.sleep``, ``wait_for``,
``asyncio.timeout``, ``loop.call_later``) runs in virtual time; pair it with
:class:`~resumable_chat.clock.LoopClock` so wall-clock readings (S2 record timestamps, lease
ages) advance with it. The loop does no real I/O: code that needs a socket or a thread (an
``HttpBasin``, ``asyncio.to_thread``) does not belong on it. When nothing is ready and no
timer is pending, every task waits for something that can never happen:
:func:`run_virtual` raises :class:`VirtualTimeDeadlock` instead of hanging.

>>> async def main() -> float:
...     await asyncio.sleep(3600)
...     return asyncio.get_running_loop().time()
>>> run_virtual(main())
3600.0
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualTimeDeadlock", "VirtualTimeEventLoop", "run_virtual"]

T = TypeVar("T")


class VirtualTimeDeadlock(RuntimeError):
    """Nothing can run and no timer is pending: every task waits forever."""


class _VirtualSelector(selectors.SelectSelector):
    """Never waits on the OS: a ``select(timeout)`` advances the loop's virtual clock."""

    def __init__(self, loop: VirtualTimeEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise VirtualTimeDeadlock("every task waits and no timer is pending")
        if timeout > 0:
            self._loop.advance(timeout)
        return []


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual (starts at 0.0 seconds)."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        """Virtual seconds since the loop was made."""
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward by ``seconds`` (≥ 0)."""
        self._virtual_now += max(0.0, seconds)


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeEventLoop` and close it.

    Raises what ``main`` raises, or :class:`VirtualTimeDeadlock` when every task waits
    forever (pending tasks are cancelled before the loop closes).
    """
    loop = VirtualTimeEventLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except VirtualTimeDeadlock:
            pass
        finally:
            loop.close()
