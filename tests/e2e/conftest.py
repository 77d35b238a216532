"""Fixtures for end-to-end tests of the example app (``examples/chat/app.py``).

The app runs as a real subprocess (``python examples/chat/app.py --host 127.0.0.1 --port N``)
and is driven over HTTP by httpx, by the real AI SDK clients through
``tests/js/aisdk_chat_driver.mjs`` and by the real TanStack AI clients through
``tests/js/tanstack_chat_driver.mjs`` (see :func:`run_driver`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from example_apps import ExampleApp, example_app, new_chat_id

from js_client import TANSTACK_DRIVER, run_driver

try:
    from resumable_chat.testing import pytest_plugin as _s2_plugin
except ImportError:  # the plugin ships with the package; skip cleanly if it is absent
    _s2_plugin = None  # type: ignore[assignment]

    @pytest.fixture(scope="session")
    def s2_server_url() -> str:
        """Stand-in while ``resumable_chat.testing.pytest_plugin`` is missing: skip."""
        pytest.skip("resumable_chat.testing.pytest_plugin is not available")


#: ``@tanstack/ai-client`` 0.33.x, 0.22.1 and 0.10.0 (npm aliases ``tanstack-ai-client-v022``,
#: ``tanstack-ai-client-v010``).
TANSTACK_PACKAGES = ("@tanstack/ai-client", "tanstack-ai-client-v022", "tanstack-ai-client-v010")


def pytest_configure(config: pytest.Config) -> None:
    """Register the package's pytest plugin (``s2_server_url``) when it is not installed.

    Installed (``pip install -e .``), the plugin comes in through its ``pytest11`` entry
    point; with only ``PYTHONPATH=src`` it does not, so it is registered here.
    """
    if _s2_plugin is not None and not config.pluginmanager.is_registered(_s2_plugin):
        config.pluginmanager.register(_s2_plugin, "resumable_chat.testing.pytest_plugin")


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
