"""``python bench/run.py --smoke`` runs every benchmark in seconds and writes well-formed JSON.

The figures themselves are not asserted (timing belongs to bench/, not to tests); this keeps
the benchmark suite from rotting. The peer needs Node.js and Debian's ``redis-server``
(``.ci/run`` installs it); without them the test is skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    missing = [tool for tool in ("node", "npm", "redis-server") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the benchmark peer needs {', '.join(missing)} (apt-get install redis-server)")
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert len(figures) >= 25
    for name, figure in figures.items():
        assert set(figure) == {"value", "unit", "goal", "met"}, name
        assert isinstance(figure["unit"], str) and figure["unit"], name
        assert figure["goal"] is None or isinstance(figure["goal"], str), name
        assert figure["met"] in (True, False, None), name
        if figure["value"] is None:
            # a ratio of load steps where one side carried none (a busy machine fails even
            # the smoke's smallest step): no samples, reported as such, neither met nor not
            assert "concurrent generations" in name and figure["unit"] == "ratio", name
            assert figure["met"] is None, name
            continue
        assert isinstance(figure["value"], int | float), name
        assert (figure["met"] is None) == (figure["goal"] is None), name
    names = " | ".join(figures)
    for expected in (
        "added first-chunk time",
        "persisted chunks/s",
        "resume first chunk",
        "follower lag",
        "followers, first chunk",
        "replay start",
        "memory per idle follower",
        "concurrent generations",
        "MESSAGES_SNAPSHOT fold",
        "peer: added first-chunk time",
        "peer: resume first chunk",
        "peer: chunks/s, one follower",
        "ratio to a plain StreamingResponse",
        "2 process(es)",
        "idle followers held",
        "S2 Express (40 ms): follower lag p50, another instance",
        "S2 Standard (400 ms): added first-chunk time",
        "S2 Standard (400 ms): stop latency from another instance",
        "ours over HTTP to S2",
        "followers on open connections, first chunk p99",
        "50 concurrent on open connections",
        "each with a live follower",
        "S2 Express (40 ms): concurrent generations at 50 chunks/s, one process",
    ):
        assert expected in names, expected
    assert "figures in" in done.stdout  # the table was printed
