"""``basin_from_env``: S2 over HTTP when configured, else the embedded log (DESIGN §4)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resumable_chat import create_resumable_chat
from resumable_chat.s2 import (
    HttpBasin,
    MemoryBasin,
    S2ConfigError,
    S2NameError,
    basin_from_env,
    check_basin_name,
    check_stream_name,
)


async def test_embedded_log_when_nothing_is_configured(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="resumable_chat.s2.config"):
        basin = basin_from_env({"S2_ACCESS_TOKEN": "", "OTHER": "x"})
    assert isinstance(basin, MemoryBasin)
    lines = [r for r in caplog.records if r.name == "resumable_chat.s2.config"]
    # WARNING: shown by Python's last-resort handler under any ASGI server (see below).
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "embedded in-process log" in lines[0].getMessage()


def test_the_embedded_log_line_shows_under_plain_uvicorn(tmp_path: Path) -> None:
    """``uvicorn app:app`` configures only its own loggers; the line still reaches stderr."""
    (tmp_path / "app.py").write_text(
        "from fastapi import FastAPI\n"
        "from resumable_chat import create_resumable_chat\n"
        "chat = create_resumable_chat()\n"
        "app = FastAPI()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2_")}
    command = [sys.executable, "-c", "import app, uvicorn; uvicorn.Config('app:app').load()"]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "storage is the embedded in-process log" in result.stderr


async def test_http_basin_from_the_environment() -> None:
    basin = basin_from_env(
        {
            "S2_ACCESS_TOKEN": "tok",
            "S2_BASIN": "my-basin",
            "S2_ACCOUNT_ENDPOINT": "http://localhost:8080",
            "S2_BASIN_ENDPOINT": "http://localhost:8080",
        }
    )
    assert isinstance(basin, HttpBasin)
    assert basin.name == "my-basin"
    assert "localhost:8080" in repr(basin)
    await basin.aclose()
    default = basin_from_env({"S2_ACCESS_TOKEN": "tok", "S2_BASIN": "my-basin"})
    assert "my-basin.b.s2.dev" in repr(default)
    await default.aclose()


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"S2_BASIN": "my-basin"}, "S2_ACCESS_TOKEN"),
        ({"S2_ACCESS_TOKEN": "tok", "S2_BASIN": ""}, "S2_BASIN"),
    ],
)
def test_half_configured_is_an_error(environ: dict[str, str], missing: str) -> None:
    with pytest.raises(S2ConfigError, match=f"{missing} is missing"):
        basin_from_env(environ)


@pytest.mark.parametrize(
    "name", ["chats", "My-Basin-1", "-leading-hyphen", "trailing-hyphen-", "b" * 49, "has_under"]
)
def test_a_basin_name_s2_would_refuse_is_an_error_naming_the_rule(name: str) -> None:
    with pytest.raises(S2NameError, match="8 to 48 characters of lowercase") as caught:
        basin_from_env({"S2_ACCESS_TOKEN": "tok", "S2_BASIN": name})
    assert "S2_BASIN" in str(caught.value) and caught.value.name == name
    assert isinstance(caught.value, S2ConfigError) and isinstance(caught.value, ValueError)
    with pytest.raises(S2NameError):
        HttpBasin(name, access_token="tok")


def test_valid_names_pass_and_stream_names_are_bounded() -> None:
    for name in ("my-basin", "a" * 48, "0basin-9"):
        assert check_basin_name(name) == name
    assert check_stream_name("a/b:c") == "a/b:c"
    with pytest.raises(S2NameError, match="1 to 512 bytes"):
        check_stream_name("é" * 257)  # 514 bytes
    with pytest.raises(S2NameError, match="1 to 512 bytes"):
        check_stream_name("")
    with pytest.raises(S2NameError, match="stream_prefix"):
        create_resumable_chat(stream_prefix="no spaces")
