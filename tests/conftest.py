"""Shared fixtures. Every test that starts Milvus cleans up even when it fails; the session
ends with a check that no Milvus process it started and no harness cgroup it made remains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.targets.cgroup import leftover_cgroups

_before_cgroups: set[Path] = set()


def _our_milvus_processes() -> list[psutil.Process]:
    """Milvus servers that are descendants of this test process (never anyone else's)."""
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if child.name() == "milvus" or "milvus" in " ".join(child.cmdline()[:1]):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _data_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("milvus-harness-data-")}


def _in_use_by_others(path: Path) -> bool:
    """A cgroup or data dir that a live process outside this test session uses (a developer's
    own run on the same machine) is theirs, not a leak of ours."""
    mine = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)} | {os.getpid()}
    if path.is_absolute() and (path / "cgroup.procs").exists():
        pids = {int(p) for p in (path / "cgroup.procs").read_text().split()}
        return bool(pids) and not pids & mine
    for proc in psutil.process_iter(["name", "cwd"]):
        try:
            if proc.info["name"] == "milvus" and str(proc.info["cwd"] or "").find(str(path)) >= 0:
                return proc.pid not in mine
        except psutil.Error:
            continue
    return False


def _new_cgroups(before: set[Path]) -> list[Path]:
    return [p for p in leftover_cgroups() if p not in before and not _in_use_by_others(p)]


def _new_data_dirs(before: set[str]) -> list[str]:
    tmp = Path(tempfile.gettempdir())
    return [d for d in _data_dirs() - before if not _in_use_by_others(tmp / d)]


def pytest_sessionstart(session: pytest.Session) -> None:
    _before_cgroups.update(leftover_cgroups())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked_groups = _new_cgroups(_before_cgroups)
    leaked_procs = _our_milvus_processes()
    if leaked_groups or leaked_procs:
        print(f"\nLEFT BEHIND by the tests: cgroups {leaked_groups}, processes {[p.pid for p in leaked_procs]}")
        session.exitstatus = 1


@pytest.fixture
def no_leftovers():
    """Asserts that the test left no cgroup, Milvus process or data dir of its own behind."""
    groups, dirs = set(leftover_cgroups()), _data_dirs()
    yield
    assert not _new_cgroups(groups), "a harness cgroup was left behind"
    assert not _our_milvus_processes(), "a Milvus process was left running"
    assert not _new_data_dirs(dirs), "a Milvus data dir was left behind"


@pytest.fixture(scope="session")
def milvus_version() -> str:
    """The embedded version the integration tests use (installed once, cached)."""
    from harness.targets.install import ensure_installed, resolve_version

    version = resolve_version(os.environ.get("MILVUS_HARNESS_TEST_VERSION"))
    ensure_installed(version)
    return version


class HarnessProcesses:
    """`milvus-harness` as child processes, as users run it. A child still running when the
    test ends (failed, timed out, interrupted) gets SIGTERM, so it stops its Milvus and
    removes its cgroup itself; SIGKILL only if it has not exited 120 s later."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = self.start(*args)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()


@pytest.fixture
def harness_cli(no_leftovers: None) -> Iterator[HarnessProcesses]:
    """Requests no_leftovers so that its check runs after the children are stopped."""
    procs = HarnessProcesses()
    try:
        yield procs
    finally:
        procs.stop_all()
