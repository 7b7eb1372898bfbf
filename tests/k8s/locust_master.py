"""The in-cluster Locust pods' containers, run here as process groups of the test.

The master: harness.kube.locust_pod on loopback (the stand-in API server's pod proxy forwards
to its port) with a real Locust command as its child; workers: a Locust command as it is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from harness.targets.net import free_ports

REPO = Path(__file__).resolve().parents[2]
LOCUST_POD = REPO / "harness" / "kube" / "locust_pod.py"  # stdlib only: runs as a script under any tree


def start_group(argv: Sequence[object], log: Path, pythonpath: Path = REPO) -> subprocess.Popen[bytes]:
    """argv in a session of its own (so stop_group ends its children too), output appended to `log`.

    It runs in the log's directory, as a pod runs in its image's: Locust reads a locust.conf from
    its working directory, and the checkout's example must not become the pod's options."""
    with log.open("ab") as out:
        return subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, cwd=log.parent,
                                env={**os.environ, "PYTHONPATH": str(pythonpath)}, start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to the whole group this test started."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class LocalMaster:
    """The master pod's container: locust_pod serving `data` with `locust` as its child."""

    def __init__(self, data: Path, locust: Sequence[object], log: Path, pythonpath: Path = REPO) -> None:
        self.dir = data
        self.port = free_ports(1)[0]
        self.proc = start_group([sys.executable, LOCUST_POD, "--bind", "127.0.0.1", "--port", self.port,
                                 "--dir", data, "--", *locust], log, pythonpath)

    def stop(self) -> None:
        stop_group(self.proc)
