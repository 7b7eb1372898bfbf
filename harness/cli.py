"""Argument parsing and dispatch only; every command lives in its own module.

`main(argv)` is the one error boundary: a HarnessError becomes one line on stderr and its
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from harness import __version__
from harness.errors import ExitCode, HarnessError, Interrupted, UsageError
from harness.targets.protocol import TargetOptions
from harness.units import parse_bytes, parse_duration

if TYPE_CHECKING:
    from harness.run.lifecycle import RunOptions
    from harness.run.recovery import parse_crash_loop_after


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prints "milvus-harness: error: "; a subcommand names itself after that.
        command = self.prog.removeprefix("milvus-harness").strip()
        raise UsageError(f"{command}: {message}" if command else message)


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text or text.startswith("="):
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose and shape the Milvus under test; shared by run, ui, matrix, bisect."""
    group = parser.add_argument_group("target")
    group.add_argument("--target", choices=["embedded", "kind", "external"], default="embedded",
                       help="where Milvus comes from (default: embedded, the PyPI milvus server)")
    group.add_argument("--milvus-version", metavar="V",
                       help="embedded: a published `milvus` version (default: newest); kind: an image tag")
    group.add_argument("--memory-limit", metavar="SIZE",
                       help="memory limit of the server, e.g. 2.5GiB (embedded: a memory cgroup)")
    group.add_argument("--milvus-config", metavar="KEY=VALUE", action="append", default=[],
                       type=_key_value, help="override a milvus.yaml key (dotted), repeatable")
    group.add_argument("--restart", choices=["always", "never"], default="always",
                       help="restart the server when it dies, as kubelet would (default: always)")
    group.add_argument("--no-oom-kill", dest="oom_kill", action="store_false",
                       help="embedded: at the limit the kernel pauses the server instead of killing it "
                            "(cgroup v1 oom_kill_disable), so the run shows a memory stall")
    group.add_argument("--restart-backoff", metavar="SECONDS", default="10s",
                       help="first back-off before a restart, doubling, capped at 5 min (default 10s)")
    group.add_argument("--restart-backoff-max", metavar="SECONDS", default="5m",
                       help="cap of the doubling restart back-off (default 5m, as kubelet)")
    group.add_argument("--watch-interval", metavar="SECONDS", default="1s",
                       help="how often the watcher samples (default 1s, at least 0.1s)")
    group.add_argument("--stall-after", metavar="SECONDS", default="20s",
                       help="memory held at the limit with no progress this long is a MemoryStall")
    group.add_argument("--uri", help="external: the Milvus address, e.g. http://127.0.0.1:19530")
    group.add_argument("--kube-context", metavar="C", help="kind/external: the kube context to watch")
    group.add_argument("--allow-context", metavar="NAME",
                       help="allow a kube context that is not a kind cluster (named exactly)")
    group.add_argument("--namespace", default="default", help="kind/external: namespace of Milvus")
    group.add_argument("--release", default="milvus", help="kind: Helm release name of Milvus")


def target_options_from_args(args: argparse.Namespace) -> TargetOptions:
    """Validate the target options before anything starts."""
    interval = parse_duration(args.watch_interval, "--watch-interval")
    if interval < 0.1:
        raise UsageError(f"--watch-interval {args.watch_interval!r} is below the minimum of 0.1s")
    backoff = parse_duration(args.restart_backoff, "--restart-backoff")
    backoff_max = parse_duration(args.restart_backoff_max, "--restart-backoff-max")
    if backoff_max < backoff:
        raise UsageError(f"--restart-backoff-max {args.restart_backoff_max} is below --restart-backoff "
                         f"{args.restart_backoff}; the cap must be at least the first back-off")
    return TargetOptions(
        target=args.target,
        milvus_version=args.milvus_version,
        memory_limit=parse_bytes(args.memory_limit, "--memory-limit") if args.memory_limit else None,
        milvus_config=dict(args.milvus_config),
        restart=args.restart,
        oom_kill=args.oom_kill,
        restart_backoff=backoff,
        restart_backoff_max=backoff_max,
        watch_interval=interval,
        stall_seconds=parse_duration(args.stall_after, "--stall-after"),
        kube_context=args.kube_context,
        allow_context=args.allow_context,
        namespace=args.namespace,
        release=args.release,
        uri=args.uri,
    )


def build_parser() -> _Parser:
    parser = _Parser(prog="milvus-harness", description=(
        "Load-test real Milvus, reproduce memory blow-ups (OOM kills, stalls), judge each run "
        "PASS / FAIL / INCONCLUSIVE, and bisect the Milvus version that brought or fixed one."))
    parser.add_argument("--version", action="version", version=f"milvus-harness {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show subprocess output and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for register in _COMMANDS:
        register(sub)
    return parser


# --- one function per command: parse, then call into the command's own module -----------------


def _cmd_versions(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("versions", help="list the installable embedded Milvus versions")
    p.add_argument("--installed", action="store_true", help="only those already in the cache")

    def run(args: argparse.Namespace) -> int:
        from harness.targets import embedded

        return embedded.print_versions(installed_only=args.installed)

    p.set_defaults(func=run)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options of a run, shared by `run` and `ui`."""
    p.add_argument("--scenario", default="seed", help="a built-in scenario name or a .toml path (default seed)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], type=_key_value, dest="overrides",
                   help="override a scenario field, e.g. --set shards=1 --set rules.max_insert_p95_ms=2000")
    p.add_argument("--report-dir", default="reports", help="where run directories go (default reports/)")
    p.add_argument("--run-time", metavar="DURATION", help="stop the load after this long, e.g. 5m")
    p.add_argument("--workers", type=int, default=0, help="Locust worker processes (distributed mode); 0: one process")
    p.add_argument("--users", type=int, help="concurrent Locust users (default: the scenario's)")
    p.add_argument("--keep-going", action="store_true",
                   help="continue through OOM kills and restarts to the planned rows")
    p.add_argument("--crash-loop-after", metavar="K", default="3",
                   help="stop the load with FAIL after K consecutive deaths while recovering (default 3)")
    p.add_argument("--inject", metavar="FAULT", action="append", default=[],
                   help="embedded: kill@rows=N, kill@90s, stop@60s:10s or kill-every=90s (repeatable)")
    add_target_options(p)


def run_options_from_args(args: argparse.Namespace) -> "RunOptions":
    from pathlib import Path

    from harness.run.lifecycle import RunOptions
    from harness.run.recovery import parse_crash_loop_after

    return RunOptions(
        scenario=args.scenario, overrides=dict(args.overrides), target=target_options_from_args(args),
        report_dir=Path(args.report_dir),
        run_time=parse_duration(args.run_time, "--run-time") if args.run_time else None,
        workers=args.workers, users=args.users, keep_going=args.keep_going, inject=list(args.inject),
        crash_loop_after=parse_crash_loop_after(args.crash_loop_after),
        command="milvus-harness " + " ".join(sys.argv[1:]),
    )


def _cmd_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario against Milvus and judge it (exit 0 PASS, 1 FAIL, 125 INCONCLUSIVE)")
    _add_run_options(p)

    def run(args: argparse.Namespace) -> int:
        from harness.console import make_console, print_result
        from harness.run.lifecycle import run as run_scenario

        console = make_console()
        result = run_scenario(run_options_from_args(args), console=console)
        print_result(console, result)
        return result.exit_code

    p.set_defaults(func=run)


def _cmd_ui(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="Locust's web UI with a live Milvus memory tab: start runs from a browser")
    _add_run_options(p)
    web = p.add_argument_group("web UI")
    web.add_argument("--web-host", default="127.0.0.1",
                     help="interface of the web UI (default 127.0.0.1; 0.0.0.0 for all, with a login)")
    web.add_argument("--web-port", type=int, default=8089, help="port of the web UI (default 8089)")
    web.add_argument("--web-login", metavar="USER:PASSWORD", help="Locust's login page, for this one user")
    web.add_argument("--web-auth", metavar="USER:PASSWORD", help="HTTP basic auth on every page of the web UI")

    def run(args: argparse.Namespace) -> int:
        from harness.console import make_console
        from harness.webui.session import WebOptions, serve

        web_options = WebOptions(host=args.web_host, port=args.web_port, login=args.web_login, auth=args.web_auth)
        return serve(run_options_from_args(args), web_options, console=make_console())

    p.set_defaults(func=run)


def _cmd_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render report.md, report.html and junit.xml again from a run directory")
    p.add_argument("run_dir", help="a run directory, e.g. reports/20261127-181500-seed-2.3.5")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from harness.report import render_report

        path = Path(args.run_dir)
        if not (path / "summary.json").exists():
            raise UsageError(f"{path} is not a finished run directory (no summary.json)")
        for written in render_report(path):
            print(written)
        return 0

    p.set_defaults(func=run)


def _cmd_scenarios(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenarios", help="list the built-in scenarios, or show one")
    p.add_argument("name", nargs="?", help="show this scenario's fields (a name or a .toml path)")

    def run(args: argparse.Namespace) -> int:
        from harness.console import make_console, print_scenarios

        print_scenarios(make_console(), args.name)
        return 0

    p.set_defaults(func=run)


def _cmd_cluster(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="a kind cluster with Milvus in the seed's topology: up, down, status")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    for action, text in (("up", "create the kind cluster (if needed), install metrics-server and Milvus, wait"),
                         ("down", "delete the kind cluster"),
                         ("status", "show the Milvus release's pods (exit 0 when all are ready)")):
        a = actions.add_parser(action, help=text)
        a.add_argument("--name", default="milvus-harness", help="kind cluster name (default milvus-harness)")
        a.add_argument("--namespace", default="default", help="namespace of Milvus (default default)")
        a.add_argument("--release", default="milvus", help="Helm release name of Milvus (default milvus)")
        if action == "up":
            a.add_argument("--milvus-version", metavar="TAG", default=None,
                           help="image tag, e.g. v2.6.15, v2.5.16 or master-20250311-0698d04f (default v2.6.15)")
            a.add_argument("--values", default="laptop", metavar="seed|laptop|FILE",
                           help="Helm values: seed (2 streaming nodes, 4 CPU / 16Gi each), laptop (fits 16 GB), "
                                "or a file (default laptop)")
            a.add_argument("--timeout", default="30m", help="how long to wait for the pods (default 30m)")

    def run(args: argparse.Namespace) -> int:
        from harness.kube import cluster
        from harness.console import make_console

        spec = cluster.ClusterSpec(name=args.name, namespace=args.namespace, release=args.release)
        if args.action == "up":
            spec.image_tag = args.milvus_version or cluster.DEFAULT_TAG
            spec.values = args.values
            spec.timeout = parse_duration(args.timeout, "--timeout")
        command = {"up": cluster.cluster_up, "down": cluster.cluster_down, "status": cluster.cluster_status}
        return command[args.action](spec, console=make_console())

    p.set_defaults(func=run)


def _cmd_watch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="only watch Milvus pods (memory, restarts, OOM kills) into samples/events files")
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

    def run(args: argparse.Namespace) -> int:
        import time
        from pathlib import Path

        from harness.console import make_console
        from harness.watch.kubernetes import run_watch

        interval = parse_duration(args.interval, "--interval")
        if interval < 0.1:
            raise UsageError(f"--interval {args.interval!r} is below the minimum of 0.1s")
        duration = parse_duration(args.duration, "--duration") if args.duration else None
        out = Path(args.out) if args.out else Path("reports") / time.strftime("watch-%Y%m%d-%H%M%S")
        return run_watch(target=args.target, kube_context=args.kube_context, allow_context=args.allow_context,
                         namespace=args.namespace, selector=args.selector, interval=interval,
                         duration=duration, out=out, console=make_console())

    p.set_defaults(func=run)


def _cmd_matrix(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="run a scenario on every version x --vary value and compare "
                                      "(exit 1 any FAIL, 125 any INCONCLUSIVE, else 0)")
    p.add_argument("--milvus-versions", metavar="V1,V2,...",
                   help="embedded: published versions, or `all`; kind: image tags (default: --milvus-version "
                        "or the newest)")
    p.add_argument("--vary", metavar="KEY=V1,V2,...", action="append", default=[],
                   help="a scenario field, rules.<rule> or memory_limit and its values, repeatable, "
                        "e.g. --vary shards=1,4,16 --vary partitions=1,16")
    p.add_argument("--id", dest="matrix_id", metavar="ID", help="name the page reports/matrix-<ID> (default: the time)")
    _add_run_options(p)

    def run(args: argparse.Namespace) -> int:
        from harness.console import make_console
        from harness.compare.matrix import parse_axes, print_matrix, resolve_versions, run_matrix

        axes = parse_axes(args.vary)
        if args.milvus_versions and args.milvus_version:
            raise UsageError("give either --milvus-versions (a matrix) or --milvus-version, not both")
        options = run_options_from_args(args)
        if args.milvus_versions:
            versions = resolve_versions(args.milvus_versions, args.target)
        elif args.milvus_version:
            versions = [args.milvus_version]
        elif args.target == "embedded":
            from harness.targets.install import resolve_version

            versions = [resolve_version(None)]
        else:
            raise UsageError(f"matrix on {args.target} needs --milvus-versions (image tags)")
        console = make_console()
        result = run_matrix(versions, axes, options, console, matrix_id=args.matrix_id)
        print_matrix(console, result, list(axes))
        return result.exit_code

    p.set_defaults(func=run)


def _cmd_bisect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bisect", help="find the first bad version (or with --find-fix the first good one) "
                                      "(exit 0 found, 125 undecided)")
    p.add_argument("--good", required=True, metavar="V", help="a version that PASSes (older, unless --find-fix)")
    p.add_argument("--bad", required=True, metavar="V", help="a version that FAILs (newer, unless --find-fix)")
    p.add_argument("--find-fix", action="store_true", help="the older version is bad: find the first good one")
    p.add_argument("--versions-file", metavar="FILE",
                   help="the ordered versions, one per line, oldest first (kind: image tags, required; "
                        "embedded: default every published version)")
    p.add_argument("--id", dest="bisect_id", metavar="ID", help="name the page reports/bisect-<ID> (default: the time)")
    p.add_argument("--no-prefetch", action="store_true",
                   help="embedded: do not install the next candidates while a version runs "
                        "(keeps installs off the CPU during latency-sensitive runs)")
    _add_run_options(p)

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from harness.compare.bisect_search import describe
        from harness.compare.bisect_command import run_bisect_command
        from harness.console import make_console

        console = make_console()
        result = run_bisect_command(
            run_options_from_args(args), args.good, args.bad, console, find_fix=args.find_fix,
            versions_file=Path(args.versions_file) if args.versions_file else None,
            prefetch=not args.no_prefetch, bisect_id=args.bisect_id)
        for line in describe(result):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return result.exit_code

    p.set_defaults(func=run)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _cmd_run,
    _cmd_ui,
    _cmd_report,
    _cmd_scenarios,
    _cmd_versions,
    _cmd_cluster,
    _cmd_watch,
    _cmd_matrix,
    _cmd_bisect,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `milvus-harness` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if not args.verbose:
            # pymilvus logs every failed RPC at ERROR; during an OOM that is expected noise.
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        return int(args.func(args))
    except HarnessError as exc:
        print(f"milvus-harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except Interrupted as exc:
        print(f"milvus-harness: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("milvus-harness: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
