"""Claims given up on while S2 had not answered: settled once S2 answers again.

A claim's append that fails with a transient error (S2 hung past the basin's deadline, a
connection dropped mid-request) may still land: S2 applies a request it already received
when it recovers. The claimer has answered its turn 503 by then, so nothing will ever write
under that claim, yet it is an open generation: every turn on the chat would be refused (409)
until an instance judges it lost, a lease of silence and the confirmation window later
(:mod:`.takeover`). The claimer knows better than to wait: :func:`settle_abandoned_claim`
reads the claim's position until S2 answers, and closes the claim at once with the takeover's
terminal when it landed (this process made it and runs nothing under it), or stops when
something else holds that position (it can never land). Reads only: the chat's next turn
is never raced by a write of ours.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from resumable_chat.log.faults import is_transient
from resumable_chat.log.records import fence_token
from resumable_chat.log.scan import latest_generation
from resumable_chat.s2.errors import RangeNotSatisfiableError, S2Error, StreamNotFoundError
from resumable_chat.s2.records import AppendInput

if TYPE_CHECKING:
    from resumable_chat.log.engine import LogEngine

__all__ = ["SETTLE_FOR_LEASES", "settle_abandoned_claim"]

logger = logging.getLogger("resumable_chat.log")

#: How long :func:`settle_abandoned_claim` keeps looking after S2 last failed to answer, in
#: leases: a claim that lands later than that is closed by the takeover like any silent
#: generation.
SETTLE_FOR_LEASES = 2

#: First and longest pause between two looks (s).
_FIRST_PAUSE_S = 0.1
_LONGEST_PAUSE_S = 1.0


async def settle_abandoned_claim(engine: LogEngine, stream: str, request: AppendInput) -> None:
    """Watch for ``request`` (a claim append whose outcome S2 did not tell) landing on
    ``stream``, and close it at once if it does (see the module docstring).

    Looks at the claim's position (``request.match_seq_num``) with one read, at growing
    pauses (0.1 s to 1 s), until :data:`SETTLE_FOR_LEASES` leases have passed since S2 last
    failed to answer (so however long S2 hangs, the watch outlasts it). S2 errors are
    retried while transient and end the watch otherwise (logged); it never raises.
    """
    position = request.match_seq_num
    if position is None or not request.records:
        return
    claim = request.records[0]
    token = fence_token(claim)
    loop = asyncio.get_running_loop()
    settle_s = SETTLE_FOR_LEASES * engine.config.lease_ms / 1000
    until = loop.time() + settle_s
    pause = _FIRST_PAUSE_S
    while loop.time() < until:
        await asyncio.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)
        try:
            batch = await engine.basin.read(stream, seq_num=position, count=1, wait=0)
        except RangeNotSatisfiableError:
            continue  # nothing at its position yet: it may still land
        except StreamNotFoundError:
            return
        except S2Error as exc:
            if _still_watching(exc, stream, "watching"):
                until = max(until, loop.time() + settle_s)  # S2 is still down: watch on
                continue
            return
        found = batch.records[0] if batch.records else None
        if found is None:
            continue
        if found.seq_num != position or found.headers != claim.headers or found.body != claim.body:
            return  # its position is taken: it can never land
        try:
            latest = await latest_generation(engine.basin, stream)
            if latest.active and latest.claim_token == token:
                # close_if_lost closes a claim this engine watches at once
                if await engine.close_if_lost(stream, latest):
                    logger.info(
                        "closed the claim on %s that S2 stored after its turn failed on an "
                        "S2 error",
                        stream,
                    )
            return
        except S2Error as exc:
            if _still_watching(exc, stream, "closing"):
                continue
            return


def _still_watching(exc: S2Error, stream: str, doing: str) -> bool:
    """True for a transient ``exc`` (look again later); else log it: the watch ends."""
    if is_transient(exc):
        return True
    logger.info("%s the abandoned claim on %s failed: %r", doing, stream, exc)
    return False
