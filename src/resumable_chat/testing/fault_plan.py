"""``FaultPlan``: per-test, scripted failures for the S2-compatible test server.

A plan is a list of rules the server consults on every request and every SSE event (the
:class:`~resumable_chat.testing.s2_server.Faults` seam). Each rule names the S2 operations it
applies to (``append``, ``read``, ``read_session``, ``check_tail``..., see
:meth:`Faults.before_request`), may let the first ``skip`` matching requests through, and fires
``times`` times (``None``: until removed). Rules are checked in the order they were added;
the first that fires decides. Build one per test and serve it in the test's event loop::

    plan = FaultPlan()
    plan.fail("append", status=503, times=2)
    plan.lose_ack("append", skip=1)
    app = create_app(faults=plan)
    async with serve_app(app) as url: ...

The faults are those S2 clients must survive (https://s2.dev/docs/api, errors): added latency,
500/503, 429 with
``retry-after-ms``, 408, a connection that breaks after an append was written (the ack is
lost), a body cut short on its way (with a ``Content-Length`` that matches what is left, as
a proxy that mangles answers sends it), SSE read sessions cut between events or in the middle
of one, and ``error`` events.
:meth:`outage` fails everything until :meth:`end_outage`. ``injected`` records what fired.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resumable_chat.testing.s2_server import Faults, SessionFault, drop_connection

__all__ = ["FaultPlan", "FaultRule"]

FaultKind = Literal["latency", "status", "lose_ack", "garble", "session"]

_CODES = {408: "request_timeout", 429: "rate_limited", 500: "storage", 503: "unavailable"}


@dataclass(slots=True)
class FaultRule:
    """One scripted fault.

    - ``kind``: ``"latency"`` (sleep ``latency_s`` seconds, or wait for ``gate``, then
      serve), ``"status"``
      (answer ``status`` with an S2 error body, and ``retry-after-ms`` when
      ``retry_after_ms`` is set, without touching the log), ``"lose_ack"`` (serve the
      request, then break the connection before the response is complete), ``"garble"``
      (serve the request, then answer with the first half of its body) or ``"session"``
      (do ``session_fault`` to an SSE event).
    - ``operations``: the S2 operation ids it applies to (empty: every operation).
    - ``streams``: only requests on these stream names (empty: any).
    - ``skip``: matching requests (or events) let through before it fires.
    - ``times``: how often it fires (``None``: always).
    - ``events``: for ``"session"``, the SSE events it applies to (``batch``, ``ping``).
    """

    kind: FaultKind
    operations: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()
    skip: int = 0
    times: int | None = 1
    status: int = 503
    retry_after_ms: int | None = None
    latency_s: float = 0.0
    session_fault: SessionFault = "cut"
    events: frozenset[str] = frozenset({"batch"})
    gate: asyncio.Event | None = None
    fired: int = 0

    def release(self) -> None:
        """Let requests held by a :meth:`FaultPlan.hold` rule go on (and later ones pass)."""
        if self.gate is not None:
            self.gate.set()

    def matches(self, operation: str, stream: str | None) -> bool:
        """Whether the rule applies to ``operation`` on ``stream`` (ignoring its counters)."""
        if self.operations and operation not in self.operations:
            return False
        return not self.streams or stream in self.streams

    def take(self) -> bool:
        """Count one matching request; True when the rule fires for it."""
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``times`` times."""
        return self.times is not None and self.fired >= self.times


def _ops(operations: str | Collection[str]) -> frozenset[str]:
    return frozenset({operations} if isinstance(operations, str) else operations)


def _stream_of(request: Request) -> str | None:
    """The stream an S2 request names (its ``{stream}`` path parameter, already
    percent-decoded by the server's routes), else ``None``."""
    stream = request.path_params.get("stream")
    return stream if isinstance(stream, str) else None


@dataclass
class FaultPlan(Faults):
    """Scripted faults for one test (see the module docstring).

    ``rules``: the active rules, in order. ``injected``: ``(operation, kind)`` of every fault
    that fired. ``requests``: how many requests each operation received (faulted or not).
    """

    rules: list[FaultRule] = field(default_factory=list)
    injected: list[tuple[str, str]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    _fired: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    # -- building --------------------------------------------------------------------------

    def add(self, rule: FaultRule) -> FaultRule:
        """Append ``rule`` and return it."""
        self.rules.append(rule)
        return rule

    def fail(
        self,
        operations: str | Collection[str] = (),
        *,
        status: int = 503,
        retry_after_ms: int | None = None,
        skip: int = 0,
        times: int | None = 1,
        streams: Collection[str] = (),
    ) -> FaultRule:
        """Answer matching requests with ``status`` (S2 error body) without serving them.

        ``retry_after_ms`` (ms) adds the ``retry-after-ms`` header (S2 sends it with 429).
        """
        return self.add(
            FaultRule(
                "status",
                _ops(operations),
                frozenset(streams),
                skip,
                times,
                status=status,
                retry_after_ms=retry_after_ms,
            )
        )

    def delay(
        self,
        operations: str | Collection[str] = (),
        latency_s: float = 0.05,
        *,
        skip: int = 0,
        times: int | None = None,
    ) -> FaultRule:
        """Hold matching requests ``latency_s`` seconds before serving them."""
        return self.add(
            FaultRule("latency", _ops(operations), frozenset(), skip, times, latency_s=latency_s)
        )

    def hold(
        self,
        operations: str | Collection[str] = (),
        *,
        skip: int = 0,
        times: int | None = None,
    ) -> FaultRule:
        """Hold matching requests until the returned rule's :meth:`FaultRule.release`."""
        return self.add(
            FaultRule("latency", _ops(operations), frozenset(), skip, times, gate=asyncio.Event())
        )

    def lose_ack(
        self,
        operations: str | Collection[str] = "append",
        *,
        skip: int = 0,
        times: int | None = 1,
    ) -> FaultRule:
        """Serve matching requests (the append is written), then break the connection."""
        return self.add(FaultRule("lose_ack", _ops(operations), frozenset(), skip, times))

    def garble(
        self,
        operations: str | Collection[str] = "read",
        *,
        skip: int = 0,
        times: int | None = 1,
    ) -> FaultRule:
        """Serve matching requests, then answer with the first half of the response body and
        a ``Content-Length`` to match (the status and other headers as served): the client
        gets a complete HTTP answer whose JSON is cut. Streaming answers (read sessions) are
        left alone."""
        return self.add(FaultRule("garble", _ops(operations), frozenset(), skip, times))

    def cut_session(
        self,
        fault: SessionFault = "cut",
        *,
        events: Collection[str] = ("batch",),
        skip: int = 0,
        times: int | None = 1,
    ) -> FaultRule:
        """Do ``fault`` (``"cut"``, ``"cut_mid_event"`` or ``"error"``) to an SSE event of a
        read session; ``skip`` counts matching events across all sessions."""
        return self.add(
            FaultRule(
                "session",
                frozenset({"read_session"}),
                frozenset(),
                skip,
                times,
                session_fault=fault,
                events=frozenset(events),
            )
        )

    def outage(self, operations: str | Collection[str] = (), *, status: int = 503) -> FaultRule:
        """Fail every matching request with ``status`` until :meth:`end_outage`."""
        return self.fail(operations, status=status, times=None)

    def end_outage(self) -> None:
        """Remove every rule that fires forever (``times=None``)."""
        self.rules = [r for r in self.rules if r.times is not None]

    def clear(self) -> None:
        """Remove every rule (the log of injected faults stays)."""
        self.rules.clear()

    def count(self, kind: str | None = None) -> int:
        """How many faults fired (of ``kind``, when given)."""
        return sum(1 for _, k in self.injected if kind is None or k == kind)

    async def wait_injected(self, count: int, kind: str | None = None) -> None:
        """Wait until at least ``count`` faults (of ``kind``, when given) have fired."""
        while self.count(kind) < count:
            self._fired.clear()
            await self._fired.wait()

    def _record(self, operation: str, kind: str) -> None:
        self.injected.append((operation, kind))
        self._fired.set()

    # -- the Faults seam -------------------------------------------------------------------

    def firing(
        self, operation: str, stream: str | None, kinds: Collection[str]
    ) -> FaultRule | None:
        """The first rule of one of ``kinds`` that fires for ``operation`` on ``stream``
        (counted and recorded in :attr:`injected`), or ``None``. Used by the test server and
        by :class:`~resumable_chat.testing.fault_basin.FaultPlanBasin`."""
        for rule in self.rules:
            if rule.kind in kinds and rule.matches(operation, stream) and rule.take():
                self._record(operation, rule.kind)
                return rule
        return None

    async def before_request(self, request: Request, operation: str) -> Response | None:
        """Latency and status faults; remembers a ``lose_ack`` or ``garble`` for
        :meth:`after_request`."""
        self.requests[operation] = self.requests.get(operation, 0) + 1
        stream = _stream_of(request)
        rule = self.firing(operation, stream, ("latency", "status", "lose_ack", "garble"))
        if rule is None:
            return None
        if rule.kind == "latency":
            if rule.gate is not None:
                await rule.gate.wait()
            else:
                await asyncio.sleep(rule.latency_s)
            return None
        if rule.kind in ("lose_ack", "garble"):
            setattr(request.state, rule.kind, True)
            return None
        headers = {}
        if rule.retry_after_ms is not None:
            headers["retry-after-ms"] = str(rule.retry_after_ms)
        body = {"code": _CODES.get(rule.status, "other"), "message": "fault injected"}
        return JSONResponse(body, rule.status, headers=headers)

    async def after_request(self, request: Request, operation: str, response: Response) -> Response:
        """Break the connection of a request marked by a ``lose_ack`` rule; cut the body of
        one marked by a ``garble`` rule."""
        if getattr(request.state, "lose_ack", False):
            return drop_connection(response)
        body = getattr(response, "body", None)
        if getattr(request.state, "garble", False) and isinstance(body, bytes):
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            return Response(body[: len(body) // 2], response.status_code, headers=headers)
        return response

    async def event_fault(self, request: Request, event: str, index: int) -> SessionFault | None:
        """The first matching ``session`` rule's fault for this event, if one fires."""
        for rule in self.rules:
            if rule.kind == "session" and event in rule.events and rule.take():
                self._record("read_session", f"session:{rule.session_fault}")
                return rule.session_fault
        return None

    def describe(self) -> str:
        """A one-line JSON summary of the injected faults (for assertion messages)."""
        return json.dumps(self.injected)
