"""Locust with its web UI for `milvus-harness ui`: its command line, its secrets (through the
environment, never argv), waiting for the page to answer, and its log, shared by the session's
runs (each run takes the part written while it loaded)."""

from __future__ import annotations

import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import TargetError
from harness.run.locust_procs import LOCUSTFILES, LocustProcesses, locust_argv, locust_env, log_tail
from harness.webui import CREDENTIALS_ENV, TOKEN_ENV
from harness.webui.options import WebOptions

if TYPE_CHECKING:
    from harness.run.lifecycle import RunOptions
    from harness.scenario.model import Scenario

#: --stop-timeout with --workers: what an insert in flight gets to finish when a test stops.
WORKER_STOP_TIMEOUT_S = 15
#: Loopback calls never go through an http_proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class WebLocust:
    """The Locust processes of one `ui` session, all logging to `log_path`."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.procs = LocustProcesses()

    def start(self, control_url: str, token: str, web: WebOptions, scenario: Scenario, options: RunOptions) -> None:
        """Locust with its web UI on `web`, the form filled from `scenario`, and --workers workers."""
        common = locust_argv([LOCUSTFILES / "milvus_insert.py", LOCUSTFILES / "ui.py"], "--harness-control", control_url,
                             "--harness-report-dir", str(options.report_dir.resolve()))
        # Users finish the insert in flight when stopped; with workers keep that short, as a
        # Locust worker rejoins for the next test only once the stop timeout has passed.
        stop_timeout = WORKER_STOP_TIMEOUT_S if options.workers else 120
        users = str(scenario.users or 1)  # the form's first value; in the web UI the user drives the count
        master = ["--web-host", web.host, "--web-port", str(web.port),
                  "-u", users, "-r", users, "--stop-timeout", str(stop_timeout),
                  "--total-rows", str(scenario.total_rows), "--batch-rows", str(scenario.batch_rows),
                  "--shards", str(scenario.shards), "--partitions", str(scenario.partitions)]
        if options.run_time:
            master += ["--run-time", f"{int(options.run_time)}s"]
        if web.login:
            master.append("--web-login")
        # The Milvus credentials, like the UI's own secrets, go through the environment only.
        env = locust_env(options.target.credentials.to_env(), {TOKEN_ENV: token})
        if web.guarded:
            env[CREDENTIALS_ENV] = ("login:" if web.login else "basic:") + (web.login or web.auth or "")
        env.pop("LOCUST_HEADLESS", None)
        self.procs.start(common, master, options.workers, self.log_path, env)

    def wait_ready(self, web: WebOptions, timeout: float = 60.0) -> None:
        """Until the web UI answers; a Locust that exits instead is a TargetError with its log's tail."""
        url = web.url + "/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.procs.running():
                raise TargetError(f"Locust's web UI did not start on {web.host}:{web.port} "
                                  f"(exit {self.procs.returncode}):\n{self.log_tail()}")
            try:
                _NO_PROXY.open(url, timeout=2).close()
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return  # basic auth: it answers
                time.sleep(0.25)  # not Locust's answer (a 404 from another server): wait for Locust
            except OSError:
                time.sleep(0.25)
        raise TargetError(f"Locust's web UI did not answer on {url} within {timeout:.0f} s:\n{self.log_tail()}")

    def running(self) -> bool:
        return self.procs.running()

    @property
    def returncode(self) -> int | None:
        return self.procs.returncode

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM every process (the web UI stops a test in progress), then make sure."""
        self.procs.stop(timeout, sig=signal.SIGTERM, every=True)

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def log_size(self) -> int:
        """Where the log ends now: a run copies its part from here on."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def copy_log(self, since: int, dest: Path) -> None:
        """Append the log from offset `since` on to `dest`."""
        if not self.log_path.exists():
            return
        with self.log_path.open("rb") as source, dest.open("ab") as out:
            source.seek(since)
            shutil.copyfileobj(source, out)
