"""CPU instructions per answer and per chunk, plain against resumable, counted by callgrind.

This VM's speed moves by a third between runs, so timed figures are compared only side by
side. An instruction count does not move: ``valgrind --tool=callgrind`` counts the
instructions a process runs, the same for the same code and inputs whatever else the machine
does. It measures what the concurrent-generation figure depends on (the CPU an answer costs
the app) without the noise, so a change to the hot path can be judged by one run::

    python bench/instructions.py [--json out.json]

For each route of ``bench/app.py`` (``plain``: a Starlette ``StreamingResponse`` of the
source; ``resumable``: ``make_resumable`` on the embedded ``MemoryBasin``), three processes
run under callgrind, each driving the ASGI app in process (no sockets: the server's part,
the same on both sides, is left out) with answers paced as the concurrent-generation
benchmark paces them, a chunk every :data:`INTERVAL_MS` (longer than its 20 ms, so that
even under callgrind, which runs code about 50 times slower, the event loop keeps the pace
and every chunk takes the path a paced chunk takes: sent from the producer's step, stored
at once; idle time costs no instructions):

- 50 answers of 1 delta, then 150: their difference over 100 is the cost of one answer
  (the request, the route, the claim, the start and end chunks, one delta);
- 50 answers of 101 deltas: against the first, the cost of one more delta chunk.

It prints both per route and what they predict for the concurrent-generation benchmark's
answers (100 deltas): ``plain / resumable``, the ratio of the answers one core carries when
the server's own work is left out. Requires valgrind (``apt-get install valgrind``); takes
about two minutes.

``python bench/instructions.py --drive ROUTE ANSWERS DELTAS [INTERVAL_MS]`` is what
callgrind runs: it drives the answers and checks each ended (``data: [DONE]``) with every
frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROUTES = ("plain", "resumable")

#: The concurrent-generation benchmark's answer: deltas per answer (``bench/run.py``).
ANSWER_DELTAS = 100

#: (answers, deltas) of the three runs per route.
RUNS = ((50, 1), (150, 1), (50, 101))

#: The pace of the answers' chunks under callgrind (ms between chunks).
INTERVAL_MS = 100

_BODY = json.dumps(
    {"messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
).encode()


async def _answer(app: Any, route: str, chat_id: str, deltas: int, interval_ms: float) -> int:
    """POST one answer of ``deltas`` deltas, a chunk every ``interval_ms``, to ``app``
    (ASGI) and return its frame count; raises ``AssertionError`` when it ends without
    ``[DONE]``."""
    done = asyncio.Event()
    body: list[bytes] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": _BODY, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    path = f"/{route}/{chat_id}"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": f"n={deltas}&interval_ms={interval_ms}".encode(),
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "root_path": "",
        "state": {},
    }
    await app(scope, receive, send)
    text = b"".join(body)
    assert text.endswith(b"data: [DONE]\n\n"), text[-200:]
    return text.count(b"data: ")


async def drive(route: str, answers: int, deltas: int, interval_ms: float) -> None:
    """Start the bench app on a ``MemoryBasin``, run a few answers to warm it up, then
    ``answers`` answers of ``deltas`` deltas at once, a chunk every ``interval_ms``; raises
    ``AssertionError`` when one misses a frame."""
    sys.path.insert(0, str(HERE))
    from app import create_app  # bench/app.py

    from resumable_chat.s2 import MemoryBasin

    app = create_app(MemoryBasin())
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        await asyncio.gather(*(_answer(app, route, f"warm-{i}", 3, interval_ms) for i in range(5)))
        frames = await asyncio.gather(
            *(_answer(app, route, f"a{i}", deltas, interval_ms) for i in range(answers))
        )
        expected = deltas + 5  # start, text-start, deltas, text-end, finish, [DONE]
        assert all(f == expected for f in frames), (set(frames), expected)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan


def _event_loop_runner() -> Any:
    """uvloop's ``run`` where it is installed (the bench servers run on it), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the bench extra installs it
        return asyncio.run
    return uvloop.run


def count(route: str, answers: int, deltas: int) -> int:
    """Instructions of one ``--drive`` process under callgrind; raises ``RuntimeError``
    when the process fails."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            "--drive",
            route,
            str(answers),
            str(deltas),
            str(INTERVAL_MS),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or collected is None:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
    return int(collected.group(1))


def measure() -> dict[str, Any]:
    """Per route: instructions per answer (``answer``) and per extra delta chunk
    (``chunk``); ``answer_100``: an answer of :data:`ANSWER_DELTAS` deltas; ``ratio``:
    plain's ``answer_100`` over ours. Runs six callgrind processes, two at a time (about
    two minutes). Raises ``RuntimeError`` without valgrind, or when a run fails."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    jobs = [(route, answers, deltas) for route in ROUTES for answers, deltas in RUNS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: count(*job), jobs), strict=True))
    result: dict[str, Any] = {}
    for route in ROUTES:
        (a_n, a_d), (b_n, _), (c_n, c_d) = RUNS
        base = totals[(route, a_n, a_d)]
        answer = (totals[(route, b_n, a_d)] - base) / (b_n - a_n)
        chunk = (totals[(route, c_n, c_d)] - base) / (c_n * (c_d - a_d))
        result[route] = {
            "answer": round(answer),
            "chunk": round(chunk),
            "answer_100": round(answer + (ANSWER_DELTAS - 1) * chunk),
        }
    result["ratio"] = result["plain"]["answer_100"] / result["resumable"]["answer_100"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--drive", nargs="+", metavar="ROUTE ANSWERS DELTAS [INTERVAL_MS]")
    args = parser.parse_args()
    if args.drive:
        if len(args.drive) not in (3, 4) or args.drive[0] not in ROUTES:
            parser.error(f"--drive ROUTE ANSWERS DELTAS [INTERVAL_MS], ROUTE one of {ROUTES}")
        route, answers, deltas, *interval = args.drive
        pace = float(interval[0]) if interval else 0.0
        _event_loop_runner()(drive(route, int(answers), int(deltas), pace))
        return
    result = measure()
    for route in ROUTES:
        r = result[route]
        print(
            f"{route:9}  per answer {r['answer']:>10,}  per delta {r['chunk']:>7,}"
            f"  answer of {ANSWER_DELTAS} deltas {r['answer_100']:>11,}  (instructions)"
        )
    print(f"plain / resumable, answers of {ANSWER_DELTAS} deltas: {result['ratio']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
