"""oom@ faults on a real memory cgroup: the kernel's OOM killer takes the process under test,
never the pressing helper, and the helper's memory is free again afterwards."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from harness.run import memory_pressure
from harness.targets.cgroup import CgroupUnavailable, MemoryCgroup

MiB = 1 << 20

#: A stand-in for the server: holds resident memory, well under the limit, until killed.
HOLD = """
import sys, time
held = b"\\x01" * (96 << 20)
print("ready", flush=True)
time.sleep(120)
"""


def test_pressure_gets_the_kernel_to_oom_kill_the_process_under_test_not_the_helper() -> None:
    try:
        group = MemoryCgroup.create(f"test-{uuid.uuid4().hex[:8]}", 256 * MiB)
    except CgroupUnavailable as exc:
        pytest.skip(str(exc))
    victim = None
    try:
        victim = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, preexec_fn=group.add_self)
        assert victim.stdout is not None and victim.stdout.readline().strip() == b"ready"
        assert group.oom_kills() == 0
        killed, what = memory_pressure.press(group, victim.pid, seconds=30)
        assert killed, what
        assert victim.wait(timeout=10) == -9  # SIGKILL, from the kernel: nobody else signalled it
        assert group.oom_kills() == 1
        assert group.pids() == []  # the helper left too, so its memory is free for a restart
        assert group.usage_bytes() < 32 * MiB
    finally:
        if victim is not None and victim.poll() is None:
            victim.kill()
            victim.wait()
        group.remove()


def test_pressure_on_a_server_already_gone_presses_nothing() -> None:
    # The helper never joins the cgroup for a server it cannot aim the OOM killer at: pressing
    # then would only make the kernel look for someone else to kill.
    try:
        group = MemoryCgroup.create(f"test-{uuid.uuid4().hex[:8]}", 256 * MiB)
    except CgroupUnavailable as exc:
        pytest.skip(str(exc))
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        killed, what = memory_pressure.press(group, gone.pid, seconds=5)
        assert not killed and "oom_score_adj" in what
        assert group.oom_kills() == 0 and group.pids() == []
    finally:
        group.remove()
