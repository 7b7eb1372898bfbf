"""Benchmark (not a test): is the harness the bottleneck?

On one server, in one run:
1. generation rows/s (batch k -> numpy columns), and request building rows/s;
2. a bare loop of the fastest insert path (NumpyInserter, no Locust) over N batches;
3. `milvus-harness run` (Locust, one user) over the same number of batches on a fresh
   collection of the same server, its rows/s from acks.jsonl;
4. a Locust process's peak RSS over the run (sampled every second), first and last quarter.

Usage: .venv/bin/python benchmarks/insert_throughput.py [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from harness import collection, data, scenario as scenarios
from harness.insert import NumpyInserter, build_insert_request
from harness.runner import LOCUSTFILE
from harness.targets.base import TargetOptions
from harness.targets.embedded import EmbeddedTarget
from harness.watch.record import RunContext


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    seed = scenarios.load("seed").with_overrides({"total_rows": str(args.batches * 50_000)})

    began = time.perf_counter()
    for k in range(5):
        batch = data.generate_batch(seed, k)
    gen = 5 * seed.batch_rows / (time.perf_counter() - began)
    began = time.perf_counter()
    for _ in range(5):
        build_insert_request(seed.collection, seed, batch)
    build = 5 * seed.batch_rows / (time.perf_counter() - began)
    print(f"generation: {gen:,.0f} rows/s; request building: {build:,.0f} rows/s")

    with EmbeddedTarget(TargetOptions(memory_limit=16 * 2**30)) as target:
        endpoint = target.start(RunContext())
        collection.create(endpoint.address, seed)
        inserter = NumpyInserter(endpoint.address, seed.collection, seed, timeout=120)
        began = time.perf_counter()
        for k in range(args.batches):
            assert inserter.insert(data.generate_batch(seed, k)).ok
        bare = args.batches * seed.batch_rows / (time.perf_counter() - began)
        inserter.close()
        print(f"bare loop (generate + build + insert): {bare:,.0f} rows/s")

        collection.create(endpoint.address, seed)  # fresh collection, same server
        with tempfile.TemporaryDirectory() as tmp:
            acks = Path(tmp) / "acks.jsonl"
            config = Path(tmp) / "load.json"
            config.write_text(json.dumps({"address": endpoint.address, "scenario": seed.to_json(),
                                          "acks": str(acks)}))
            proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                                     "-u", "1", "-r", "1", "--harness-config", str(config), "--only-summary",
                                     "--exit-code-on-error", "0"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
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
            lines = [json.loads(line) for line in acks.read_text().splitlines()]
        ok = [a for a in lines if a["ok"]]
        first = min(a["t_start"] for a in ok)
        last = max(a["t"] for a in ok)
        harness = sum(a["rows"] for a in ok) / (last - first)
        print(f"harness (Locust, 1 user): {harness:,.0f} rows/s over {len(ok)} batches")
        print(f"ratio harness / bare loop: {harness / bare:.3f} (goal >= 0.95)")
        quarter = max(1, len(rss) // 4)
        print(f"Locust process RSS: first quarter peak {max(rss[:quarter]) / 2**20:,.0f} MiB, "
              f"last quarter peak {max(rss[-quarter:]) / 2**20:,.0f} MiB, overall {max(rss) / 2**20:,.0f} MiB "
              f"({len(rss)} samples)")


if __name__ == "__main__":
    main()
