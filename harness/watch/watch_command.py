"""`milvus-harness watch`: the Kubernetes watcher alone, for load driven from elsewhere."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.watch.events import RunContext, Sample
from harness.watch.kubernetes import KubernetesWatcher

if TYPE_CHECKING:
    from rich.console import Console


def run_watch(*, target: str, kube_context: str | None, allow_context: str | None, namespace: str,
              selector: str, interval: float, duration: float | None, out: Path,
              console: "Console | None" = None, on_started: Callable[[KubernetesWatcher], None] | None = None) -> int:
    """Watch pods until `duration` passes (or Ctrl-C), writing samples.jsonl / events.jsonl to `out`."""
    from harness.kube.contexts import check_context
    from harness.errors import UsageError
    from harness.rundir import RunDir, write_json
    from harness.targets.protocol import TargetOptions
    from harness.watch.events import Recorder

    options = TargetOptions(target=target, kube_context=kube_context, allow_context=allow_context,
                            namespace=namespace)
    context_name = check_context(options)  # refuses a foreign context before anything starts
    if context_name is None:
        raise UsageError("watch --target external needs --kube-context: the pods are read through it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror or exc}") from None
    run_dir = RunDir(out)
    write_json(run_dir.run_json, {"command": "watch", "target": target, "kube_context": context_name,
                                  "namespace": namespace, "selector": selector, "interval": interval,
                                  "started": time.time()})
    ctx = RunContext(run_dir)
    recorder = Recorder(ctx, run_dir)
    if console is not None:
        ctx.on_event(lambda e: console.print(
            f"{time.strftime('%H:%M:%S', time.localtime(e.t))}  {e.component:<16} {e.type:<16} {e.detail}",
            markup=False, highlight=False, soft_wrap=True))
    watcher = KubernetesWatcher.for_context(context_name, namespace=namespace, selector=selector,
                                            interval=interval, request_timeout=max(2.0, min(10.0, interval * 5)))
    samples = 0

    def count(_: Sample) -> None:
        nonlocal samples
        samples += 1

    ctx.on_sample(count)
    watcher.start(ctx)
    if on_started is not None:
        on_started(watcher)
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
    finally:
        watcher.stop()
        recorder.close()
    if console is not None:
        kinds: dict[str, int] = {}
        for event in ctx.events:
            kinds[event.type] = kinds.get(event.type, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no events"
        console.print(f"{samples} samples, {summary}; written to {out}", markup=False, highlight=False,
                      soft_wrap=True)
    return 0
