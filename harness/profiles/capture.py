"""Heap profiles at the moments that matter, taken beside the watchers, never in their way.

The capturer listens to samples and events: when a component's memory first crosses 50, 80
or 95 % of its limit, on a MemoryStall, every `every` seconds when asked, and once at the end
of a load nobody died in. The listener only queues a request; one worker thread fetches
`/debug/pprof/heap` with a timeout (from the watcher that knows where the component is:
loopback on embedded, the API server's pod proxy on Kubernetes) and writes it unchanged,
gzipped profile.proto as `go tool pprof` reads it, to profiles/<component>-<label>.pb.gz.
A capture that fails is a WatchGap event; one that works a HeapProfile event.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, runtime_checkable

from harness.units import format_bytes
from harness.watch import events
from harness.watch.events import Event, RunEvents, Sample

log = logging.getLogger(__name__)

#: Fractions of the limit (percent) whose first crossing is captured.
THRESHOLDS = (50, 80, 95)
#: How long one capture may take before it is a gap (Go answers in ~10 ms when healthy).
CAPTURE_TIMEOUT = 10.0
#: Event fired for every profile stored: data has file, trigger, bytes, seconds.
HEAP_PROFILE = "HeapProfile"
STALL = "stall"
END = "end"
#: A death of a component: no end-of-load capture for it (its heap is gone).
_DEATHS = (events.OOM_KILLED, events.MEMORY_STALL, events.EXITED)


@runtime_checkable
class HeapProfiled(Protocol):
    """A watcher that can fetch the Go heap profile of the components it watches."""

    def fetch_heap(self, component: str, timeout: float) -> bytes | None:
        """The gzipped profile of `component` now; None when it is not profiled by this
        watcher (not under test, not its component). Raises when the fetch fails."""
        ...


def describe_schedule(every: float | None) -> str:
    """When a run captures (matrix and bisect pages record it for their cells)."""
    always = f"at {'/'.join(map(str, THRESHOLDS))} % of the limit, on a stall, at the end of a load nobody died in"
    return f"every {every:g} s, and {always}" if every else always


def file_name(component: str, label: str) -> str:
    """profiles/<component>-<label>.pb.gz; a container series' '/' becomes '_'."""
    return f"{component.replace('/', '_')}-{label}.pb.gz"


@dataclass(frozen=True)
class _Request:
    component: str
    labels: tuple[str, ...]
    trigger: str
    memory_bytes: int | None = None
    limit_bytes: int | None = None


class ProfileCapturer:
    """Captures heap profiles of the components `watchers()` can profile into `directory`."""

    def __init__(self, context: RunEvents, directory: Path, watchers: Callable[[], Iterable[object]], *,
                 every: float | None = None, timeout: float = CAPTURE_TIMEOUT,
                 thresholds: tuple[int, ...] = THRESHOLDS) -> None:
        self.context = context
        self.directory = directory
        self.watchers = watchers
        self.every = every
        self.timeout = timeout
        self.thresholds = thresholds
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._crossed: dict[str, set[int]] = {}
        self._died: set[str] = set()
        self._unprofiled: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._periodic = 0
        #: Stored profiles so far, by file name (tests and the end-of-run summary read it).
        self.captured: list[str] = []
        context.on_sample(self._on_sample)
        context.on_event(self._on_event)

    # --- listeners: called on the watchers' threads, so they only queue -----------------

    def _on_sample(self, sample: Sample) -> None:
        memory, limit, component = sample.memory_bytes, sample.limit_bytes, sample.component
        if not limit or memory is None or component in self._unprofiled:
            return
        pct = 100.0 * memory / limit
        with self._lock:
            done = self._crossed.setdefault(component, set())
            new = tuple(p for p in self.thresholds if pct >= p and p not in done)
            done.update(new)
        if new:  # a jump over two thresholds at once: one fetch, stored under each
            self._queue.put(_Request(component, tuple(str(p) for p in new), f"memory at {pct:.0f} % of its limit",
                                     memory, limit))

    def _on_event(self, event: Event) -> None:
        if event.type in _DEATHS:
            self._died.add(event.component)
        if event.type == events.MEMORY_STALL and event.component not in self._unprofiled:
            self._queue.put(_Request(event.component, (STALL,), "memory stall",
                                     event.data.get("memory_bytes"), event.data.get("limit_bytes")))

    # --- the worker ------------------------------------------------------------------------

    def start(self) -> "ProfileCapturer":
        self._thread = threading.Thread(target=self._work, name="heap-profiles", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: float | None = None) -> None:
        """Stop after the queued captures (each bounded by the timeout); safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=wait if wait is not None else self.timeout * 2 + 5)

    def capture_end(self) -> None:
        """At the end of a load: one 'end' capture of every profiled component that did not die
        (the heap a PASS leaves); returns once the queued captures are done. Periodic captures
        end here: the verification that follows changes the heap, and the 'end' capture must
        stay the run's last (its evidence)."""
        self.every = None
        for component in sorted(set(self.context.latest) - self._died - self._unprofiled):
            self._queue.put(_Request(component, (END,), "end of the load"))
        if self._thread is not None:
            self._queue.join()

    def _work(self) -> None:
        while True:
            every, wait = self.every, None
            if every:
                due = self._started + every * (self._periodic + 1)
                wait = max(0.0, due - time.monotonic())
            try:
                request = self._queue.get(timeout=wait)
            except queue.Empty:
                if not self.every:  # the load ended while this wait ran
                    continue
                self._periodic += 1
                label = f"t{every * self._periodic / 60:g}m"
                for component in sorted(set(self.context.latest) - self._unprofiled):
                    self._capture(_Request(component, (label,), f"every {every:g} s"))
                continue
            try:
                if request is None:
                    return
                self._capture(request)
            finally:
                self._queue.task_done()

    def _capture(self, request: _Request) -> None:
        began = time.monotonic()
        try:
            data = self._fetch(request.component)
        except Exception as exc:  # timeout, refused, pod gone: the evidence has a gap, the run goes on
            self.context.fire_event(component=request.component, type=events.WATCH_GAP,
                                    detail=f"heap profile ({request.trigger}) failed: {_one_line(exc)}",
                                    data={"source": "pprof", "labels": list(request.labels)})
            return
        if data is None:
            self._unprofiled.add(request.component)
            return
        seconds = time.monotonic() - began
        self.directory.mkdir(parents=True, exist_ok=True)
        names = [file_name(request.component, label) for label in request.labels]
        for name in names:
            (self.directory / name).write_bytes(data)
        self.captured.extend(names)
        self.context.fire_event(
            component=request.component, type=HEAP_PROFILE,
            detail=f"heap profile ({request.trigger}): {format_bytes(len(data))} in {seconds:.2f} s",
            data={"files": names, "trigger": request.trigger, "bytes": len(data), "seconds": round(seconds, 3),
                  "memory_bytes": request.memory_bytes, "limit_bytes": request.limit_bytes})

    def _fetch(self, component: str) -> bytes | None:
        for watcher in self.watchers():
            if isinstance(watcher, HeapProfiled):
                data = watcher.fetch_heap(component, self.timeout)
                if data is not None:
                    return data
        return None


def _one_line(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0][:300]
