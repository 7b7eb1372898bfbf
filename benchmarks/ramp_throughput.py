"""Benchmark (not a test): does the default (ramped) load get what the best fixed concurrency gets?

In one run on one server (an embedded Milvus under a memory limit, started once), each round
runs the whole `run` lifecycle against it (as --target external on its loopback address) at
fixed 1, 2 and 3 users and with the default ramp, the order reversed every other round so a
filling server does not always favour the same configuration. Each run recreates the seed
collection; rows/s is summary.json's (acked rows / first ack to last ack from the load's start).

A server that took earlier runs slows down (it compacts and cleans up their dropped
collections), and two rounds do not cancel that drift. `--server-per-run` gives each run a
fresh embedded server of its own instead (each `run` starts and stops it).

Usage: .venv/bin/python benchmarks/ramp_throughput.py [--rows 600000] [--rounds 2]
         [--milvus-version 2.3.5] [--memory-limit 8GiB] [--server-per-run]
Done when: the default's mean rows/s >= 0.95 x the best fixed concurrency's mean.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
from pathlib import Path

from rich.console import Console

from harness.load.ramp import describe
from harness.run.lifecycle import RunOptions, run
from harness.targets.embedded import EmbeddedTarget
from harness.targets.protocol import TargetOptions
from harness.units import parse_bytes
from harness.watch.events import RunEvents

CONFIGS: tuple[int | None, ...] = (1, 2, 3, None)  # None: the default, ramped


def label(users: int | None) -> str:
    return "default (ramp)" if users is None else f"{users} user{'s' * (users != 1)}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--milvus-version", default="2.3.5")
    parser.add_argument("--memory-limit", default="8GiB")
    parser.add_argument("--server-per-run", action="store_true",
                        help="a fresh embedded server for each run instead of one for all")
    args = parser.parse_args()
    rates: dict[int | None, list[float]] = {c: [] for c in CONFIGS}
    server = TargetOptions(milvus_version=args.milvus_version, memory_limit=parse_bytes(args.memory_limit))
    shared = contextlib.nullcontext(None) if args.server_per_run else EmbeddedTarget(server)
    with tempfile.TemporaryDirectory() as reports, shared as target:
        if target is None:
            print(f"a fresh embedded milvus {args.milvus_version} per run, limit {args.memory_limit}; "
                  f"seed, {args.rows:,} rows per run")
        else:
            address = target.start(RunEvents()).address
            print(f"embedded milvus {args.milvus_version} at {address}, limit {args.memory_limit}; "
                  f"seed, {args.rows:,} rows per run")
            server = TargetOptions(target="external", uri=f"http://{address}")
        for r in range(args.rounds):
            for users in (CONFIGS if r % 2 == 0 else tuple(reversed(CONFIGS))):
                options = RunOptions(scenario="seed", users=users, verify="none", report_dir=Path(reports),
                                     overrides={"total_rows": str(args.rows), "check_after_restart": "false"},
                                     target=server)
                result = run(options, console=Console(file=io.StringIO()))
                if result.status == "ABORTED":  # Ctrl-C: stop here, the server is stopped on the way out
                    raise KeyboardInterrupt
                summary = result.summary
                rate = summary["inserts"]["rows_per_s"]
                rates[users].append(rate)
                print(f"round {r + 1}: {label(users):>15}: {rate:>9,.0f} rows/s, verdict {summary['verdict']}, "
                      f"{describe(summary.get('concurrency'))}", flush=True)
    means = {c: statistics.mean(v) for c, v in rates.items()}
    best = max((c for c in CONFIGS if c is not None), key=lambda c: means[c])
    for c in CONFIGS:
        print(f"{label(c):>15}: mean {means[c]:>9,.0f} rows/s over {len(rates[c])} runs "
              f"({', '.join(f'{v:,.0f}' for v in rates[c])})")
    print(f"default / best fixed ({label(best)}): {means[None] / means[best]:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
