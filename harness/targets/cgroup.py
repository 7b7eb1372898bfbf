"""A memory limit around a process tree, enforced by the kernel as a pod limit would be.

cgroup v1 (these machines) or v2 (where its memory controller is enabled); where neither can
be made (not root, read-only cgroupfs) a Watchdog SIGKILLs the tree when its RSS passes the
limit, and the run records isolation "watchdog" so nobody mistakes it for a kernel OOM kill.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

log = logging.getLogger(__name__)

CGROUP_ROOT = Path(os.environ.get("MILVUS_HARNESS_CGROUP_ROOT", "/sys/fs/cgroup"))
#: Every cgroup the harness makes starts with this, so leftovers are easy to find and remove.
PREFIX = "milvus-harness-"
#: memory.stat keys kept, per cgroup version, under the names MemoryCgroup.memory_stat uses.
STAT_NAMES_V1 = {"rss": "anon", "cache": "page_cache", "mapped_file": "mapped_file", "shmem": "shmem"}
STAT_NAMES_V2 = {"anon": "anon", "file": "page_cache", "file_mapped": "mapped_file", "shmem": "shmem"}


class CgroupUnavailable(Exception):
    """No memory cgroup can be made here."""


class MemoryCgroup:
    """One memory cgroup (v1 or v2) with a hard limit; processes join it before they exec."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @property
    def isolation(self) -> str:
        return f"cgroup-v{self.version}"

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> "MemoryCgroup":
        """Make `<prefix><name>` with the limit; raise CgroupUnavailable if that cannot be done."""
        for version, parent in _candidate_parents():
            path = parent / f"{PREFIX}{name}"
            try:
                path.mkdir()
            except FileExistsError:
                pass
            except OSError as exc:
                log.debug("cannot make %s: %s", path, exc)
                continue
            group = cls(path, version)
            try:
                if version == 1:
                    # No swap here either, as in a pod; memsw may be absent without swap accounting.
                    _write(path / "memory.limit_in_bytes", limit_bytes)
                    try:
                        _write(path / "memory.memsw.limit_in_bytes", limit_bytes)
                    except OSError:
                        pass
                else:
                    _write(path / "memory.max", limit_bytes)
                    try:
                        _write(path / "memory.swap.max", 0)
                    except OSError:
                        pass
            except OSError as exc:
                group.remove()
                log.debug("cannot limit %s: %s", path, exc)
                continue
            return group
        raise CgroupUnavailable("no writable memory cgroup (v1 or v2) on this machine")

    def lift_limit(self) -> None:
        """Remove the limit (after the load, so that verifying the rows cannot OOM the server)."""
        if self.version == 1:
            for name in ("memory.memsw.limit_in_bytes", "memory.limit_in_bytes"):  # memsw first: it must stay >=
                try:
                    _write(self.path / name, -1)
                except OSError:
                    pass
        else:
            (self.path / "memory.max").write_text("max")

    def disable_oom_killer(self) -> bool:
        """cgroup v1 only: at the limit the kernel pauses the tree instead of killing it, the
        way a node under memory pressure stalls; returns False where that is not available."""
        if self.version != 1:
            return False
        try:
            _write(self.path / "memory.oom_control", 1)
        except OSError:
            return False
        return True

    def add_self(self) -> None:
        """Move the calling process into the cgroup (used between fork and exec)."""
        _write(self.path / "cgroup.procs", os.getpid())

    def usage_bytes(self) -> int:
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return int((self.path / name).read_text())

    def limit_bytes(self) -> int:
        name = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        text = (self.path / name).read_text().strip()
        return int(text) if text != "max" else 0

    def memory_stat(self) -> dict[str, int]:
        """Where the cgroup's memory is, in bytes, under one name for v1 and v2:
        `anon` (v1 rss, v2 anon), `page_cache` (v1 cache, v2 file), `mapped_file`
        (v1 mapped_file, v2 file_mapped) and `shmem` (counted inside page_cache on both)."""
        names = STAT_NAMES_V1 if self.version == 1 else STAT_NAMES_V2
        stat: dict[str, int] = {}
        for line in (self.path / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in names:
                stat[names[key]] = int(value)
        return stat

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup so far."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self) -> None:
        """SIGKILL every process left in the cgroup (only ours can be in it)."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def remove(self) -> None:
        """Kill what is left inside, then remove the cgroup directory; safe to call twice."""
        if not self.path.exists():
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.kill_all()  # again each time: a child may join between the kill and the rmdir
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # the last process may still be exiting
        log.warning("could not remove cgroup %s", self.path)


def _write(path: Path, value: int) -> None:
    with open(path, "w") as handle:
        handle.write(str(value))


def _candidate_parents() -> list[tuple[int, Path]]:
    parents: list[tuple[int, Path]] = []
    v1 = CGROUP_ROOT / "memory"
    if (v1 / "memory.limit_in_bytes").exists() or (v1 / "memory.usage_in_bytes").exists():
        parents.append((1, v1))
    for v2 in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        controllers = v2 / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            parents.append((2, v2))
    return parents


def leftover_cgroups() -> list[Path]:
    """Harness cgroups that exist now (tests assert there are none after a session)."""
    found: list[Path] = []
    for _, parent in _candidate_parents():
        found.extend(p for p in parent.glob(f"{PREFIX}*") if p.is_dir())
    return found


def tree_rss(pid: int) -> int:
    """Resident set of a process and all its descendants, in bytes (0 when it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class Watchdog:
    """The fallback limit: SIGKILL the tree when its RSS passes the limit (checked every 0.2 s)."""

    isolation = "watchdog"

    def __init__(self, limit_bytes: int, on_kill: Callable[[int], None]) -> None:
        self.limit_bytes = limit_bytes
        self._on_kill = on_kill
        self._pid: int | None = None
        self._kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def watch(self, pid: int | None) -> None:
        self._pid = pid

    def oom_kills(self) -> int:
        return self._kills

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            pid = self._pid
            if pid is None:
                continue
            rss = tree_rss(pid)
            if rss > self.limit_bytes:
                self._kills += 1
                self._pid = None
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self._on_kill(rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
