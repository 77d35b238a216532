"""Tasks that end without leaving a reference cycle behind.

A task keeps the ``CancelledError`` it was cancelled with, for whoever awaits it later. That
exception's traceback holds the frames the task ran in, and with them their locals: usually
the object that started the task and holds it in an attribute. The object, the task, the
exception and the frames then form a cycle that reference counting cannot free; the cyclic
garbage collector frees it at a collection of the generation it has reached, which for
anything that lived a while (an answer's follow, with every record it queued) is the next
full collection, with a pause proportional to everything the process holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["forget_cancellation"]


def forget_cancellation(task: asyncio.Future[Any]) -> None:
    """Let a cancelled ``task`` drop the ``CancelledError`` it keeps (a done callback).

    Asking a cancelled task for its exception hands that exception over instead of keeping
    it (CPython ``Lib/asyncio/tasks.py``, ``Task._make_cancelled_error``), so the frames its
    traceback holds are released once this returns; whoever awaits the task later gets a
    new ``CancelledError``, as asyncio documents. Use it as
    ``task.add_done_callback(forget_cancellation)`` on a task whose owner holds it in an
    attribute. No-op for a task that is not done or that ended otherwise.

    Args:
        task: an ``asyncio.Task`` (or future).
    """
    if task.done() and task.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            task.exception()
