"""CPU instructions per answer, per chunk and per resume, plain against ours, by callgrind.

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

It prints both per route and what they make of the concurrent-generation benchmark's
answers (100 deltas): ``plain / resumable``, the ratio of the answers one core carries when
the server's own work is left out. Two more runs per route count a resume: 50, then 150
followers at once of an answer of five deltas held running (ours: ``chat.replay``; plain:
the floor route, which sends the same frames with no lookup and no storage), each leaving
once it has them. Requires valgrind (``apt-get install valgrind``); takes two to three
minutes.

``python bench/instructions.py --drive ROUTE ANSWERS DELTAS [INTERVAL_MS]`` and
``--resumes ROUTE RESUMES`` are what callgrind runs: they drive the requests and check each
got every frame (an answer: up to ``data: [DONE]``).
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


async def _request(
    app: Any, method: str, path: str, query: str, *, leave_after: int | None = None
) -> bytes:
    """One request to ``app`` (ASGI; a POST carries a one-message chat body); returns the
    response body once the response ends. With ``leave_after``, the client disconnects once
    that many SSE ``data:`` lines came (a follower that got what it waited for)."""
    ended = asyncio.Event()  # the response ended, or the client leaves
    body: list[bytes] = []
    seen = 0
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            payload = _BODY if method == "POST" else b""
            return {"type": "http.request", "body": payload, "more_body": False}
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal seen
        if message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            body.append(chunk)
            seen += chunk.count(b"data: ")
            if not message.get("more_body", False):
                ended.set()
            elif leave_after is not None and seen >= leave_after:
                ended.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "root_path": "",
        "state": {},
    }
    await app(scope, receive, send)
    return b"".join(body)


async def _answer(app: Any, route: str, chat_id: str, deltas: int, interval_ms: float) -> int:
    """POST one answer of ``deltas`` deltas, a chunk every ``interval_ms``, to ``app``
    (ASGI) and return its frame count; raises ``AssertionError`` when it ends without
    ``[DONE]``."""
    query = f"n={deltas}&interval_ms={interval_ms}"
    text = await _request(app, "POST", f"/{route}/{chat_id}", query)
    assert text.endswith(b"data: [DONE]\n\n"), text[-200:]
    return text.count(b"data: ")


#: What a resume waits for: a held answer's start, text-start and five deltas.
HELD_FRAMES = 7


async def _resume(app: Any, route: str) -> None:
    """GET the held answer's stream (``resumable``: the replay of the chat ``held``;
    ``plain``: the floor route's fixed frames) and leave once its :data:`HELD_FRAMES`
    came; raises ``AssertionError`` when the response ended first."""
    text = await _request(app, "GET", f"/{route}/held/stream", "", leave_after=HELD_FRAMES)
    assert text.count(b"data: ") >= HELD_FRAMES, text[-200:]


class _BenchApp:
    """The bench app on a ``MemoryBasin``, its lifespan run by hand (``async with``)."""

    async def __aenter__(self) -> Any:
        sys.path.insert(0, str(HERE))
        from app import create_app  # bench/app.py

        from resumable_chat.s2 import MemoryBasin

        self.app = create_app(MemoryBasin())
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await self._inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.create_task(self.app(scope, self._inbox.get, outbox.put))
        started = await outbox.get()
        assert started["type"] == "lifespan.startup.complete", started
        return self.app

    async def __aexit__(self, *exc: object) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._lifespan


async def drive(route: str, answers: int, deltas: int, interval_ms: float) -> None:
    """Start the bench app on a ``MemoryBasin``, run a few answers to warm it up, then
    ``answers`` answers of ``deltas`` deltas at once, a chunk every ``interval_ms``; raises
    ``AssertionError`` when one misses a frame."""
    async with _BenchApp() as app:
        await asyncio.gather(*(_answer(app, route, f"warm-{i}", 3, interval_ms) for i in range(5)))
        frames = await asyncio.gather(
            *(_answer(app, route, f"a{i}", deltas, interval_ms) for i in range(answers))
        )
        expected = deltas + 5  # start, text-start, deltas, text-end, finish, [DONE]
        assert all(f == expected for f in frames), (set(frames), expected)


async def drive_resumes(route: str, resumes: int) -> None:
    """Start the bench app on a ``MemoryBasin`` and (``resumable``) an answer of five
    deltas held running; warm up with a few resumes, then ``resumes`` resumes at once,
    each leaving once it got the answer so far; raises ``AssertionError`` when one misses
    a frame. The held answer is stopped at shutdown (after a second's drain)."""
    async with _BenchApp() as app:
        if route == "resumable":  # its client leaves; the answer runs on (held)
            query = "n=5&hold_s=3600"
            await _request(app, "POST", "/resumable/held", query, leave_after=HELD_FRAMES)
        await asyncio.gather(*(_resume(app, route) for _ in range(5)))
        await asyncio.gather(*(_resume(app, route) for _ in range(resumes)))


def _event_loop_runner() -> Any:
    """uvloop's ``run`` where it is installed (the bench servers run on it), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the bench extra installs it
        return asyncio.run
    return uvloop.run


def count(*drive_args: str) -> int:
    """Instructions of one ``--drive`` (or ``--resumes``) process under callgrind, its
    arguments ``drive_args`` (e.g. ``"--drive", "plain", "50", "1", "100"``); raises
    ``RuntimeError`` when the process fails."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            *drive_args,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or collected is None:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
    return int(collected.group(1))


#: Resumes at once in the two runs per route whose difference gives one resume's cost.
RESUME_RUNS = (50, 150)


def measure() -> dict[str, Any]:
    """Per route: instructions per answer (``answer``), per extra delta chunk (``chunk``),
    per answer of :data:`ANSWER_DELTAS` deltas (``answer_100``) and per resume of a held
    answer (``resume``: ours replays the log, plain sends the floor's fixed frames);
    ``ratio``: plain's ``answer_100`` over ours. Runs ten callgrind processes, two at a
    time (two to three minutes). Raises ``RuntimeError`` without valgrind, or when a run
    fails."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    jobs: list[tuple[str, ...]] = [
        ("--drive", route, str(answers), str(deltas), str(INTERVAL_MS))
        for route in ROUTES
        for answers, deltas in RUNS
    ]
    jobs += [("--resumes", route, str(n)) for route in ROUTES for n in RESUME_RUNS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: count(*job), jobs), strict=True))
    result: dict[str, Any] = {}
    for route in ROUTES:
        (a_n, a_d), (b_n, _), (c_n, c_d) = RUNS

        def total(answers: int, deltas: int, route: str = route) -> int:
            return totals[("--drive", route, str(answers), str(deltas), str(INTERVAL_MS))]

        base = total(a_n, a_d)
        answer = (total(b_n, a_d) - base) / (b_n - a_n)
        chunk = (total(c_n, c_d) - base) / (c_n * (c_d - a_d))
        few, many = (totals[("--resumes", route, str(n))] for n in RESUME_RUNS)
        result[route] = {
            "answer": round(answer),
            "chunk": round(chunk),
            "answer_100": round(answer + (ANSWER_DELTAS - 1) * chunk),
            "resume": round((many - few) / (RESUME_RUNS[1] - RESUME_RUNS[0])),
        }
    result["ratio"] = result["plain"]["answer_100"] / result["resumable"]["answer_100"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--drive", nargs="+", metavar="ROUTE ANSWERS DELTAS [INTERVAL_MS]")
    parser.add_argument("--resumes", nargs=2, metavar=("ROUTE", "RESUMES"))
    args = parser.parse_args()
    if args.drive:
        if len(args.drive) not in (3, 4) or args.drive[0] not in ROUTES:
            parser.error(f"--drive ROUTE ANSWERS DELTAS [INTERVAL_MS], ROUTE one of {ROUTES}")
        route, answers, deltas, *interval = args.drive
        pace = float(interval[0]) if interval else 0.0
        _event_loop_runner()(drive(route, int(answers), int(deltas), pace))
        return
    if args.resumes:
        if args.resumes[0] not in ROUTES:
            parser.error(f"--resumes ROUTE RESUMES, ROUTE one of {ROUTES}")
        _event_loop_runner()(drive_resumes(args.resumes[0], int(args.resumes[1])))
        return
    result = measure()
    for route in ROUTES:
        r = result[route]
        print(
            f"{route:9}  per answer {r['answer']:>10,}  per delta {r['chunk']:>7,}"
            f"  answer of {ANSWER_DELTAS} deltas {r['answer_100']:>11,}"
            f"  per resume {r['resume']:>9,}  (instructions)"
        )
    print(f"plain / resumable, answers of {ANSWER_DELTAS} deltas: {result['ratio']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
