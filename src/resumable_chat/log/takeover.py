"""Crash takeover: closing a generation whose writer went silent for a lease.

A generation is judged lost only when all of these hold, each read from S2 by the judge:

1. it has no terminal fence and this process does not run it (:mod:`.ownership`);
2. its last record is ``lease_ms`` old or older: its S2 timestamp against the judge's clock,
   or, for a follower's watchdog, the follower's own wait of a lease with no record and
   nothing past what it got (:meth:`~.engine.LogEngine.close_if_lost`);
3. the tail has not moved after a confirmation window that starts after that (by default
   two heartbeat intervals, :attr:`~.engine.LogConfig.confirm_s`), so a writer that was
   only cut off from S2 for a while lands first once S2 answers again, and keeps its
   generation, and a judge whose clock runs ahead of S2's (which stamps the records) still
   sees a live writer's next heartbeat before it could close anything.

The close is then one atomic append conditioned on the stream's fencing token and tail as
read: the protocol's error terminal (built by the layer above from the generation's stored
records) and an ``error-`` fence. If the writer came back, or another judge closed it first,
the condition fails and nothing is written. The writer, if alive, is fenced out at its next
append.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence

from resumable_chat.log.fragments import join_fragments
from resumable_chat.log.records import ERROR_PREFIX, RecordKind, classify, fence
from resumable_chat.log.scan import LatestGeneration, read_range
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import (
    FencingTokenMismatchError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.records import AppendInput, AppendRecord, StreamPosition

__all__ = ["LostTerminal", "close_lost", "confirm_silence"]

logger = logging.getLogger("resumable_chat.log")

#: Builds a lost generation's terminal records from its stream name and the bodies of its
#: stored data records (in order). The chat core rebuilds its protocol's turn from them and
#: returns the error chunks; the generic text streams return none.
LostTerminal = Callable[[str, list[bytes]], Sequence[AppendRecord]]


async def confirm_silence(basin: Basin, stream: str, tail: StreamPosition, window_s: float) -> bool:
    """True when the stream's tail is still ``tail`` after ``window_s`` seconds (nothing was
    appended meanwhile). Raises ``S2Error`` when S2 fails."""
    await asyncio.sleep(window_s)
    try:
        now = await basin.check_tail(stream)
    except StreamNotFoundError:
        return False
    return now.seq_num == tail.seq_num


async def close_lost(
    basin: Basin,
    stream: str,
    latest: LatestGeneration,
    terminal: LostTerminal,
    *,
    rng: random.Random | None = None,
) -> bool:
    """Append ``terminal``'s records and an ``error-`` fence after the lost generation
    ``latest``, conditioned on its token and tail as read. Reads O(answer) records.

    Returns True when this call closed it, False when the stream moved on (the writer came
    back, or someone else closed it). Raises ``S2Error`` when S2 fails.
    """
    if not latest.active:
        return False
    records = await read_range(basin, stream, latest.data_start, latest.tail.seq_num)
    whole, _ = join_fragments(records)  # a chunk cut off mid-fragments was never stored
    bodies = [r.body for r in whole if classify(r) is RecordKind.DATA]
    final = [*terminal(stream, bodies), fence(ERROR_PREFIX, rng)]
    request = AppendInput(final, match_seq_num=latest.tail.seq_num, fencing_token=latest.token)
    try:
        await basin.append(stream, request)
    except (FencingTokenMismatchError, SeqNumMismatchError):
        return False
    logger.warning(
        "closed the generation on %s: its writer wrote nothing for a lease (crashed?)", stream
    )
    return True
