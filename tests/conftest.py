"""Shared fixtures. Every test that starts Milvus cleans up even when it fails; the session
ends with a check that no Milvus process it started and no harness cgroup it made remains."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psutil
import pytest

from harness.cgroup import leftover_cgroups

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


def pytest_sessionstart(session: pytest.Session) -> None:
    _before_cgroups.update(leftover_cgroups())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked_groups = [p for p in leftover_cgroups() if p not in _before_cgroups]
    leaked_procs = _our_milvus_processes()
    if leaked_groups or leaked_procs:
        print(f"\nLEFT BEHIND by the tests: cgroups {leaked_groups}, processes {[p.pid for p in leaked_procs]}")
        session.exitstatus = 1


@pytest.fixture
def no_leftovers():
    """Asserts that the test left no cgroup, Milvus process or data dir of its own behind."""
    groups, dirs = set(leftover_cgroups()), _data_dirs()
    yield
    assert not [p for p in leftover_cgroups() if p not in groups], "a harness cgroup was left behind"
    assert not _our_milvus_processes(), "a Milvus process was left running"
    assert _data_dirs() <= dirs, "a Milvus data dir was left behind"


@pytest.fixture(scope="session")
def milvus_version() -> str:
    """The embedded version the integration tests use (installed once, cached)."""
    from harness.targets.install import ensure_installed, resolve_version

    version = resolve_version(os.environ.get("MILVUS_HARNESS_TEST_VERSION"))
    ensure_installed(version)
    return version
