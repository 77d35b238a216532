"""A :class:`~resumable_chat.testing.fault_plan.FaultPlan` applied to a basin in process.

:class:`FaultPlanBasin` wraps any basin (typically a :class:`~resumable_chat.s2.MemoryBasin`)
and injects the plan's faults where the S2 test server would, but as the *S2 client* sees
them once its own retries are spent: a ``status`` rule raises
:class:`~resumable_chat.s2.errors.S2UnavailableError` (no effect), ``lose_ack`` performs the
append and then raises the same error (the ack is lost), ``latency`` sleeps on the event loop,
and a ``session`` rule cuts a live follow, which resumes at the next record after a short
pause (as ``HttpBasin`` reconnects) unless a ``status`` rule for ``read_session`` fires, which
ends the follow with the error. Operation ids are the test server's: ``append``, ``read``,
``check_tail``, ``read_session``, ``create_stream``, ``delete_stream``.

Because it needs no sockets, it runs on a virtual-time loop
(:mod:`resumable_chat.testing.virtual_time`): the deterministic simulation of several chat
instances over one basin uses it. :meth:`FaultPlanBasin.crash` makes every later call hang, as
the calls of a killed process never reach S2.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import S2UnavailableError
from resumable_chat.s2.records import AppendAck, AppendInput, ReadBatch, StreamPosition
from resumable_chat.testing.fault_plan import FaultPlan

__all__ = ["FaultPlanBasin"]

_CALL_FAULTS = ("latency", "status", "lose_ack")


class FaultPlanBasin(Basin):
    """``basin`` with ``plan``'s faults (see the module docstring).

    Args:
        basin: the basin that holds the data.
        plan: the faults; rules may be added and removed while it runs.
        reconnect_s: pause (seconds) before a cut follow resumes.
    """

    def __init__(self, basin: Basin, plan: FaultPlan, *, reconnect_s: float = 0.1) -> None:
        self.inner = basin
        self.plan = plan
        self.name = basin.name
        self.deadline_s = basin.deadline_s
        self.pacing = basin.pacing
        self.in_memory = basin.in_memory
        self.reconnect_s = reconnect_s
        self._crashed = asyncio.Event()

    def crash(self) -> None:
        """From now on every call hangs (until cancelled), like a killed process's calls."""
        self._crashed.set()

    async def _fault(self, operation: str, stream: str | None) -> bool:
        """Apply a call fault; True when the call must lose its ack after taking effect."""
        if self._crashed.is_set():
            await asyncio.Event().wait()
        rule = self.plan.firing(operation, stream, _CALL_FAULTS)
        if rule is None:
            return False
        if rule.kind == "latency":
            if rule.gate is not None:
                await rule.gate.wait()
            else:
                await asyncio.sleep(rule.latency_s)
            await self._hang_if_crashed()
            return False
        if rule.kind == "status":
            raise S2UnavailableError(
                f"S2 {operation} failed: {rule.status} (fault injected)", status=rule.status
            )
        return True

    async def _hang_if_crashed(self) -> None:
        if self._crashed.is_set():
            await asyncio.Event().wait()

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        """Append through the plan's ``append`` faults."""
        lose_ack = await self._fault("append", stream)
        ack = await self.inner.append(stream, input)
        await self._hang_if_crashed()
        if lose_ack:
            raise S2UnavailableError("S2 append failed: the connection broke (ack lost)")
        return ack

    def append_nowait(self, stream: str, input: AppendInput) -> AppendAck | None:
        """``inner.append_nowait`` while no ``append`` fault of the plan could still fire
        on ``stream`` and the basin has not crashed; else ``None`` (use :meth:`append`,
        which applies them). No rule is counted here."""
        if self._appends_may_fault(stream):
            return None
        return self.inner.append_nowait(stream, input)

    def append_body_nowait(
        self, stream: str, body: bytes, *, match_seq_num: int, fencing_token: str
    ) -> int | None:
        """``inner.append_body_nowait`` under the same rule as :meth:`append_nowait`."""
        if self._appends_may_fault(stream):
            return None
        return self.inner.append_body_nowait(
            stream, body, match_seq_num=match_seq_num, fencing_token=fencing_token
        )

    def _appends_may_fault(self, stream: str) -> bool:
        """True when an ``append`` fault of the plan could still fire on ``stream`` or the
        basin has crashed (no rule is counted here)."""
        return self._crashed.is_set() or any(
            rule.kind in _CALL_FAULTS and not rule.exhausted and rule.matches("append", stream)
            for rule in self.plan.rules
        )

    async def read(
        self,
        stream: str,
        *,
        seq_num: int | None = None,
        timestamp: int | None = None,
        tail_offset: int | None = None,
        count: int | None = None,
        bytes: int | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: float = 0,
    ) -> ReadBatch:
        """Read through the plan's ``read`` faults."""
        await self._fault("read", stream)
        batch = await self.inner.read(
            stream,
            seq_num=seq_num,
            timestamp=timestamp,
            tail_offset=tail_offset,
            count=count,
            bytes=bytes,
            until=until,
            clamp=clamp,
            wait=wait,
        )
        await self._hang_if_crashed()
        return batch

    async def check_tail(self, stream: str) -> StreamPosition:
        """Check the tail through the plan's ``check_tail`` faults."""
        await self._fault("check_tail", stream)
        tail = await self.inner.check_tail(stream)
        await self._hang_if_crashed()
        return tail

    async def follow(
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        """Follow through the plan's ``read_session`` faults; a cut resumes at the next
        record after ``reconnect_s`` unless a ``status`` rule fires then."""
        position, first = seq_num, True
        while True:
            await self._fault("read_session", stream)
            batches = self.inner.follow(stream, seq_num=position, clamp=clamp or not first)
            first = False
            cut = False
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    await self._hang_if_crashed()
                    fault = self.plan.firing("read_session", stream, ("session",))
                    if fault is not None:
                        cut = True
                        break
                    if batch.records:
                        position = batch.records[-1].seq_num + 1
                    yield batch
            if not cut:
                return
            await asyncio.sleep(self.reconnect_s)

    async def create_stream(self, stream: str) -> None:
        """Create through the plan's ``create_stream`` faults."""
        await self._fault("create_stream", stream)
        await self.inner.create_stream(stream)

    async def delete_stream(self, stream: str) -> None:
        """Delete through the plan's ``delete_stream`` faults."""
        await self._fault("delete_stream", stream)
        await self.inner.delete_stream(stream)
