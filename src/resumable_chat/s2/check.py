"""The start-up check: one cheap S2 request that tells a misconfiguration from an outage.

Without it, a wrong ``S2_ACCESS_TOKEN``, a missing basin or an unreachable endpoint shows up
only when the first chat request fails. :func:`check_basin` makes that request at start-up
instead and raises the typed error that names the cause; ``ResumableChat.check()`` and
``ResumableStreamContext.check()`` call it, and the FastAPI routers call those in their
lifespan (``check_storage=True``, the default).
"""

from __future__ import annotations

from typing import Final

from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import StreamNotFoundError
from resumable_chat.s2.http import HttpBasin
from resumable_chat.s2.memory import MemoryBasin
from resumable_chat.s2.prefixed import PrefixedBasin

__all__ = ["PROBE_STREAM", "check_basin"]

#: The stream name the check asks the tail of (under the chat's ``stream_prefix``, so a
#: token scoped to that prefix passes). It need not exist.
PROBE_STREAM: Final = "resumable-chat-startup-check"


async def check_basin(basin: Basin, *, probe_stream: str = PROBE_STREAM) -> None:
    """Check that ``basin`` can be used, with at most one request (plus retries) to S2.

    - :class:`~resumable_chat.s2.memory.MemoryBasin` (the embedded log): nothing to check.
    - :class:`~resumable_chat.s2.http.HttpBasin`: :meth:`~resumable_chat.s2.http.HttpBasin.check`,
      a check-tail of ``probe_stream`` (S2 REST v1 ``GET /streams/{stream}/records/tail``)
      that succeeds when the stream exists or is merely missing.
    - :class:`~resumable_chat.s2.prefixed.PrefixedBasin`: the basin it wraps, with the probe
      name under its prefix.
    - any other :class:`~resumable_chat.s2.basin.Basin`: ``check_tail(probe_stream)``, where
      ``StreamNotFoundError`` counts as success.

    Args:
        basin: the basin to check.
        probe_stream: the stream name to probe (default :data:`PROBE_STREAM`).

    Raises:
        S2AuthError: the access token was refused (401/403): fix ``S2_ACCESS_TOKEN``.
        BasinNotFoundError: the basin does not exist: create it or fix ``S2_BASIN``.
        S2UnavailableError: S2 did not answer, or kept failing, past the retry budget: check
            ``S2_BASIN_ENDPOINT`` and the network.
        S2Error: any other refusal. ``error.permanent`` tells whether retrying can help.
    """
    prefix = ""
    inner = basin
    while isinstance(inner, PrefixedBasin):
        prefix = inner.prefix + prefix
        inner = inner.inner
    name = prefix + probe_stream
    if isinstance(inner, MemoryBasin):
        return
    if isinstance(inner, HttpBasin):
        await inner.check(name)
        return
    try:
        await inner.check_tail(name)
    except StreamNotFoundError:
        return
