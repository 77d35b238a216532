"""Connections a cancelled request leaves half-made in an ``httpx`` connection pool.

httpcore 1.0.9 (the last release ``httpx`` 0.28-0.29 use) assigns a new connection to a
request before it opens it. When a request that waited for a connection (the pool was full)
is handed a new one as another closes, and is cancelled before it runs (a request alone,
handed its connection at once, is not affected), the pool forgets the request but keeps the
connection: never opened, it is neither
idle, nor closed, nor expired, so the pool never drops it, and no other request may use it.
Each such cancel holds one of the pool's ``max_connections`` slots for good; once all are
held, every request fails with ``PoolTimeout`` (encode/httpcore#1093, open, with fixes
proposed in encode/httpcore#1094 and #1099; fixed in pydantic's fork,
pydantic/httpx2#983). The S2 client cancels requests all the time (a follower that leaves,
a stop, a deadline), so :class:`~resumable_chat.s2.HttpBasin` drops such connections after
each cancelled request with :func:`drop_orphaned_connections`.
"""

from __future__ import annotations

import httpx

__all__ = ["drop_orphaned_connections"]


def drop_orphaned_connections(client: httpx.AsyncClient) -> int:
    """Remove from ``client``'s pool every connection that was never opened and that no
    request in the pool is waiting for (see the module): nothing to close, it holds no
    socket. Call it after a request on ``client`` was cancelled.

    Args:
        client: an ``httpx.AsyncClient`` on its default transport.

    Returns:
        How many connections were removed (0 with another transport, or an httpcore whose
        pool is laid out differently: then it does nothing).
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    connections = getattr(pool, "_connections", None)
    requests = getattr(pool, "_requests", None)
    if not isinstance(connections, list) or not isinstance(requests, list):
        return 0
    waited_for = {id(getattr(request, "connection", None)) for request in requests}
    orphans = [
        connection
        for connection in connections
        if getattr(connection, "_connection", False) is None
        and getattr(connection, "_connect_failed", True) is False
        and id(connection) not in waited_for
    ]
    for connection in orphans:
        connections.remove(connection)
    return len(orphans)
