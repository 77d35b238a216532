"""Fixtures for end-to-end tests of the example app (``examples/chat/app.py``).

The app runs as a real subprocess (``python examples/chat/app.py --host 127.0.0.1 --port N``)
and is driven over HTTP by httpx, by the real AI SDK clients through
``tests/js/aisdk_chat_driver.mjs`` and by the real TanStack AI clients through
``tests/js/tanstack_chat_driver.mjs`` (see :func:`run_driver`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from js_client import TANSTACK_DRIVER, run_driver
from resumable_chat.testing.app_server import free_port

try:
    from resumable_chat.testing import pytest_plugin as _s2_plugin
except ImportError:  # the plugin ships with the package; skip cleanly if it is absent
    _s2_plugin = None  # type: ignore[assignment]

    @pytest.fixture(scope="session")
    def s2_server_url() -> str:
        """Stand-in while ``resumable_chat.testing.pytest_plugin`` is missing: skip."""
        pytest.skip("resumable_chat.testing.pytest_plugin is not available")


REPO_ROOT = Path(__file__).resolve().parents[2]
APP_SCRIPT = REPO_ROOT / "examples" / "chat" / "app.py"
RECORDINGS_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "openai-streams"
AI_SDK_PACKAGES = ("ai", "ai-v5", "ai-v7")
#: ``@tanstack/ai-client`` 0.33.x and 0.10.0 (npm alias ``tanstack-ai-client-v010``).
TANSTACK_PACKAGES = ("@tanstack/ai-client", "tanstack-ai-client-v010")

#: Env vars of the app that a developer's shell must not leak into a test run.
_APP_ENV_VARS = (
    "CHAT_MODEL",
    "CHAT_RECORDINGS",
    "CHAT_TOKEN_DELAY_MS",
    "CHAT_LEASE_MS",
    "S2_ACCESS_TOKEN",
    "S2_BASIN",
    "S2_ACCOUNT_ENDPOINT",
    "S2_BASIN_ENDPOINT",
)
_STARTUP_TIMEOUT_S = 20.0


def pytest_configure(config: pytest.Config) -> None:
    """Register the package's pytest plugin (``s2_server_url``) when it is not installed.

    Installed (``pip install -e .``), the plugin comes in through its ``pytest11`` entry
    point; with only ``PYTHONPATH=src`` it does not, so it is registered here.
    """
    if _s2_plugin is not None and not config.pluginmanager.is_registered(_s2_plugin):
        config.pluginmanager.register(_s2_plugin, "resumable_chat.testing.pytest_plugin")


@dataclass
class ExampleApp:
    """A running example app: its base URL, process and log file."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the app's combined stdout/stderr, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    def client(self, **options: Any) -> httpx.Client:
        """An httpx client on the app (timeout 10 s unless given)."""
        options.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.base_url, **options)


def _app_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _APP_ENV_VARS}
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` (kill it after 10 s) and reap it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def example_app(env: Mapping[str, str], log_dir: Path) -> Iterator[ExampleApp]:
    """Start the example app with ``env`` on a free port; stop it on exit.

    Waits until ``GET /api/chat/<probe>/stream`` answers (which also touches the storage).
    Fails with the app's log when it exits or does not answer within 20 s.
    """
    port = free_port()
    log_path = log_dir / f"example-app-{port}.log"
    full_env = _app_env(env)
    command = [sys.executable, str(APP_SCRIPT), "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    app = ExampleApp(f"http://127.0.0.1:{port}", process, log_path, dict(env))
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        with app.client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the example app exited ({process.returncode}):\n{app.log_tail()}")
                try:
                    response = client.get("/api/chat/startup-probe/stream")
                    if response.status_code in (200, 204):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the example app did not answer in time:\n{app.log_tail()}")
                time.sleep(0.05)
        yield app
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def start_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ExampleApp]]:
    """Factory: ``start_app(**env)`` starts an example app that lives until the module ends."""
    log_dir = tmp_path_factory.mktemp("example-app")
    with contextlib.ExitStack() as stack:

        def start(**env: str) -> ExampleApp:
            return stack.enter_context(example_app(env, log_dir))

        yield start


@pytest.fixture(scope="module")
def demo_app(start_app: Callable[..., ExampleApp]) -> ExampleApp:
    """The example app with the offline demo model and the embedded log, one per module.

    ``CHAT_TOKEN_DELAY_MS=20``: the ~80-word demo answer takes ~1.7 s, so a resume after a
    few deltas is truly mid-answer.
    """
    return start_app(CHAT_TOKEN_DELAY_MS="20")


def new_chat_id(prefix: str) -> str:
    """A chat id unique to this run (tests share one app, so every test uses its own)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def driver() -> Callable[..., dict[str, Any]]:
    """:func:`run_driver`: ``driver(app, scenario, package=..., **options)`` → result dict."""
    return run_driver


@pytest.fixture
def tanstack_driver() -> Callable[..., dict[str, Any]]:
    """``tanstack_driver(app, scenario, package=..., **options)`` → result dict: one scenario of
    ``tests/js/tanstack_chat_driver.mjs`` (default package ``@tanstack/ai-client``)."""
    return functools.partial(run_driver, script=TANSTACK_DRIVER, package=TANSTACK_PACKAGES[0])


@pytest.fixture
def chat_id(request: pytest.FixtureRequest) -> str:
    """A chat id unique to this test run, named after the test."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
    return new_chat_id(name[-60:].strip("-"))
