"""Counters shared by everything that runs on one event loop.

A bound that holds for a whole server process rather than for one response (the frames that
all live responses hold for clients that stopped reading) needs one count that every
response adds to and takes from. All of them run on the loop's thread, so a plain integer
per loop needs no lock. An ASGI server runs one event loop per process; a process that runs
several (threads) gets a count per loop.
"""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["LoopCounter", "loop_counter"]


class LoopCounter:
    """One count of one event loop: :attr:`value` starts at 0; its users add and subtract."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


_counters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, LoopCounter]] = (
    weakref.WeakKeyDictionary()
)


def loop_counter(name: str, loop: asyncio.AbstractEventLoop | None = None) -> LoopCounter:
    """The counter called ``name`` of ``loop`` (by default the running loop), made at 0 the
    first time it is asked for; it goes away with the loop.

    Args:
        name: what is counted (one name per kind of count, and per unit).
        loop: the event loop; ``None``: the running one.

    Returns:
        The same :class:`LoopCounter` for the same name and loop, every time.

    Raises:
        RuntimeError: ``loop`` is ``None`` and no event loop is running.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    counters = _counters.get(loop)
    if counters is None:
        counters = _counters[loop] = {}
    counter = counters.get(name)
    if counter is None:
        counter = counters[name] = LoopCounter()
    return counter
