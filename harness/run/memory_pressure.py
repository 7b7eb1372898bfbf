"""Memory pressure inside the server's cgroup until the kernel OOM-kills the server (`oom@` faults).

Like a sidecar that shares a pod's limit, a helper process joins the server's memory cgroup,
makes the server the OOM killer's first choice (its oom_score_adj to 1000: raising a score needs
no privilege, lowering the helper's own would) and allocates until the cgroup's OOM-kill count
rises. Then it exits and its memory is free again, so the restarted server meets the same limit
with nothing else inside it. The kill is the kernel's own, counted by the cgroup as any OOM kill.

The parent side is `press`; the helper runs as `python -m harness.run.memory_pressure`.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import psutil

from harness.procs import run_command
from harness.targets.cgroup import MemoryCgroup

#: Allocated per step; small enough that the helper notices the kill soon after it.
CHUNK_BYTES = 16 << 20
#: How long the helper may press before it gives up (a server that is not killable, say).
PRESS_SECONDS = 60.0

#: The helper's exit codes.
KILLED, NOT_KILLED, CANNOT_AIM = 0, 3, 4


def press(group: MemoryCgroup, server_pid: int, seconds: float = PRESS_SECONDS) -> tuple[bool, str]:
    """Press `group` until the kernel OOM-kills the server; (killed, what happened).

    The kernel may take the helper as well, right after the server: the server's memory is
    not all uncharged by the time the helper's pending allocation retries. That is still the
    server's OOM kill (the cgroup then counts two).
    """
    before = group.oom_kills()
    result = run_command([sys.executable, "-m", __name__, str(group.path), str(group.version), str(server_pid),
                          str(seconds)], what="press the server's memory cgroup", timeout=seconds + 30, check=False)
    if result.returncode == KILLED or (_gone(server_pid) and group.oom_kills() > before):
        return True, "the kernel OOM-killed the server"
    if result.returncode == CANNOT_AIM:
        return False, "could not make the server the OOM killer's choice (its oom_score_adj is not writable)"
    if result.returncode == -signal.SIGKILL:
        return False, "the kernel OOM-killed the pressure helper instead of the server"
    return False, f"no OOM kill within {seconds:.0f} s (helper exit {result.returncode}); pressure released"


def _gone(pid: int) -> bool:
    """Dead (a zombie not yet reaped by the supervisor counts as dead)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def press_from_inside(group: MemoryCgroup, server_pid: int, seconds: float) -> int:
    """The helper: join `group`, allocate until its OOM-kill count rises; an exit code above."""
    before = group.oom_kills()
    score = Path(f"/proc/{server_pid}/oom_score_adj")
    try:
        score.write_text("1000")
    except OSError:
        return CANNOT_AIM  # else the kernel could kill this helper, not the server
    group.add_self()
    held: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if group.oom_kills() > before:
            return KILLED
        if _gone(server_pid):
            break  # gone some other way: pressing on would only make the kernel wait for a victim
        held.append(b"\x01" * CHUNK_BYTES)  # filled, so every page is charged to the cgroup now
    if group.oom_kills() > before:
        return KILLED
    try:
        score.write_text("0")  # back to what the server had: it lives on
    except OSError:
        pass
    return NOT_KILLED


if __name__ == "__main__":
    path, version, pid, secs = sys.argv[1:5]
    sys.exit(press_from_inside(MemoryCgroup(Path(path), int(version)), int(pid), float(secs)))
