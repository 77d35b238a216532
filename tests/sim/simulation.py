"""Deterministic simulation of several chat instances over one S2 basin.

One seed fixes everything: the instances (each a ``ResumableChat`` with its own ownership
registry, as separate processes have), a shared in-memory basin behind a seeded
:class:`~resumable_chat.testing.fault_plan.FaultPlan` (latency, 5xx, lost acks, cut read
sessions, outages longer than the lease), and a random schedule of new turns (concurrent POSTs
on one chat included), stops from any instance, follows and resumes at random cursors, client
disconnects and instance crashes. It all runs on a virtual-time event loop, so leases and
takeovers cost no real time and a seed replays exactly.

After the schedule, faults heal and time runs on until every live writer has finished; then
:mod:`checks` verifies the invariants over every client's recorded view and every record ever
appended (trimmed ones included). ``python tests/sim/run.py --seed N`` replays one seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import resumable_chat.chat.producer as producer_module
import resumable_chat.log.engine as engine_module
import resumable_chat.log.scan as scan_module
from resumable_chat import create_resumable_chat
from resumable_chat.chat import encode_chunk
from resumable_chat.chat.core import ResumableChat
from resumable_chat.chat.fanout import AnswerTaps
from resumable_chat.clock import LoopClock
from resumable_chat.log import Ownership, StopSignal
from resumable_chat.log.takeover import close_lost as _CLOSE_LOST
from resumable_chat.s2 import Basin, MemoryBasin
from resumable_chat.s2.errors import S2Error
from resumable_chat.s2.pacing import AppendPacing
from resumable_chat.s2.records import (
    MAX_BATCH_METERED_BYTES,
    AppendAck,
    AppendInput,
    AppendRecord,
    ReadBatch,
    StreamPosition,
)
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.virtual_time import run_virtual

Mode = Literal["single-use", "shared", "session"]
MODES: tuple[Mode, ...] = ("session", "shared", "single-use")


@dataclass(frozen=True)
class SimConfig:
    """What one run simulates. Times are ms of virtual time."""

    seed: int
    mode: Mode = "session"
    instances: int = 3
    chats: int = 2
    operations: int = 10
    lease_ms: int = 1000
    heartbeat_ms: int = 250
    span_ms: int = 6000
    faults: bool = True
    #: every instance answers before its claim is decided (``respond_before_claim``)
    early: bool = False
    #: records the first read from the tail takes when looking for the latest generation
    #: (``resumable_chat.log.scan.TAIL_WINDOW``); a small one sends these short answers down
    #: the paths of long ones (the claim behind the first read: the stop's token probe,
    #: replays that start from records read back window by window)
    tail_window: int = scan_module.TAIL_WINDOW
    #: every delta is padded after a ``~`` to 1/2, 1/3 or 1/4 of S2's 1 MiB per append as
    #: stored (a few bytes under it): records queued while an append is in flight fill
    #: batches exactly, and a batch that a remote stop moved no longer fits until it is cut
    #: again (its records gain ``sse-id`` headers); and one ``data-blob`` chunk of 1-2.5 MB
    #: per answer, which no dialect cuts: stored in fragment records that a stop may split
    #: and a takeover may cut off
    big: bool = False
    #: bytes a live response may fall behind by before it reads the rest of its answer from
    #: the log (``resumable_chat.chat.producer.LIVE_BACKLOG_BYTES``); a small one sends the
    #: clients that are behind (a send that waits) down that path, mid-answer, under the same
    #: faults, stops and takeovers
    live_backlog_bytes: int | None = None
    #: bytes all the live responses of the run may hold together for clients behind
    #: (``resumable_chat.chat.producer.LIVE_BACKLOG_TOTAL_BYTES``); a small one sends a
    #: response down the log path when others hold the rest, whatever its own backlog
    live_backlog_total_bytes: int | None = None
    #: bytes of frames each answer's tap keeps for the followers on one instance
    #: (``resumable_chat.chat.fanout.DEFAULT_MAX_BYTES``); a small one sends followers that
    #: are behind down the path that reads the log itself, mid-answer
    tap_max_bytes: int | None = None
    #: ms each instance's clock may run ahead of or behind S2's (the basin keeps true time,
    #: as S2 stamps the records); each instance's offset is drawn from the seed, in
    #: ``[-skew_ms, skew_ms]``: a judge ahead sees leases expire early, one behind late
    skew_ms: int = 0

    @property
    def confirm_ms(self) -> int:
        return 2 * self.heartbeat_ms


@dataclass
class Appended:
    """One record as appended: where, by whom, when (virtual ms)."""

    stream: str
    seq_num: int
    record: AppendRecord
    instance: int
    at_ms: float
    batch: int  # which append call (records of one call share it)


@dataclass
class View:
    """What one client received from one response."""

    kind: Literal["live", "replay"]
    instance: int
    stream: str
    opened_ms: float
    cursor: int | None = None
    status: int | str = 0
    frames: list[tuple[int | None, str]] = field(default_factory=list)
    done: bool = False  # ended with [DONE]
    ended: bool = False  # the response ended by itself
    ended_ms: float | None = None
    disconnected: bool = False  # the client hung up on purpose
    cut: bool = False  # its instance crashed under it
    error: str | None = None  # the response broke off with this error
    model: str | None = None  # live views: the generation's model uid


@dataclass
class World:
    """Everything a run records, for the checks."""

    config: SimConfig
    appended: list[Appended] = field(default_factory=list)
    views: list[View] = field(default_factory=list)
    produced: dict[str, list[str]] = field(default_factory=dict)  # model uid → deltas yielded
    model_instance: dict[str, int] = field(default_factory=dict)
    crashed: dict[int, float] = field(default_factory=dict)  # instance → crash time (ms)
    outages: list[tuple[float, float]] = field(default_factory=list)
    slow_append_ms: float = 0.0  # the longest injected "S2 slower than the lease" append
    probes: list[tuple[str, int | str]] = field(default_factory=list)
    takeovers: dict[tuple[str, int], int] = field(default_factory=dict)  # (stream, claim) → by
    events: list[str] = field(default_factory=list)
    heal_ms: float = 0.0
    settled_ms: float = 0.0
    unfinished: list[str] = field(default_factory=list)
    #: bytes the live channels still counted against the loop's total once all had ended
    held_backlog_bytes: int = 0
    #: ms each instance's clock runs ahead of S2's (negative: behind), by instance
    clock_offsets: list[int] = field(default_factory=list)

    def ahead_ms(self, instance: int) -> int:
        """How far ``instance``'s clock runs ahead of S2's (0 when it runs behind)."""
        return max(0, self.clock_offsets[instance]) if self.clock_offsets else 0

    def behind_ms(self, instance: int | None = None) -> int:
        """How far ``instance``'s clock (by default the furthest behind) runs behind S2's."""
        if not self.clock_offsets:
            return 0
        offsets = self.clock_offsets if instance is None else [self.clock_offsets[instance]]
        return max(0, -min(offsets))


def _padded(delta: str, share: int) -> str:
    """``delta`` + ``~`` + padding, so that its ``text-delta`` record takes
    ``MAX_BATCH_METERED_BYTES // share`` metered bytes: ``share`` of them fill one append
    with fewer than ``share`` bytes to spare."""
    chunk = {"type": "text-delta", "id": "t", "delta": delta + "~"}
    body = MAX_BATCH_METERED_BYTES // share - 8  # a record's metered overhead
    return delta + "~" + "x" * (body - len(encode_chunk(chunk)))


def now_ms() -> float:
    return asyncio.get_running_loop().time() * 1000


class RecordingBasin(Basin):
    """Records every append that takes effect (with its instance) into the world, and gives
    every call a network round trip of 0-4 ms (seeded), so concurrent calls interleave."""

    def __init__(self, inner: MemoryBasin, world: World, instance: int, rng: random.Random) -> None:
        self.inner = inner
        self.world = world
        self.instance = instance
        self.name = inner.name
        self.rng = rng

    async def _trip(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, 0.004))
        if self.instance in self.world.crashed:  # a dead process's calls never arrive
            await asyncio.Event().wait()

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        await self._trip()
        ack = await self.inner.append(stream, input)
        self._record(stream, input.records, ack.start.seq_num)
        return ack

    def append_nowait(self, stream: str, input: AppendInput) -> AppendAck | None:
        """Half the time (seeded) an embedded basin's synchronous append, so the writer's
        path without its task runs under the same faults; else declined (``append``)."""
        if self.instance in self.world.crashed or self.rng.random() < 0.5:
            return None
        ack = self.inner.append_nowait(stream, input)
        if ack is not None:
            self._record(stream, input.records, ack.start.seq_num)
        return ack

    def append_body_nowait(
        self, stream: str, body: bytes, *, match_seq_num: int, fencing_token: str
    ) -> int | None:
        """Half the time (seeded) the embedded basin's one-record synchronous append (the
        writer's path for a chunk at a time); else declined (the writer's other paths)."""
        if self.instance in self.world.crashed or self.rng.random() < 0.5:
            return None
        timestamp = self.inner.append_body_nowait(
            stream, body, match_seq_num=match_seq_num, fencing_token=fencing_token
        )
        if timestamp is not None:
            self._record(stream, [AppendRecord(body)], match_seq_num)
        return timestamp

    def _record(self, stream: str, records: list[AppendRecord], start: int) -> None:
        at = now_ms()
        batch = len(self.world.appended)
        for offset, record in enumerate(records):
            self.world.appended.append(
                Appended(stream, start + offset, record, self.instance, at, batch)
            )

    async def read(self, stream: str, **kwargs: Any) -> ReadBatch:
        await self._trip()
        return await self.inner.read(stream, **kwargs)

    async def check_tail(self, stream: str) -> StreamPosition:
        await self._trip()
        return await self.inner.check_tail(stream)

    def follow(self, stream: str, *, seq_num: int = 0, clamp: bool = False) -> Any:
        return self.inner.follow(stream, seq_num=seq_num, clamp=clamp)

    async def create_stream(self, stream: str) -> None:
        await self.inner.create_stream(stream)

    async def delete_stream(self, stream: str) -> None:
        await self.inner.delete_stream(stream)


def parse_frames(data: bytes) -> list[tuple[int | None, str]]:
    """SSE frames → ``[(id or None, data)]`` (comments skipped)."""
    out: list[tuple[int | None, str]] = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        sse_id: int | None = None
        payload: str | None = None
        for line in block.split("\n"):
            if line.startswith("id: "):
                sse_id = int(line[4:])
            elif line.startswith("data: "):
                payload = line[6:]
        if payload is not None:
            out.append((sse_id, payload))
    return out


class Simulation:
    """One seeded run (see the module docstring)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.world = World(config)
        self.clock = LoopClock()
        if config.skew_ms:  # from a generator of its own: the schedule stays the seed's
            offsets = random.Random(f"clocks {config.seed}")
            self.world.clock_offsets = [
                offsets.randint(-config.skew_ms, config.skew_ms) for _ in range(config.instances)
            ]
        self.plan = FaultPlan()
        self.chats: list[ResumableChat] = []
        self.basins: list[FaultPlanBasin] = []
        self.client_tasks: dict[int, set[asyncio.Task[None]]] = {}
        self.all_clients: set[asyncio.Task[None]] = set()
        self.models = 0
        self.streams: list[str] = []
        # how long a client's send may wait (s): a client behind; with a small live backlog,
        # sometimes long enough for the live answer to run ahead of it by many chunks
        self._send_waits: tuple[float, ...] = (0, 0, 0, 0.001, 0.02)
        if config.live_backlog_bytes is not None or config.live_backlog_total_bytes is not None:
            self._send_waits += (0.3,)

    # -- set-up ------------------------------------------------------------------------

    def _clock_of(self, index: int) -> LoopClock:
        """Instance ``index``'s clock: S2's, or off it by the instance's offset."""
        offsets = self.world.clock_offsets
        if not offsets:
            return self.clock
        return LoopClock(self.clock.epoch_ms + offsets[index])

    def _instance(self, index: int, memory: MemoryBasin) -> None:
        config = self.config
        recording = RecordingBasin(
            memory, self.world, index, random.Random(self.rng.getrandbits(64))
        )
        if self.rng.random() < 0.5:  # appends cost a request each: the writers share a budget
            recording.pacing = AppendPacing(self.rng.choice([20, 100, 1000]))
        faulty = FaultPlanBasin(recording, self.plan)
        chat = create_resumable_chat(
            protocol="ai-sdk",
            mode=config.mode,
            basin=faulty,
            lease_ms=config.lease_ms,
            heartbeat_ms=config.heartbeat_ms,
            keepalive_s=0,
            respond_before_claim=config.early,
            clock=self._clock_of(index),
            ownership=Ownership(),
            rng=random.Random(self.rng.getrandbits(64)),
            trim_delay_ms=10 * config.span_ms,
        )
        if config.tap_max_bytes is not None:
            chat._taps = AnswerTaps(
                chat.engine, chat.dialect.is_history_record, max_bytes=config.tap_max_bytes
            )
        self.basins.append(faulty)
        self.chats.append(chat)
        self.client_tasks[index] = set()

    def _random_faults(self) -> None:
        rng, plan = self.rng, self.plan
        if not self.config.faults:
            return
        for _ in range(rng.randint(0, 3)):
            operation = rng.choice(["append", "read", "check_tail", "read_session"])
            latency = rng.uniform(0.005, 0.15)
            plan.delay(operation, latency, skip=rng.randint(0, 30), times=rng.randint(1, 20))
        for _ in range(rng.randint(0, 3)):
            operation = rng.choice(["append", "read", "check_tail", "read_session"])
            status = rng.choice([500, 503, 408, 429])
            plan.fail(operation, status=status, skip=rng.randint(0, 60), times=rng.randint(1, 3))
        for _ in range(rng.randint(0, 2)):
            plan.lose_ack("append", skip=rng.randint(0, 40), times=1)
        for _ in range(rng.randint(0, 2)):
            plan.cut_session(skip=rng.randint(0, 20), times=rng.randint(1, 2))
        if rng.random() < 0.3:  # S2 slower than the lease for a few appends
            latency = rng.uniform(1.1, 2.0) * self.config.lease_ms / 1000
            plan.delay("append", latency, skip=rng.randint(0, 40), times=rng.randint(1, 4))
            self.world.slow_append_ms = max(self.world.slow_append_ms, latency * 1000)

    # -- clients -----------------------------------------------------------------------

    def _stream(self) -> str:
        if self.config.mode == "single-use" and self.rng.random() < 0.5:
            name = f"chat-u{len(self.streams)}"
            self.streams.append(name)
            return name
        if not self.streams or (len(self.streams) < self.config.chats and self.rng.random() < 0.5):
            self.streams.append(f"chat-c{len(self.streams)}")
        return self.rng.choice(self.streams)

    def _model(self, instance: int) -> tuple[str, Any]:
        uid = f"m{self.models}"
        self.models += 1
        produced: list[str] = []
        self.world.produced[uid] = produced
        self.world.model_instance[uid] = instance
        rng = random.Random(self.rng.getrandbits(64))
        length = rng.randint(1, 8)
        fails = rng.random() < 0.05
        silent = rng.random() < 0.1
        share = rng.choice((2, 3, 4))
        blob = (
            (rng.randrange(length), rng.randint(1_100_000, 2_600_000)) if self.config.big else None
        )

        async def model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "text-start", "id": "t"}
            for i in range(length):
                pause = rng.uniform(0.0, 0.15)
                if silent and i == length // 2:
                    pause = rng.uniform(0.5, 3.0) * self.config.lease_ms / 1000
                await asyncio.sleep(pause)
                delta = f"{uid}.{i}"
                if self.config.big:
                    delta = _padded(delta, share)
                produced.append(delta)
                yield {"type": "text-delta", "id": "t", "delta": delta}
                if blob is not None and i == blob[0]:
                    # a part no dialect cuts, over one record: stored in fragments
                    yield {"type": "data-blob", "data": f"{uid}.{i}:" + "b" * blob[1]}
                if fails and i == length // 2:
                    raise RuntimeError("model failed")
            yield {"type": "text-end", "id": "t"}
            yield {"type": "finish", "finishReason": "stop"}

        return uid, model

    def _spawn(self, instance: int, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.client_tasks[instance].add(task)
        self.all_clients.add(task)
        task.add_done_callback(self.client_tasks[instance].discard)

    async def _consume(self, view: View, response: Any, instance: int) -> None:
        """Serve ``response`` as a server would (its ASGI call) to a client that reads at a
        random pace (a send may wait: a client behind) and may hang up after some frames;
        frames reach it from the response's task or from whichever task makes them
        (``SseResponse.send_now``: the producer, a tap)."""
        disconnect_after = self.rng.randint(0, 12) if self.rng.random() < 0.25 else None
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] != "http.response.body":
                return
            # a client behind: the server waits for its buffer to drain before it writes
            await asyncio.sleep(self.rng.choice(self._send_waits))
            if gone.is_set():
                raise OSError("the client hung up")  # as ASGI 2.4 servers do
            data = message.get("body", b"")
            if data:
                view.frames.extend(parse_frames(data))
                if disconnect_after is not None and len(view.frames) >= disconnect_after:
                    view.disconnected = True
                    gone.set()
                    return
            if not message.get("more_body", False):
                view.ended = True
                view.ended_ms = now_ms()

        try:
            await response({"type": "http", "method": "GET"}, receive, send)
        except asyncio.CancelledError:
            view.cut = True
            raise
        except Exception as exc:  # the response broke off (a 200 that fails mid-way)
            view.error = repr(exc)
        finally:
            view.done = bool(view.frames) and view.frames[-1][1] == "[DONE]"
        if view.disconnected and view.kind == "live" and self.rng.random() < 0.7:
            # the client resumes right away from its last id, anywhere
            ids = [i for i, _ in view.frames if i is not None]
            cursor = ids[-1] if ids else None
            target = self._alive_instance()
            if target is not None:
                self._spawn(target, self._follow(target, view.stream, cursor))

    async def _turn(
        self, instance: int, stream: str, copy_of: dict[str, Any] | None = None
    ) -> None:
        """One turn; ``copy_of``: the message of a turn sent again (answered once per
        message), as two tabs or a turn sent to two instances do."""
        uid, model = self._model(instance)
        view = View("live", instance, stream, now_ms(), model=uid)
        self.world.views.append(view)
        if copy_of is None:
            message = {"id": f"u-{uid}", "role": "user", "parts": [{"type": "text", "text": uid}]}
            once = self.rng.random() < 0.3
            if once and self.rng.random() < 0.5:  # the same request on another instance too
                other = self._alive_instance()
                if other is not None:
                    self._spawn(other, self._turn(other, stream, copy_of=message))
        else:
            message, once = copy_of, True
        new_chat = self.rng.random() < 0.5  # a one-round-trip claim, right or wrong
        try:
            response = await self.chats[instance].make_resumable(
                stream, model, message=message, new_chat=new_chat, once_per_message=once
            )
        except S2Error as exc:
            view.status = f"s2:{type(exc).__name__}"
            view.ended_ms = now_ms()
            self.world.events.append(
                f"{view.opened_ms:.0f} turn {uid} {stream}@{instance}: {exc!r}"
            )
            return
        view.status = response.status_code
        self.world.events.append(
            f"{view.opened_ms:.0f} turn {uid} {stream}@{instance}: {view.status}"
        )
        if response.status_code == 200:
            await self._consume(view, response, instance)

    async def _follow(self, instance: int, stream: str, cursor: int | None = None) -> None:
        view = View("replay", instance, stream, now_ms(), cursor=cursor)
        self.world.views.append(view)
        try:
            response = await self.chats[instance].replay(stream, from_seq_num=cursor)
        except S2Error as exc:
            view.status = f"s2:{type(exc).__name__}"
            return
        view.status = response.status_code
        self.world.events.append(
            f"{view.opened_ms:.0f} follow {stream}@{instance} from {cursor}: {view.status}"
        )
        if response.status_code == 200:
            await self._consume(view, response, instance)

    async def _stop(self, instance: int, stream: str) -> None:
        try:
            response = await self.chats[instance].stop_session(stream)
            status = response.status_code
            self.world.events.append(f"{now_ms():.0f} stop {stream}@{instance}: {status}")
        except S2Error as exc:
            self.world.events.append(f"{now_ms():.0f} stop {stream}@{instance}: {exc!r}")

    def _alive_instance(self) -> int | None:
        alive = [i for i in range(len(self.chats)) if i not in self.world.crashed]
        return self.rng.choice(alive) if alive else None

    async def _crash(self, instance: int) -> None:
        if instance in self.world.crashed or len(self.world.crashed) >= len(self.chats) - 1:
            return
        self.world.crashed[instance] = now_ms()
        self.world.events.append(f"{now_ms():.0f} crash {instance}")
        self.basins[instance].crash()
        chat = self.chats[instance]
        tasks = list(self.client_tasks[instance])
        tasks += [g.task for g in chat.engine.running]
        tasks += list(chat.engine._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _outage(self, duration_s: float) -> None:
        start = now_ms()
        self.world.events.append(f"{start:.0f} outage for {duration_s * 1000:.0f} ms")
        rule = self.plan.outage()
        await asyncio.sleep(duration_s)
        with contextlib.suppress(ValueError):
            self.plan.rules.remove(rule)
        self.world.outages.append((start, now_ms()))

    # -- the run -----------------------------------------------------------------------

    async def _close_lost(
        self, basin: Basin, stream: str, latest: Any, *args: Any, **kw: Any
    ) -> bool:
        closed = await _CLOSE_LOST(basin, stream, latest, *args, **kw)
        if closed and latest.claim is not None:
            instance = next(i for i, b in enumerate(self.basins) if b is basin)
            self.world.takeovers[(stream, latest.claim.seq_num)] = instance
        return closed

    async def run(self) -> World:
        engine_module.close_lost = self._close_lost  # record who closes what
        tail_window, scan_module.TAIL_WINDOW = scan_module.TAIL_WINDOW, self.config.tail_window
        backlog = producer_module.LIVE_BACKLOG_BYTES
        total = producer_module.LIVE_BACKLOG_TOTAL_BYTES
        if self.config.live_backlog_bytes is not None:
            producer_module.LIVE_BACKLOG_BYTES = self.config.live_backlog_bytes
        if self.config.live_backlog_total_bytes is not None:
            producer_module.LIVE_BACKLOG_TOTAL_BYTES = self.config.live_backlog_total_bytes
        try:
            world = await self._run()
            world.held_backlog_bytes = producer_module.live_backlog_bytes()
            return world
        finally:
            engine_module.close_lost = _CLOSE_LOST
            scan_module.TAIL_WINDOW = tail_window
            producer_module.LIVE_BACKLOG_BYTES = backlog
            producer_module.LIVE_BACKLOG_TOTAL_BYTES = total

    async def _run(self) -> World:
        config, rng = self.config, self.rng
        memory = MemoryBasin(clock=self.clock)
        for index in range(config.instances):
            self._instance(index, memory)
        self._random_faults()
        schedule: list[tuple[float, str]] = []
        for _ in range(config.operations):
            schedule.append(
                (
                    rng.uniform(0, config.span_ms),
                    rng.choices(
                        ["turn", "burst", "race", "follow", "resume", "stop", "crash", "outage"],
                        weights=[
                            30,
                            8,
                            8,
                            20,
                            10,
                            12,
                            4 if config.faults else 0,
                            5 if config.faults else 0,
                        ],
                    )[0],
                )
            )
        schedule.sort()
        for at, op in schedule:
            await asyncio.sleep(max(0.0, at / 1000 - asyncio.get_running_loop().time()))
            instance = self._alive_instance()
            if instance is None:
                break
            stream = self._stream()
            if op == "race":  # the first turn of a new chat, from every instance at once
                stream = f"chat-r{len(self.streams)}"
                self.streams.append(stream)
                op = "burst"
            if op == "turn":
                self._spawn(instance, self._turn(instance, stream))
            elif op == "burst":  # concurrent POSTs on one chat from several instances
                for other in range(len(self.chats)):
                    if other not in self.world.crashed:
                        self._spawn(other, self._turn(other, stream))
            elif op == "follow":
                self._spawn(instance, self._follow(instance, stream))
            elif op == "resume":
                cursor = rng.randint(0, 40)
                self._spawn(instance, self._follow(instance, stream, cursor))
            elif op == "stop":
                self._spawn(instance, self._stop(instance, stream))
            elif op == "crash":
                await self._crash(rng.randrange(len(self.chats)))
            elif op == "outage":
                duration = rng.uniform(0.2, 3.0) * config.lease_ms / 1000
                self._spawn(instance, self._outage(duration))
        # heal: no more faults, then let every writer and reader finish
        await asyncio.sleep(max(0.0, config.span_ms / 1000 - asyncio.get_running_loop().time()))
        self.plan.clear()
        self.world.heal_ms = now_ms()
        await self._settle()
        await self._probe()
        for chat in self.chats:
            with contextlib.suppress(Exception):
                await chat.aclose(drain_timeout_s=1)
        return self.world

    async def _settle(self) -> None:
        """Let the schedule's clients and live writers finish (bounded)."""
        config = self.config
        limit = 4 * (config.lease_ms + config.confirm_ms + self.world.behind_ms()) / 1000 + 10
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            busy = [t for t in self.all_clients if not t.done()]
            running = [
                g
                for i, chat in enumerate(self.chats)
                if i not in self.world.crashed
                for g in [*chat.engine.running, *chat.engine.claiming]
            ]
            if not busy and not running:
                break
            await asyncio.sleep(0.05)
        self.world.settled_ms = now_ms()
        for task in self.all_clients:
            if not task.done():
                self.world.unfinished.append(task.get_name())
                task.cancel()
        await asyncio.gather(*self.all_clients, return_exceptions=True)

    async def _probe(self) -> None:
        """After every crash, each chat takes a new turn once a lease has passed."""
        config = self.config
        wait_ms = config.lease_ms + config.confirm_ms + self.world.behind_ms()
        await asyncio.sleep(wait_ms / 1000)
        instance = self._alive_instance()
        assert instance is not None
        for stream in list(self.streams):
            uid, model = self._model(instance)
            view = View("live", instance, stream, now_ms(), model=uid)
            self.world.views.append(view)
            try:
                response = await self.chats[instance].make_resumable(stream, model)
            except S2Error as exc:
                self.world.probes.append((stream, f"s2:{exc!r}"))
                continue
            self.world.probes.append((stream, response.status_code))
            view.status = response.status_code
            if response.status_code == 200:
                body = response.body_iterator
                async for data in body:
                    view.frames.extend(parse_frames(data))
                view.ended = True
                view.done = view.frames[-1][1] == "[DONE]"
                view.ended_ms = now_ms()


def simulate(config: SimConfig) -> World:
    """Run one seed to the end on a fresh virtual-time loop."""
    return run_virtual(Simulation(config).run())


def decode(body: str) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
