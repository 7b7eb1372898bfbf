"""The session's leak check (tests/leaks.py) sees a Milvus orphaned by a harness child that
died: re-parented to init, no longer a descendant of pytest, but still tagged with the session."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from leaks import SESSION_VAR, milvus_processes

SLEEP = "/bin/sleep"


def _orphan(fake_milvus: Path, env: dict[str, str]) -> int:
    """Start `milvus` (a sleep under that name) from a shell that exits at once, as a harness
    child killed with SIGKILL would leave its server; returns the orphan's pid once it runs."""
    shell = subprocess.run(["sh", "-c", f'"{fake_milvus}" 300 >/dev/null 2>&1 & echo $!'], env=env,
                           capture_output=True, text=True, check=True)
    pid = int(shell.stdout.strip())
    deadline = time.monotonic() + 10
    while psutil.Process(pid).name() != "milvus" and time.monotonic() < deadline:  # until exec is done
        time.sleep(0.01)
    assert psutil.Process(pid).name() == "milvus"
    return pid


@pytest.fixture
def fake_milvus(tmp_path: Path) -> Path:
    link = tmp_path / "milvus"
    link.symlink_to(SLEEP)
    return link


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_an_orphaned_milvus_of_this_session_is_found(fake_milvus: Path) -> None:
    session = os.environ[SESSION_VAR]
    pid = _orphan(fake_milvus, dict(os.environ))
    try:
        assert pid not in {p.pid for p in psutil.Process().children(recursive=True)}  # not ours by descent
        assert pid in {p.pid for p in milvus_processes(session)}
    finally:
        _kill(pid)


def test_a_milvus_of_another_session_is_not_counted(fake_milvus: Path) -> None:
    session = os.environ[SESSION_VAR]
    pid = _orphan(fake_milvus, {**os.environ, SESSION_VAR: "someone-else"})
    try:
        assert pid not in {p.pid for p in milvus_processes(session)}
    finally:
        _kill(pid)
