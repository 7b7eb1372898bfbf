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
