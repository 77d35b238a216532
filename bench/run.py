"""Run every benchmark of resumable-chat, print a table and write the figures as JSON.

    python bench/run.py          # the full run (minutes): writes bench/results/latest.json
    python bench/run.py --smoke --out /tmp/bench.json   # seconds: small counts

Every figure is a ratio or a difference measured side by side in the same run (absolute times
drift on a shared machine). Servers run in their own processes on 127.0.0.1: ``bench/app.py``
on the embedded ``MemoryBasin`` and on ``HttpBasin`` → the S2-compatible test server
(``python -m resumable_chat.testing.s2_server``), and the peer, Vercel ``resumable-stream``
2.2.13 on a real ``redis-server`` (``bench/peer/``). The load generator is another process
(``bench/loadgen.py``, httpx). The ``MESSAGES_SNAPSHOT`` fold is timed in this process.

The JSON maps figure name → ``{"value", "unit", "goal", "met"}`` (``goal`` is text such as
``"<= 0.5"``; ``met`` is ``null`` for figures without a goal or not measured). Goals are the
targets of issue 7; a missed goal is reported, never an error. Exit status 0 unless a
benchmark itself failed to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
#: Seconds one load-generator process may take (``--smoke`` lowers it).
LOADGEN_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pct(data: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``data``, nearest rank; ``None`` (reported "n/a") when
    there are no samples (every request failed): never a made-up number, never a crash."""
    if not data:
        return None
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def sub(a: float | None, b: float | None) -> float | None:
    """``a - b``, ``None`` when either is unknown."""
    return None if a is None or b is None else a - b


def div(a: float | None, b: float | None) -> float | None:
    """``a / b``, ``None`` when either is unknown or ``b`` is 0."""
    return None if a is None or not b else a / b


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    goal: str | None = None
    met: bool | None = None
    note: str = ""


def check(value: float | None, goal: str | None) -> bool | None:
    """Whether ``value`` meets ``goal`` (``"<= x"`` or ``">= x"``); None when unknown."""
    if value is None or goal is None:
        return None
    op, bound = goal.split()
    return value <= float(bound) if op == "<=" else value >= float(bound)


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(
        self, name: str, value: float | None, unit: str, goal: str | None = None, note: str = ""
    ) -> None:
        self.figures.append(Figure(name, value, unit, goal, check(value, goal), note))

    def versus(
        self, name: str, peer: float | None, ours: float | None, unit: str, better: str
    ) -> None:
        """A peer figure: met when ours is better (``better``: ``"lower"`` or ``"higher"``)."""
        met = None
        if peer is not None and ours is not None:
            met = ours < peer if better == "lower" else ours > peer
        goal = f"ours {better}"
        self.figures.append(Figure(name, peer, unit, goal, met, f"ours {fmt(ours)}"))

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Run one benchmark; a failure is recorded (and printed) instead of ending the run."""
        start = time.monotonic()
        try:
            yield
            print(f"{name}: {time.monotonic() - start:.0f} s", file=sys.stderr)
        except Exception as exc:
            self.failed.append(f"{name}: {exc!r}"[:2000])
            print(f"benchmark {name!r} failed: {exc}", file=sys.stderr)

    def as_json(self) -> dict[str, Any]:
        return {
            f.name: {"value": f.value, "unit": f.unit, "goal": f.goal, "met": f.met}
            for f in self.figures
        }

    def table(self) -> str:
        rows = [("figure", "value", "unit", "goal", "met", "note")]
        for f in self.figures:
            met = "-" if f.met is None else ("yes" if f.met else "NO")
            rows.append((f.name, fmt(f.value), f.unit, f.goal or "", met, f.note))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


# -- processes ---------------------------------------------------------------------------------


class Processes:
    """Servers started for the run; all stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args} did not listen on {port} within {timeout_s} s")


def start_app(
    procs: Processes, name: str, s2_url: str | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    argv = [PYTHON, str(HERE / "app.py"), "--port", str(port)]
    if s2_url:
        argv += ["--s2-url", s2_url]
    proc = procs.start(name, argv)
    wait_port(port, proc)
    return f"http://127.0.0.1:{port}", proc


def peer_missing() -> str | None:
    """Why the peer cannot run here, or None."""
    for tool in ("node", "npm", "redis-server"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    return None


def start_peer(procs: Processes) -> str:
    peer_dir = HERE / "peer"
    if not (peer_dir / "node_modules" / "resumable-stream").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=peer_dir,
            check=True,
        )
    redis_port = free_port()
    redis = procs.start(
        "redis",
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    )
    wait_port(redis_port, redis)
    port = free_port()
    node = procs.start(
        "peer",
        ["node", "server.mjs", "--port", str(port)],
        env={"REDIS_URL": f"redis://127.0.0.1:{redis_port}"},
        cwd=peer_dir,
    )
    wait_port(port, node)
    return f"http://127.0.0.1:{port}"


def loadgen(scenario: str, base: str, **options: Any) -> Any:
    """Run one ``bench/loadgen.py`` scenario in its own process; its JSON result."""
    argv = [PYTHON, str(HERE / "loadgen.py"), scenario, "--base", base]
    for key, value in options.items():
        if value is True or value is False:  # a flag, given or left out
            if value:
                argv.append(f"--{key.replace('_', '-')}")
            continue
        argv += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(argv, capture_output=True, timeout=LOADGEN_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {scenario} failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout)


# -- the MESSAGES_SNAPSHOT fold ---------------------------------------------------------------


async def snapshot_fold(total_chunks: int, per_run: int = 1000) -> tuple[float, float, int]:
    """Time the ``MESSAGES_SNAPSHOT`` of a TanStack chat holding ``total_chunks`` records.

    Returns (seconds of the fold alone, over already parsed chunks; seconds of the whole
    first-replay cost: read the log, parse, fold, encode the snapshot frame; records). Best
    of three.
    """
    from resumable_chat import create_resumable_chat
    from resumable_chat.chat.producer import encode_chunk
    from resumable_chat.s2 import MemoryBasin

    basin = MemoryBasin()
    chat = create_resumable_chat(protocol="tanstack", mode="session", basin=basin)
    runs = max(1, total_chunks // per_run)

    async def source(messages: list[dict[str, Any]], signal: Any) -> Any:
        run_id = f"run-{len(messages)}"
        message_id = f"msg-{len(messages)}"
        yield {"type": "RUN_STARTED", "runId": run_id}
        yield {"type": "TEXT_MESSAGE_START", "messageId": message_id, "role": "assistant"}
        for _ in range(per_run - 4):
            yield {"type": "TEXT_MESSAGE_CONTENT", "messageId": message_id, "delta": "word "}
        yield {"type": "TEXT_MESSAGE_END", "messageId": message_id}
        yield {"type": "RUN_FINISHED", "runId": run_id, "finishReason": "stop"}

    messages: list[dict[str, Any]] = []
    for turn in range(runs):
        text = {"type": "text", "content": "hi"}
        messages.append({"id": f"u{turn}", "role": "user", "parts": [text]})
        await chat.make_session_response("fold", messages=list(messages), source=source)
    stored = (await basin.check_tail("fold")).seq_num
    batch = await basin.read("fold", seq_num=0, count=1)
    chunks: list[dict[str, Any]] = []
    while batch.records:
        chunks += [json.loads(r.body) for r in batch.records if not r.headers and r.body]
        next_seq = batch.records[-1].seq_num + 1
        if next_seq >= stored:
            break
        batch = await basin.read("fold", seq_num=next_seq, count=1000)
    fold_s = whole_s = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        chat.dialect.fold(chunks)
        fold_s = min(fold_s, time.perf_counter() - start)
        start = time.perf_counter()
        folded = await chat.load_messages("fold")
        encode_chunk(chat.dialect.snapshot_frame(folded))
        whole_s = min(whole_s, time.perf_counter() - start)
    await chat.aclose()
    return fold_s, whole_s, stored


# -- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    ttfb_count: int
    http_ttfb_count: int
    resume_count: int
    throughput_n: int
    lag_n: int
    fanout: int
    concurrent_steps: tuple[int, ...]
    scale_steps: tuple[int, ...]
    latency_count: int
    concurrent_n: int
    followers: int
    history: tuple[int, int]
    history_count: int
    fold_chunks: int
    #: count instructions per answer under callgrind (``bench/instructions.py``, minutes)
    instructions: bool


FULL = Sizes(
    ttfb_count=300,
    http_ttfb_count=200,
    resume_count=200,
    throughput_n=100_000,
    lag_n=1000,
    fanout=200,
    # about 10% apart from 400 on, then each server's last gap halved twice
    # (CONCURRENT_HALVINGS): the ratio to the plain route is good to a few percent
    concurrent_steps=(
        *(100, 200, 300, 400, 450, 500, 550, 600, 650, 700, 775, 850, 950, 1050, 1150),
        *(1250, 1400, 1550, 1700, 1900, 2100, 2300, 2500),
    ),
    # about 7% apart from 175 on: one process carries about 175-200 on 2 cores, two share
    # them with the S2 server and the load generator
    scale_steps=(25, 50, 100, 150, 175, 190, 205, 220, 235, 250, 270, 290, 310, 400, 600),
    latency_count=20,
    concurrent_n=100,
    followers=1000,
    history=(10, 1000),
    history_count=100,
    fold_chunks=100_000,
    instructions=True,
)
SMOKE = Sizes(
    ttfb_count=20,
    http_ttfb_count=10,
    resume_count=10,
    throughput_n=2000,
    lag_n=50,
    fanout=20,
    concurrent_steps=(10,),
    scale_steps=(10,),
    latency_count=3,
    concurrent_n=20,
    followers=20,
    history=(3, 30),
    history_count=5,
    fold_chunks=2000,
    instructions=False,
)


def start_s2(
    procs: Processes, name: str, latency_ms: float = 0
) -> tuple[str, subprocess.Popen[bytes]]:
    """The bundled S2 server in its own process, its appends and reads ``latency_ms`` late:
    its URL and its process."""
    port = free_port()
    argv = [PYTHON, "-m", "resumable_chat.testing.s2_server", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    if latency_ms:
        argv += ["--append-latency-ms", str(latency_ms), "--read-latency-ms", str(latency_ms)]
    proc = procs.start(name, argv)
    wait_port(port, proc)
    return f"http://127.0.0.1:{port}", proc


def cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) ``proc`` has used so far, from Linux's
    ``/proc/<pid>/stat`` (fields 14 and 15, in clock ticks)."""
    with open(f"/proc/{proc.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far: the load
    generator's, around one :func:`loadgen` call."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: A chat counts as carried only if its first chunk comes this soon after its request (p99,
#: ms): over HTTP the claims of new chats queue behind the appends of running ones, with the
#: event loop itself on time.
CONCURRENT_START_P99_MS = 1000

#: A chat counts as carried at 50 chunks/s only if its answer keeps that pace: the time from
#: its first to its last chunk over the paced time (99 intervals of 20 ms), p99. An event loop
#: with every core spent keeps its lag low by running every ready callback late, so the lag
#: alone lets a saturated process "carry" twice the chats at half the pace.
CONCURRENT_PACE_P99 = 1.1


def best_concurrent(sizes: Sizes, steps: tuple[int, ...], **options: Any) -> tuple[int, str]:
    """The most chats at 50 chunks/s (source yielding per chunk) with loop lag p99 <= 50 ms,
    each chat's first chunk within :data:`CONCURRENT_START_P99_MS` of its request (p99), the
    answers at that pace (:data:`CONCURRENT_PACE_P99`) and nothing lost (live stream, follower
    if any, and the log checked after the run), trying ``steps`` in order, a failing step once
    more (this VM's speed moves between minutes); and a note on the last step tried. Every
    connection is opened and accepted before a step starts (``loadgen.accepted_connection``)."""
    return best_concurrent_side_by_side(sizes, steps, {"": options})[""]


#: Times :func:`best_concurrent_side_by_side` halves the gap between a server's last step
#: passed and the step it failed (each halving, one or two more runs): 300 → 400 is found to
#: 25 chats, the ratio of two servers to a few percent instead of one step's width.
CONCURRENT_HALVINGS = 2

#: Trials of the scale-out section (one app process against two on one S2 server), each on
#: fresh processes; each set-up keeps its best.
SCALE_TRIALS = 2


def best_concurrent_side_by_side(
    sizes: Sizes, steps: tuple[int, ...], contenders: dict[str, dict[str, Any]]
) -> dict[str, tuple[int, str]]:
    """:func:`best_concurrent` for several servers at once (``contenders``: name → the
    options of :func:`concurrent_step`), step by step: at each step every server that has
    not failed yet tries it (a failing try once more) before any tries the next. This VM's
    speed moves between minutes; run one after the other, two servers compared by a ratio
    would each be measured in a different minute. A server that fails a step after passing
    one then tries between the two, :data:`CONCURRENT_HALVINGS` times, at once. Returns
    name → (chats, note)."""
    best = dict.fromkeys(contenders, 0)
    notes = dict.fromkeys(contenders, "")

    def carries(name: str, chats: int) -> bool:
        for _attempt in range(2):
            ok, notes[name] = concurrent_step(sizes, chats, **contenders[name])
            if ok:
                return True
        return False

    trying = list(contenders)
    for chats in steps:
        for name in list(trying):
            if carries(name, chats):
                best[name] = chats
                continue
            trying.remove(name)
            failed, failed_note = chats, notes[name]
            for _ in range(CONCURRENT_HALVINGS if best[name] else 0):
                middle = (best[name] + failed) // 2
                if middle in (best[name], failed):
                    break
                if carries(name, middle):
                    best[name] = middle
                else:
                    failed, failed_note = middle, notes[name]
            notes[name] = failed_note  # the note says why the server stopped where it did
        if not trying:
            break
    return {name: (best[name], notes[name]) for name in contenders}


def concurrent_step(
    sizes: Sizes,
    chats: int,
    *,
    watch: dict[str, subprocess.Popen[bytes]] | None = None,
    **options: Any,
) -> tuple[bool, str]:
    """One step of :func:`best_concurrent`: whether ``chats`` answers were carried, and how.
    ``watch``: processes (by name) whose CPU seconds over the step the note gives, with the
    load generator's and the wall time (where a machine's cores went)."""
    watched = {name: cpu_s(proc) for name, proc in (watch or {}).items()}
    children, wall = children_cpu_s(), time.perf_counter()
    d = loadgen(
        "concurrent",
        chats=chats,
        n=sizes.concurrent_n,
        interval_ms=20,
        ramp_s=1,
        timeout_s=sizes.concurrent_n / 50 * 3 + 30,
        **options,
    )
    start_ms, pace = d["start_p99_ms"], d["pace_p99"]
    ok = (
        d["failures"] == 0
        and d["lag_p99_ms"] <= 50
        and start_ms is not None
        and start_ms <= CONCURRENT_START_P99_MS
        and pace is not None
        and pace <= CONCURRENT_PACE_P99
    )
    note = (
        f"at {chats}: loop lag p99 {fmt(d['lag_p99_ms'])} ms, {d['failures']} failed"
        f" {d['failure_examples'][:1]}, first chunk p99 {fmt(start_ms)} ms after the request,"
        f" answer time p99 {fmt(pace)}× the paced time, load generator lag p99"
        f" {fmt(d['loadgen_lag_p99_ms'])} ms"
    )
    if watch:
        used = ", ".join(
            f"{name} {cpu_s(proc) - watched[name]:.1f}" for name, proc in watch.items()
        )
        note += (
            f"; CPU s over the step: {used}, load generator {children_cpu_s() - children:.1f},"
            f" in {time.perf_counter() - wall:.1f} s on {os.cpu_count()} cores"
        )
    return ok, note


#: How the load generator connects: a new connection per request, or connections opened and
#: accepted beforehand (``loadgen.accepted_connection``); the suffix of the figure's name.
CONNECTIONS = (("", False), (" on open connections", True))


def add_resume_rows(
    add: Callable[..., None],
    base: str,
    name: str,
    quantile: float,
    goal: str | None = None,
    *,
    plain: bool = False,
    **options: Any,
) -> None:
    """One figure per way of connecting (:data:`CONNECTIONS`; ``name`` has a ``{how}`` slot
    for it): the ``quantile`` of ``resume`` (``options``) on ``base``. With ``plain``, the
    floor: the same requests to the route that answers with fixed frames (no lookup, no
    storage)."""
    for how, kept_alive in CONNECTIONS:
        d = loadgen("resume", base, plain=plain, kept_alive=kept_alive, **options)
        note = (
            f"p50 {fmt(pct(d['ms'], 0.5))} ms, p99 {fmt(pct(d['ms'], 0.99))} ms,"
            f" {d['errors']} errors"
        )
        if plain:
            note += (
                "; the same requests answered with fixed frames by a Starlette"
                " StreamingResponse in the embedded app"
            )
        add(name.format(how=how), pct(d["ms"], quantile), "ms", goal, note)


def run(sizes: Sizes, procs: Processes, results: Results, *, peer: bool) -> None:
    add = results.add
    s2_url, s2_proc = start_s2(procs, "s2")
    mem, _ = start_app(procs, "app-memory")
    http, _ = start_app(procs, "app-http", s2_url)
    warm = max(5, sizes.ttfb_count // 20)

    # 1. added time to first chunk, embedded
    with results.section("added time to first chunk, embedded"):
        for label, conc in (("sequential", 1), ("50 concurrent", 50)):
            d = loadgen("ttfb", mem, count=sizes.ttfb_count, concurrency=conc, warmup=warm)
            p50 = sub(pct(d["resumable"], 0.5), pct(d["plain"], 0.5))
            p99 = sub(pct(d["resumable"], 0.99), pct(d["plain"], 0.99))
            note = f"plain p50 {fmt(pct(d['plain'], 0.5))} ms, {d['errors']} errors"
            add(f"embedded: added first-chunk time p50, {label}", p50, "ms", "<= 0.5", note)
            add(f"embedded: added first-chunk time p99, {label}", p99, "ms", "<= 2", note)

    # 2. the same on HttpBasin with a 300 ms first token
    with results.section("the same on HttpBasin with a 300 ms first token"):
        d = loadgen(
            "ttfb", http, count=sizes.http_ttfb_count, concurrency=10, warmup=3, first_ms=300
        )
        p50 = sub(pct(d["resumable"], 0.5), pct(d["plain"], 0.5))
        note = f"plain p50 {fmt(pct(d['plain'], 0.5))} ms, 10 concurrent"
        add("http: added first-chunk time p50, 300 ms first token", p50, "ms", "<= 1", note)
        add(
            "http: added first-chunk time p99, 300 ms first token",
            sub(pct(d["resumable"], 0.99), pct(d["plain"], 0.99)),
            "ms",
            None,
            note,
        )
        d = loadgen("ttfb", http, count=sizes.http_ttfb_count, concurrency=10, warmup=3)
        note = f"plain p50 {fmt(pct(d['plain'], 0.5))} ms, 10 concurrent, {d['errors']} errors"
        add(
            "http: added first-chunk time p50, immediate first token",
            sub(pct(d["resumable"], 0.5), pct(d["plain"], 0.5)),
            "ms",
            None,
            note + " (the claim's round trips are not hidden by the model)",
        )

    # 3. persisted chunks/s with one follower
    with results.section("persisted chunks/s with one follower"):
        for label, base, goal in (("embedded", mem, ">= 100000"), ("http", http, ">= 30000")):
            for every, kind in ((1, "source yielding per chunk"), (64, "per 64 chunks")):
                d = loadgen("throughput", base, n=sizes.throughput_n, size=100, yield_every=every)
                ok = d["follower_frames"] == d["live_frames"] == sizes.throughput_n + 5
                rate = sizes.throughput_n / (d["follower_ms"] / 1000)
                note = f"plain {fmt(sizes.throughput_n / (d['plain_ms'] / 1000))}/s" + (
                    "" if ok else ", FRAMES MISSING"
                )
                add(
                    f"{label}: persisted chunks/s, one follower, {kind}",
                    rate,
                    "chunks/s",
                    goal if every == 1 else None,
                    note,
                )

    # 4. resume: time to first replayed chunk
    with results.section("resume: time to first replayed chunk"):
        for label, base in (("embedded", mem), ("http", http)):
            seq = loadgen("resume", base, concurrency=1, rounds=sizes.resume_count, warmup=5)
            goal = "<= 2" if label == "embedded" else None
            add(
                f"{label}: resume first chunk p50, sequential",
                pct(seq["ms"], 0.5),
                "ms",
                goal,
                f"p99 {fmt(pct(seq['ms'], 0.99))} ms",
            )
            add_resume_rows(
                add,
                base,
                f"{label}: resume first chunk p50, 50 concurrent{{how}}",
                0.5,
                "<= 5" if label == "embedded" else "<= 20",
                concurrency=50,
                rounds=max(1, sizes.resume_count // 50),
                warmup=5,
            )
        add_resume_rows(
            add,
            mem,
            "floor: plain StreamingResponse follower, first chunk p50, 50 concurrent{how}",
            0.5,
            plain=True,
            concurrency=50,
            rounds=max(1, sizes.resume_count // 50),
            warmup=5,
        )

    # 5. follower lag
    with results.section("follower lag"):
        for label, base, goals in (
            ("embedded", mem, ("<= 2", "<= 10")),
            ("http", http, ("<= 15", "<= 50")),
        ):
            d = loadgen("lag", base, n=sizes.lag_n, interval_ms=10)
            note = f"{len(d['ms'])}/{d['expected']} chunks"
            add(f"{label}: follower lag p50", pct(d["ms"], 0.5), "ms", goals[0], note)
            add(f"{label}: follower lag p99", pct(d["ms"], 0.99), "ms", goals[1], note)

    # 6. 200 followers on one answer: each on a new connection (uvloop accepts one per loop
    # turn, libuv PR #3696, so the burst also waits in the listen queue), and on connections
    # opened beforehand (as from a proxy's pool or tabs that loaded the page): the app's part
    with results.section("200 followers on one answer"):
        for label, base, goal in (("embedded", mem, "<= 50"), ("http", http, "<= 100")):
            add_resume_rows(
                add,
                base,
                f"{label}: {sizes.fanout} followers{{how}}, first chunk p99",
                0.99,
                goal,
                concurrency=sizes.fanout,
                rounds=3,
                warmup=2,
            )
        add_resume_rows(
            add,
            mem,
            f"floor: {sizes.fanout} plain StreamingResponse followers{{how}}, first chunk p99",
            0.99,
            plain=True,
            concurrency=sizes.fanout,
            rounds=3,
            warmup=2,
        )

    # 7. history length
    with results.section("history length"):
        short, long = sizes.history
        d = loadgen("history", mem, short=short, long=long, count=sizes.history_count, warmup=3)
        ratio = div(pct(d["long"], 0.5), pct(d["short"], 0.5))
        add(
            f"embedded: replay start, {long} vs {short} turns",
            ratio,
            "ratio",
            "<= 1.5",
            f"p50 {fmt(pct(d['long'], 0.5))} vs {fmt(pct(d['short'], 0.5))} ms",
        )
        add(
            "embedded: next turn right after [DONE] gets 409",
            100 * d["conflicts"] / d["turns"],
            "% of turns",
            None,
            f"{d['conflicts']} of {d['turns']} back-to-back POSTs (retried)",
        )

    # 8. memory per idle follower (a fresh server, so freed memory is not reused)
    with results.section(
        "memory per idle follower (a fresh server, so freed memory is not reused)"
    ):
        base, proc = start_app(procs, "app-memory-followers")
        d = loadgen("memory", base, followers=sizes.followers)
        per = (d["rss_after_kib"] - d["rss_before_kib"]) / d["followers"]
        add(
            "embedded: memory per idle follower",
            per,
            "KiB",
            "<= 32",
            f"RSS growth over {d['followers']} followers",
        )
        procs.stop(proc)
        base, proc = start_app(procs, "app-http-followers", s2_url)
        d = loadgen("memory", base, followers=sizes.followers)
        per = (d["rss_after_kib"] - d["rss_before_kib"]) / d["followers"]
        add(
            f"http: {d['followers']} idle followers held",
            d["followers"],
            "followers",
            f">= {sizes.followers}",
            f"each got its first chunk; {fmt(per)} KiB each",
        )
        procs.stop(proc)

    # 9. concurrent generations (a fresh server), against a plain StreamingResponse: both
    # servers step up side by side, so the ratio compares them in the same minutes
    with results.section("concurrent generations (a fresh server)"):
        steps = sizes.concurrent_steps
        base, proc = start_app(procs, "app-memory-concurrent")
        plain_base, plain_proc = start_app(procs, "app-plain-concurrent")
        side = best_concurrent_side_by_side(
            sizes,
            steps,
            {
                "ours": {"base": base, "watch": {"app": proc}},
                "plain": {"base": plain_base, "plain": True, "watch": {"app": plain_proc}},
            },
        )
        (best, note), (plain, plain_note) = side["ours"], side["plain"]
        add("embedded: concurrent generations at 50 chunks/s", best, "chats", ">= 1000", note)
        add(
            "embedded: concurrent generations, ratio to a plain StreamingResponse",
            div(best, plain),
            "ratio",
            ">= 0.8",
            f"plain {plain} ({plain_note}), stepped up side by side"
            + (" (every step passed: a lower bound)" if plain == steps[-1] else ""),
        )
        procs.stop(proc)
        procs.stop(plain_proc)
        base, proc = start_app(procs, "app-memory-concurrent-followed")
        followed, followed_note = best_concurrent(sizes, steps, base=base, with_follower=True)
        add(
            "embedded: concurrent generations at 50 chunks/s, each with a live follower",
            followed,
            "chats",
            None,
            followed_note,
        )
        procs.stop(proc)

    # 9a. the same cost counted: instructions per answer under callgrind, which do not move
    # with the machine's speed (bench/instructions.py)
    if sizes.instructions and shutil.which("valgrind") is not None:
        with results.section("instructions per answer (callgrind)"):
            sys.path.insert(0, str(HERE))
            from instructions import ANSWER_DELTAS, measure

            counted = measure()
            for route, label in (("plain", "a plain StreamingResponse"), ("resumable", "ours")):
                figures = counted[route]
                add(
                    f"embedded: instructions per answer of {ANSWER_DELTAS} deltas, {label}",
                    figures["answer_100"],
                    "instructions",
                    None,
                    f"{figures['answer']} per answer of one delta, {figures['chunk']} per delta"
                    " more; in process, no sockets (bench/instructions.py)",
                )
            add(
                "embedded: instructions per resume of a running answer, ours",
                counted["resumable"]["resume"],
                "instructions",
                None,
                f"the floor (fixed frames, no lookup, no storage): {counted['plain']['resume']}",
            )
            add(
                "embedded: instructions per answer, ratio plain / ours",
                counted["ratio"],
                "ratio",
                None,
                "the app's own code per answer, without the server's work per chunk (the"
                " socket write, the same on both sides)",
            )

    # 9b. scale-out: N app processes on one S2 server, nothing shared but the basin
    with results.section("scale-out over S2"):
        # both set-ups step up side by side (see best_concurrent_side_by_side), on fresh
        # processes each trial; each keeps its best trial: two processes share this VM's two
        # cores with the S2 server and the load generator, and a slow minute moved one trial's
        # ratio from 1.24 to 0.89 (sequential) or 1.12 to 1.0 (side by side)
        carried: dict[int, tuple[int, str]] = {1: (0, ""), 2: (0, "")}
        for _trial in range(SCALE_TRIALS):
            setups = {
                workers: [
                    start_app(procs, f"app-scale-{workers}-{i}", s2_url) for i in range(workers)
                ]
                for workers in carried
            }
            side = best_concurrent_side_by_side(
                sizes,
                sizes.scale_steps,
                {
                    str(workers): {
                        "base": apps[0][0],
                        "bases": ",".join(b for b, _ in apps),
                        "watch": {
                            **{f"app {i + 1}": proc for i, (_, proc) in enumerate(apps)},
                            "S2 server": s2_proc,
                        },
                    }
                    for workers, apps in setups.items()
                },
            )
            for workers, apps in setups.items():
                # the better trial; with none carried yet, the latest one's note says why
                if side[str(workers)][0] > carried[workers][0] or not carried[workers][0]:
                    carried[workers] = side[str(workers)]
                for _, proc in apps:
                    procs.stop(proc)
        for workers, (best, note) in carried.items():
            add(
                f"http: concurrent generations at 50 chunks/s, {workers} process(es)",
                best,
                "chats",
                None,
                f"the best of {SCALE_TRIALS} trials; {note}",
            )
        # one step of scale_steps is about 7 %: the total grew if it is a step or more up
        add(
            "http: concurrent generations, 2 processes over 1",
            div(carried[2][0], carried[1][0]),
            "ratio",
            ">= 1.05",
            f"{carried[2][0]} vs {carried[1][0]} chats, on one machine's cores (see the CPU notes)",
        )

    # 10. MESSAGES_SNAPSHOT fold
    with results.section("MESSAGES_SNAPSHOT fold"):
        fold_s, whole_s, stored = asyncio.run(snapshot_fold(sizes.fold_chunks))
        add(
            "MESSAGES_SNAPSHOT fold",
            stored / fold_s,
            "chunks/s",
            ">= 300000",
            f"{stored} parsed chunks folded",
        )
        add(
            "MESSAGES_SNAPSHOT read + parse + fold + encode",
            stored / whole_s,
            "chunks/s",
            None,
            f"{stored} records: a first TanStack replay",
        )

    # 10b. S2's real latencies: the bundled server acknowledging appends (and answering
    # reads) 40 ms (S2 Express) or 400 ms (S2 Standard) late; two app processes on it
    for latency, storage in ((40, "Express"), (400, "Standard")):
        with results.section(f"S2 {storage} latency ({latency} ms)"):
            url, _ = start_s2(procs, f"s2-{latency}ms", latency)
            (a, proc_a), (b, proc_b) = (
                start_app(procs, f"app-{latency}ms-a", url),
                start_app(procs, f"app-{latency}ms-b", url),
            )
            label = f"S2 {storage} ({latency} ms)"
            # with respond_before_claim the first chunk never waits for the claim; twice the
            # samples of the other rows: a p50 difference of 20 pairs moved by +-1 ms run to run
            for first_ms, early in ((300, False), (1000, False), (0, True), (300, True)):
                d = loadgen(
                    "ttfb",
                    a,
                    count=2 * sizes.latency_count,
                    concurrency=5,
                    warmup=2,
                    first_ms=first_ms,
                    early=early,
                )
                token = f"{first_ms} ms first token" if first_ms else "immediate first token"
                add(
                    f"{label}: added first-chunk time p50, {token}"
                    + (", respond_before_claim" if early else ""),
                    sub(pct(d["resumable"], 0.5), pct(d["plain"], 0.5)),
                    "ms",
                    "<= 1" if latency == 400 and (early or first_ms == 1000) else None,
                    f"p99 {fmt(sub(pct(d['resumable'], 0.99), pct(d['plain'], 0.99)))} ms, "
                    f"{d['errors']} errors",
                )
            for where, follow_base in (("same instance", a), ("another instance", b)):
                joins: list[float] = []
                errors = 0
                for _ in range(max(1, sizes.latency_count // 4)):  # each on a new answer
                    d = loadgen(
                        "resume",
                        a,
                        concurrency=1,
                        rounds=1,
                        warmup=0,
                        join_after_s=1,
                        follow_base=follow_base,
                    )
                    joins += d["ms"]
                    errors += d["errors"]
                add(
                    f"{label}: resume first chunk p50, joining 1 s into the answer, {where}",
                    pct(joins, 0.5),
                    "ms",
                    None,
                    f"{len(joins)} joins, {errors} errors; each the first follower of its "
                    "answer on that instance (later ones share its reader)",
                )
            for where, follow_base in (("same instance", a), ("another instance", b)):
                d = loadgen("lag", a, n=sizes.lag_n // 4, interval_ms=20, follow_base=follow_base)
                add(
                    f"{label}: follower lag p50, {where}",
                    pct(d["ms"], 0.5),
                    "ms",
                    None,
                    f"p99 {fmt(pct(d['ms'], 0.99))} ms, {len(d['ms'])}/{d['expected']} chunks",
                )
            d = loadgen("stopping", a, count=sizes.latency_count // 2, interval_ms=20, stop_base=b)
            add(
                f"{label}: stop from another instance until the live client sees it, p50",
                pct(d["abort_ms"], 0.5),
                "ms",
                None,
                f"p99 {fmt(pct(d['abort_ms'], 0.99))} ms: DELETE on B until A's live response "
                f"carries the stop terminal; {len(d['abort_ms'])}/{len(d['ms'])} seen",
            )
            add(
                f"{label}: stop latency from another instance p50",
                pct(d["ms"], 0.5),
                "ms",
                None,
                f"p99 {fmt(pct(d['ms'], 0.99))} ms: DELETE on B until A's live response ends "
                "(after its stop is stored)",
            )
            d = loadgen("throughput", a, n=sizes.throughput_n // 4, size=100)
            add(
                f"{label}: persisted chunks/s, one follower",
                (sizes.throughput_n // 4) / (d["follower_ms"] / 1000),
                "chunks/s",
                None,
                f"live {fmt((sizes.throughput_n // 4) / (d['live_ms'] / 1000))}/s",
            )
            procs.stop(proc_a)
            procs.stop(proc_b)
            base, proc = start_app(procs, f"app-{latency}ms-concurrent", url)
            best, note = best_concurrent(sizes, sizes.scale_steps, base=base)
            add(
                f"{label}: concurrent generations at 50 chunks/s, one process",
                best,
                "chats",
                None,
                note,
            )
            procs.stop(proc)

    # 11. the peer, measured in alternation with ours (A/B/A/B) so load drift on the shared
    # machine hits both alike
    with results.section("the peer"):
        if peer:
            why = peer_missing()
            if why is None:
                peer_base = start_peer(procs)

                def paired(scenario: str, **options: Any) -> tuple[list[Any], list[Any]]:
                    ours: list[Any] = []
                    theirs: list[Any] = []
                    for _ in range(2):
                        ours.append(loadgen(scenario, mem, **options))
                        theirs.append(loadgen(scenario, peer_base, **options))
                    return ours, theirs

                def pooled(runs: list[Any], key: str) -> list[float]:
                    return [value for run in runs for value in run[key]]

                count = max(10, sizes.ttfb_count // 2)
                ours_runs, peer_runs = paired("ttfb", count=count, concurrency=1, warmup=warm)
                for q, label in ((0.5, "p50"), (0.99, "p99")):
                    ours_added = sub(
                        pct(pooled(ours_runs, "resumable"), q), pct(pooled(ours_runs, "plain"), q)
                    )
                    peer_added = sub(
                        pct(pooled(peer_runs, "resumable"), q), pct(pooled(peer_runs, "plain"), q)
                    )
                    results.versus(
                        f"peer: added first-chunk time {label}, sequential",
                        peer_added,
                        ours_added,
                        "ms",
                        "lower",
                    )
                rounds = max(10, sizes.resume_count // 2)
                ours_runs, peer_runs = paired("resume", concurrency=1, rounds=rounds, warmup=5)
                results.versus(
                    "peer: resume first chunk p50, sequential",
                    pct(pooled(peer_runs, "ms"), 0.5),
                    pct(pooled(ours_runs, "ms"), 0.5),
                    "ms",
                    "lower",
                )
                for how, kept_alive in CONNECTIONS:
                    fanout = {"concurrency": sizes.fanout, "rounds": 2, "warmup": 2}
                    ours_runs, peer_runs = paired("resume", **fanout, kept_alive=kept_alive)
                    ours_http = [
                        loadgen("resume", http, **fanout, kept_alive=kept_alive) for _ in range(2)
                    ]
                    for suffix, ours in (("", ours_runs), (", ours over HTTP to S2", ours_http)):
                        results.versus(
                            f"peer: {sizes.fanout} followers{how}, first chunk p99{suffix}",
                            pct(pooled(peer_runs, "ms"), 0.99),
                            pct(pooled(ours, "ms"), 0.99),
                            "ms",
                            "lower",
                        )
                ours_runs, peer_runs = paired("throughput", n=sizes.throughput_n, size=100)

                def rate(runs: list[Any]) -> float:
                    return statistics.mean(
                        sizes.throughput_n / (run["follower_ms"] / 1000) for run in runs
                    )

                results.versus(
                    "peer: chunks/s, one follower",
                    rate(peer_runs),
                    rate(ours_runs),
                    "chunks/s",
                    "higher",
                )
            else:
                for name, unit in (
                    ("peer: added first-chunk time p50, sequential", "ms"),
                    ("peer: added first-chunk time p99, sequential", "ms"),
                    ("peer: resume first chunk p50, sequential", "ms"),
                    (f"peer: {sizes.fanout} followers, first chunk p99", "ms"),
                    (
                        f"peer: {sizes.fanout} followers, first chunk p99, ours over HTTP to S2",
                        "ms",
                    ),
                    (f"peer: {sizes.fanout} followers on open connections, first chunk p99", "ms"),
                    (
                        f"peer: {sizes.fanout} followers on open connections, first chunk p99,"
                        " ours over HTTP to S2",
                        "ms",
                    ),
                    ("peer: chunks/s, one follower", "chunks/s"),
                ):
                    results.figures.append(Figure(name, None, unit, None, None, f"skipped: {why}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small counts: runs in seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--no-peer", action="store_true", help="skip the Node/Redis peer")
    parser.add_argument("--logs", type=Path, default=None, help="server logs (default: a temp dir)")
    args = parser.parse_args()
    import tempfile

    global LOADGEN_TIMEOUT_S
    if args.smoke:
        LOADGEN_TIMEOUT_S = 60.0

    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="resumable-chat-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(log_dir)
    results = Results()
    start = time.monotonic()
    try:
        run(SMOKE if args.smoke else FULL, procs, results, peer=not args.no_peer)
    finally:
        procs.stop_all()
    print(results.table())
    import importlib.util

    stack = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m) is not None]
    print(f"\nservers: uvicorn with {' + '.join(stack) or 'asyncio + h11'} (bench/app.py)")
    print(
        f"\n{len(results.figures)} figures in {time.monotonic() - start:.0f} s;"
        f" server logs in {log_dir}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results.as_json(), indent=2) + "\n")
    print(f"wrote {args.out}")
    if results.failed:
        print("failed benchmarks:\n  " + "\n  ".join(results.failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
