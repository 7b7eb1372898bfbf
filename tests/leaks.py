"""What a test session leaves running: Milvus processes, harness cgroups and data dirs.

Every process the session starts inherits MILVUS_HARNESS_TEST_SESSION=<this session's id>
(set by tests/conftest.py before any test runs) and keeps it in /proc/<pid>/environ for
life, so a Milvus orphaned by a harness child that died (re-parented to init, no longer a
descendant of pytest) is still recognised as this session's. Processes of another session
or of a developer's own run carry another tag or none, and are never counted.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from harness.targets.cgroup import leftover_cgroups

SESSION_VAR = "MILVUS_HARNESS_TEST_SESSION"
DATA_DIR_PREFIX = "milvus-harness-data-"


def new_session_id() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def session_of(pid: int) -> str | None:
    """The test-session tag a process was started with, or None (untagged, gone, unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return None
    prefix = SESSION_VAR.encode() + b"="
    for item in environ:
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def _is_milvus(proc: psutil.Process) -> bool:
    cmdline = proc.cmdline()
    return proc.name() == "milvus" or bool(cmdline) and os.path.basename(cmdline[0]) == "milvus"


def session_pids(session: str) -> set[int]:
    """Every live process of this session: descendants of this process and tagged ones anywhere."""
    mine = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)} | {os.getpid()}
    return mine | {p.pid for p in psutil.process_iter() if session_of(p.pid) == session}


def milvus_processes(session: str) -> list[psutil.Process]:
    """Live (non-zombie) Milvus servers of this session, wherever they were re-parented."""
    ours = session_pids(session)
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid in ours and _is_milvus(proc) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def data_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(DATA_DIR_PREFIX)}


def in_use_by_others(path: Path, session: str) -> bool:
    """A cgroup or data dir that a live process outside this session uses (a developer's own
    run on the same machine) is theirs, not a leak of ours."""
    ours = session_pids(session)
    if path.is_absolute() and (path / "cgroup.procs").exists():
        pids = {int(p) for p in (path / "cgroup.procs").read_text().split()}
        return bool(pids) and not pids & ours
    for proc in psutil.process_iter(["name", "cwd"]):
        try:
            if proc.info["name"] == "milvus" and str(proc.info["cwd"] or "").find(str(path)) >= 0:
                return proc.pid not in ours
        except psutil.Error:
            continue
    return False


def new_cgroups(before: set[Path], session: str) -> list[Path]:
    return [p for p in leftover_cgroups() if p not in before and not in_use_by_others(p, session)]


def new_data_dirs(before: set[str], session: str, settle_s: float = 15.0) -> list[str]:
    """New data dirs that are no one else's. Another run on the machine makes its data dir a
    moment before its Milvus starts in it, so a candidate must stay unused for `settle_s`."""
    tmp = Path(tempfile.gettempdir())
    deadline = time.monotonic() + settle_s
    while True:
        found = [d for d in data_dirs() - before if not in_use_by_others(tmp / d, session)]
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)
