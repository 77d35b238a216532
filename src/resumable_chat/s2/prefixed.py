"""``PrefixedBasin``: a view of a basin in which every stream name carries a prefix.

Two apps (or two chats of one app) can share one S2 basin without their stream names
colliding: each sees only the names it asks for, stored as ``prefix + name``. Everything
built on the view (the chat core, the writer, replays, durable AG-UI runs and their run
index streams) agrees on the names because they all go through it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Final

from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import S2NameError
from resumable_chat.s2.records import AppendAck, AppendInput, ReadBatch, StreamPosition

__all__ = ["STREAM_PREFIX_PATTERN", "PrefixedBasin", "check_stream_prefix"]

#: Accepted prefixes: 0 to 200 of ``A-Z a-z 0-9 _ - . : /`` (S2 stream names are at most 512
#: bytes; this leaves room for the names built on top).
STREAM_PREFIX_PATTERN: Final = r"[A-Za-z0-9_.:/-]{0,200}"
_PREFIX = re.compile(STREAM_PREFIX_PATTERN)


def check_stream_prefix(prefix: str) -> str:
    """Return ``prefix`` if it matches :data:`STREAM_PREFIX_PATTERN`.

    Raises:
        S2NameError: it does not (a ``ValueError``); the message states the rule.
    """
    if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
        raise S2NameError(
            f"stream_prefix must be 0 to 200 of A-Z a-z 0-9 _ - . : /, got {prefix!r}", prefix
        )
    return prefix


class PrefixedBasin(Basin):
    """``inner`` with ``prefix`` prepended to every stream name (see the module docstring).

    Errors are ``inner``'s (a ``StreamNotFoundError`` names the full, prefixed stream).
    :meth:`aclose` closes ``inner``. Raises ``ValueError`` for a prefix that does not match
    :data:`STREAM_PREFIX_PATTERN`.
    """

    def __init__(self, inner: Basin, prefix: str) -> None:
        self.inner = inner
        self.deadline_s = inner.deadline_s
        self.pacing = inner.pacing  # one budget for the basin, whatever the view
        self.in_memory = inner.in_memory
        self.prefix = check_stream_prefix(prefix)
        self.name = inner.name

    def __repr__(self) -> str:
        return f"PrefixedBasin({self.prefix!r}, {self.inner!r})"

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        """``inner.append`` on ``prefix + stream``."""
        return await self.inner.append(self.prefix + stream, input)

    def append_nowait(self, stream: str, input: AppendInput) -> AppendAck | None:
        """``inner.append_nowait`` on ``prefix + stream``."""
        return self.inner.append_nowait(self.prefix + stream, input)

    def append_body_nowait(
        self, stream: str, body: bytes, *, match_seq_num: int, fencing_token: str
    ) -> int | None:
        """``inner.append_body_nowait`` on ``prefix + stream``."""
        return self.inner.append_body_nowait(
            self.prefix + stream, body, match_seq_num=match_seq_num, fencing_token=fencing_token
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
        """``inner.read`` on ``prefix + stream`` (same arguments)."""
        return await self.inner.read(
            self.prefix + stream,
            seq_num=seq_num,
            timestamp=timestamp,
            tail_offset=tail_offset,
            count=count,
            bytes=bytes,
            until=until,
            clamp=clamp,
            wait=wait,
        )

    async def check_tail(self, stream: str) -> StreamPosition:
        """``inner.check_tail`` on ``prefix + stream``."""
        return await self.inner.check_tail(self.prefix + stream)

    def follow(
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        """``inner.follow`` on ``prefix + stream``."""
        return self.inner.follow(self.prefix + stream, seq_num=seq_num, clamp=clamp)

    async def create_stream(self, stream: str) -> None:
        """``inner.create_stream`` on ``prefix + stream``."""
        await self.inner.create_stream(self.prefix + stream)

    async def delete_stream(self, stream: str) -> None:
        """``inner.delete_stream`` on ``prefix + stream``."""
        await self.inner.delete_stream(self.prefix + stream)

    async def aclose(self) -> None:
        """Close ``inner``."""
        await self.inner.aclose()
