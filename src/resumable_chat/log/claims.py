"""Claims: how a generation takes a stream, per mode, so that two claimers can never both win.

Every claim is one conditional append of a ``session-`` fence (followed, in the same atomic batch,
by the turn's message when the caller gives it, so no reader sees the claim without it),
conditioned on exactly what the claimer read, in one read where S2 allows it (the last record and
the tail come back from one ``tail_offset=1`` read). S2 checks the conditions atomically, so of any
interleaving of two claimers' reads and appends at most one append succeeds; the other gets 412 and
the caller answers 409 before the model is called (claim rules of ``@s2-dev/resumable-stream`` 2.1,
``src/shared.ts``, with a race that upstream leaves open closed).

- ``single-use``: only a never-used stream: ``match_seq_num=0`` and token ``""``.
- ``session``: the stream's last record is a terminal fence (conditioned on its token and the
  tail), or the stream holds no record (never used: token ``""``; all expired or trimmed: the
  tail alone, which nobody else can pass at the same time), or no generation is open under
  its last record (records written by something else).
- ``shared``: like session; each generation then trims everything before its claim, a while
  after its end (:meth:`~.engine.LogEngine.trim_later`), so followers of the generation it
  replaced finish reading first. Readers of the history see the latest generation only.

A generation without a terminal fence blocks the claim until it is judged lost
(:mod:`.takeover`), which closes it; the claim is then tried again. A generation that is
being stopped (the stream's token is a ``stop-`` fence: another request asked it to stop and
its writer has not written its end yet) is waited for instead, up to a lease: its writer
adopts the stop at its next append (a chunk, or a heartbeat when the model is quiet) and ends
it, so a turn sent right after a stop's 202 gets its answer rather than 409, on whichever
instance either request lands. When it has not ended by then, the claim goes on as for any
open generation (409, or the takeover of a writer that is gone).

One round trip instead of two: when the engine already knows what the stream's end should be
(it stored the previous answer's terminal itself: tail and token), or the caller says the chat
is new (its first turn: tail 0, token ``""``), the claim is first appended conditioned on that
guess alone. S2 accepts it only if the stream's tail and token are exactly the guessed ones,
which is a state with no open generation, so the claim is as safe as one conditioned on a
read; when the guess is wrong (412), the claim goes the two-round-trip way above, as if the
guess had never been made, with one difference: when S2's 412 names a claim's token (a
generation was open when the guessed claim arrived), a read that finds that the stream has
since ended with ``end-`` answers 409, as a read at the guessed claim's arrival would have
(without it, a turn sent to two instances at once was answered twice whenever the winner's
answer ended before the loser read the log). The same holds on the read path: a claimer whose
read found a generation open answers 409 when a later read (back to that generation's claim,
or after judging it) finds it ended by itself, instead of claiming on top of its end.

Answered once per message (``turn_key``): an ``end-`` terminal may carry the key of the turn
it answered (:func:`~.records.fence`); a claim with the same key is refused when the stream's
latest terminal, as read (or as S2's 412 names it), carries it. The claim stays conditioned on
that very terminal, so the check and the append cannot be separated by another answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from resumable_chat.log.errors import StreamInUseError
from resumable_chat.log.faults import is_transient
from resumable_chat.log.records import (
    CLAIM_PREFIX,
    STOP_PREFIX,
    RecordKind,
    answered_turn,
    classify,
    fence,
    fence_token,
)
from resumable_chat.log.scan import last_record, latest_generation
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import FencingTokenMismatchError, S2Error, SeqNumMismatchError
from resumable_chat.s2.records import AppendAck, AppendInput, AppendRecord, StreamPosition

if TYPE_CHECKING:
    from resumable_chat.log.engine import LogEngine

__all__ = ["MODES", "Claim", "Mode", "claim_stream"]

Mode = Literal["single-use", "shared", "session"]
MODES: tuple[Mode, ...] = ("single-use", "shared", "session")

#: Claim rounds: each one follows a lost generation being closed (or a concurrent change).
_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Claim:
    """A won claim: the generation's ``token`` (its identity), the seq_num of its fence and
    the seq_num the generation's first own record gets (after any records stored with the
    claim)."""

    token: str
    fence_seq_num: int
    start_seq_num: int


#: Seconds a claim's read-back gets at least, when its append used up the basin's deadline.
READ_BACK_MIN_S = 0.25


async def _append_claim(engine: LogEngine, stream: str, request: AppendInput) -> AppendAck:
    """Append a claim fence; after a transient failure, read back whether it landed (its
    ack lost) before giving up, within what is left of the basin's deadline
    (:attr:`Basin.deadline_s`, at least :data:`READ_BACK_MIN_S`), so a route answers 503
    within about one deadline when S2 hangs. A claim given up on that may still land is left
    to :meth:`LogEngine.abandoned_claim`. Raises ``S2Error`` (412s as they come)."""
    try:
        return await _append_or_read_back(engine.basin, stream, request)
    except (FencingTokenMismatchError, SeqNumMismatchError):
        raise
    except S2Error as exc:
        if is_transient(exc):
            engine.abandoned_claim(stream, request)
        raise


async def _append_or_read_back(basin: Basin, stream: str, request: AppendInput) -> AppendAck:
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        return await basin.append(stream, request)
    except (FencingTokenMismatchError, SeqNumMismatchError):
        raise
    except S2Error as exc:
        if not is_transient(exc) or request.match_seq_num is None:
            raise
        left = None
        if basin.deadline_s is not None:
            left = max(READ_BACK_MIN_S, basin.deadline_s - (loop.time() - began))
        try:
            async with asyncio.timeout(left):
                batch = await basin.read(stream, seq_num=request.match_seq_num, count=1, wait=0)
        except (S2Error, TimeoutError):
            raise exc from None
        found = batch.records[0] if batch.records else None
        sent = request.records[0]
        if found is None or found.headers != sent.headers or found.body != sent.body:
            raise
        # the fence is ours (its token is random), so its whole atomic batch landed
        at = StreamPosition(found.seq_num, found.timestamp)
        end = StreamPosition(found.seq_num + len(request.records), found.timestamp)
        return AppendAck(at, end, batch.tail or end)


async def _await_close(basin: Basin, stream: str, start: int, timeout_s: float) -> None:
    """Return once a closing fence (a terminal) is among the records from seq_num ``start``
    on, or after ``timeout_s`` seconds, or when a read fails (the claim then reads again and
    meets the failure or the stream as it is). Long-polls S2 (reads with ``wait``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    position = start
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                batch = await basin.read(stream, seq_num=position, clamp=True, wait=min(left, 60))
        except (S2Error, TimeoutError):
            return
        for record in batch.records:
            if classify(record).closes:
                return
            position = record.seq_num + 1


async def claim_stream(
    engine: LogEngine,
    stream: str,
    *,
    new_chat: bool = False,
    records: Sequence[bytes] = (),
    turn_key: str | None = None,
) -> Claim:
    """Claim ``stream`` for a new generation in the engine's mode.

    ``new_chat``: the caller expects the stream to be unused (a first turn), so the claim is
    first tried in one round trip conditioned on an empty stream (see the module docstring).
    ``records``: bodies of data records appended in the same atomic batch right after the
    fence (the turn's message; together at most 1 MiB metered with it); the generation's
    own records start after them (:attr:`Claim.start_seq_num`). ``turn_key``: the turn is
    answered once per message (:func:`~.records.turn_key`): when the stream's latest answer
    ended (``end-``) having answered the same turn, whether S2's 412 to a guessed claim or
    the read names that terminal, the claim is refused. A duplicate of the request (two tabs,
    or one turn sent to two instances) that reaches S2 after the other's whole answer thus
    gets 409 instead of answering the turn again.

    Returns the :class:`Claim`. Raises :class:`StreamInUseError` when a generation holds the
    stream (live, or this process's own however long it has been silent) or a concurrent
    claimer won; ``S2Error`` when S2 fails.
    """
    basin = engine.basin
    # No client timestamp (upstream sets Date.now()): S2's arrival time keeps a claim that S2
    # was slow to accept from looking a lease old the moment it lands.
    claim_fence = fence(CLAIM_PREFIX, engine.rng)
    token = fence_token(claim_fence)
    batch = [claim_fence, *(AppendRecord(body) for body in records)]
    guess = engine.claim_hint(stream)
    if guess is None and new_chat:
        guess = (0, "")
    #: a generation was open when the guessed claim reached S2 (its 412 named its claim)
    raced = False
    if guess is not None and turn_key is not None and answered_turn(guess[1]) == turn_key:
        guess = None  # this process's last answer there answered this turn: read what is now
    if guess is not None and engine.config.mode != "single-use":
        request = AppendInput(batch, match_seq_num=guess[0], fencing_token=guess[1])
        try:
            ack = await _append_claim(engine, stream, request)
        except FencingTokenMismatchError as exc:
            engine.forget_claim_hint(stream)  # a wrong guess: read, as without one
            current = exc.expected_fencing_token or ""
            if turn_key is not None and answered_turn(current) == turn_key:
                raise StreamInUseError(stream) from exc  # this turn was answered meanwhile
            raced = current.startswith(CLAIM_PREFIX)
        except SeqNumMismatchError:
            engine.forget_claim_hint(stream)
        else:
            return Claim(token, ack.start.seq_num, ack.end.seq_num)
    if engine.config.mode == "single-use":
        request = AppendInput(batch, match_seq_num=0, fencing_token="")
        try:
            ack = await _append_claim(engine, stream, request)
        except (FencingTokenMismatchError, SeqNumMismatchError) as exc:
            raise StreamInUseError(stream) from exc
        return Claim(token, ack.start.seq_num, ack.end.seq_num)
    waited = False
    for _ in range(_ROUNDS):
        last, tail = await last_record(basin, stream)
        condition: str | None
        if last is None:
            condition = "" if tail.seq_num == 0 else None
        elif classify(last).closes:
            if raced and not waited and classify(last) is RecordKind.END:
                # A generation was open when this claim reached S2 (or when it read the log)
                # and has ended since, by itself: it answered a turn sent while this one was
                # on its way, which a claim conditioned on that moment would have met running
                # (409). Claiming on top of its end would answer the same moment twice (two
                # tabs, or a turn sent to two instances). A lost one, closed since with
                # ``error-``, is claimed as usual.
                raise StreamInUseError(stream)
            condition = fence_token(last)
        else:
            # Is a generation open under the last record? Read back to its claim: O(answer).
            latest = await latest_generation(basin, stream)
            if latest.active:
                if not waited and (latest.token or "").startswith(STOP_PREFIX):
                    waited = True  # being stopped: wait for its end, then read again
                    lease_s = engine.config.lease_ms / 1000
                    await _await_close(basin, stream, latest.tail.seq_num, lease_s)
                    continue
                if not await engine.close_if_lost(stream, latest):
                    raise StreamInUseError(stream)
                raced = True  # it was open: if it ended by itself meanwhile, see above
                continue  # closed: read again
            terminal = latest.terminal
            if (
                terminal is not None
                and terminal.seq_num >= tail.seq_num  # open at the read above, ended since
                and not waited
                and classify(terminal) is RecordKind.END
            ):
                raise StreamInUseError(stream)
            tail, condition = latest.tail, latest.token  # records of no generation (foreign)
        if turn_key is not None and answered_turn(condition or "") == turn_key:
            raise StreamInUseError(stream)  # the latest answer answered this very turn
        request = AppendInput(batch, match_seq_num=tail.seq_num, fencing_token=condition)
        try:
            ack = await _append_claim(engine, stream, request)
        except (FencingTokenMismatchError, SeqNumMismatchError) as exc:
            raise StreamInUseError(stream) from exc
        return Claim(token, ack.start.seq_num, ack.end.seq_num)
    raise StreamInUseError(stream)
