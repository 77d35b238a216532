"""The invariants a simulated run must keep, checked over its recorded history.

- **One owner at a time**: in every stream, generations follow each other (a claim only after
  the previous generation's terminal), and every record of a generation was appended by the
  instance that claimed it, except stop requests and the single batch a taker appends to
  close a lost generation (error chunks + ``error-`` fence). The model deltas of a generation
  come from one model, in order, without a gap or a repeat.
- **Readers see slices of the log**: every replay's frames are exactly the log's records of one
  generation after its cursor, contiguous, with the same SSE ids, no duplicate and no gap; a
  replay that was not cut or hung up ends with the generation's terminal and ``[DONE]``, in
  bounded time after the writer ended or died.
- **Live equals log**: a live client's frames equal the log up to the first terminal either of
  them shows; a writer fenced out by a takeover ends its live response with an error terminal.
- **Nothing lost while a writer lives**: a generation whose instance never crashed is never
  taken over and holds every delta its model produced, once S2 is back.
- **No chat stays locked**: after the last crash and a lease, a new turn on every chat works.
- With instance clocks off S2's (``SimConfig.skew_ms``), the same hold with the lease
  shifted by the judging instance's offset (never a close before a confirmation window of
  silence), except a reader's: it ends as soon as with clocks in step, its own wait being
  the lease.
- **409 before the model**: a turn refused with 409 never got a delta from its model.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from simulation import Appended, View, World

from resumable_chat.chat.core import IN_USE_TEXT, STORAGE_FAILED_TEXT
from resumable_chat.log import RecordKind, classify
from resumable_chat.log.records import SSE_ID_HEADER, answered_turn, fence_token, turn_key

#: Chunk types a takeover's error terminal may hold (the dialect closes open parts first).
TAKER_CHUNKS = ("start", "text-end", "reasoning-end", "finish-step", "message-metadata", "error")
#: Lag allowed between a terminal reaching the log and a follower delivering it (ms).
SLACK_MS = 1500


def _clip(frames: Sequence[tuple[int | None, str]]) -> list[tuple[int | None, str]]:
    """``frames`` with each body cut to 80 characters, for messages (``SimConfig.big``)."""
    return [(i, body if len(body) <= 80 else body[:77] + "...") for i, body in frames]


def _short(deltas: list[str]) -> list[str]:
    """``deltas`` without their padding (``SimConfig.big``), for messages."""
    return [d.split("~")[0] for d in deltas]


@dataclass
class Gen:
    """One generation as the log shows it."""

    stream: str
    claim_seq: int
    claimer: int
    claimed_ms: float
    frames: list[tuple[int, str]] = field(default_factory=list)  # (SSE id, body), replayable
    frame_batches: list[int] = field(default_factory=list)
    terminal_batch: int | None = None
    writer_times: list[tuple[float, int]] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    writer_frames: int = 0  # frames appended by the claimer (the rest: the taker's terminal)
    last_writer_ms: float = 0.0
    terminal: RecordKind | None = None
    terminal_by: int | None = None
    terminal_ms: float | None = None

    taker: int | None = None  # the instance that closed it as lost, if one did
    message: bytes | None = None  # the turn's stored message record, if it has one
    terminal_token: str | None = None

    @property
    def taken_over(self) -> bool:
        """Closed by a takeover (``close_lost``), not by its own writer."""
        return self.taker is not None

    @property
    def end_ms(self) -> float | None:
        return self.terminal_ms


def _fragment(item: Appended) -> tuple[int, int] | None:
    """``(index, count)`` of a fragment record (``rc-part: <index>/<count>``), else ``None``:
    read here from the header as stored, not through the readers' joiner."""
    for name, value in item.record.headers:
        if name == b"rc-part":
            index, count = value.split(b"/")
            return int(index), int(count)
    return None


def _sse_id(item: Appended) -> int:
    for name, value in item.record.headers:
        if name == SSE_ID_HEADER:
            return int(value)
    return item.seq_num + 1


def _claim_failed(view: View) -> bool:
    """A 200 live answer begun before its claim, ended because the claim was lost or failed
    (its error terminal says which, and no frame has an id)."""
    return _storage_failed(view) or _error_text(view) == IN_USE_TEXT


def _error_text(view: View) -> str | None:
    if any(i is not None for i, _ in view.frames):
        return None
    bodies = [b for _, b in view.frames if b != "[DONE]"]
    return json.loads(bodies[-1]).get("errorText") if bodies else None


def _storage_failed(view: View) -> bool:
    """A 200 live answer begun before its claim, ended because the claim failed on S2."""
    return view.status == 200 and _error_text(view) == STORAGE_FAILED_TEXT


def _outage_within(world: World, start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in world.outages)


class Checker:
    """Runs every check; :attr:`violations` lists what broke, one line each."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.violations: list[str] = []
        self.generations: dict[str, list[Gen]] = {}
        self.by_id: dict[tuple[str, int], Gen] = {}

    def fail(self, message: str) -> None:
        self.violations.append(message)

    def run(self) -> list[str]:
        self.parse_logs()
        for view in self.world.views:
            if view.kind == "replay":
                self.check_replay(view)
            else:
                self.check_live(view)
        self.check_writers()
        self.check_probes()
        if self.world.unfinished:
            self.fail(f"clients still running long after the end: {self.world.unfinished}")
        if self.world.held_backlog_bytes:
            self.fail(
                f"{self.world.held_backlog_bytes} bytes of live backlog still counted after "
                "every response ended"
            )
        return self.violations

    # -- the log -------------------------------------------------------------------------

    def parse_logs(self) -> None:
        streams: dict[str, dict[int, Appended]] = {}
        for item in self.world.appended:
            log = streams.setdefault(item.stream, {})
            if item.seq_num in log:
                self.fail(f"{item.stream}: seq_num {item.seq_num} appended twice")
            log[item.seq_num] = item
        for stream, log in sorted(streams.items()):
            gens = self.generations.setdefault(stream, [])
            current: Gen | None = None
            fragments: list[Appended] = []  # of a chunk stored in several records, so far
            for seq in sorted(log):
                item = log[seq]
                kind = classify(item.record)
                if fragments and (
                    kind.boundary or (kind is RecordKind.DATA and not _fragment(item))
                ):
                    fragments = []  # cut off: readers never show it
                if kind is RecordKind.CLAIM:
                    if current is not None and current.terminal is None:
                        self.fail(
                            f"{stream}@{seq}: instance {item.instance} claimed while the "
                            f"generation claimed at {current.claim_seq} by {current.claimer} "
                            "was open"
                        )
                    current = Gen(stream, seq, item.instance, item.at_ms, last_writer_ms=item.at_ms)
                    gens.append(current)
                    continue
                if kind in (RecordKind.TRIM, RecordKind.STOP):
                    continue
                if current is None or current.terminal is not None:
                    if kind is not RecordKind.HEARTBEAT:
                        self.fail(f"{stream}@{seq}: {kind.value} record outside a generation")
                    continue
                if kind.terminal:
                    current.terminal_token = fence_token(item.record)
                    current.terminal = kind
                    current.terminal_by = item.instance
                    current.terminal_ms = item.at_ms
                    current.terminal_batch = item.batch
                    continue
                if item.instance == current.claimer:
                    current.writer_times.append((item.at_ms, item.batch))
                if kind is not RecordKind.DATA:
                    continue
                part = _fragment(item)
                if part is not None:
                    index, count = part
                    if index != len(fragments) or count < 2:
                        self.fail(f"{stream}@{seq}: fragment {index}/{count} out of order")
                        fragments = []
                        continue
                    fragments.append(item)
                    if len(fragments) < count:
                        continue
                    body = b"".join(f.record.body for f in fragments).decode()
                    item, fragments = fragments[-1], []  # a chunk takes its last record's id
                else:
                    body = item.record.body.decode()
                if body.startswith('{"type":"ui-message"'):
                    current.message = body.encode()
                    continue
                sse_id = _sse_id(item)
                current.frames.append((sse_id, body))
                current.frame_batches.append(item.batch)
                self.by_id[(stream, sse_id)] = current
                chunk = json.loads(body)
                if chunk.get("type") == "text-delta":
                    current.deltas.append(chunk["delta"])
            for before, after in itertools.pairwise(gens):
                # a message answered once: never the next answer's message too
                key = answered_turn(before.terminal_token or "")
                if key is not None and after.message is not None:
                    if turn_key([after.message]) == key:
                        self.fail(
                            f"{stream}: the message answered by the generation claimed at "
                            f"{before.claim_seq} was answered again by {after.claim_seq}"
                        )
            for gen in gens:
                gen.taker = self.world.takeovers.get((stream, gen.claim_seq))
                if gen.taker is None and gen.terminal is RecordKind.ERROR:
                    if gen.terminal_by != gen.claimer:  # a close whose ack was lost
                        gen.taker = gen.terminal_by
                closing = gen.terminal_batch if gen.taker is not None else None
                gen.writer_frames = sum(1 for b in gen.frame_batches if b != closing)
                times = [at for at, b in gen.writer_times if b != closing]
                gen.last_writer_ms = max(times, default=gen.claimed_ms)
                self._check_generation(gen, log)

    def _check_generation(self, gen: Gen, log: dict[int, Appended]) -> None:
        where = f"{gen.stream} generation @{gen.claim_seq}"
        taker_frames = gen.frames[gen.writer_frames :]
        if gen.taken_over:
            assert gen.terminal_ms is not None
            orphan = self._orphan(gen)
            if gen.taker == gen.claimer and not orphan:
                self.fail(f"{where}: its own instance took it over")
            silence = gen.terminal_ms - gen.last_writer_ms
            # an orphan's claimer closes it as soon as it sees it landed (no writer ever
            # runs under it: its turn answered with an S2 error); anyone else waits a lease
            early_allowed = orphan and gen.taker == gen.claimer
            # a taker whose clock runs ahead of S2's sees the lease expire that much early,
            # yet never closes before a confirmation window of silence
            config = self.world.config
            ahead = self.world.ahead_ms(gen.taker) if gen.taker is not None else 0
            required = max(config.confirm_ms, config.lease_ms - ahead)
            if silence < required and not early_allowed:
                self.fail(f"{where}: taken over after only {silence:.0f} ms of silence")
            if gen.terminal is not RecordKind.ERROR:
                self.fail(f"{where}: closed by another instance with {gen.terminal}")
            for _, body in taker_frames:
                if json.loads(body).get("type") not in TAKER_CHUNKS:
                    self.fail(f"{where}: the taker appended {body}")
        elif gen.terminal_by is not None and gen.terminal_by != gen.claimer:
            self.fail(f"{where}: instance {gen.terminal_by} ended it without a takeover")
        elif taker_frames:
            self.fail(f"{where}: {len(taker_frames)} data records by other instances")
        ids = [i for i, _ in gen.frames]
        if ids != sorted(set(ids)):
            self.fail(f"{where}: SSE ids not strictly increasing: {ids}")
        uids = {d.split(".")[0] for d in gen.deltas}
        if len(uids) > 1:
            self.fail(f"{where}: deltas of several models interleave: {_short(gen.deltas)}")
        if uids:
            uid = uids.pop()
            expected = [f"{uid}.{i}" for i in range(len(gen.deltas))]
            if [d.split("~")[0] for d in gen.deltas] != expected:  # padding: SimConfig.big
                self.fail(f"{where}: deltas out of order or repeated: {_short(gen.deltas)}")
            if self.world.model_instance.get(uid) != gen.claimer:
                self.fail(f"{where}: model {uid} ran on {self.world.model_instance.get(uid)}")

    def _gen_of(self, view: View) -> Gen | None:
        for sse_id, _ in view.frames:
            if sse_id is not None:
                return self.by_id.get((view.stream, sse_id))
        return None

    def _claimed_for(self, view: View) -> Gen | None:
        """The generation a live turn's 200 answer claimed: its instance's first claim on
        the stream after the request came in."""
        claims = [
            g
            for g in self.generations.get(view.stream, [])
            if g.claimer == view.instance and g.claimed_ms >= view.opened_ms
        ]
        return min(claims, key=lambda g: g.claimed_ms) if claims else None

    # -- readers -------------------------------------------------------------------------

    def _bound_ms(self, gen: Gen, view: View) -> float | None:
        """When a reader of ``gen`` must have ended, or None when it may wait forever."""
        config = self.world.config
        if gen.terminal_ms is None:
            return None
        if gen.taken_over:
            # the reader's instance judges after a lease of its own waiting (whatever its
            # clock says of the records' timestamps)
            silent_from = max(gen.last_writer_ms, view.opened_ms)
            latest = silent_from + config.lease_ms + config.confirm_ms + SLACK_MS
            latest = max(latest, gen.terminal_ms + SLACK_MS)
        else:
            latest = gen.terminal_ms + SLACK_MS
        start = min(gen.last_writer_ms, view.opened_ms)
        # A replay that finds the answer silent for a lease closes it first (one conditional
        # append): an append S2 takes longer than the lease to acknowledge delays its start.
        slow = self.world.slow_append_ms
        return latest + slow + _outage_within(self.world, start, latest + slow + 10 * SLACK_MS)

    def check_replay(self, view: View) -> None:
        if view.status != 200:
            return
        name = (
            f"replay of {view.stream} on {view.instance} from {view.cursor} at {view.opened_ms:.0f}"
        )
        frames = [(i, body) for i, body in view.frames if body != "[DONE]"]
        if any(i is None for i, _ in frames):
            self.fail(f"{name}: a frame without an id: {_clip(frames)}")
            return
        gen = self._gen_of(view)
        if gen is None:
            if frames:
                self.fail(f"{name}: frames of no generation: {frames[:3]}")
            return
        expected = [f for f in gen.frames if view.cursor is None or f[0] > view.cursor]
        if frames != expected[: len(frames)]:
            self.fail(
                f"{name}: not a contiguous slice of the log:\n  got {_clip(frames)}\n"
                f"  log {_clip(expected)}"
            )
            return
        if view.cut or view.disconnected or view.error:
            return
        if not view.ended:
            self.fail(f"{name}: never ended (generation terminal {gen.terminal})")
            return
        if frames != expected:
            self.fail(f"{name}: ended early: got {len(frames)} of {len(expected)} frames")
        if gen.terminal is not None and not view.done:
            self.fail(f"{name}: ended without [DONE]")
        bound = self._bound_ms(gen, view)
        if bound is not None and view.ended_ms is not None and view.ended_ms > bound:
            self.fail(f"{name}: ended at {view.ended_ms:.0f} ms, later than {bound:.0f} ms")

    def check_live(self, view: View) -> None:
        name = f"live turn {view.model} on {view.stream}@{view.instance} at {view.opened_ms:.0f}"
        produced = self.world.produced.get(view.model or "", [])
        if view.status != 200:
            if produced:
                self.fail(f"{name}: answered {view.status} after its model produced {produced}")
            return
        gen = self._claimed_for(view)
        frames = view.frames
        ahead: list[str] = []
        if self.world.config.early:
            # Chunks sent before the claim was decided carry no id: they must open the log
            # of the generation the claim gave; an answer whose claim was then lost (or
            # failed) ends with that error terminal and has nothing in the log.
            ahead = [b for i, b in frames if i is None and b != "[DONE]"]
            ahead = ahead[: next((k for k, f in enumerate(frames) if f[0] is not None), None)]
            if ahead and _claim_failed(view):
                self._check_lost_claim(name, view)
                return
            logged = [b for _, b in gen.frames[: gen.writer_frames]] if gen is not None else []
            if ahead and (gen is None or (logged and logged[0] != ahead[0])):
                # no claim of this instance, or a later one: the client left before it heard
                # how the claim ended
                if not (view.cut or view.disconnected):
                    self.fail(f"{name}: began before its claim, which neither won nor failed")
                return
            if ahead and gen is not None:
                k = 0
                while k < min(len(ahead), len(logged)) and ahead[k] == logged[k]:
                    k += 1
                if k < min(len(ahead), len(logged)):
                    self.fail(f"{name}: sent before the claim {ahead}, the log has {logged}")
                    return
                frames = gen.frames[:k] + frames[k:]
        with_ids = [(i, b) for i, b in frames if i is not None]
        if gen is None:
            if with_ids and not view.cut:
                self.fail(f"{name}: live frames that are nowhere in the log: {with_ids[:3]}")
            return
        writer_part = gen.frames[: gen.writer_frames]
        if gen.claimer in self.world.crashed or view.cut:
            # What was in flight when its process died never reached the log.
            shorter = min(len(with_ids), len(writer_part))
            if with_ids[:shorter] != writer_part[:shorter]:
                self.fail(
                    f"{name}: live and log disagree:\n  live {with_ids}\n  log  {writer_part}"
                )
            return
        # (chunks sent before the claim that the log does not hold yet are not a terminal)
        lost_terminal = [b for i, b in frames[len(ahead) :] if i is None and b != "[DONE]"]
        if gen.taken_over:
            # The writer learns it was fenced out at its next append: a live response still
            # open then ends with the error terminal (live only); one that ended first cannot.
            shorter = min(len(with_ids), len(writer_part))
            if with_ids[:shorter] != writer_part[:shorter]:
                self.fail(
                    f"{name}: live and log disagree:\n  live {with_ids}\n  log  {writer_part}"
                )
            # (a client that left may have heard only the first of the terminal's chunks)
            ended_with = json.loads(lost_terminal[-1]).get("type") if lost_terminal else None
            if lost_terminal and ended_with != "error" and not view.disconnected:
                self.fail(f"{name}: fenced out, its live response ended with {lost_terminal}")
            return
        if lost_terminal:
            self.fail(f"{name}: frames without an id although nobody took it over: {lost_terminal}")
        if view.disconnected:
            if with_ids != gen.frames[: len(with_ids)]:
                log = gen.frames
                self.fail(
                    f"{name}: live is not a prefix of the log:\n  live {with_ids}\n  log {log}"
                )
            return
        if view.error or not view.ended:
            self.fail(f"{name}: the live response did not end ({view.error})")
            return
        if with_ids != gen.frames:
            self.fail(
                f"{name}: live differs from the log:\n  live {_clip(with_ids)}\n"
                f"  log  {_clip(gen.frames)}"
            )
        if not view.done:
            self.fail(f"{name}: ended without [DONE]")

    def _check_lost_claim(self, name: str, view: View) -> None:
        """A live answer begun before its claim, which the claim then lost (or failed)."""
        if any(i is not None for i, _ in view.frames):
            self.fail(
                f"{name}: its claim was lost, yet it sent frames with ids: {_clip(view.frames)}"
            )
        if view.cut or view.disconnected:
            return
        if view.error or not view.ended or not view.done:
            self.fail(f"{name}: its claim was lost and the response did not end ({view.error})")
            return
        last = json.loads(view.frames[-2][1]) if len(view.frames) > 1 else {}
        if last.get("type") != "error":
            self.fail(f"{name}: its claim was lost and the response ended with {last}")

    # -- writers and chats ---------------------------------------------------------------

    def check_writers(self) -> None:
        crashed = self.world.crashed
        for stream, gens in self.generations.items():
            for gen in gens:
                where = f"{stream} generation @{gen.claim_seq} by {gen.claimer}"
                if gen.claimer in crashed or self._orphan(gen):
                    continue
                if gen.terminal is None:
                    self.fail(f"{where}: its writer lives but the log has no terminal")
                    continue
                if gen.taken_over:
                    # Allowed after a lease of silence (checked above): a writer that S2 kept
                    # waiting that long is fenced out and tells its live client.
                    continue
                uids = {d.split(".")[0] for d in gen.deltas}
                for uid in uids:
                    if gen.deltas != self.world.produced.get(uid, []):
                        self.fail(
                            f"{where}: the log holds {_short(gen.deltas)}, the model produced "
                            f"{_short(self.world.produced.get(uid, []))}"
                        )

    def _orphan(self, gen: Gen) -> bool:
        """A claim whose turn failed with an S2 error (its ack lost): no writer ever ran.
        The turn answered 503, or (answering before the claim) its 200 never got an id."""
        for view in self.world.views:
            if (
                view.kind == "live"
                and view.instance == gen.claimer
                and view.stream == gen.stream
                and isinstance(view.status, str)
                and view.ended_ms is not None
                and view.opened_ms <= gen.claimed_ms <= view.ended_ms
            ):
                return gen.writer_frames == 0
            if (
                view.kind == "live"
                and view.instance == gen.claimer
                and view.stream == gen.stream
                and self.world.config.early
                and view.status == 200
                and all(i is None for i, _ in view.frames)
                and view.opened_ms <= gen.claimed_ms
                and (view.ended_ms is None or gen.claimed_ms <= view.ended_ms)
                and gen.writer_frames == 0
            ):
                return True  # begun before its claim, which failed (or the client left first)
        return False

    def check_probes(self) -> None:
        for stream, status in self.world.probes:
            if status == 200:
                continue
            if status == 409 and self.world.config.mode == "single-use":
                continue  # a single-use stream takes one answer
            self.fail(f"{stream}: a new turn after everything settled got {status}")


def check(world: World) -> list[str]:
    """Every violation of the invariants in ``world`` (empty when the run is correct)."""
    return Checker(world).run()


__all__ = ["Any", "check"]
