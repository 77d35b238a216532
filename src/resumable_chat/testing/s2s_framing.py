"""The ``s2s/proto`` session framing of S2 append and read sessions, for the bundled server.

S2 documents the framing in ``s2s.md`` of its public spec repository (``s2-streamstore/
s2-specs``, ``s2/v1/s2s.md``); the official SDKs implement it in
``packages/streamstore/src/lib/stream/transport/s2s/framing.ts`` (TypeScript) and
``src/s2_sdk/_s2s/_protocol.py`` (Python). One frame is:

- a 3-byte big-endian length: the size of everything after it (flag byte + body);
- a flag byte ``[T][CC][A][RRRR]``: ``T`` (0x80) terminal, ``CC`` (0x60) compression of the
  body (``00`` none, ``01`` zstd, ``10`` gzip), ``A`` (0x10) reconnect advised (set by a
  draining server; this one never sets it), the rest reserved;
- the body: a protobuf message (``AppendInput`` up, ``AppendAck`` / ``ReadBatch`` down), or, in
  a terminal frame, a 2-byte big-endian HTTP status followed by the JSON error body that a
  unary request would have got.

Bodies under 1 KiB are never compressed. zstd needs the ``zstandard`` package (in the
``testing`` extra); gzip uses the standard library.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "COMPRESSION_THRESHOLD",
    "MAX_FRAME_BYTES",
    "Compression",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "choose_compression",
    "encode_frame",
    "encode_terminal",
]

Compression = Literal["none", "zstd", "gzip"]

#: Bodies smaller than this many bytes are sent uncompressed (``s2s.md``: under 1 KiB).
COMPRESSION_THRESHOLD: Final = 1024
#: The largest frame (flag byte + body) either side accepts: 2 MiB, as S2's servers and SDKs.
MAX_FRAME_BYTES: Final = 2 * 1024 * 1024

_TERMINAL: Final = 0x80
_COMPRESSION_MASK: Final = 0x60
_COMPRESSION_SHIFT: Final = 5
_CODES: Final[dict[Compression, int]] = {"none": 0, "zstd": 1, "gzip": 2}
_NAMES: Final[dict[int, Compression]] = {code: name for name, code in _CODES.items()}


class FrameError(Exception):
    """A malformed frame or body: S2 answers these with 400 ``bad_frame``."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: the (decompressed) body, and for terminal frames the status."""

    body: bytes
    terminal: bool = False
    status: int | None = None


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is in the testing extra
        return None
    return zstandard


def choose_compression(accept_encoding: str) -> Compression:
    """The compression for frames sent back, from the request's ``Accept-Encoding``.

    As S2's servers do: ``zstd`` when offered (and ``zstandard`` is installed), else ``gzip``
    when offered, else none. Quality values are ignored.
    """
    offered = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    if "zstd" in offered and _zstd() is not None:
        return "zstd"
    if "gzip" in offered:
        return "gzip"
    return "none"


def _compress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data)
    zstandard = _zstd()
    assert zstandard is not None
    result: bytes = zstandard.ZstdCompressor().compress(data)
    return result


def _decompress(data: bytes, compression: Compression) -> bytes:
    try:
        if compression == "gzip":
            return gzip.decompress(data)
        zstandard = _zstd()
        if zstandard is None:
            raise FrameError("zstd frames need the zstandard package")
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            result: bytes = reader.read(MAX_FRAME_BYTES + 1)
    except (OSError, EOFError, ValueError) as exc:  # gzip.BadGzipFile is an OSError
        raise FrameError(f"cannot decompress a {compression} frame: {exc}") from None
    except Exception as exc:  # zstandard.ZstdError
        if type(exc).__name__ != "ZstdError":
            raise
        raise FrameError(f"cannot decompress a {compression} frame: {exc}") from None
    if len(result) > MAX_FRAME_BYTES:
        raise FrameError("decompressed frame exceeds 2 MiB")
    return result


def _frame(flag: int, body: bytes) -> bytes:
    length = 1 + len(body)
    if length > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {length} bytes exceeds 2 MiB")
    return length.to_bytes(3, "big") + bytes([flag]) + body


def encode_frame(body: bytes, compression: Compression = "none") -> bytes:
    """A regular frame around ``body`` (a serialized protobuf message).

    ``body`` is compressed with ``compression`` when it is at least 1 KiB. Raises
    ``FrameError`` when the frame would exceed 2 MiB.
    """
    if compression != "none" and len(body) >= COMPRESSION_THRESHOLD:
        return _frame(_CODES[compression] << _COMPRESSION_SHIFT, _compress(body, compression))
    return _frame(0, body)


def encode_terminal(status: int, error: Any) -> bytes:
    """A terminal frame: ``status`` (HTTP status code) and ``error`` as its JSON body."""
    text = json.dumps(error, separators=(",", ":")).encode()
    return _frame(_TERMINAL, status.to_bytes(2, "big") + text)


class FrameDecoder:
    """Splits a byte stream into :class:`Frame` s; feed it chunks as they arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return the frames it completes, bodies decompressed.

        Raises ``FrameError`` for a zero or over-2-MiB length, an unknown compression code, a
        terminal frame without its status, or a body that does not decompress.
        """
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 3:
            length = int.from_bytes(self._buffer[:3], "big")
            if length < 1:
                raise FrameError("frame length 0: the flag byte is mandatory")
            if length > MAX_FRAME_BYTES:
                raise FrameError(f"frame of {length} bytes exceeds 2 MiB")
            if len(self._buffer) < 3 + length:
                break
            flag = self._buffer[3]
            body = bytes(self._buffer[4 : 3 + length])
            del self._buffer[: 3 + length]
            if flag & _TERMINAL:
                if len(body) < 2:
                    raise FrameError("terminal frame without a status code")
                frames.append(Frame(body[2:], True, int.from_bytes(body[:2], "big")))
                continue
            code = (flag & _COMPRESSION_MASK) >> _COMPRESSION_SHIFT
            compression = _NAMES.get(code)
            if compression is None:
                raise FrameError(f"unknown compression code {code}")
            if compression != "none":
                body = _decompress(body, compression)
            frames.append(Frame(body))
        return frames
