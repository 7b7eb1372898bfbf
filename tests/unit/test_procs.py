"""The subprocess helper's interrupt discipline: a signal inside a deferred block lands after it."""

import os
import signal
import time

import pytest

from harness.procs import interrupts_deferred


def test_an_interrupt_inside_a_deferred_block_arrives_after_it():
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    recorded = []
    try:
        with pytest.raises(Stop):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the signal is handled here, outside a deferral
                recorded.append("resource")  # made and recorded before the interrupt lands
        assert recorded == ["resource"]
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_wait_group_gone_waits_for_the_last_member_and_is_bounded():
    import subprocess

    from harness.procs import wait_group_gone

    # The leader exits at once; a member of its group lives on until it is killed.
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & exit 0"], start_new_session=True)
    try:
        proc.wait(timeout=30)
        began = time.monotonic()
        assert wait_group_gone(proc.pid, timeout=0.3) is False
        assert time.monotonic() - began >= 0.3
        os.killpg(proc.pid, signal.SIGKILL)
        assert wait_group_gone(proc.pid, timeout=30) is True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
