"""Locust as processes, for `run` (headless) and `ui` (web UI): the one place that spawns and stops them.

One process, or with workers a master and N workers on loopback. Each gets its own session,
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

from harness.rundir import RunDir

LOCUSTFILES = Path(__file__).parent.parent / "locustfiles"


def locust_argv(locustfile: Path, *options: str) -> list[str]:
    """The command line every Locust process of the harness starts with."""
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *options]


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
        connected to it over loopback; every process appends its output to `log_path`."""
        master = [*common, *master_options]
        with log_path.open("ab") as log:
            if workers:
                from harness.targets.net import free_ports

                port = free_ports(1)[0]
                master += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                           "--expect-workers", str(workers)]
                self.procs.append(self._spawn(master, log, env))
                for _ in range(workers):
                    self.procs.append(self._spawn([*common, "--worker", "--master-host", "127.0.0.1",
                                                   "--master-port", str(port)], log, env))
            else:
                self.procs.append(self._spawn(master, log, env))

    @staticmethod
    def _spawn(argv: list[str], log: object, env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None, start_new_session=True)

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
    from harness.milvus_client import PASSWORD_ENV, TOKEN_ENV, USER_ENV

    env = {name: value for name, value in os.environ.items() if name not in (USER_ENV, PASSWORD_ENV, TOKEN_ENV)}
    return {**env, **secrets, **(extra or {})}


def start_headless(run_dir: RunDir, config: Path, users: int | None, workers: int,
                   run_time: float | None, secrets: Mapping[str, str] | None = None) -> LocustProcesses:
    """Locust for `run`: headless, inserting what load.json (`config`) says, writing its stats
    and HTML report into the run directory; `users` None ramps them (harness.load.ramp);
    `secrets` (the credentials) go in its environment."""
    locustfile = LOCUSTFILES / ("insert_ramp.py" if users is None else "insert.py")
    common = locust_argv(locustfile, "--harness-config", str(config), "--loglevel", "INFO", "--skip-log-setup")
    master = ["--headless", *([] if users is None else ["-u", str(users), "-r", str(users)]),
              "--csv", str(run_dir.locust_prefix), "--csv-full-history", "--html", str(run_dir.locust_html),
              "--exit-code-on-error", "0", "--stop-timeout", "120"]
    if run_time:
        master += ["--run-time", f"{int(run_time)}s"]
    locust = LocustProcesses()
    locust.start(common, master, workers, run_dir.logs / "locust.log", locust_env(secrets or {}))
    return locust
