"""Pulling a provider stream through a per-protocol converter, closing it on the way out
(also when the client stops the answer early)."""

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
from typing import Any, Protocol

from resumable_chat.chat.dialect import Chunk

__all__ = ["StreamConverter", "drive_converter"]

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
    def stopped(self) -> bool: ...

    def start(self) -> Iterator[Chunk]: ...

    def handle_chunk(self, raw: object) -> Iterator[Chunk]: ...

    def handle_exception(self, exc: BaseException) -> Iterator[Chunk]: ...

    def finish(self) -> Iterator[Chunk]: ...


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
