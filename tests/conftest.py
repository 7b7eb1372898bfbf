"""Shared fixtures. Every test that starts Milvus cleans up even when it fails; the session
ends with a check that no Milvus process it started and no harness cgroup it made remains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Callable
from pathlib import Path

import pytest

from harness.targets.cgroup import leftover_cgroups

from leaks import SESSION_VAR, data_dirs, milvus_processes, new_cgroups, new_data_dirs, new_session_id

# Tag every process this session starts (see tests/leaks.py): set before any test runs, so
# every child, and every Milvus a child starts, inherits it.
SESSION = os.environ[SESSION_VAR] = new_session_id()
_before_cgroups: set[Path] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    _before_cgroups.update(leftover_cgroups())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked_groups = new_cgroups(_before_cgroups, SESSION)
    leaked_procs = milvus_processes(SESSION)
    if leaked_groups or leaked_procs:
        print(f"\nLEFT BEHIND by the tests: cgroups {leaked_groups}, processes {[p.pid for p in leaked_procs]}")
        session.exitstatus = 1


@pytest.fixture
def no_leftovers():
    """Asserts that the test left no cgroup, Milvus process or data dir of its own behind,
    orphaned ones included (a Milvus whose harness died is re-parented to init)."""
    groups, dirs = set(leftover_cgroups()), data_dirs()
    yield
    assert not new_cgroups(groups, SESSION), "a harness cgroup was left behind"
    assert not milvus_processes(SESSION), "a Milvus process was left running"
    assert not new_data_dirs(dirs, SESSION), "a Milvus data dir was left behind"


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


class DirectCount:
    """Wraps the run's end check: `before(address, collection)` runs first (a test's fault);
    afterwards every acked batch's primary-key range is counted again with a plain pymilvus
    count(*) query (Strong consistency), not the harness's helper, into `per_batch`."""

    def __init__(self) -> None:
        self.before: Callable[[str, str], None] | None = None
        self.per_batch: list[int] | None = None
        self.acked: list[dict] = []

    def present(self) -> list[int]:
        """Each acked batch's count up to its own rows, as the harness counts: an insert retried
        after a kill may have been applied twice (or partly), so a range can hold more."""
        assert self.per_batch is not None
        return [min(n, a["rows"]) for a, n in zip(self.acked, self.per_batch)]

    def wrap(self, real_verify: Callable[..., Any]) -> Callable[..., Any]:
        from pymilvus import MilvusClient

        def verify_then_count_directly(address: str, collection: str, acked: list[dict], *args: Any,
                                       **kw: Any) -> Any:
            if self.before:
                self.before(address, collection)
            result = real_verify(address, collection, acked, *args, **kw)
            self.acked = acked
            client = MilvusClient(uri=f"http://{address}", timeout=30, dedicated=True)
            try:
                if not client.list_indexes(collection):  # the fast row count builds none; a query needs one
                    params = client.prepare_index_params()
                    params.add_index("embedding", index_type="FLAT", metric_type="L2")
                    client.create_index(collection, params)
                client.load_collection(collection, timeout=300)
                self.per_batch = [client.query(collection, filter=f"id >= {a['first_pk']} and id <= {a['last_pk']}",
                                               output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
                                  for a in acked]
            finally:
                client.close()
            return result

        return verify_then_count_directly


@pytest.fixture
def direct_count(monkeypatch: pytest.MonkeyPatch) -> DirectCount:
    """A direct count of what the server holds at the end of an in-process run (see DirectCount)."""
    import harness.judge.verify

    counter = DirectCount()
    # The end check's one call into Milvus (judge.verify.verify_after_load calls it).
    monkeypatch.setattr(harness.judge.verify, "verify", counter.wrap(harness.judge.verify.verify))
    return counter
