"""``basin_from_env``: S2 over HTTP when configured, else the embedded log (DESIGN §4)."""

from __future__ import annotations

import logging

import pytest

from resumable_chat.s2 import HttpBasin, MemoryBasin, S2ConfigError, basin_from_env


async def test_embedded_log_when_nothing_is_configured(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="resumable_chat.s2.config"):
        basin = basin_from_env({"S2_ACCESS_TOKEN": "", "OTHER": "x"})
    assert isinstance(basin, MemoryBasin)
    lines = [r for r in caplog.records if r.name == "resumable_chat.s2.config"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "embedded in-process log" in lines[0].getMessage()


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
