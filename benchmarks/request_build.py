"""Benchmark (not a test): does the fast request builder keep its speed under another client?

The builder (harness.load.insert.build_insert_request) frames the seed's 50,000-row batches
with pymilvus's generated protobuf classes, so its speed depends on the pymilvus/protobuf the
interpreter has. This times it, from this source tree, under each given Python (each with its
own site-packages: e.g. the project's venv with pymilvus 2.6 and a venv with pymilvus 2.3),
alternating them round by round in one run, and prints each round's rows/s and the ratio of
their medians. No server is involved.

Usage: .venv/bin/python benchmarks/request_build.py --python .venv/bin/python --python /tmp/venv-pm23/bin/python
         [--rounds 8] [--batches 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Run under each interpreter: the client's version, then rows/s of building `batches` requests.
TIMER = """
import sys, time
import pymilvus
from harness.load import batches
from harness.load.insert import build_insert_request
from harness.scenario import model as scenarios
seed = scenarios.load("seed")
count = int(sys.argv[1])
made = [batches.generate_batch(seed, k) for k in range(count)]
build_insert_request(seed.collection, seed, made[0])  # imports and caches warm
began = time.perf_counter()
for batch in made:
    build_insert_request(seed.collection, seed, batch)
print(pymilvus.__version__, count * seed.batch_rows / (time.perf_counter() - began))
"""


def time_once(python: str, count: int) -> tuple[str, float]:
    """(pymilvus version, rows/s) of one timing under `python`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([python, "-c", TIMER, str(count)], capture_output=True, text=True, env=env, check=True)
    version, rate = out.stdout.split()
    return version, float(rate)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", action="append", required=True, help="an interpreter to time under (twice or more)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batches", type=int, default=5, help="50,000-row seed batches built per timing")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {p: [] for p in args.python}
    versions: dict[str, str] = {}
    for r in range(args.rounds):
        order = args.python if r % 2 == 0 else list(reversed(args.python))  # neither always goes first
        for python in order:
            versions[python], rate = time_once(python, args.batches)
            rates[python].append(rate)
        print(f"round {r + 1}: " + ", ".join(f"pymilvus {versions[p]} {rates[p][-1]:,.0f} rows/s" for p in args.python),
              flush=True)
    medians = {p: statistics.median(v) for p, v in rates.items()}
    first = args.python[0]
    for python in args.python:
        print(f"pymilvus {versions[python]} ({python}): median {medians[python]:,.0f} rows/s "
              f"({medians[python] / medians[first]:.3f} of pymilvus {versions[first]})")


if __name__ == "__main__":
    main()
