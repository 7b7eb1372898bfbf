"""Samples and events: what watchers observe, fired on a RunEvents that others listen to.

The recorder writes them to samples.jsonl / events.jsonl; the live view, the web UI and the
stop rules subscribe as listeners. A failing listener is logged, never fatal (as Locust's
EventHook does).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from harness.rundir import JsonlWriter, RunDir

log = logging.getLogger(__name__)

#: Event types used across targets and watchers.
READY = "Ready"
OOM_KILLED = "OOMKilled"
MEMORY_STALL = "MemoryStall"
EXITED = "Exited"
RESTARTED = "Restarted"
UNREACHABLE = "Unreachable"
LOAD_STARTED = "LoadStarted"
LOAD_STOPPED = "LoadStopped"
INJECTED = "Injected"
WATCH_GAP = "WatchGap"
VERIFY_STARTED = "VerifyStarted"  # the load is over; the acked rows are being checked
VERIFY_FINISHED = "VerifyFinished"  # the check of the acked rows is done (its result in data)
CRASH_LOOP = "CrashLoop"  # consecutive deaths while recovering (harness.run.recovery)
NOT_RECOVERED = "NotRecovered"  # restarted, alive, and still not ready long after (harness.run.recovery)
ROWS_CHECKED = "RowsChecked"  # the harness counted rows after a restart (harness.judge.restart_check)


@dataclass(frozen=True)
class Sample:
    """One observation of one component.

    `memory_bytes` is the figure limits are enforced on (cgroup usage, container working set);
    `rss_bytes` the resident set of its processes; `metrics` selected Prometheus values;
    `memory_stat` where the cgroup's memory is (harness.targets.cgroup.MemoryCgroup.memory_stat).
    """

    t: float
    component: str
    memory_bytes: int | None
    limit_bytes: int | None
    restarts: int
    source: str
    rss_bytes: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    memory_stat: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for optional in ("metrics", "memory_stat"):
            if not data[optional]:
                data.pop(optional)
        return data


@dataclass(frozen=True)
class Event:
    """Something that happened to a component at time `t` (epoch seconds)."""

    t: float
    component: str
    type: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.data:
            data.pop("data")
        return data


SampleListener = Callable[[Sample], None]
EventListener = Callable[[Event], None]


class RunEvents:
    """The events and samples of one run, and who listens to them: watchers and targets fire
    here; the recorder, the views and the rules listen. (The hub of a run, not a kube context.)"""

    def __init__(self, run_dir: RunDir | None = None) -> None:
        self.run_dir = run_dir
        self._sample_listeners: list[SampleListener] = []
        self._event_listeners: list[EventListener] = []
        self._lock = threading.Lock()
        self.latest: dict[str, Sample] = {}
        self.events: list[Event] = []

    def on_sample(self, listener: SampleListener) -> None:
        self._sample_listeners.append(listener)

    def on_event(self, listener: EventListener) -> None:
        self._event_listeners.append(listener)

    def fire_sample(self, sample: Sample) -> None:
        with self._lock:
            self.latest[sample.component] = sample
        self._dispatch(self._sample_listeners, sample)

    def fire_event(self, *, component: str, type: str, detail: str = "", t: float | None = None,
                   data: dict[str, Any] | None = None) -> Event:
        event = Event(t=time.time() if t is None else t, component=component, type=type,
                      detail=detail, data=data or {})
        with self._lock:
            self.events.append(event)
        self._dispatch(self._event_listeners, event)
        return event

    @staticmethod
    def _dispatch(listeners: list[Callable[[Any], None]], item: Any) -> None:
        for listener in list(listeners):
            try:
                listener(item)
            except Exception:  # a broken listener must not stop the watcher
                log.exception("listener %r failed", listener)


class Relay:
    """Forwards what a long-lived hub fires (a session's watchers) to the one RunEvents that
    records now (`to`; None: nobody), as the web UI's runs take turns on one target."""

    def __init__(self, hub: RunEvents) -> None:
        self.to: RunEvents | None = None
        hub.on_sample(self._sample)
        hub.on_event(self._event)

    def _sample(self, sample: Sample) -> None:
        to = self.to
        if to is not None:
            to.fire_sample(sample)

    def _event(self, event: Event) -> None:
        to = self.to
        if to is not None:
            to.fire_event(component=event.component, type=event.type, detail=event.detail, t=event.t, data=event.data)


class Recorder:
    """Writes every sample and event of a RunEvents to the run directory, flushed as it comes."""

    def __init__(self, context: RunEvents, run_dir: RunDir) -> None:
        self._samples = JsonlWriter(run_dir.samples)
        self._events = JsonlWriter(run_dir.events)
        context.on_sample(lambda s: self._samples.write(s.to_json()))
        context.on_event(lambda e: self._events.write(e.to_json()))

    def close(self) -> None:
        self._samples.close()
        self._events.close()
