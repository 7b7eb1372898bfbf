"""What one run attaches to its events, built in one place for `run` and for every run of `ui`.

The watchers fire samples and events on the run's RunEvents; these listeners act on them:
the stop events the stop rules look at, the stall detector, crash-loop detection, the gate that
holds the load while the server is down, and the heap-profile capturer. `run` (run/lifecycle.py)
and the web UI (webui/session.py) differ in where their progress comes from (the acks tail,
the run view) and in nothing else here, so a run started from the browser stalls, stops and
captures heap profiles exactly as `run` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from harness.load.dispenser import ServerDown
from harness.profiles.capture import ProfileCapturer
from harness.run.guards import collect_stop_events
from harness.run.recovery import CrashLoopDetector, DownGate
from harness.rundir import RunDir
from harness.watch.events import Event, RunEvents
from harness.watch.stall import StallDetector


@dataclass
class RunListeners:
    """The listeners of one run (see the module's docstring)."""

    stop_events: list[Event]
    stall: StallDetector
    crash_loop: CrashLoopDetector
    gate: DownGate | None
    profiles: ProfileCapturer

    def end_of_load(self) -> None:
        """The load is over and nobody is verifying yet: the 'end' heap profiles, now."""
        self.profiles.capture_end()

    def close(self) -> None:
        """Stop the capturer (after its queued captures); before the target stops. Idempotent."""
        self.profiles.stop()


def attach_listeners(context: RunEvents, run_dir: RunDir, *, settled_rows: Callable[[], int],
                     acked_rows: Callable[[], int], watchers: Callable[[], Iterable[object]],
                     down: ServerDown | None, stall_seconds: float, crash_loop_after: int,
                     recovery_timeout: float, profile_every: float | None, paused: Callable[[], bool] = lambda: False) -> RunListeners:
    """Attach the run's listeners to `context` and start the capturer.

    `settled_rows` is what a stall is measured against (rows whose insert was answered),
    `acked_rows` what a crash loop's healthy stretch is; `watchers` gives the target's watchers
    when a profile is due (the capturer asks the one that knows where the component is);
    `down` (None: no gate) is the mark the Locust users wait on while the server is down.
    """
    stop_events = collect_stop_events(context)
    gate = DownGate(context, down) if down is not None else None
    crash_loop = CrashLoopDetector(context, acked_rows, after=crash_loop_after, recovery_timeout=recovery_timeout)
    stall = StallDetector(context, settled_rows, seconds=stall_seconds, paused=paused)
    profiles = ProfileCapturer(context, run_dir.profiles, watchers, every=profile_every).start()
    return RunListeners(stop_events, stall, crash_loop, gate, profiles)
