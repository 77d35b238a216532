"""The example app serves the built React example at ``/react/``, and runs without it.

``examples/chat/app.py`` mounts ``examples/react-chat/dist`` when that folder exists (the
browser tests in ``test_browser_pages.py`` open the real build); here ``REACT_DIST`` points
at a tiny stand-in build, or at nothing, and the app runs in-process on uvicorn.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from resumable_chat.testing.app_server import serve_app

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "chat"


@pytest.fixture
def example_app_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``examples/chat/app.py`` as a module (its ``models`` import resolved from its folder),
    with the S2 and model env vars cleared so it runs the demo model on the embedded log."""
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN", "CHAT_MODEL", "CHAT_RECORDINGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    previous_models = sys.modules.pop("models", None)
    spec = importlib.util.spec_from_file_location("example_chat_app_mount", EXAMPLE_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:  # the example's `models` leaves with it
        sys.modules.pop("models", None)
        if previous_models is not None:
            sys.modules["models"] = previous_models


async def test_built_react_example_is_served_at_react(
    example_app_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "dist"
    (dist / "tanstack").mkdir(parents=True)
    (dist / "index.html").write_text("<title>AI SDK page</title>")
    (dist / "tanstack" / "index.html").write_text("<title>TanStack page</title>")
    monkeypatch.setattr(example_app_module, "REACT_DIST", dist)

    async with serve_app(example_app_module.create_app()) as base_url:
        async with httpx.AsyncClient(base_url=base_url, follow_redirects=True) as client:
            page = await client.get("/react/")
            assert (page.status_code, page.text) == (200, "<title>AI SDK page</title>")
            assert page.headers["content-type"].startswith("text/html")
            tanstack = await client.get("/react/tanstack")
            assert str(tanstack.url).endswith("/react/tanstack/")
            assert (tanstack.status_code, tanstack.text) == (200, "<title>TanStack page</title>")
            assert (await client.get("/react/missing.js")).status_code == 404
            assert (await client.get("/")).status_code == 200


async def test_app_runs_without_the_react_build(
    example_app_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(example_app_module, "REACT_DIST", tmp_path / "not-built")

    async with serve_app(example_app_module.create_app()) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.get("/react/")).status_code == 404
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/api/chat/idle-chat/stream")).status_code == 204
