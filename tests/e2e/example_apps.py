"""The example app (``examples/chat/app.py``) as a real subprocess on 127.0.0.1, for the
end-to-end tests: started with :func:`example_app`, stopped with :func:`stop_process`.

A module of its own (not ``conftest``) so test modules import it by a name no other test
folder uses: ``pytest tests/e2e tests/faults`` imports both folders' ``conftest``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from resumable_chat.testing.app_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_SCRIPT = REPO_ROOT / "examples" / "chat" / "app.py"

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


def app_env(overrides: Mapping[str, str]) -> dict[str, str]:
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
    full_env = app_env(env)
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


def new_chat_id(prefix: str) -> str:
    """A chat id unique to this run (tests share one app, so every test uses its own)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
