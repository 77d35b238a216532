"""``AppendPacing``: how many append batches per second one process sends to a basin.

Each append to S2 over HTTP is a request, and a request costs the process far more CPU than
the records in it (on a small VM about 1 ms for httpx to build, send and parse one, whether
it holds one record or a hundred). A model that yields a chunk every 20 ms gets one append
per chunk from a writer that appends as soon as the last append was acknowledged, when S2
answers within 20 ms (S2 Express answers in about 40 ms; an S2 endpoint or test server on the
same host at once), so a process with 25 such answers running spends a whole core on
appends alone and every answer slows down.

The pacing is a budget of append batches per second that the writers of one basin share:
with ``n`` of them running, each starts its appends at least ``n / appends_per_s`` seconds
apart (at most :data:`MAX_SPACING_S`), and whatever its model yields meanwhile goes in the
next batch. Few answers at a time: nothing changes (one writer against a budget of 200 waits
5 ms between appends at most). Many: each batch carries more records, the process keeps up,
and followers and reloads see the chunks up to the spacing later. The live response never
waits for S2 either way, and a batch that is full (1000 records or 1 MiB) or the writer's
close never waits. S2's own clients batch the same way (their producers linger 5 ms before
sending a partial batch), and S2 takes at most 200 batches a second on a stream
(https://s2.dev/docs/concepts/tuning).
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_APPENDS_PER_S", "MAX_SPACING_S", "AppendPacing"]

#: Default budget of :class:`~resumable_chat.s2.http.HttpBasin` (append batches per second,
#: all streams together): about a fifth of a small VM's core at 1 ms of CPU a request.
DEFAULT_APPENDS_PER_S: Final = 200.0

#: The longest spacing (s) between the starts of two appends of one writer, however many run:
#: half the default heartbeat, so a stop from another instance or a follower never waits much
#: longer than that for the next batch.
MAX_SPACING_S: Final = 0.5


class AppendPacing:
    """The append budget one process shares among the writers of one basin.

    Args:
        appends_per_s: append batches per second (> 0) for all the writers together.

    Raises:
        ValueError: ``appends_per_s`` is not a positive number.
    """

    def __init__(self, appends_per_s: float) -> None:
        if not appends_per_s > 0:
            raise ValueError(f"appends_per_s must be > 0, got {appends_per_s!r}")
        self.appends_per_s = float(appends_per_s)
        #: Writers running now (:meth:`join` less :meth:`leave`).
        self.writers = 0

    def __repr__(self) -> str:
        return f"AppendPacing({self.appends_per_s:g}/s, {self.writers} writers)"

    def join(self) -> None:
        """A writer starts: the spacing of every writer grows by ``1 / appends_per_s``."""
        self.writers += 1

    def leave(self) -> None:
        """A writer that called :meth:`join` has ended."""
        self.writers = max(0, self.writers - 1)

    def spacing_s(self) -> float:
        """Seconds (0 to :data:`MAX_SPACING_S`) each writer leaves at least between the
        starts of two appends: ``writers / appends_per_s``."""
        return min(MAX_SPACING_S, self.writers / self.appends_per_s)
