"""Pulling a provider stream through a per-protocol converter, closing it on the way out
(also when the client stops the answer early), and the converter that joins a provider's
normaliser (provider chunks → neutral model events) to a protocol's event stream (model events
→ that protocol's chunks)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
)
from typing import Any, Protocol, Unpack

from resumable_chat.chat.dialect import Chunk
from resumable_chat.model_events import ModelEvent
from resumable_chat.protocols.ai_sdk.events import UIMessageChunkStream, UIMessageStreamOptions
from resumable_chat.protocols.tanstack.events import TanStackChunkStream, TanStackStreamOptions

__all__ = [
    "ChunkStream",
    "EventConverter",
    "ModelEventSource",
    "StreamConverter",
    "TanStackConverter",
    "UIMessageConverter",
    "drive_converter",
]

logger = logging.getLogger("resumable_chat.sources")


async def _close_quietly(*objects: object) -> None:
    """Close the provider stream (releases its HTTP response); errors are logged, not raised."""
    seen: set[int] = set()
    for obj in objects:
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        closer = getattr(obj, "aclose", None) or getattr(obj, "close", None)
        if not callable(closer):
            continue
        try:
            result = closer()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.debug("closing the model stream failed", exc_info=True)


class StreamConverter(Protocol):
    """What :func:`drive_converter` needs from a per-protocol converter."""

    @property
    def stopped(self) -> bool:
        """True once the converter has sent its terminal: the driver stops reading."""
        ...

    def start(self) -> Iterator[Chunk]:
        """The chunks that open the answer, before the first provider chunk."""
        ...

    def handle_chunk(self, raw: object) -> Iterator[Chunk]:
        """The protocol's chunks for one provider chunk ``raw``."""
        ...

    def handle_exception(self, exc: BaseException) -> Iterator[Chunk]:
        """The protocol's error ending for a provider stream that raised ``exc``."""
        ...

    def finish(self) -> Iterator[Chunk]:
        """The chunks that close the answer once the provider stream ended."""
        ...


class ModelEventSource(Protocol):
    """A provider format's normaliser: provider chunks in, neutral model events out."""

    def handle_chunk(self, raw: object) -> Iterator[ModelEvent]:
        """The model events of one provider chunk ``raw``."""
        ...

    def handle_exception(self, exc: BaseException) -> Iterator[ModelEvent]:
        """The model events for a provider stream that raised ``exc`` (a failure)."""
        ...

    def finish(self) -> Iterator[ModelEvent]:
        """The model events once the provider stream ended (the finish, usage)."""
        ...


class ChunkStream(Protocol):
    """A protocol's event stream: neutral model events in, the protocol's chunks out
    (``UIMessageChunkStream``, ``TanStackChunkStream``)."""

    @property
    def stopped(self) -> bool:
        """True once the stream has sent its terminal chunk."""
        ...

    def start(self) -> Iterator[Chunk]:
        """The chunks that open the answer."""
        ...

    def handle(self, event: ModelEvent) -> Iterator[Chunk]:
        """The protocol's chunks for one model ``event``."""
        ...


class EventConverter:
    """A :class:`StreamConverter` made of a normaliser and a protocol's event stream.

    Args:
        events: turns each provider chunk into model events.
        chunks: turns each model event into the protocol's chunks.

    Attributes:
        events, chunks: as given.
    """

    def __init__(self, events: ModelEventSource, chunks: ChunkStream) -> None:
        self.events = events
        self.chunks = chunks

    @property
    def stopped(self) -> bool:
        """True once the protocol stream ended the answer (finish or error)."""
        return self.chunks.stopped

    def start(self) -> Iterator[Chunk]:
        """The protocol's opening chunks."""
        return self.chunks.start()

    def handle_chunk(self, raw: object) -> Iterator[Chunk]:
        """The chunks for one provider chunk (see the normaliser for what it accepts)."""
        return self._convert(self.events.handle_chunk(raw))

    def handle_exception(self, exc: BaseException) -> Iterator[Chunk]:
        """The chunks that end the answer when the provider stream raised ``exc``."""
        return self._convert(self.events.handle_exception(exc))

    def finish(self) -> Iterator[Chunk]:
        """The closing chunks after the provider stream ended; nothing once stopped."""
        return self._convert(self.events.finish())

    def _convert(self, events: Iterator[ModelEvent]) -> Iterator[Chunk]:
        for event in events:
            if self.chunks.stopped:
                return
            yield from self.chunks.handle(event)


class UIMessageConverter(EventConverter):
    """A provider format's reader joined to the AI SDK event stream.

    Args:
        events: the reader of the provider format into model events.
        **options: :class:`~resumable_chat.protocols.ai_sdk.events.UIMessageChunkStream`'s
            keyword arguments (``message_id``, ``on_error``, ``include_usage``,
            ``include_model``).

    Attributes:
        message_id: the answer's ``messageId``.
    """

    def __init__(self, events: ModelEventSource, **options: Unpack[UIMessageStreamOptions]) -> None:
        chunks = UIMessageChunkStream(**options)
        super().__init__(events, chunks)
        self.message_id = chunks.message_id


class TanStackConverter(EventConverter):
    """A provider format's reader joined to the TanStack event stream.

    Args:
        events: the reader of the provider format into model events.
        **options: :class:`~resumable_chat.protocols.tanstack.events.TanStackChunkStream`'s
            keyword arguments (``run_id``, ``thread_id``, ``message_id``, ``model``,
            ``on_error``, ``on_error_code``, ``include_usage``, ``clock_ms``).

    Attributes:
        run_id, thread_id, message_id: as the event stream resolved them.
    """

    chunks: TanStackChunkStream

    def __init__(self, events: ModelEventSource, **options: Unpack[TanStackStreamOptions]) -> None:
        chunks = TanStackChunkStream(**options)
        super().__init__(events, chunks)
        self.run_id = chunks.run_id
        self.thread_id = chunks.thread_id
        self.message_id = chunks.message_id

    @property
    def finish_reason(self) -> str | None:
        """The ``finishReason`` sent on ``RUN_FINISHED``, else ``None``."""
        return self.chunks.finish_reason


async def drive_converter(
    converter: StreamConverter, stream: AsyncIterable[Any] | Iterable[Any]
) -> AsyncGenerator[Chunk, None]:
    """Pull ``stream`` (OpenAI chunks, async or sync) through ``converter``; yield its chunks.

    ``converter.start()`` first, ``handle_chunk`` per model chunk (a chunk whose conversion
    raises is logged and skipped), ``handle_exception`` when the stream raises (then stop),
    ``finish()`` at the end. The provider stream is closed on the way out, also when the
    consumer closes this generator early. Raises ``TypeError`` when ``stream`` is not
    iterable; ``BaseException`` s such as cancellation pass through.
    """
    if isinstance(stream, AsyncIterable):
        async_iterator: AsyncIterator[Any] | None = aiter(stream)
        sync_iterator: Iterator[Any] | None = None
    elif isinstance(stream, Iterable):
        async_iterator = None
        sync_iterator = iter(stream)
    else:
        raise TypeError(f"stream must be an (async) iterable, got {type(stream).__name__}")
    try:
        for chunk in converter.start():
            yield chunk
        while not converter.stopped:
            try:
                if async_iterator is not None:
                    raw = await anext(async_iterator)
                else:
                    assert sync_iterator is not None
                    raw = next(sync_iterator)
            except (StopAsyncIteration, StopIteration):
                break
            except Exception as exc:
                for chunk in converter.handle_exception(exc):
                    yield chunk
                return
            converted = converter.handle_chunk(raw)
            while True:
                try:
                    chunk = next(converted)
                except StopIteration:
                    break
                except Exception:
                    logger.exception("converting a model chunk failed; rest of it skipped")
                    break
                yield chunk
        for chunk in converter.finish():
            yield chunk
    finally:
        await _close_quietly(async_iterator, stream)
