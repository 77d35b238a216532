"""A TCP proxy that breaks connections, for tests of what a flaky network to S2 does.

:class:`FlakyProxy` forwards ``127.0.0.1:<port>`` to a target port in a thread of its own
(its own event loop, so it works under sync and async tests alike). While :attr:`cutting` is
on, a seeded share of new connections is reset (TCP RST) after a random number of response
bytes: a request may have been served and its answer lost (an append that landed with no
ack), or lost before the server saw all of it. The client side sees ``ReadError`` /
``RemoteProtocolError``, as behind a load balancer that drops connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Iterator

from resumable_chat.testing.app_server import free_port


class FlakyProxy:
    """Forwards connections to ``127.0.0.1:target_port``, cutting some of them.

    Args:
        target_port: where to forward.
        cut_share: the share (0 to 1) of connections reset while :attr:`cutting` is on.
        max_bytes: a cut connection is reset after a uniform 0..``max_bytes`` bytes of the
            server's response (bytes, not records).
        seed: seeds which connections are cut and where.
    """

    def __init__(self, target_port: int, cut_share: float, max_bytes: int, seed: int) -> None:
        self.target_port = target_port
        self.cut_share = cut_share
        self.max_bytes = max_bytes
        self.port = free_port()
        self.cutting = False
        self.connections = 0
        self.cuts = 0
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(client_w)
            return
        budget: int | None = None
        if self.cutting and self._rng.random() < self.cut_share:
            budget = self._rng.randint(0, self.max_bytes)
        await asyncio.gather(
            _pipe(client_r, server_w, None, (client_w, server_w)),
            self._pipe_counted(server_r, client_w, budget, (client_w, server_w)),
        )

    async def _pipe_counted(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        budget: int | None,
        both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        if budget is not None and await _pipe(reader, writer, budget, both):
            self.cuts += 1
        elif budget is None:
            await _pipe(reader, writer, None, both)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    budget: int | None,
    both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
) -> bool:
    """Copy ``reader`` to ``writer`` until EOF; with ``budget``, reset both connections once
    that many bytes went through. True when it cut."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if budget is not None and len(data) >= budget:
                writer.write(data[:budget])
                with contextlib.suppress(OSError):
                    await writer.drain()
                for end in both:
                    _reset(end)
                return True
            if budget is not None:
                budget -= len(data)
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
    return False


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a dropped connection looks to the peer."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()


@contextlib.contextmanager
def flaky_proxy(
    target_port: int, *, cut_share: float, max_bytes: int, seed: int
) -> Iterator[FlakyProxy]:
    """A running :class:`FlakyProxy` (not cutting until :attr:`FlakyProxy.cutting` is set)."""
    with FlakyProxy(target_port, cut_share, max_bytes, seed) as proxy:
        yield proxy
