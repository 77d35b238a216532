"""SSE framing and the streaming response every SSE route of the package returns.

Frames are built once as bytes (``id: <seq_num+1>\\ndata: <json>\\n\\n``) and stored bodies
are sent verbatim on replay: no JSON re-encoding. :class:`SseResponse` sends ready frames as
they come, with keep-alive comments on an idle stream, client-disconnect detection and a
graceful end when the server shuts down, at the cost of one extra task per connection (it is
the response every follower holds, so it is kept lean; see ``docs/concepts.md``). The task
that makes a frame may also send it itself while the response is idle
(:meth:`SseResponse.send_now`), saving the response's task a wake-up per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import signal
from collections.abc import AsyncIterable, Callable, Generator, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from resumable_chat.tasks import forget_cancellation

__all__ = [
    "COALESCE_WINDOW_S",
    "DEFAULT_KEEPALIVE_S",
    "DONE_FRAME",
    "SseResponse",
    "event_frame",
    "sse_response",
]

#: Seconds between keep-alive comments on an idle SSE response.
DEFAULT_KEEPALIVE_S = 15.0

#: Seconds between two looks at whether the server is shutting down.
SHUTDOWN_POLL_S = 0.5

#: Seconds a response is given to end by itself after ``on_shutdown()`` was called.
SHUTDOWN_GRACE_S = 2.0

#: Seconds within which a stream's frames count as coming back to back. A live response
#: woken this soon after its last send waits until this long after it, so the frames of a
#: model that yields a chunk per event-loop turn go out many to one send (about this much
#: latency at most, on busy streams only: a frame after a quiet spell is sent at once; the
#: loop's timers may fire up to a millisecond late, as uvloop's clock counts whole ones); a
#: follower on the answering process, already fed a stored batch at a time, gives the loop
#: one more turn instead.
COALESCE_WINDOW_S = 0.001

_KEEPALIVE = b": keep-alive\n\n"

#: Encoded response headers by the response's class and the headers it was given: the
#: package's routes give one constant mapping per protocol, and encoding them took about a
#: twentieth of a follower's connect. At most :data:`_RAW_HEADERS_KEPT` kinds are kept (an
#: app giving headers of its own per response encodes the rest each time).
_RAW_HEADERS: dict[tuple[type, tuple[tuple[str, str], ...]], tuple[tuple[bytes, bytes], ...]] = {}
_RAW_HEADERS_KEPT = 64
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


def event_frame(body: bytes, next_seq_num: int | None = None) -> bytes:
    """One SSE event: an ``id:`` line with ``next_seq_num`` (when given) and one ``data:`` line.

    ``body`` must not contain a newline (compact JSON never does). The ``id`` is the cursor to
    resume *after* this record (``@s2-dev/resumable-stream`` ``src/shared.ts``).
    """
    if next_seq_num is None:
        return b"data: " + body + b"\n\n"
    return b"id: %d\ndata: %b\n\n" % (next_seq_num, body)


#: ``data: [DONE]``: the AI SDK's end-of-stream event (``ai`` ``JsonToSseTransformStream``).
DONE_FRAME = event_frame(b"[DONE]")


def _server_exiting() -> bool:
    """Whether the uvicorn server of this process has begun to shut down.

    uvicorn installs its ``Server.handle_exit`` as the SIGTERM / SIGINT handler while it
    serves (``uvicorn/server.py`` ``capture_signals``), so the handler's ``__self__`` is the
    server and its ``should_exit`` flag says whether a shutdown has begun. Other servers are
    not detected: their responses end when the client leaves or the frames end.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = getattr(signal.getsignal(sig), "__self__", None)
        if getattr(server, "should_exit", False) is True:
            return True
    return False


class _ShutdownWatch:
    """One per event loop while SSE responses are open: every :data:`SHUTDOWN_POLL_S` it
    asks :func:`_server_exiting` and, once the server exits, tells every open response."""

    __slots__ = ("responses", "task")

    def __init__(self) -> None:
        self.responses: set[SseResponse] = set()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            while self.responses:
                if _server_exiting():
                    for response in list(self.responses):
                        response.server_exiting()
                    self.responses.clear()
                    return
                await asyncio.sleep(SHUTDOWN_POLL_S)
        finally:
            self.task = None

    def add(self, response: SseResponse) -> None:
        self.responses.add(response)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())


_watches: dict[asyncio.AbstractEventLoop, _ShutdownWatch] = {}


def _watch() -> _ShutdownWatch:
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        for old in [other for other in _watches if other.is_closed()]:
            del _watches[old]
        watch = _watches[loop] = _ShutdownWatch()
    return watch


class SseResponse(Response):
    """A 200 ``text/event-stream`` response that sends pre-framed SSE bytes as they come.

    Args:
        frames: async iterable of whole SSE frames (bytes, e.g. from :func:`event_frame`);
            closed (``aclose()``) when the response ends for any reason.
        headers: response headers (a ``Content-Type`` here wins over ``text/event-stream``).
        keepalive_s: seconds of silence after which a comment line (``: keep-alive``) is
            sent, so proxies keep the connection open; 0 disables. SSE clients ignore
            comments (WHATWG HTML, "Server-sent events", interpreting an event stream).
        on_shutdown: called ``shutdown_drain_s`` seconds after the server began to shut
            down (uvicorn's SIGTERM / SIGINT handling) while the response still runs; the
            response is then given :data:`SHUTDOWN_GRACE_S` more to end by itself. Without
            it, the response ends as soon as the shutdown is seen (within
            :data:`SHUTDOWN_POLL_S`), so the server does not wait on it.
        shutdown_drain_s: seconds, see ``on_shutdown``.

    ``body_iterator`` is ``frames`` (as on Starlette's ``StreamingResponse``), for code that
    reads a response without serving it.

    Per connection it runs one task besides the request's own: it waits for the client's
    disconnect (which ends the response and closes ``frames`` at once, even while no frame
    is due). The keep-alive comments hang on one loop timer, moved on lazily (a send only
    stamps its time; the timer, when it fires, looks at the stamp), and each comment is sent
    by a short task of its own. A ``HEAD`` request gets the headers only.
    The body ends with an empty ``more_body: false`` message (the HTTP/1.1 chunked
    terminator) when ``frames`` ends or the server shuts down.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncIterable[bytes],
        *,
        headers: Mapping[str, str],
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        on_shutdown: Callable[[], object] | None = None,
        shutdown_drain_s: float = 10.0,
    ) -> None:
        self.status_code = 200
        self.background = None
        key = (type(self), tuple(headers.items()))
        raw = _RAW_HEADERS.get(key)
        if raw is None:
            all_headers = {"Cache-Control": "no-store", **headers}
            all_headers["Connection"] = "keep-alive"
            all_headers["X-Accel-Buffering"] = "no"
            self.init_headers(all_headers)
            if len(_RAW_HEADERS) < _RAW_HEADERS_KEPT:
                _RAW_HEADERS[key] = tuple(self.raw_headers)
        else:
            self.raw_headers = list(raw)  # a list of its own: a middleware may add to it
        self.body_iterator = frames
        self._keepalive_s = keepalive_s
        self._on_shutdown = on_shutdown
        self._drain_s = shutdown_drain_s
        self._pump: asyncio.Task[Any] | None = None
        self._lock = asyncio.Lock()  # held while a keep-alive comment is sent
        self._sending = False  # a frame is being sent (the keep-alive then waits its turn)
        self._send: Send | None = None  # the server's send, once the response has started
        #: the context send_now() runs the server's send in (and finishes it in, when it
        #: waits), one per response: a context variable set in a send is reset in the same
        self._send_context: contextvars.Context | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        #: the rest of a send_now() that had to wait (a slow client), finished by a task
        self._in_flight: asyncio.Task[None] | None = None
        self._send_failure: Exception | None = None  # what a send_now() raised
        self._last_send = 0.0
        self._cut = False  # the pump was cancelled by this response (disconnect, shutdown)
        self._disconnected = False
        self._ending = False  # the pump is past its frames: nothing may cancel it now
        self._timers: list[asyncio.TimerHandle] = []
        #: when the next keep-alive comment may be due (a loop timer, not a timeout per wait)
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._keepalive_task: asyncio.Task[None] | None = None  # a comment being sent
        self._broken = False  # frames failed and on_error took it: end without the terminator
        #: Called with an exception ``frames`` raised after the response began; True means
        #: handled: the response then breaks off (no chunked terminator, so the client sees
        #: a cut stream and can reconnect) instead of the exception reaching the server.
        self.on_error: Callable[[Exception], bool] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        if scope.get("method") == "HEAD":
            await self._close_frames()
            await send(start)
            await send(_END)
            return
        loop = self._event_loop = asyncio.get_running_loop()
        self._pump = asyncio.current_task()
        watch = _watch()
        watch.add(self)
        watcher = loop.create_task(self._watch_client(receive))
        try:
            await send(start)
            self._last_send = loop.time()
            if self._keepalive_s > 0:
                self._arm_keepalive(send)
            self._send_context = contextvars.copy_context()
            self._send = send
            lock = self._lock
            async for frame in self.body_iterator:
                if self._in_flight is not None:
                    await self._settle_in_flight()
                message = {"type": "http.response.body", "body": frame, "more_body": True}
                if lock.locked():  # a keep-alive comment is being sent
                    async with lock:
                        await send(message)
                else:
                    self._sending = True
                    try:
                        await send(message)
                    finally:
                        self._sending = False
                self._last_send = loop.time()
            if self._in_flight is not None:
                await self._settle_in_flight()
        except asyncio.CancelledError:
            if not self._cut or self._uncancel() > 0:
                raise
            failure = self._send_failure  # a send_now() failed and cut the response
            if failure is not None:
                if self.on_error is None or not self.on_error(failure):
                    raise failure from None
                self._broken = True
        except OSError:  # the client left mid-send (ASGI 2.4 servers raise it from send)
            self._disconnected = True
        except Exception as exc:
            if self.on_error is None or not self.on_error(exc):
                raise
            self._broken = True
        finally:
            self._ending = True
            self._send = None
            watch.responses.discard(self)
            for timer in self._timers:
                timer.cancel()
            if self._keepalive_timer is not None:
                self._keepalive_timer.cancel()
            watcher.cancel()
            waits: list[asyncio.Task[None]] = [watcher]
            if self._keepalive_task is not None:  # a comment still being sent: cut
                self._keepalive_task.cancel()
                waits.append(self._keepalive_task)
            if self._in_flight is not None:  # a send_now() still waiting: the response is cut
                self._in_flight.cancel()
                waits.append(self._in_flight)
            await asyncio.wait(waits)  # their end; a cancellation of ours still propagates
            await self._close_frames()
        if not (self._disconnected or self._broken):
            with contextlib.suppress(OSError):
                await send(_END)

    def send_now(self, frame: bytes) -> bool:
        """Send ``frame`` (whole SSE bytes) from the calling task, when the response is
        idle: started, not sending, not ending.

        The producer of a live answer calls it for each frame it makes while the response's
        own task waits for the next one, so that task is not woken once per frame. The
        server's ``send`` runs here up to its first wait (with uvicorn: the socket write,
        unless the client is behind and the transport paused); a send that has to wait is
        finished by a task of this response, and frames are then taken from ``frames`` in
        order after it. A client gone mid-send ends the response as a disconnect does.
        ASGI lets any task of the request call ``send`` (Starlette's ``StreamingResponse``
        sends from a task of its own too). Each call runs ``send`` in one context kept by
        the response, so a middleware that sets a context variable in ``send`` resets it in
        the same context even when the send is finished by another task. When ``send``
        yields to the event loop without waiting for anything (a middleware that passes
        messages through a stream, such as Starlette's ``BaseHTTPMiddleware``), this and
        every later call return False: such a send is cheaper from the response's task.
        Call it from a task, not a loop callback. A middleware whose ``send`` enters a
        timeout or cancel scope (``asyncio.timeout``, ``anyio.fail_after``) would enter it
        in the calling task; it then sees a waiting send end in another task.

        Args:
            frame: the bytes of one or more SSE events.

        Returns:
            True when the frame is the server's (sent, or being sent); False when the
            response is not ready for it (not started, already sending, a keep-alive
            comment going out, ending): give it to ``frames`` instead. Never raises.
        """
        send = self._send
        if send is None or self._sending or self._ending or self._cut or self._lock.locked():
            return False
        message: Message = {"type": "http.response.body", "body": frame, "more_body": True}
        loop, context = self._event_loop, self._send_context
        assert loop is not None and context is not None  # set with _send
        self._sending = True  # a frame pushed from within this send is queued, not sent
        try:
            steps = send(message).__await__()
            waits_for = context.run(steps.send, None)
        except StopIteration:
            self._sending = False
            self._last_send = loop.time()
            return True
        except OSError:
            self._sending = False
            self._disconnected = True
            self._cut_now()
            return True
        except (Exception, asyncio.CancelledError) as exc:
            self._sending = False
            self._fail_send(exc)
            return True
        if waits_for is None:
            # A bare yield: this send always takes a loop turn (a middleware passing messages
            # through a stream, Starlette's BaseHTTPMiddleware): each send_now would cost a
            # task, more than waking the response. The response sends the rest itself.
            self._send = None
        self._in_flight = loop.create_task(
            self._finish_send(_Resumed(steps, waits_for)), context=context
        )
        self._in_flight.add_done_callback(forget_cancellation)  # cut mid-send: no cycle
        return True

    async def _finish_send(self, rest: _Resumed) -> None:
        """Run the rest of a :meth:`send_now` that had to wait."""
        loop = asyncio.get_running_loop()
        try:
            await rest
            self._last_send = loop.time()
        except OSError:
            self._disconnected = True
            self._cut_now()
        except Exception as exc:
            self._fail_send(exc)
        finally:
            self._sending = False

    def _fail_send(self, exc: BaseException) -> None:
        """A :meth:`send_now` raised: the response ends as if its own send had raised."""
        self._send_failure = (
            exc if isinstance(exc, Exception) else RuntimeError(f"send was cancelled: {exc!r}")
        )
        self._cut_now()

    async def _settle_in_flight(self) -> None:
        """Wait for the rest of a :meth:`send_now` (our own cancel does not cancel it)."""
        in_flight = self._in_flight
        if in_flight is not None:
            await asyncio.wait([in_flight])
            self._in_flight = None

    def _uncancel(self) -> int:
        task = self._pump
        return task.uncancel() if task is not None else 0

    async def _close_frames(self) -> None:
        aclose = getattr(self.body_iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    def _cut_now(self) -> None:
        """End the response: cancel the pump, which then ends the body."""
        if self._pump is not None and not self._cut and not self._ending:
            self._cut = True
            self._pump.cancel()

    def server_exiting(self) -> None:
        """Called once when the server begins to shut down (see ``on_shutdown``)."""
        if self._on_shutdown is None:
            self._cut_now()
            return
        loop = asyncio.get_running_loop()
        callback = self._on_shutdown
        self._timers.append(loop.call_later(self._drain_s, callback))
        self._timers.append(loop.call_later(self._drain_s + SHUTDOWN_GRACE_S, self._cut_now))

    async def _watch_client(self, receive: Receive) -> None:
        """Wait for the client's disconnect, then end the response."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._disconnected = True
                self._cut_now()
                return

    def _arm_keepalive(self, send: Send) -> None:
        """Look again when ``keepalive_s`` will have passed since the last send."""
        loop = self._event_loop
        assert loop is not None  # set before the response starts
        self._keepalive_timer = loop.call_at(
            self._last_send + self._keepalive_s, self._keepalive_due, send
        )

    def _keepalive_due(self, send: Send) -> None:
        """The keep-alive timer fired: send a comment if ``keepalive_s`` passed without a
        send, else look again later (a loop callback: the comment is sent by a task)."""
        self._keepalive_timer = None
        loop = self._event_loop
        if self._ending or self._cut or loop is None:
            return
        now = loop.time()
        if now < self._last_send + self._keepalive_s:  # a frame went out since
            self._arm_keepalive(send)
        elif self._sending:  # a frame's send waits on a slow client: look again later
            self._keepalive_timer = loop.call_at(now + self._keepalive_s, self._keepalive_due, send)
        else:
            self._keepalive_task = loop.create_task(self._send_keepalive(send))

    async def _send_keepalive(self, send: Send) -> None:
        """Send one comment, then arm the timer again; a client gone mid-send ends the
        response as a disconnect does. Nothing is sent when a frame went out, or began to,
        since the timer found the comment due (a task that ran first in this loop turn): one
        send at a time, and a frame is sign of life enough."""
        loop = asyncio.get_running_loop()
        try:
            if not self._sending and loop.time() >= self._last_send + self._keepalive_s:
                async with self._lock:
                    try:
                        await send(
                            {"type": "http.response.body", "body": _KEEPALIVE, "more_body": True}
                        )
                    except OSError:
                        self._disconnected = True
                        self._cut_now()
                        return
                    except Exception as exc:  # as a send_now() that raised: the response ends
                        self._fail_send(exc)
                        return
                    self._last_send = loop.time()
        finally:
            self._keepalive_task = None
        self._keepalive_due(send)  # when the next one is due (or now + keepalive_s: a send waits)


class _Resumed:
    """Awaitable that finishes an awaitable whose first step already ran elsewhere.

    ``steps`` is the iterator of the awaitable (``__await__()``) and ``waits_for`` what its
    first ``send(None)`` yielded (an asyncio future, or ``None`` for a bare yield). Awaited
    in a task, it hands every yield to that task and every result or exception back to the
    awaitable, exactly as if the task had run it from the start (the ``asyncio.Task``
    protocol, CPython ``Lib/asyncio/tasks.py``: a future with ``_asyncio_future_blocking``
    set is waited on, ``None`` yields one loop turn)."""

    __slots__ = ("_steps", "_waits_for")

    def __init__(self, steps: Generator[Any, Any, Any], waits_for: Any) -> None:
        self._steps = steps
        self._waits_for = waits_for

    def __await__(self) -> Generator[Any, Any, Any]:
        steps, waits_for = self._steps, self._waits_for
        while True:
            try:
                value = yield waits_for
            except BaseException as exc:  # the task threw into us (a cancel): pass it on
                try:
                    waits_for = steps.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waits_for = steps.send(value)
                except StopIteration as stop:
                    return stop.value


def sse_response(
    frames: AsyncIterable[bytes],
    *,
    headers: Mapping[str, str],
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    on_shutdown: Callable[[], object] | None = None,
    shutdown_drain_s: float = 10.0,
) -> SseResponse:
    """A 200 ``text/event-stream`` response sending pre-framed ``frames`` as they come
    (:class:`SseResponse`; the arguments are its own).

    Shutdown (SIGTERM under uvicorn): without ``on_shutdown`` the response ends at once (a
    follower reconnects elsewhere). With it, ``frames`` keep flowing for up to
    ``shutdown_drain_s`` seconds, then ``on_shutdown()`` is called (a live answer is stopped,
    so its client gets the protocol's stop terminal), and the response is given 2 s more to
    end by itself before it is cut.
    """
    return SseResponse(
        frames,
        headers=headers,
        keepalive_s=keepalive_s,
        on_shutdown=on_shutdown,
        shutdown_drain_s=shutdown_drain_s,
    )
