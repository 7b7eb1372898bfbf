"""The batch dispenser: each batch handed out once, and the pause the row checks hold the load with."""

from harness.load.dispenser import WAIT, Dispenser, LoadPause


def test_dispenser_hands_out_each_batch_once_and_retries_unreached():
    drained = []
    d = Dispenser(4, lambda: drained.append(True))
    got = [d.lease(), d.lease()]
    d.settle(got[0])
    d.settle(got[1], retry=True)  # never reached the server: goes back to the front
    assert d.lease() == got[1]
    rest = [d.lease(), d.lease()]
    assert d.lease() is None
    for k in [got[1], *rest]:
        d.settle(k)
    assert sorted([got[0], got[1], *rest]) == [0, 1, 2, 3] and drained == [True]


def test_a_paused_dispenser_hands_out_nothing_and_reports_idle_once_nothing_is_in_flight(tmp_path):
    pause = LoadPause.in_dir(tmp_path)
    d = Dispenser(4, lambda: None, pause=pause)
    first = d.lease()
    pause.request()
    assert d.lease() == WAIT and not pause.wait_idle(0.2)  # batch `first` is still in flight
    d.settle(first)
    assert d.lease() == WAIT and pause.wait_idle(0.2)
    pause.release()
    assert d.lease() == 1 and not pause.idle_path.exists()
