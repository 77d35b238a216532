"""Which generations this process runs: a process never takes over its own generation.

A generation is known by its claim token (random, so unique across instances). While its
writer is alive, every path of this process that meets the generation in the log (a claim, a
stop, a replay, a follower's lease watchdog) treats it as live, however long S2 is slow or
down: silence in the log only means this process could not write yet. Only other processes
judge a generation by the lease.

One :class:`Ownership` per process is the default (:data:`PROCESS_OWNERSHIP`); a simulation
gives each simulated instance its own.
"""

from __future__ import annotations

__all__ = ["PROCESS_OWNERSHIP", "Ownership"]


class Ownership:
    """The claim tokens of the generations whose writers run in this process."""

    __slots__ = ("_tokens",)

    def __init__(self) -> None:
        self._tokens: set[str] = set()

    def add(self, token: str) -> None:
        """Record that this process now runs the generation claimed with ``token``."""
        self._tokens.add(token)

    def discard(self, token: str) -> None:
        """Its writer ended (terminal stored, fenced out, or abandoned). Idempotent."""
        self._tokens.discard(token)

    def runs(self, token: str | None) -> bool:
        """True while this process runs the generation claimed with ``token``."""
        return token is not None and token in self._tokens

    def __len__(self) -> int:
        return len(self._tokens)


#: The ownership registry of this process (the default of every engine).
PROCESS_OWNERSHIP = Ownership()
