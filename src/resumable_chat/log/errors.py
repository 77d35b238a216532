"""The engine's errors: what a caller of the log engine branches on."""

from __future__ import annotations

from resumable_chat.s2.errors import S2Error

__all__ = ["FencedOutError", "GenerationLostError", "LogGapError", "StreamInUseError"]


class StreamInUseError(Exception):
    """The stream could not be claimed: a generation holds it, or a concurrent claimer won
    (the routes answer 409). ``stream``: the S2 stream name."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream {stream!r} is in use")
        self.stream = stream


class FencedOutError(S2Error):
    """Another instance wrote to the stream (a takeover's fence, or a foreign record), or the
    stream was deleted and made anew under the writer: this writer's generation is over.
    ``token``: the stream's fencing token it found, if known; ``""`` (which no claim ever
    sets, S2's default for a new stream) means the stream was deleted (:attr:`deleted`)."""

    def __init__(self, stream: str, token: str | None) -> None:
        if token == "":
            message = f"stream {stream!r} was deleted or recreated (its fencing token is empty)"
        else:
            message = f"stream {stream!r} was taken over (its token is now {token!r})"
        super().__init__(message)
        self.stream = stream
        self.token = token

    @property
    def deleted(self) -> bool:
        """True when the stream lost what the writer had stored: deleted and made anew (by
        an append that created it, as ``create_stream_on_append`` does), not taken over."""
        return self.token == ""


class GenerationLostError(Exception):
    """A generation was closed because its writer went silent for a lease (its process
    died, or could not reach S2 that long). ``stream``: the S2 stream."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"the generation on {stream} stopped writing (its process died)")
        self.stream = stream


class LogGapError(S2Error):
    """A follower found records missing in the middle of what it was reading (trimmed or
    expired under it). ``expected`` / ``found``: the seq_num it needed and the one it got."""

    def __init__(self, stream: str, expected: int, found: int) -> None:
        super().__init__(
            f"records {expected}..{found - 1} of {stream!r} are gone (trimmed or expired)"
        )
        self.stream = stream
        self.expected = expected
        self.found = found
