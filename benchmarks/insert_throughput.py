"""Benchmark (not a test): is the harness the bottleneck?

On one server, in one run:
1. generation rows/s (batch k -> numpy columns), and request building rows/s;
2. a bare loop of the fastest insert path (NumpyInserter, no Locust: generate, build, send,
   one after the other) against the harness's Locust user (one user, which builds the next
   batch on a thread while one is in flight), in pairs of blocks, each block on a fresh
   collection, the order swapped every round; the geometric mean of the round ratios is the
   headline (the order effect cancels over pairs of rounds);
3. a Locust process's peak RSS over a longer run (first and last quarter: flat, or growing
   with rows).

Usage: .venv/bin/python benchmarks/insert_throughput.py [--block 4] [--rounds 6] [--long 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

from harness.load import batches, collection
from harness.scenario import model as scenarios
from harness.load.insert import NumpyInserter, build_insert_request
from harness.run.locust_procs import LOCUSTFILES, locust_argv, log_tail
from harness.targets.protocol import TargetOptions
from harness.targets.embedded import EmbeddedTarget
from harness.watch.events import RunEvents


def bare_block(address: str, seed: scenarios.Scenario, count: int) -> tuple[int, float]:
    """Rows and seconds of the fastest path with no Locust: generate, build, insert."""
    inserter = NumpyInserter(address, seed.collection, seed, timeout=120)
    began = time.perf_counter()
    for k in range(count):
        assert inserter.insert(batches.generate_batch(seed, k)).ok
    seconds = time.perf_counter() - began
    inserter.close()
    return count * seed.batch_rows, seconds


def locust_block(address: str, seed: scenarios.Scenario, batches: int) -> tuple[int, float, list[int]]:
    """Rows and seconds (first request sent to last answer) of the harness's Locust user,
    and the Locust process's RSS sampled every second."""
    scenario = seed.with_overrides({"total_rows": str(batches * seed.batch_rows)})
    with tempfile.TemporaryDirectory() as tmp:
        acks = Path(tmp) / "acks.jsonl"
        log = (Path(tmp) / "locust.log").open("wb")
        # The collection is the block's fresh one (reuse); the rows are the scenario's with this total.
        proc = subprocess.Popen(locust_argv([LOCUSTFILES / "milvus_insert.py"], "--headless", "-u", "1", "-r", "1",
                                            "--host", f"http://{address}", "--scenario", seed.name,
                                            "--set", f"total_rows={scenario.total_rows}", "--collection-mode", "reuse",
                                            "--acks-file", str(acks), "--only-summary", "--exit-code-on-error", "0"),
                                stdout=log, stderr=subprocess.STDOUT)
        rss: list[int] = []

        def sample() -> None:
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    return
                time.sleep(1)

        threading.Thread(target=sample, daemon=True).start()
        proc.wait()
        log.close()
        ok = [a for a in map(json.loads, acks.read_text().splitlines()) if a["ok"]] if acks.exists() else []
        if not ok:
            raise SystemExit(f"the Locust block acked no batch; its log ends:\n{log_tail(Path(tmp) / 'locust.log')}")
    return sum(a["rows"] for a in ok), max(a["t"] for a in ok) - min(a["t_start"] for a in ok), rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block", type=int, default=4, help="batches per block")
    parser.add_argument("--rounds", type=int, default=6, help="bare/harness block pairs, each on a fresh collection")
    parser.add_argument("--long", type=int, default=30, help="batches of the RSS run")
    args = parser.parse_args()
    seed = scenarios.load("seed")

    began = time.perf_counter()
    for k in range(5):
        batch = batches.generate_batch(seed, k)
    gen = 5 * seed.batch_rows / (time.perf_counter() - began)
    began = time.perf_counter()
    for _ in range(5):
        build_insert_request(seed.collection, seed, batch)
    build = 5 * seed.batch_rows / (time.perf_counter() - began)
    print(f"generation: {gen:,.0f} rows/s; request building: {build:,.0f} rows/s")

    with EmbeddedTarget(TargetOptions(memory_limit=16 * 2**30)) as target:
        address = target.start(RunEvents()).address
        ratios, totals = [], {"bare": [0, 0.0], "harness": [0, 0.0]}
        for r in range(args.rounds):
            # Each block on a fresh collection, the order swapped every round (ABBA): a filling
            # collection slows the server, and the second block of a pair meets the server
            # still flushing the first one's data; neither side should always get that.
            rates = {}
            for side in (("bare", "harness") if r % 2 == 0 else ("harness", "bare")):
                collection.create(address, seed)
                rows, seconds = (bare_block(address, seed, args.block) if side == "bare"
                                 else locust_block(address, seed, args.block)[:2])
                rates[side] = rows / seconds
                totals[side][0] += rows
                totals[side][1] += seconds
            ratios.append(rates["harness"] / rates["bare"])
            print(f"round {r + 1}: bare {rates['bare']:,.0f} rows/s, harness {rates['harness']:,.0f} rows/s, "
                  f"ratio {ratios[-1]:.3f}")
        bare = totals["bare"][0] / totals["bare"][1]
        harness = totals["harness"][0] / totals["harness"][1]
        print(f"bare loop: {bare:,.0f} rows/s; harness (Locust, 1 user): {harness:,.0f} rows/s; "
              f"ratio of totals {harness / bare:.3f}; geometric mean of {len(ratios)} round ratios "
              f"{statistics.geometric_mean(ratios):.3f} (goal >= 0.95)")
        print(f"generation is {gen / bare:.1f}x the ingest rate (goal >= 10x)")
        collection.create(address, seed)
        _, _, rss = locust_block(address, seed, args.long)
    quarter = max(1, len(rss) // 4)
    print(f"Locust process RSS over {args.long} batches: first quarter peak {max(rss[:quarter]) / 2**20:,.0f} MiB, "
          f"last quarter peak {max(rss[-quarter:]) / 2**20:,.0f} MiB ({len(rss)} samples)")


if __name__ == "__main__":
    main()
