"""Run the deterministic simulation for any number of seeds.

    .venv/bin/python tests/sim/run.py --seeds 10000          # seeds 0..9999, all modes
    .venv/bin/python tests/sim/run.py --seed 1234 --mode shared -v   # replay one schedule

Each failing seed prints its violations and the one-line command that replays it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from checks import check
from simulation import MODES, Mode, SimConfig, World, simulate

from resumable_chat.log import classify


def replay_command(config: SimConfig) -> str:
    """The one-line command that replays exactly ``config``'s schedule."""
    early = " --early" if config.early else ""
    return f".venv/bin/python tests/sim/run.py --seed {config.seed} --mode {config.mode}{early} -v"


def config_for(seed: int, mode: Mode | None = None, early: bool | None = None) -> SimConfig:
    """Seed ``seed``'s run: its claim mode cycles with the seed, every other round of
    modes answers before the claim is decided (``respond_before_claim``), and every other
    round of those looks for the latest generation with a 2-record first read (long-answer
    paths on short answers), every other round of those lets a live response fall only 64
    bytes behind before it reads the rest from the log, every other round of those keeps
    only 256 bytes of frames in each answer's tap for its followers (the rest from the log),
    every other round of those lets all live responses together hold only 160 bytes for
    clients behind, one seed in twenty pads every delta to hundreds of KB (batches cut by
    S2's 1 MiB), and one in ten runs each instance's clock up to two leases ahead of or
    behind S2's."""
    return SimConfig(
        seed=seed,
        mode=mode or MODES[seed % len(MODES)],
        early=(seed // len(MODES)) % 2 == 1 if early is None else early,
        tail_window=2 if (seed // (2 * len(MODES))) % 2 == 1 else SimConfig.tail_window,
        big=seed % 20 == 19,
        live_backlog_bytes=64 if (seed // (4 * len(MODES))) % 2 == 1 else None,
        tap_max_bytes=256 if (seed // (8 * len(MODES))) % 2 == 1 else None,
        live_backlog_total_bytes=160 if (seed // (16 * len(MODES))) % 2 == 1 else None,
        skew_ms=2 * SimConfig.lease_ms if seed % 10 == 3 else 0,
    )


def describe(world: World) -> str:
    """The run's events and every appended record, in time order."""
    lines = list(world.events)
    for item in world.appended:
        kind = classify(item.record).value
        body = item.record.body[:60].decode("utf-8", "replace")
        where = f"{item.stream}@{item.seq_num} by {item.instance}"
        lines.append(f"{item.at_ms:.0f} append {where}: {kind} {body}")
    lines.sort(key=lambda line: float(line.split(" ", 1)[0]))
    return "\n".join(lines)


def run_seed(config: SimConfig) -> list[str]:
    """The violations of one seed (an exception counts as one)."""
    try:
        return check(simulate(config))
    except Exception as exc:  # a crash of the harness or a deadlock is a finding too
        return [f"the run raised {type(exc).__name__}: {exc}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (from --start)")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--seed", type=int, help="run this one seed only")
    parser.add_argument("--mode", choices=MODES, help="claim mode (default: by seed)")
    parser.add_argument(
        "--early", action="store_true", help="respond before the claim (default: by seed)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print the run's events")
    args = parser.parse_args()
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.seeds)
    failed = 0
    began = time.perf_counter()
    for seed in seeds:
        config = config_for(seed, args.mode, True if args.early else None)
        mode = config.mode
        violations = run_seed(config)
        if args.verbose and args.seed is not None:
            print(describe(simulate(config)))
        if violations:
            failed += 1
            print(f"seed {seed} ({mode}): {len(violations)} violation(s)")
            for line in violations[:10]:
                print("  - " + line.replace("\n", "\n    "))
            print("  replay: " + replay_command(config))
    took = time.perf_counter() - began
    print(f"{len(seeds)} seeds, {failed} failed, {took:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
