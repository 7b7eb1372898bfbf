"""The in-cluster Locust master's container, run here: harness.kube.locust_pod on loopback with a
real Locust command as its child. The stand-in API server's pod proxy forwards to its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from harness.targets.net import free_ports

REPO = Path(__file__).resolve().parents[2]


class LocalMaster:
    """One master container as a process group of this test: started at once, stopped by stop()."""

    def __init__(self, data: Path, locust: Sequence[str], log: Path) -> None:
        self.dir = data
        self.port = free_ports(1)[0]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.kube.locust_pod", "--bind", "127.0.0.1", "--port", str(self.port),
                 "--dir", str(data), "--", *map(str, locust)], stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)

    def stop(self) -> None:
        """SIGTERM (passed on to Locust), then SIGKILL to the whole group this test started."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
