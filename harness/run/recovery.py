"""While a server recovers: crash-loop detection, and the load held off a server that is down.

Both listen to the run's events, so they work the same on every target whose watcher fires
deaths (OOMKilled, Exited) and Ready: the embedded supervisor, the Kubernetes watcher.

A crash loop is K consecutive deaths of one component with no healthy stretch in between,
healthy meaning it became Ready again and at least one row was acked after the previous
death. Kubernetes calls it CrashLoopBackOff; for the harness it is a finding of its own (the
server cannot even recover its data at that limit), so it stops the load and fails the run.
A restart that stays alive and never gets ready (NotRecovered, RECOVERY_TIMEOUT_S after it
began) is the same finding without the deaths, and ends the run the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.errors import UsageError
from harness.load.dispenser import ServerDown
from harness.watch import events
from harness.watch.events import Event, RunEvents

#: Consecutive deaths without a healthy stretch that make a crash loop (--crash-loop-after).
DEFAULT_CRASH_LOOP_AFTER = 3
DEATHS = (events.OOM_KILLED, events.EXITED)
#: How long a restarted component may take to be ready again: as long as the embedded server's
#: first start may take (targets.embedded.START_TIMEOUT); kubelet's probes would keep it unready.
RECOVERY_TIMEOUT_S = 180.0


def parse_crash_loop_after(text: str | int) -> int:
    """--crash-loop-after K: a whole number of deaths, 1 or more."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1 or str(text).strip().lstrip("+") != str(value):
        raise UsageError(f"--crash-loop-after {text!r}: allowed is a whole number of deaths, 1 or more (default 3)")
    return value


@dataclass
class _Streak:
    """One component's deaths since it was last healthy."""

    ready_since_death: bool = True  # the run starts from a ready server
    acked_at_death: int = 0
    restarted_at: float | None = None
    deaths: list[Event] = field(default_factory=list)
    ready_during: bool = False  # Ready at least once since the streak began
    after_restart_s: list[float] = field(default_factory=list)
    waiting: tuple[float, int] | None = None  # (when, which restart) it waits to be ready for


class CrashLoopDetector:
    """Fires a CrashLoop event, and holds its reason, once a component crash-loops."""

    def __init__(self, context: RunEvents, acked_rows: Callable[[], int],
                 after: int = DEFAULT_CRASH_LOOP_AFTER, recovery_timeout: float = RECOVERY_TIMEOUT_S) -> None:
        self.context = context
        self.acked_rows = acked_rows
        self.after = after
        self.recovery_timeout = recovery_timeout
        self.reason: str | None = None
        self._streaks: dict[str, _Streak] = {}
        self._lock = threading.Lock()
        context.on_event(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.component == "harness" or event.type in (events.CRASH_LOOP, events.NOT_RECOVERED):
            return
        finding = None
        with self._lock:
            streak = self._streaks.setdefault(event.component, _Streak())
            if event.type == events.READY:
                streak.ready_since_death = True
                streak.ready_during = True
                streak.waiting = None
            elif event.type == events.RESTARTED:
                streak.restarted_at = event.t
                streak.waiting = (event.t, int(event.data.get("restarts", 0)))
            elif event.type in DEATHS:  # injected kills too: a server that cannot recover from them loops as well
                streak.waiting = None
                finding = self._death(event, streak)
        if finding:
            self.context.fire_event(component=event.component, type=events.CRASH_LOOP, detail=finding[0],
                                    data=finding[1])

    def check_recovery(self, now: float) -> None:
        """Call it now and then (the run's loop does): fires NotRecovered, and holds its reason,
        for a component restarted over `recovery_timeout` ago and neither ready nor dead since."""
        found = None
        with self._lock:
            if self.reason is not None:
                return
            for component, streak in self._streaks.items():
                if streak.waiting and now - streak.waiting[0] >= self.recovery_timeout:
                    began, restart = streak.waiting
                    acked = self.acked_rows()
                    self.reason = (f"{component} not recovered: restart {restart} still not ready "
                                   f"{now - began:.0f} s after it began, alive, after {acked:,} acked rows")
                    found = component, {"restart": restart, "restarted_at": began, "acked_rows": acked}
                    break
        if found:
            self.context.fire_event(component=found[0], type=events.NOT_RECOVERED, detail=self.reason, data=found[1])

    def _death(self, event: Event, streak: _Streak) -> tuple[str, dict[str, Any]] | None:
        acked = self.acked_rows()
        healthy = streak.ready_since_death and acked > streak.acked_at_death
        if healthy:
            streak.deaths, streak.after_restart_s, streak.ready_during = [], [], False
            streak.acked_at_death = acked
        else:
            streak.deaths.append(event)
            # How long it ran: the death's own figure (kubelet's startedAt..finishedAt), else
            # the time since the restart event.
            if event.data.get("up_s") is not None:
                streak.after_restart_s.append(float(event.data["up_s"]))
            elif streak.restarted_at is not None and streak.restarted_at <= event.t:
                streak.after_restart_s.append(event.t - streak.restarted_at)
        streak.ready_since_death = False
        if len(streak.deaths) < self.after or self.reason is not None:
            return None
        self.reason = describe_crash_loop(event.component, streak.deaths, streak.after_restart_s,
                                          streak.acked_at_death, not streak.ready_during)
        return self.reason, {"deaths": len(streak.deaths), "acked_rows": streak.acked_at_death,
                             "seconds_after_restart": [round(s, 1) for s in streak.after_restart_s],
                             "death_times": [d.t for d in streak.deaths]}


def describe_crash_loop(component: str, deaths: list[Event], after_restart_s: list[float], acked: int,
                        never_ready: bool) -> str:
    """"standalone crash-looping: OOM-killed 3 times while recovering (each within ~20 s of
    restart), never ready again after 350,000 acked rows"."""
    ooms = sum(1 for d in deaths if d.type == events.OOM_KILLED)
    injected = sum(1 for d in deaths if d.data.get("injected"))
    how = (f"OOM-killed {ooms} times" if ooms == len(deaths)
           else f"died {len(deaths)} times ({ooms} OOM kills, {injected} injected kills, "
                f"{len(deaths) - ooms - injected} other exits)")
    within = f" (each within ~{max(after_restart_s):.0f} s of restart)" if after_restart_s else ""
    tail = (f"never ready again after {acked:,} acked rows" if never_ready
            else f"no row acked after {acked:,} between the deaths")
    return f"{component} crash-looping: {how} while recovering{within}, {tail}"


class DownGate:
    """Marks the server down from a death to its next Ready, so the load waits instead of
    firing inserts at a dead port (the Locust users read the mark, see load/user.py)."""

    def __init__(self, context: RunEvents, down: ServerDown) -> None:
        self.down = down
        self._down: dict[str, int] = {}  # component -> the restart it waits for
        self._restarts: dict[str, int] = {}
        self._lock = threading.Lock()
        down.clear()
        context.on_event(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.component == "harness":
            return
        with self._lock:
            if event.type == events.RESTARTED:
                self._restarts[event.component] = int(event.data.get("restarts", 0))
            elif event.type in DEATHS:
                self._down[event.component] = self._restarts.get(event.component, 0) + 1
            elif event.type == events.READY:
                self._down.pop(event.component, None)
            else:
                return
            if self._down:
                self.down.mark("; ".join(f"{c} restart {n}" for c, n in sorted(self._down.items())))
            else:
                self.down.clear()

    def phase(self) -> str | None:
        """The live view's phase while the server is down, else None."""
        with self._lock:
            if not self._down:
                return None
            return "waiting for the server (" + ", ".join(
                f"restart {n}" if c == "standalone" else f"{c} restart {n}" for c, n in sorted(self._down.items())) + ")"
