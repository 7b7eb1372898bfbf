"""The option groups that several commands share: the target (run, ui, matrix, bisect) and the run (run, ui, matrix, bisect).

Parsing only: flags in, validated TargetOptions / RunOptions out, before anything starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence
from urllib.parse import urlsplit

from harness.errors import UsageError
from harness.milvus_client import NO_CREDENTIALS, PASSWORD_ENV, TOKEN_ENV, USER_ENV, Credentials
from harness.targets.protocol import TargetOptions
from harness.units import DURATION_HELP, SIZE_HELP, parse_bytes, parse_duration

if TYPE_CHECKING:  # the run's modules (pymilvus among them) load only when a command runs
    from harness.run.lifecycle import RunOptions


def key_value(text: str) -> tuple[str, str]:
    if "=" not in text or text.startswith("="):
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose and shape the Milvus under test; shared by run, ui, matrix, bisect."""
    group = parser.add_argument_group("target", description=f"SIZE is {SIZE_HELP}. DURATION is {DURATION_HELP}.")
    group.add_argument("--target", choices=["embedded", "kind", "external"], default="embedded",
                       help="where Milvus comes from (default: embedded, the PyPI milvus server)")
    group.add_argument("--milvus-version", metavar="V",
                       help="embedded: a published `milvus` version (default: newest); kind: an image tag")
    group.add_argument("--memory-limit", metavar="SIZE",
                       help="memory limit of the server, e.g. 2.5GiB (embedded: a memory cgroup)")
    group.add_argument("--milvus-config", metavar="KEY=VALUE", action="append", default=[],
                       type=key_value, help="override a milvus.yaml key (dotted), repeatable")
    group.add_argument("--restart", choices=["always", "never"], default="always",
                       help="restart the server when it dies, as kubelet would (default: always)")
    group.add_argument("--no-oom-kill", dest="oom_kill", action="store_false",
                       help="embedded: at the limit the kernel pauses the server instead of killing it "
                            "(cgroup v1 oom_kill_disable), so the run shows a memory stall")
    group.add_argument("--restart-backoff", metavar="DURATION", default="10s",
                       help="first back-off before a restart, doubling, capped at 5 min (default 10s)")
    group.add_argument("--restart-backoff-max", metavar="DURATION", default="5m",
                       help="cap of the doubling restart back-off (default 5m, as kubelet)")
    group.add_argument("--watch-interval", metavar="DURATION", default=None,
                       help="how often the watcher samples (default 1s; kind/external 2s: each poll also reads "
                            "the /metrics of the pods under test through the API server; at least 0.1s)")
    group.add_argument("--stall-after", metavar="DURATION", default="20s",
                       help="memory held at the limit with no progress this long is a MemoryStall")
    group.add_argument("--uri", help="external: the Milvus address, e.g. http://127.0.0.1:19530; "
                                     "https://host:port means TLS")
    group.add_argument("--allow-remote", action="store_true",
                       help="external: allow a --uri that is not this machine (default: loopback only)")
    group.add_argument("--user", help=f"external: Milvus user (or env {USER_ENV}); needs --password")
    group.add_argument("--password", help=f"external: its password; prefer env {PASSWORD_ENV}, "
                                          "which no process listing shows")
    group.add_argument("--token", help=f"external: an API key or 'user:password' instead of --user/--password "
                                       f"(or env {TOKEN_ENV}, preferred)")
    group.add_argument("--db-name", metavar="DB", help="external: the database to use (default: default); "
                                                       "it must exist")
    group.add_argument("--tls-ca", metavar="PEM", help="external: with an https:// --uri, the CA certificate "
                                                       "the server's certificate must chain to (a private CA)")
    group.add_argument("--kube-context", metavar="C", help="kind/external: the kube context to watch")
    group.add_argument("--allow-context", metavar="NAME",
                       help="allow a kube context that is not a kind cluster (named exactly)")
    group.add_argument("--namespace", default="default", help="kind/external: namespace of Milvus")
    group.add_argument("--release", default="milvus", help="kind: Helm release name of Milvus")
    group.add_argument("--image-repository", default="milvusdb/milvus", metavar="REPO",
                       help="kind: image repository, e.g. a registry's or one loaded with `kind load` "
                            "(default milvusdb/milvus)")


def target_options_from_args(args: argparse.Namespace) -> TargetOptions:
    """Validate the target options before anything starts."""
    if args.watch_interval is None:
        args.watch_interval = "2s" if args.target in ("kind", "external") else "1s"
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
        image_repository=args.image_repository,
        uri=args.uri,
        allow_remote=args.allow_remote,
        credentials=credentials_from_args(args, os.environ),
    )


#: Flags whose value is or holds a secret: replaced by *** in the command run.json records.
SECRET_FLAGS = ("--password", "--token", "--web-login", "--web-auth")


def credentials_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Credentials:
    """--user/--password or --token (else MILVUS_USER/MILVUS_PASSWORD or MILVUS_TOKEN from
    `environ`), --db-name, and TLS when --uri is https:// (with --tls-ca as its CA).

    All of them are for --target external; other targets refuse the flags and ignore the
    environment."""
    given = {flag: value for flag, value in (("--user", args.user), ("--password", args.password),
                                            ("--token", args.token), ("--db-name", args.db_name),
                                            ("--tls-ca", args.tls_ca)) if value is not None}
    if args.target != "external":
        if given:
            raise UsageError(f"{', '.join(given)}: only for --target external (got --target {args.target})")
        return NO_CREDENTIALS
    user, password, token = args.user, args.password, args.token
    if user is None and password is None and token is None:  # flags first, the environment only without any
        user, password, token = (environ.get(USER_ENV) or None, environ.get(PASSWORD_ENV) or None,
                                 environ.get(TOKEN_ENV) or None)
    if token and (user or password):
        raise UsageError(f"--token ({TOKEN_ENV}) and --user/--password ({USER_ENV}/{PASSWORD_ENV}) "
                         "are exclusive: give one or the other")
    if bool(user) != bool(password):
        raise UsageError(f"--user and --password ({USER_ENV} and {PASSWORD_ENV}) go together: "
                         f"{'--password' if user else '--user'} is missing")
    secure = urlsplit((args.uri or "").strip()).scheme == "https"
    if args.tls_ca is not None:
        if not secure:
            raise UsageError(f"--tls-ca needs an https:// --uri (got {args.uri!r})")
        if not Path(args.tls_ca).is_file():
            raise UsageError(f"--tls-ca {args.tls_ca!r} is not a file; give the CA certificate in PEM")
    if args.db_name is not None and not args.db_name.strip():
        raise UsageError("--db-name is empty; give an existing database's name (default: default)")
    return Credentials(user=user, password=password, token=token, db_name=args.db_name, secure=secure,
                       server_pem_path=str(Path(args.tls_ca).resolve()) if args.tls_ca else None)


def _secret_flag(arg: str) -> bool:
    # argparse takes any unambiguous prefix (--pass) for the flag
    return len(arg) > 2 and arg.startswith("--") and any(flag.startswith(arg) for flag in SECRET_FLAGS)


def redacted(argv: Sequence[str]) -> list[str]:
    """argv with the values of --password and --token replaced by ***, for run.json."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif _secret_flag(arg):
            out.append(arg)
            hide_next = True
        elif "=" in arg and _secret_flag(arg.split("=", 1)[0]):
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
    return out


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options of a run, shared by run, ui, matrix (every cell) and bisect (every step)."""
    p.add_argument("--scenario", default="seed", help="a built-in scenario name or a .toml path (default seed)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], type=key_value, dest="overrides",
                   help="override a scenario field, e.g. --set shards=1 --set rules.max_insert_p95_ms=2000")
    p.add_argument("--report-dir", default="reports", help="where run directories go (default reports/)")
    p.add_argument("--run-time", metavar="DURATION", help="stop the load after this long, e.g. 5m")
    p.add_argument("--workers", type=int, default=0, help="Locust worker processes (distributed mode; with --locust in-cluster, "
                                                      "worker pods); 0: one process")
    p.add_argument("--users", type=int, help="concurrent Locust users, pinned (default: the scenario's; when it sets "
                                             "none, ramp 1, 2, 3 ... while rows/s grows >= 10 %% a step, then hold the best)")
    p.add_argument("--keep-going", action="store_true",
                   help="continue through OOM kills and restarts to the planned rows")
    p.add_argument("--crash-loop-after", metavar="K", default="3",
                   help="stop the load with FAIL after K consecutive deaths while recovering (default 3)")
    p.add_argument("--recovery-timeout", metavar="DURATION", default="180s",
                   help="stop the load with FAIL when a restart is still not ready this long after it began "
                        "(NotRecovered; default 180s)")
    p.add_argument("--inject", metavar="FAULT", action="append", default=[],
                   help="embedded: kill@rows=N, kill@90s, stop@60s:10s, kill-every=90s, or oom@rows=N / oom@90s "
                        "(press the cgroup until the kernel OOM-kills the server) (repeatable)")
    p.add_argument("--verify", choices=["pk-ranges", "rows", "none"],
                   help="how acked rows are checked after the load: pk-ranges (per batch; loads the collection "
                        "into the query nodes), rows (persisted row count, no query node; a lower bound on loss) "
                        "or none (default: pk-ranges when the collection fits the query nodes' memory, else rows)")
    p.add_argument("--profile-every", metavar="DURATION",
                   help="also capture a Go heap profile of each component under test this often, e.g. 5m "
                        "(always: at 50/80/95 %% of the limit, on a stall, at the end of a load nobody died in)")
    add_target_options(p)


#: --profile-every's floor: each capture costs the server a walk of its heap.
MIN_PROFILE_EVERY = 10.0


def _profile_every(text: str | None) -> float | None:
    if text is None:
        return None
    seconds = parse_duration(text, "--profile-every")
    if seconds < MIN_PROFILE_EVERY:
        raise UsageError(f"--profile-every {text!r} is below the minimum of {MIN_PROFILE_EVERY:g}s")
    return seconds


def add_locust_options(p: argparse.ArgumentParser) -> None:
    """Where `run` puts Locust: on this machine, or as pods in the kind cluster."""
    p.add_argument("--locust", choices=["local", "in-cluster"], default="local",
                   help="where Locust runs: local processes (default), or in-cluster: a master and --workers N "
                        "pods in the kind cluster (--target kind)")
    p.add_argument("--locust-image", metavar="IMG",
                   help="in-cluster: the Locust image to `kind load` (default: build k8s/locust/Dockerfile)")


def run_options_from_args(args: argparse.Namespace) -> RunOptions:
    """The run's options from the parsed flags, validated before anything starts."""
    from harness.run.lifecycle import RunOptions
    from harness.run.recovery import parse_crash_loop_after

    return RunOptions(
        scenario=args.scenario, overrides=dict(args.overrides), target=target_options_from_args(args),
        report_dir=Path(args.report_dir),
        run_time=parse_duration(args.run_time, "--run-time") if args.run_time else None,
        workers=args.workers, users=args.users, keep_going=args.keep_going, inject=list(args.inject),
        verify=args.verify, locust=getattr(args, "locust", "local"),
        locust_image=getattr(args, "locust_image", None),
        crash_loop_after=parse_crash_loop_after(args.crash_loop_after),
        recovery_timeout=parse_duration(args.recovery_timeout, "--recovery-timeout"),
        profile_every=_profile_every(args.profile_every),
        command="milvus-harness " + " ".join(redacted(sys.argv[1:])),
    )
