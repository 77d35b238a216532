"""pytest fixtures for code built on the S2 log port (a ``pytest11`` entry point).

- ``s2_server_url`` (session): the base URL (``http://127.0.0.1:PORT``) of the bundled
  S2-compatible test server, run as a subprocess
  (``python -m resumable_chat.testing.s2_server``, HTTP/1.1 and cleartext HTTP/2); needs the
  ``testing`` extra (``pip install 'resumable-chat[testing]'``) and skips the test, naming
  it, when that is missing.
- ``memory_basin`` (function): a fresh :class:`~resumable_chat.s2.memory.MemoryBasin`.
- ``http_basin`` (function): an :class:`~resumable_chat.s2.http.HttpBasin` on a fresh, unique
  basin of that server, closed afterwards.
- ``basin`` (function): parametrized over ``memory``, ``http`` and ``s2`` (real S2 through
  :func:`~resumable_chat.s2.config.basin_from_env` when ``S2_ACCESS_TOKEN`` and ``S2_BASIN``
  are set; skipped otherwise, naming the missing variable).
- ``s2_stream_name`` (function): a unique stream name (uuid), so runs against real S2 never
  collide.

The module imports only the standard library and pytest; everything else is imported when a
fixture runs. Async fixtures use ``pytest_asyncio.fixture`` when pytest-asyncio is installed.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from resumable_chat.s2 import Basin, HttpBasin, MemoryBasin

__all__ = [
    "basin",
    "free_port",
    "http_basin",
    "memory_basin",
    "s2_server_url",
    "s2_stream_name",
    "unique_basin_name",
]


try:  # strict-mode projects need pytest_asyncio.fixture for async fixtures
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio, plain pytest fixtures
    _async_fixture = pytest.fixture  # type: ignore[assignment]

#: The parameters of the ``basin`` fixture.
BASIN_KINDS = ("memory", "http", "s2")
_STARTUP_TIMEOUT_S = 20.0
#: What the server subprocess imports beyond the package's own dependencies.
_SERVER_MODULES = ("hypercorn", "google.protobuf", "zstandard")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that the OS reported free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def unique_basin_name(prefix: str = "test") -> str:
    """A valid, unique S2 basin name: ``<prefix>-<12 hex digits>`` (8-48 of ``[a-z0-9-]``)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _answers(host: str, port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=1)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False


@pytest.fixture(scope="session")
def s2_server_url() -> Iterator[str]:
    """Start the bundled S2 test server on a free port; yield ``http://127.0.0.1:PORT``.

    The server (``python -m resumable_chat.testing.s2_server``) runs for the whole session and
    is terminated at the end. Skips when the ``testing`` extra is not installed; fails when
    the server does not answer ``GET /health`` within 20 s (its stderr is shown).
    """
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install 'resumable-chat[testing]'")
    host, port = "127.0.0.1", free_port()
    command = [
        sys.executable,
        "-m",
        "resumable_chat.testing.s2_server",
        "--host",
        host,
        "--port",
        str(port),
    ]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + _STARTUP_TIMEOUT_S
            while not _answers(host, port):
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr.seek(0)
                    output = stderr.read().decode(errors="replace")[-4000:]
                    pytest.fail(f"the S2 test server did not start ({command}):\n{output}")
                time.sleep(0.05)
            yield f"http://{host}:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def s2_stream_name() -> str:
    """A unique stream name for one test: ``test-<uuid4 hex>``."""
    return f"test-{uuid.uuid4().hex}"


@_async_fixture
async def memory_basin() -> AsyncIterator[MemoryBasin]:
    """A fresh in-process :class:`MemoryBasin` (streams created on append and read)."""
    from resumable_chat.s2 import MemoryBasin

    basin = MemoryBasin()
    try:
        yield basin
    finally:
        await basin.aclose()


def _http_basin(url: str) -> HttpBasin:
    from resumable_chat.s2 import HttpBasin

    return HttpBasin(
        unique_basin_name(), access_token="test", account_endpoint=url, basin_endpoint=url
    )


@_async_fixture
async def http_basin(s2_server_url: str) -> AsyncIterator[HttpBasin]:
    """An :class:`HttpBasin` on a fresh unique basin of the ``s2_server_url`` server.

    The basin uses the ``S2-Basin`` header (the endpoint has no ``{basin}``) and is created
    by the server on first use. Closed after the test.
    """
    basin = _http_basin(s2_server_url)
    try:
        yield basin
    finally:
        await basin.aclose()


def _missing_s2_env() -> list[str]:
    return [name for name in ("S2_ACCESS_TOKEN", "S2_BASIN") if not os.environ.get(name)]


@_async_fixture(params=BASIN_KINDS)
async def basin(request: pytest.FixtureRequest) -> AsyncIterator[Basin]:
    """Each basin implementation in turn: ``memory``, ``http`` (the test server), ``s2``.

    ``s2`` is real S2 from the environment (``S2_ACCESS_TOKEN``, ``S2_BASIN``, optional
    ``S2_ACCOUNT_ENDPOINT`` / ``S2_BASIN_ENDPOINT``); without them that case is skipped with
    the missing variable named. Use unique stream names (``s2_stream_name``) so runs against
    one real basin never collide.
    """
    kind: str = request.param
    result: Basin
    if kind == "memory":
        from resumable_chat.s2 import MemoryBasin

        result = MemoryBasin()
    elif kind == "http":
        result = _http_basin(request.getfixturevalue("s2_server_url"))
    else:
        missing = _missing_s2_env()
        if missing:
            pytest.skip(f"real S2 not configured: {' and '.join(missing)} not set")
        from resumable_chat.s2 import basin_from_env

        result = basin_from_env()
    try:
        yield result
    finally:
        await result.aclose()
