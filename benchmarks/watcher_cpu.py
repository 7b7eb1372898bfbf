"""Benchmark (not a test): the watcher's CPU use at 1 Hz, and start-to-ready of a cached version.

Prints:
- CPU seconds the watcher thread spent per wall second over a minute of 1 Hz sampling
  (goal: under 1 % of a core), measured with the thread's own CPU clock;
- the harness's start-to-ready time (server answers ShowCollections) next to the server's own
  readiness (its /healthz turning OK), from the same start.

Usage: .venv/bin/python benchmarks/watcher_cpu.py [--seconds 60] [--milvus-version V]
"""

from __future__ import annotations

import argparse
import threading
import time
import urllib.request

from harness.targets.protocol import TargetOptions
from harness.targets.embedded import EmbeddedTarget
from harness.watch.process import ProcessWatcher
from harness.watch.events import RunEvents


def _healthz_ready(target: EmbeddedTarget, started: float, out: list[float]) -> None:
    url = f"http://127.0.0.1:{target.server.metrics_port}/healthz"
    while time.monotonic() - started < 180:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if b"OK" in r.read():
                    out.append(time.monotonic() - started)
                    return
        except OSError:
            pass
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--milvus-version")
    args = parser.parse_args()
    target = EmbeddedTarget(TargetOptions(milvus_version=args.milvus_version, memory_limit=4 * 2**30))
    context = RunEvents()
    healthz: list[float] = []
    with target:
        # Start the server ourselves so both readiness clocks share one start instant.
        original_spawn = target._spawn

        def spawn_and_watch() -> None:
            original_spawn()
            threading.Thread(target=_healthz_ready, args=(target, time.monotonic(), healthz), daemon=True).start()

        target._spawn = spawn_and_watch  # type: ignore[method-assign]
        target.start(context)
        time.sleep(1)
        print(f"milvus {target.version}: harness start-to-ready {target.startup_seconds:.2f} s; "
              f"server /healthz OK after {healthz[0]:.2f} s" if healthz else "server /healthz never OK")
        # Measure a watcher of our own (the target's runs too; we time ours alone).
        target.watchers()[0].stop()
        watcher = ProcessWatcher(target, interval=1.0)
        cpu: list[float] = []
        samples: list[object] = []
        context.on_sample(samples.append)
        original_loop = watcher._loop

        def timed_loop() -> None:
            begin = time.thread_time()
            original_loop()
            cpu.append(time.thread_time() - begin)

        watcher._loop = timed_loop  # type: ignore[method-assign]
        wall = time.monotonic()
        watcher.start(context)
        time.sleep(args.seconds)
        watcher.stop()
        wall = time.monotonic() - wall
    print(f"watcher: {len(samples)} samples in {wall:.0f} s; CPU {cpu[0]:.3f} s = "
          f"{100 * cpu[0] / wall:.2f} % of one core (goal < 1 %)")


if __name__ == "__main__":
    main()
