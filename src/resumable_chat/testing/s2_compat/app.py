"""The bundled S2 server as an ASGI app (:func:`create_app`) and its command line (:func:`main`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from starlette.applications import Starlette

from resumable_chat.testing.s2_compat.model import (
    EXTRA_HINT,
    IMPLEMENTED_OPERATIONS,
    NOT_IMPLEMENTED_OPERATIONS,
    Faults,
    Latency,
)
from resumable_chat.testing.s2_compat.routing import s2_http_error
from resumable_chat.testing.s2_compat.server import S2TestServer


def create_app(
    *,
    auto_create_basins: bool = True,
    create_stream_on_append: bool = True,
    create_stream_on_read: bool = True,
    access_token: str | None = None,
    ping_interval_s: float = 5.0,
    faults: Faults | None = None,
) -> Starlette:
    """A Starlette app serving the S2 REST v1 subset (https://s2.dev/docs/api) described in
    :mod:`resumable_chat.testing.s2_server`.

    Its routes are :meth:`S2TestServer.routes`, matched on the raw, still percent-encoded path
    so a basin or stream name holding ``/`` (``%2F``) stays one segment. An unknown path
    answers 404 and a known path with another method 405, both as S2 errors (``{"code":
    "bad_path", "message": ...}``); a trailing slash makes another, unknown path (no redirect).

    - ``auto_create_basins``: a stream request naming an unknown basin creates it (S2 would
      answer 404 ``basin_not_found``, which is what this does when it is off).
    - ``create_stream_on_append`` / ``create_stream_on_read``: the basin config new basins get
      (explicit ``config`` on create/ensure/PATCH wins).
    - ``access_token``: when set, requests need ``Authorization: Bearer <token>`` (401
      ``authn`` otherwise); ``None`` checks nothing, like s2-lite.
    - ``ping_interval_s``: seconds between SSE ``ping`` events on an idle session (s2-lite:
      random 5-15 s).
    - ``faults``: the :class:`Faults` seam, consulted per request and per SSE event.

    The :class:`S2TestServer` is at ``app.state.s2``.
    """
    server = S2TestServer(
        auto_create_basins=auto_create_basins,
        create_stream_on_append=create_stream_on_append,
        create_stream_on_read=create_stream_on_read,
        access_token=access_token,
        ping_interval_s=ping_interval_s,
        faults=faults,
    )
    app = Starlette(
        routes=server.routes(),
        exception_handlers={404: s2_http_error, 405: s2_http_error},
    )
    # a path with a trailing slash is its own (unknown) path, not a redirect to another one
    app.router.redirect_slashes = False
    app.state.s2 = server
    return app


def _help_epilog() -> str:
    implemented = ", ".join(IMPLEMENTED_OPERATIONS)
    missing = ", ".join(NOT_IMPLEMENTED_OPERATIONS)
    return (
        "Speaks S2 REST v1 (S2's published OpenAPI document, s2-streamstore/s2-specs) over "
        "HTTP/1.1 and cleartext HTTP/2 on one port: JSON and protobuf bodies, SSE read "
        "sessions, and s2s/proto append and read sessions. "
        f"Implemented operations: {implemented}. "
        f"Answered with 501 not_implemented: {missing}. "
        "Point S2_ACCOUNT_ENDPOINT and S2_BASIN_ENDPOINT at http://HOST:PORT (the basin comes "
        "from the S2-Basin header). Everything is in memory and lost on exit."
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m resumable_chat.testing.s2_server --host H --port N``.

    Serves :func:`create_app` with hypercorn (HTTP/1.1 and cleartext HTTP/2 with prior
    knowledge on the same port) until SIGINT or SIGTERM. ``argv`` defaults to
    ``sys.argv[1:]``. Prints nothing at start-up unless ``--log-level info``; callers wait
    for ``GET /health`` to answer 200.
    """
    parser = argparse.ArgumentParser(
        prog="python -m resumable_chat.testing.s2_server",
        description="An S2-compatible in-memory server for tests.",
        epilog=_help_epilog(),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--access-token", default=None, help="require this bearer token")
    parser.add_argument("--ping-interval", type=float, default=5.0, help="SSE ping seconds")
    parser.add_argument(
        "--no-auto-create-basins", action="store_true", help="404 for unknown basins"
    )
    parser.add_argument("--log-level", default="warning", help="server log level")
    parser.add_argument(
        "--append-latency-ms",
        type=float,
        default=0.0,
        help="acknowledge appends this many ms late (S2 Express ~40, Standard ~400)",
    )
    parser.add_argument(
        "--read-latency-ms", type=float, default=0.0, help="answer each read this many ms later"
    )
    args = parser.parse_args(argv)
    latency = None
    if args.append_latency_ms or args.read_latency_ms:
        latency = Latency(args.append_latency_ms, args.read_latency_ms)

    try:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config
    except ImportError as exc:
        raise SystemExit(
            f"the bundled S2 server needs the 'testing' extra ({exc.name} is missing): {EXTRA_HINT}"
        ) from None

    app = create_app(
        auto_create_basins=not args.no_auto_create_basins,
        access_token=args.access_token,
        ping_interval_s=args.ping_interval,
        faults=latency,
    )
    config = Config()
    host = f"[{args.host}]" if ":" in args.host else args.host
    config.bind = [f"{host}:{args.port}"]
    config.loglevel = args.log_level.upper()
    config.accesslog = None
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 75.0

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()
