"""A live follow that also reports silence: the building block of lease watchdogs.

A reader following a generation must notice when its writer died (DESIGN.md §6.2): a live
writer appends at least a heartbeat record every ``heartbeat_ms``, so a follow that delivers
nothing for a whole lease means the writer is gone (or S2 is unreachable). Cancelling a
pending ``anext`` of an async generator would end the generator, so the read runs in its own
task and is awaited with a timeout instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

from .basin import Basin
from .records import ReadBatch

__all__ = ["cancel_and_wait", "follow_reporting_silence"]

logger = logging.getLogger("resumable_chat.s2")


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end.

    Re-raises ``CancelledError`` only when the calling task is itself being cancelled; an
    exception of ``task`` is logged at debug level and swallowed.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        logger.debug("task %s failed while being cancelled", task.get_name(), exc_info=True)


#: Releases still running after their follow was closed by a cancellation (kept referenced).
_releasing: set[asyncio.Task[None]] = set()


async def _release(
    pending: asyncio.Task[ReadBatch | None] | None, batches: AsyncGenerator[ReadBatch, None]
) -> None:
    """Cancel the pending read, wait for it to unwind, then close the follow."""
    if pending is not None:
        await cancel_and_wait(pending)
    await batches.aclose()


async def _next_batch(batches: AsyncGenerator[ReadBatch, None]) -> ReadBatch | None:
    try:
        return await anext(batches)
    except StopAsyncIteration:
        return None


async def follow_reporting_silence(
    basin: Basin, stream: str, *, seq_num: int, silence_s: float, clamp: bool = True
) -> AsyncGenerator[ReadBatch | None, None]:
    """:meth:`Basin.follow` from ``seq_num``, yielding ``None`` after each ``silence_s``
    seconds in which no batch arrived.

    Yields the follow's batches in order; a ``None`` never skips or reorders records (the
    pending read goes on). Ends when the follow ends (stream deleted, basin closed). Close it
    with ``aclose()`` (``contextlib.aclosing``): the pending read is cancelled and the read
    session released. Raises what :meth:`Basin.follow` raises.
    """
    if not silence_s > 0:
        raise ValueError(f"silence_s must be > 0, got {silence_s}")
    batches = basin.follow(stream, seq_num=seq_num, clamp=clamp)
    loop = asyncio.get_running_loop()
    pending: asyncio.Task[ReadBatch | None] | None = None
    try:
        while True:
            if pending is None:
                pending = loop.create_task(_next_batch(batches))
            done, _ = await asyncio.wait({pending}, timeout=silence_s)
            if not done:
                yield None
                continue
            task, pending = pending, None
            batch = task.result()
            if batch is None:
                return
            yield batch
    finally:
        # The read session must be released even when this generator is closed by a
        # cancellation (a client that went away: anyio cancels again at every await), so
        # the release runs in its own task; we wait for it unless we are cancelled.
        release = loop.create_task(_release(pending, batches))
        _releasing.add(release)
        release.add_done_callback(_releasing.discard)
        await asyncio.shield(release)
