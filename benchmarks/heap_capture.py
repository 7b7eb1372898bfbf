"""Benchmark (not a test): what one heap-profile capture costs the embedded server.

Starts the embedded server, inserts a few seed batches (a heap with the insert path in it),
then captures /debug/pprof/heap --captures times, one per second, and prints per capture:
- the time until the whole profile arrived (median and max),
- the profile's size (bytes written to the run dir),
- the server's CPU seconds spent per capture (process CPU time over the captures minus the
  same idle span without captures; negative or ~0 means lost in the server's own noise),
- the Go heap in use at the time (what the profile describes).

Usage: .venv/bin/python benchmarks/heap_capture.py [--batches 4] [--captures 20] [--milvus-version V]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psutil

from harness.load import batches, collection
from harness.load.insert import NumpyInserter
from harness.profiles import proto
from harness.scenario import model as scenarios
from harness.targets.embedded import EmbeddedTarget
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents
from harness.watch.process import COMPONENT


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--captures", type=int, default=20)
    parser.add_argument("--milvus-version")
    args = parser.parse_args()
    seed = scenarios.load("seed")
    target = EmbeddedTarget(TargetOptions(milvus_version=args.milvus_version, memory_limit=6 * 2**30,
                                          collection=seed.collection))
    with target:
        target.start(RunEvents())
        collection.create(target.server.address, seed)
        inserter = NumpyInserter(target.server.address, seed.collection, seed, timeout=120)
        try:
            for k in range(args.batches):
                inserter.insert(batches.generate_batch(seed, k))
        finally:
            inserter.close()
        watcher = target.watchers()[0]
        group = target.memory_group()
        pids = group.pids() if group else [target.pid()]
        idle_before = _cpu(pids)
        time.sleep(args.captures)
        idle = _cpu(pids) - idle_before
        seconds, sizes = [], []
        busy_before = _cpu(pids)
        for _ in range(args.captures):
            began = time.monotonic()
            data = watcher.fetch_heap(COMPONENT, timeout=30)
            seconds.append(time.monotonic() - began)
            sizes.append(len(data))
            time.sleep(max(0.0, 1.0 - seconds[-1]))
        busy = _cpu(pids) - busy_before
        inuse = proto.decode(data).total()
        print(f"milvus {target.version}, {args.batches} seed batches inserted, {args.captures} captures at 1/s")
        print(f"capture time: median {statistics.median(seconds) * 1000:.1f} ms, max {max(seconds) * 1000:.1f} ms")
        print(f"profile size: median {statistics.median(sizes) / 1024:.1f} KiB (gzipped profile.proto)")
        print(f"server CPU: {busy:.2f} s over {args.captures} s with captures, {idle:.2f} s over as long idle: "
              f"{(busy - idle) / args.captures * 1000:.1f} ms per capture")
        print(f"Go heap in use described: {inuse / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
