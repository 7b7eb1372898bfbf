"""Fault injection on the embedded target: kills and pauses at chosen moments of the load.

    kill@rows=300000   SIGKILL the server once 300,000 rows are acked
    kill@90s           SIGKILL it 90 s after the load started
    stop@60s:10s       SIGSTOP it at 60 s, SIGCONT 10 s later
    kill-every=90s     SIGKILL it every 90 s of load
    oom@rows=300000    press its memory cgroup until the kernel OOM-kills it (also oom@90s)

An injected kill is marked as such (event Injected, then Exited with data.injected), so it
never counts as an OOM kill and its restart does not fail the run. An `oom@` fault is
different: the kill is the kernel's, at the server's own limit (run/memory_pressure.py), so it
is judged as any OOM kill (FAIL, and the load stops at it unless --keep-going); its event says
that the pressure was injected. It tests recovery from OOM kills at a limit the server can live with.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from harness.errors import UsageError
from harness.run import memory_pressure
from harness.targets.cgroup import MemoryCgroup
from harness.units import parse_duration
from harness.watch import events
from harness.watch.events import RunEvents

ALLOWED = ("kill@rows=N, kill@DURATION, stop@DURATION:DURATION, kill-every=DURATION, oom@rows=N or oom@DURATION "
           "(e.g. kill@rows=300000, stop@60s:10s, oom@rows=100000)")


@dataclass(frozen=True)
class Injection:
    """One planned fault: what, and when (rows acked, or seconds after the load started)."""

    action: str  # kill | stop | kill-every | oom
    at_rows: int | None = None
    at_seconds: float | None = None
    pause_seconds: float = 0.0
    every_seconds: float | None = None
    spec: str = ""


def parse(spec: str) -> Injection:
    """Parse one --inject value; anything else is a UsageError listing the forms allowed."""
    text = spec.strip()
    try:
        if m := re.fullmatch(r"(kill|oom)@rows=([0-9_]+)", text):
            return Injection(m.group(1), at_rows=int(m.group(2).replace("_", "")), spec=text)
        if m := re.fullmatch(r"(kill|oom)@([^:]+)", text):
            return Injection(m.group(1), at_seconds=parse_duration(m.group(2), "--inject time"), spec=text)
        if m := re.fullmatch(r"stop@([^:]+):(.+)", text):
            return Injection("stop", at_seconds=parse_duration(m.group(1), "--inject time"),
                             pause_seconds=parse_duration(m.group(2), "--inject pause"), spec=text)
        if m := re.fullmatch(r"kill-every=(.+)", text):
            return Injection("kill-every", every_seconds=parse_duration(m.group(1), "--inject period"), spec=text)
    except UsageError as exc:
        raise UsageError(f"--inject {spec!r}: {exc}; allowed: {ALLOWED}") from None
    raise UsageError(f"--inject {spec!r} is not a fault; allowed: {ALLOWED}")


class Killable(Protocol):
    """What an injection needs of a target: its server's pid, a signal, its memory cgroup, and
    ways to say what the next death is (the embedded target; only it runs a process of ours)."""

    def pid(self) -> int | None: ...

    def kill(self, sig: int) -> None: ...

    def mark_injected_death(self) -> None: ...

    def memory_group(self) -> MemoryCgroup | None: ...

    def memory_pressure(self, active: bool) -> None: ...


class Injector:
    """Carries out injections against a target with kill(sig) and mark_injected_death()."""

    def __init__(self, injections: list[Injection], target: Killable, context: RunEvents,
                 rows_acked: Callable[[], int]) -> None:
        self.injections = injections
        self.target = target
        self.context = context
        self.rows_acked = rows_acked
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done: set[int] = set()
        self._last_kill: dict[int, float] = {}

    def start(self) -> None:
        if not self.injections:
            return
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="injector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            elapsed = time.monotonic() - self._began
            for i, inj in enumerate(self.injections):
                if inj.action == "kill-every":
                    assert inj.every_seconds is not None
                    if elapsed - self._last_kill.get(i, 0.0) >= inj.every_seconds:
                        self._last_kill[i] = elapsed
                        self._kill(inj, f"every {inj.every_seconds:.0f} s, at {elapsed:.0f} s")
                    continue
                if i in self._done:
                    continue
                due = (inj.at_rows is not None and self.rows_acked() >= inj.at_rows) or \
                      (inj.at_seconds is not None and elapsed >= inj.at_seconds)
                if not due:
                    continue
                self._done.add(i)
                when = f"at {self.rows_acked():,} rows acked, {elapsed:.0f} s into the load"
                if inj.action == "kill":
                    self._kill(inj, when)
                elif inj.action == "oom":
                    self._press(inj, when)
                else:
                    self._pause(inj)

    def _kill(self, inj: Injection, when: str) -> None:
        if self.target.pid() is None:
            return  # down already (restarting): nothing to kill
        self.context.fire_event(component="standalone", type=events.INJECTED,
                                detail=f"{inj.spec}: SIGKILL {when}", data={"action": "kill", "spec": inj.spec})
        self.target.mark_injected_death()
        self.target.kill(signal.SIGKILL)

    def _press(self, inj: Injection, when: str) -> None:
        pid, group = self.target.pid(), self.target.memory_group()
        if pid is None:
            return  # down already (restarting): nothing to press
        if group is None:
            self.context.fire_event(component="standalone", type=events.INJECTED,
                                    detail=f"{inj.spec}: not done, the limit is not a memory cgroup here",
                                    data={"action": "oom", "spec": inj.spec, "done": False})
            return
        self.context.fire_event(component="standalone", type=events.INJECTED,
                                detail=f"{inj.spec}: memory pressure in the server's cgroup {when}",
                                data={"action": "oom", "spec": inj.spec})
        self.target.memory_pressure(True)
        killed, what = memory_pressure.press(group, pid)
        if not killed:
            self.target.memory_pressure(False)
            self.context.fire_event(component="standalone", type=events.INJECTED,
                                    detail=f"{inj.spec}: {what}", data={"action": "oom", "spec": inj.spec, "done": False})

    def _pause(self, inj: Injection) -> None:
        self.context.fire_event(component="standalone", type=events.INJECTED,
                                detail=f"{inj.spec}: SIGSTOP for {inj.pause_seconds:.0f} s",
                                data={"action": "stop", "spec": inj.spec})
        self.target.kill(signal.SIGSTOP)
        self._stop.wait(inj.pause_seconds)
        self.target.kill(signal.SIGCONT)
        self.context.fire_event(component="standalone", type=events.INJECTED,
                                detail=f"{inj.spec}: SIGCONT", data={"action": "cont", "spec": inj.spec})
