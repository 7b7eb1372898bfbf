"""`milvus-harness watch`: only watch Milvus pods (memory, restarts, OOM kills) into samples.jsonl and
events.jsonl, for load driven from elsewhere. The watcher itself is harness/watch/kubernetes.py."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.errors import UsageError
from harness.rundir import RunDir, write_json
from harness.targets.protocol import TargetOptions
from harness.units import parse_duration
from harness.watch.events import Recorder, RunEvents, Sample

if TYPE_CHECKING:
    from rich.console import Console

    from harness.watch.kubernetes import KubernetesWatcher

EXAMPLES = """examples:
  milvus-harness watch --duration 30m                            # the harness's kind cluster
  milvus-harness watch --target external --kube-context prod --allow-context prod --namespace milvus"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="only watch Milvus pods (memory, restarts, OOM kills) into samples/events files",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=["kind", "external"], default="kind",
                   help="kind: the harness's kind cluster (default); external: any cluster via --kube-context")
    p.add_argument("--kube-context", metavar="C", help="kube context (kind default: kind-milvus-harness)")
    p.add_argument("--allow-context", metavar="NAME",
                   help="allow a kube context that is not a kind cluster (named exactly)")
    p.add_argument("--namespace", default="default", help="namespace of the pods (default default)")
    p.add_argument("--selector", default="app.kubernetes.io/name=milvus",
                   help="label selector of the pods (default app.kubernetes.io/name=milvus)")
    p.add_argument("--interval", default="1s", help="time between polls (default 1s, at least 0.1s)")
    p.add_argument("--duration", help="stop after this long, e.g. 30m (default: until Ctrl-C)")
    p.add_argument("--out", help="directory for samples.jsonl and events.jsonl (default reports/watch-<time>)")
    p.set_defaults(func=from_args)


def from_args(args: argparse.Namespace) -> int:
    from harness.console import make_console

    interval = parse_duration(args.interval, "--interval")
    if interval < 0.1:
        raise UsageError(f"--interval {args.interval!r} is below the minimum of 0.1s")
    duration = parse_duration(args.duration, "--duration") if args.duration else None
    out = Path(args.out) if args.out else Path("reports") / time.strftime("watch-%Y%m%d-%H%M%S")
    return run(target=args.target, kube_context=args.kube_context, allow_context=args.allow_context,
               namespace=args.namespace, selector=args.selector, interval=interval,
               duration=duration, out=out, console=make_console())


def run(*, target: str, kube_context: str | None, allow_context: str | None, namespace: str,
              selector: str, interval: float, duration: float | None, out: Path,
              console: "Console | None" = None, on_started: Callable[[KubernetesWatcher], None] | None = None) -> int:
    """Watch pods until `duration` passes (or Ctrl-C), writing samples.jsonl / events.jsonl to `out`."""
    from harness.kube.contexts import check_context
    from harness.watch.kubernetes import KubernetesWatcher

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
    ctx = RunEvents(run_dir)
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
