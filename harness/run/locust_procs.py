"""Locust as processes, for `run` (headless) and `ui` (web UI): the one place that spawns and stops them.

Both run the insert locustfile (harness/locustfiles/milvus_insert.py, what plain `locust -f
locustfiles/milvus_insert.py` runs) with its own options. One process, or with workers a
master and N workers on loopback. Each gets its own session,
so Ctrl-C reaches the harness alone, which then stops Locust in order (gevent stays out of
the harness process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from harness.milvus_client import PASSWORD_ENV, TOKEN_ENV, USER_ENV, Connection
from harness.rundir import RunDir

LOCUSTFILES = Path(__file__).parent.parent / "locustfiles"


def locust_argv(locustfiles: Sequence[Path], *options: str) -> list[str]:
    """The command line every Locust process of the harness starts with (Locust merges the
    users and shapes of several locustfiles)."""
    return [sys.executable, "-m", "locust", "-f", ",".join(str(f) for f in locustfiles), *options]


class LoadProcesses(Protocol):
    """What the run lifecycle needs of its Locust: local processes or the in-cluster master
    (harness.run.locust_cluster.InClusterLocust)."""

    def running(self) -> bool: ...

    def stop(self, timeout: float = 60.0) -> None: ...


class LocustProcesses:
    """The Locust processes of one run or UI session; `procs[0]` is the master (or the only one)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, common: Sequence[str], master_options: Sequence[str], workers: int, log_path: Path,
              env: Mapping[str, str] | None = None) -> None:
        """Spawn Locust: `common` + `master_options`, and with `workers` that many workers
        connected to it over loopback; every process appends its output to `log_path`.

        They run in the log's directory: Locust reads a ./locust.conf (or pyproject.toml's
        [tool.locust]) by itself, and one in the user's directory must not change the load."""
        master = [*common, *master_options]
        with log_path.open("ab") as log:
            if workers:
                from harness.targets.net import free_ports

                port = free_ports(1)[0]
                master += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                           "--expect-workers", str(workers)]
                self.procs.append(self._spawn(master, log, env, log_path.parent))
                for _ in range(workers):
                    self.procs.append(self._spawn([*common, "--worker", "--master-host", "127.0.0.1",
                                                   "--master-port", str(port)], log, env, log_path.parent))
            else:
                self.procs.append(self._spawn(master, log, env, log_path.parent))

    @staticmethod
    def _spawn(argv: list[str], log: object, env: Mapping[str, str] | None, cwd: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None, start_new_session=True, cwd=cwd)

    def running(self) -> bool:
        """True while the master (or the only process) runs."""
        return bool(self.procs) and self.procs[0].poll() is None

    @property
    def returncode(self) -> int | None:
        return self.procs[0].returncode if self.procs else None

    def stop(self, timeout: float = 60.0, sig: int = signal.SIGINT, every: bool = False) -> None:
        """Send `sig` to the master (with `every`, to every process), wait up to `timeout`
        for all of them, then kill what is left.

        Headless runs stop with SIGINT to the master: it quits its workers and writes its stats
        and HTML report (on SIGTERM Locust skips the HTML). The web UI takes SIGTERM everywhere.
        """
        for proc in self.procs if every else self.procs[:1]:
            if proc.poll() is None:
                proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a Locust log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def locust_env(secrets: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Locust processes' environment: ours, with the Milvus credentials replaced by the
    run's own (`secrets`, Credentials.to_env), so they never go through a file or argv."""
    env = {name: value for name, value in os.environ.items() if name not in (USER_ENV, PASSWORD_ENV, TOKEN_ENV)}
    return {**env, **secrets, **(extra or {})}


def insert_options(connection: Connection, scenario: str, overrides: Mapping[str, str], run_dir: RunDir) -> list[str]:
    """The insert locustfile's options for a harness run: its Milvus, the scenario as the user
    gave it (a file by its absolute path), the collection the harness made, the run's acks.jsonl
    and directory. Who the harness is to Milvus goes through the environment (locust_env)."""
    path = Path(scenario)
    if scenario.endswith(".toml") or path.exists():
        scenario = str(path.resolve())
    options = ["--host", connection.uri, "--scenario", scenario, "--collection-mode", "reuse",
               "--acks-file", str(run_dir.acks), "--harness-run-dir", str(run_dir.path)]
    for key, value in overrides.items():
        options += ["--set", f"{key}={value}"]
    credentials = connection.credentials
    if credentials.db_name:
        options += ["--db-name", credentials.db_name]
    if credentials.server_pem_path:
        options += ["--tls-ca", credentials.server_pem_path]
    return options


def start_headless(run_dir: RunDir, connection: Connection, scenario: str, overrides: Mapping[str, str],
                   users: int | None, workers: int, run_time: float | None) -> LocustProcesses:
    """Locust for `run`: headless, the insert locustfile (with the ramp's when `users` is None)
    inserting into `connection`, writing its stats and HTML report into the run directory
    (every path absolute: Locust runs in the run's logs directory)."""
    run_dir = RunDir(run_dir.path.resolve())
    locustfiles = [LOCUSTFILES / "milvus_insert.py", *([LOCUSTFILES / "ramp.py"] if users is None else [])]
    common = locust_argv(locustfiles, *insert_options(connection, scenario, overrides, run_dir),
                         "--loglevel", "INFO", "--skip-log-setup")
    master = ["--headless", *([] if users is None else ["-u", str(users), "-r", str(users)]),
              "--csv", str(run_dir.locust_prefix), "--csv-full-history", "--html", str(run_dir.locust_html),
              "--exit-code-on-error", "0", "--stop-timeout", "120"]
    if run_time:
        master += ["--run-time", f"{int(run_time)}s"]
    locust = LocustProcesses()
    locust.start(common, master, workers, run_dir.logs / "locust.log", locust_env(connection.credentials.to_env()))
    return locust
