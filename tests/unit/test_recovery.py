"""Crash-loop detection, the server-down mark the load waits on, and recovery phases."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.judge.recovery import recovery_phases
from harness.load.dispenser import WAIT, Dispenser, ServerDown
from harness.run.recovery import CrashLoopDetector, DownGate, parse_crash_loop_after
from harness.watch import events
from harness.watch.events import RunEvents


class _Server:
    """Fires the events a supervised server would, with the acked rows the run has seen."""

    def __init__(self, context: RunEvents) -> None:
        self.context = context
        self.acked = 0
        self.t = 1000.0
        self.restarts = 0

    def at(self, dt: float) -> float:
        self.t += dt
        return self.t

    def die(self, kind: str = events.OOM_KILLED, **data) -> None:
        self.context.fire_event(component="standalone", type=kind, t=self.at(1), data=data)

    def restart(self) -> None:
        self.restarts += 1
        self.context.fire_event(component="standalone", type=events.RESTARTED, t=self.at(2),
                                data={"restarts": self.restarts})

    def ready(self) -> None:
        self.context.fire_event(component="standalone", type=events.READY, t=self.at(15))


def _loops(context: RunEvents) -> list:
    return [e for e in context.events if e.type == events.CRASH_LOOP]


def test_three_deaths_while_recovering_after_the_first_are_a_crash_loop():
    context = RunEvents()
    server = _Server(context)
    detector = CrashLoopDetector(context, lambda: server.acked)
    server.acked = 350_000
    server.die()  # under load, after rows were acked: not part of a loop
    for n in range(3):
        assert detector.reason is None, n
        server.restart()
        server.at(18)
        server.die()
    assert detector.reason == ("standalone crash-looping: OOM-killed 3 times while recovering (each within ~19 s of "
                               "restart), never ready again after 350,000 acked rows")
    assert len(_loops(context)) == 1
    server.restart()
    server.die()
    assert len(_loops(context)) == 1  # said once


def test_a_recovery_that_takes_rows_again_resets_the_count():
    context = RunEvents()
    server = _Server(context)
    detector = CrashLoopDetector(context, lambda: server.acked, after=2)
    for _ in range(6):  # kills with a full recovery and rows in between, as --keep-going runs go
        server.acked += 100_000
        server.die()
        server.restart()
        server.ready()
    assert detector.reason is None and not _loops(context)


def test_ready_without_a_row_acked_still_counts_and_says_so():
    context = RunEvents()
    server = _Server(context)
    detector = CrashLoopDetector(context, lambda: server.acked, after=2)
    server.acked = 50_000
    server.die()
    server.restart()
    server.ready()  # ready, but killed again before any insert got through
    server.die(events.EXITED, exit_code=-9)
    assert detector.reason is None
    server.restart()
    server.die(events.EXITED, injected=True)
    assert detector.reason == ("standalone crash-looping: died 2 times (0 OOM kills, 1 injected kills, 1 other exits)"
                               " while recovering (each within ~16 s of restart), no row acked after 50,000 between "
                               "the deaths")


def test_a_restart_that_stays_unready_is_not_recovered_and_ends_the_run():
    context = RunEvents()
    server = _Server(context)
    detector = CrashLoopDetector(context, lambda: server.acked, after=3, recovery_timeout=180)
    found: list = []
    context.on_event(lambda e: found.append(e) if e.type == events.NOT_RECOVERED else None)
    server.acked = 90_000
    server.die()
    server.restart()  # at t = 1003, then nothing: alive, never ready
    detector.check_recovery(server.t + 179)
    assert detector.reason is None and not found
    detector.check_recovery(server.t + 181)
    assert detector.reason == ("standalone not recovered: restart 1 still not ready 181 s after it began, alive, "
                               "after 90,000 acked rows")
    detector.check_recovery(server.t + 240)
    assert [e.detail for e in found] == [detector.reason]  # said once
    assert found[0].data == {"restart": 1, "restarted_at": 1003.0, "acked_rows": 90_000}


def test_a_slow_restart_that_gets_ready_or_dies_is_not_a_stuck_one():
    context = RunEvents()
    server = _Server(context)
    detector = CrashLoopDetector(context, lambda: server.acked, after=5, recovery_timeout=180)
    server.die()
    server.restart()
    server.ready()
    detector.check_recovery(server.t + 500)
    server.die()
    server.restart()
    server.die()  # died while recovering: the crash-loop count's business, not this one's
    detector.check_recovery(server.t + 500)
    assert detector.reason is None


@pytest.mark.parametrize("text,value", [("1", 1), ("3", 3), (" 12 ", 12), (5, 5)])
def test_crash_loop_after_accepts_whole_numbers(text, value):
    assert parse_crash_loop_after(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "two", "2.5", "", "1e3"])
def test_crash_loop_after_refuses_the_rest(text):
    with pytest.raises(UsageError, match="allowed is a whole number of deaths, 1 or more"):
        parse_crash_loop_after(text)


def test_the_load_waits_while_the_server_is_down(tmp_path):
    context = RunEvents()
    down = ServerDown.in_dir(tmp_path)
    gate = DownGate(context, down)
    dispenser = Dispenser(10, on_drained=lambda: None, down=down)
    assert dispenser.lease() == 0 and gate.phase() is None
    context.fire_event(component="standalone", type=events.OOM_KILLED)
    assert down.is_down() and dispenser.lease() == WAIT
    assert gate.phase() == "waiting for the server (restart 1)"
    context.fire_event(component="standalone", type=events.RESTARTED, data={"restarts": 1})
    context.fire_event(component="standalone", type=events.OOM_KILLED)
    assert gate.phase() == "waiting for the server (restart 2)"
    context.fire_event(component="standalone", type=events.RESTARTED, data={"restarts": 2})
    context.fire_event(component="standalone", type=events.READY)
    assert not down.is_down() and gate.phase() is None and dispenser.lease() == 1


def test_recovery_phases_time_to_ready_or_death_and_peak_memory():
    ev = [{"t": 10, "component": "standalone", "type": "OOMKilled"},
          {"t": 12, "component": "standalone", "type": "Restarted", "data": {"restarts": 1}},
          {"t": 30, "component": "standalone", "type": "OOMKilled"},
          {"t": 32, "component": "harness", "type": "LoadStopped"},
          {"t": 34, "component": "standalone", "type": "Restarted", "data": {"restarts": 2}},
          {"t": 50, "component": "standalone", "type": "Ready"},
          {"t": 60, "component": "standalone", "type": "Restarted", "data": {"restarts": 3}}]
    samples = [{"t": t, "component": "standalone", "memory_bytes": m}
               for t, m in ((11, 5), (20, 100), (29, 200), (31, 1), (40, 300), (55, 7), (70, 9))]
    phases = recovery_phases(ev, samples, ended=80)
    assert [(p["restart"], p["outcome"], p["seconds"], p["peak_memory_bytes"]) for p in phases] == [
        (1, "OOMKilled", 18, 200), (2, "ready", 16, 300), (3, "unfinished", 20, 9)]


def test_a_component_that_never_gets_ready_loops_even_while_others_take_rows():
    # On a cluster the proxy may ack rows while one node crash-loops, never Ready.
    context = RunEvents()
    acked = [1_000_000]
    detector = CrashLoopDetector(context, lambda: acked[0])
    for n in range(4):
        acked[0] += 50_000
        context.fire_event(component="datanode", type=events.OOM_KILLED, t=100.0 + 30 * n, data={"up_s": 20.0})
        context.fire_event(component="datanode", type=events.RESTARTED, t=101.0 + 30 * n)
    assert detector.reason == ("datanode crash-looping: OOM-killed 3 times while recovering (each within ~20 s of "
                               "restart), never ready again after 1,050,000 acked rows")
