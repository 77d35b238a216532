"""Reading on from where a read broke off, while S2's failures may pass.

A live response that fell behind its answer reads the rest from the log
(:class:`~resumable_chat.chat.producer.LiveChannel`, the text streams' producer iterator):
its client has been sent part of the answer already, so an S2 failure that may pass
(https://s2.dev/docs/api, errors: 408, 429, 5xx) is retried from the last position given
instead of ending the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

from resumable_chat.log.faults import is_transient
from resumable_chat.s2.errors import S2Error

__all__ = ["read_on"]

T = TypeVar("T")

#: ``read(position)``: items from ``position`` on, each with the position after it.
ReadFrom = Callable[[int], AsyncGenerator[tuple[T, int], None]]


async def read_on(
    read: ReadFrom[T], start: int, *, retry_s: float, rng: random.Random | None = None
) -> AsyncGenerator[T, None]:
    """The items of ``read(start)``; when it raises an S2 failure that may pass
    (:func:`~resumable_chat.log.faults.is_transient`), the items of ``read(position)`` from
    the position after the last item given, after a wait of 0.1 s doubling to 2 s (with
    ``rng``, each between half and all of that), for at most ``retry_s`` seconds since the
    first failure after an item was given.

    Args:
        read: position → an async generator of ``(item, position after it)``; closed when
            it fails or the caller stops.
        start: the first position (seq_num or SSE id: whatever ``read`` takes).
        retry_s: seconds (event-loop time) of failures in a row after which the last one is
            raised.
        rng: jitter for the waits (a seeded one keeps a simulation deterministic); ``None``:
            no jitter.

    Raises:
        S2Error: a permanent failure at once, a transient one after ``retry_s``.
    """
    loop = asyncio.get_running_loop()
    position = start
    failing_since: float | None = None
    retry = 0
    while True:
        try:
            async with contextlib.aclosing(read(position)) as items:
                async for item, after in items:
                    yield item
                    position = max(position, after)
                    failing_since, retry = None, 0
            return
        except S2Error as exc:
            now = loop.time()
            failing_since = now if failing_since is None else failing_since
            if not is_transient(exc) or now - failing_since >= retry_s:
                raise
        retry += 1
        delay = min(2.0, 0.1 * 2 ** (retry - 1))
        await asyncio.sleep(delay if rng is None else delay * (0.5 + rng.random() / 2))
