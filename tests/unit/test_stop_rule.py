"""The run's stop rules (harness.run.lifecycle.stop_rule)."""

from harness.run.lifecycle import stop_rule
from harness.watch.events import Event


def test_keep_going_runs_on_after_an_oom_kill_or_stall_and_restart_never_stops_at_any_death() -> None:
    """The run's stop rules: the first OOM kill or memory stall ends the load unless
    --keep-going; with --restart never any death ends it. (A real OOM kill under --keep-going
    is not in CI: see the note in tests/integration/test_documented_options.py.)"""
    oom = Event(t=1.0, component="standalone", type="OOMKilled")
    stall = Event(t=2.0, component="standalone", type="MemoryStall")
    exited = Event(t=3.0, component="standalone", type="Exited")
    assert stop_rule([oom], keep_going=False, restart="always") == \
        "stopped at the first OOMKilled (use --keep-going to continue)"
    assert stop_rule([stall], keep_going=False, restart="always") == \
        "stopped at the first MemoryStall (use --keep-going to continue)"
    assert stop_rule([oom, stall], keep_going=True, restart="always") is None
    assert stop_rule([exited], keep_going=False, restart="always") is None  # restarted, not a verdict
    assert stop_rule([exited], keep_going=True, restart="never") == "the server died (Exited) and --restart never"
