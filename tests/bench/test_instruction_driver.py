"""``bench/instructions.py --drive``: what callgrind runs to count instructions per answer.

The counts themselves belong to ``bench/`` (``python bench/instructions.py``, which needs
valgrind); this keeps the driver from rotting: every answer it drives, plain and resumable,
ends with ``[DONE]`` after every frame, and every resume gets the held answer's frames, or
the process fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "instructions.py"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("route", ["plain", "resumable"])
def test_the_driver_runs_paced_answers_to_their_end(route: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--drive", route, "4", "3", "5"],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("route", ["plain", "resumable"])
def test_the_driver_runs_resumes_of_a_held_answer(route: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--resumes", route, "6"],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_driver_refuses_an_unknown_route() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--drive", "fancy", "1", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "ROUTE" in done.stderr
