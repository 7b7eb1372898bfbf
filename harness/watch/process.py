"""The cgroup/process watcher of the embedded target: one sample per interval.

Memory is the cgroup's usage (what the kernel enforces the limit on), or the tree's RSS under
the watchdog. Prometheus metrics come from the server's metrics port, pre-filtered by name
before prometheus_client parses them, so a 1 Hz watcher stays well under 1 % of a core.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from typing import Protocol

import psutil

from harness.watch import events
from harness.watch.events import RunEvents, Sample
from harness.watch.metrics import HEAP_PATH, parse_metrics

log = logging.getLogger(__name__)

#: The one component of the embedded target.
COMPONENT = "standalone"


def fetch_metrics(url: str, timeout: float = 0.5) -> dict[str, float]:
    """The selected figures of a /metrics endpoint (harness.watch.metrics.parse_metrics)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse_metrics(response.read().decode("utf-8", "replace"))


class MemoryGroup(Protocol):
    """The memory cgroup the process tree runs in (harness.targets.cgroup.MemoryCgroup)."""

    def pids(self) -> list[int]: ...

    def usage_bytes(self) -> int: ...

    def memory_stat(self) -> dict[str, int]: ...


class WatchedProcess(Protocol):
    """What the watcher reads of a supervised server; the embedded target provides it.

    Read on every tick, so a restarted server (new pid) or a lifted limit shows at once.
    """

    #: "cgroup-v1", "cgroup-v2", "watchdog", or None (no limit)
    isolation: str | None
    #: deaths restarted so far
    restarts: int

    def pid(self) -> int | None:
        """The live server's pid, None while it is down."""
        ...

    def memory_group(self) -> MemoryGroup | None:
        """The cgroup holding the server, None without one."""
        ...

    def metrics_url(self) -> str | None:
        """The server's Prometheus endpoint."""
        ...

    def limit_bytes(self) -> int | None:
        """The limit in force now (None once lifted for verification)."""
        ...


class ProcessWatcher:
    """Samples the embedded server every `interval` seconds on its own thread.

    /metrics is scraped on a second thread every `metrics_every` intervals, so a server slow to
    answer under memory pressure never delays or drops a memory sample; each sample carries the
    figures of the last scrape that answered (none while the server is down).
    """

    def __init__(self, target: WatchedProcess, interval: float = 1.0, metrics_every: int = 5,
                 metrics_timeout: float | None = None) -> None:
        self.target = target
        self.interval = interval
        self.metrics_every = max(1, metrics_every)
        self.metrics_timeout = metrics_timeout if metrics_timeout is not None else interval * self.metrics_every
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._context: RunEvents | None = None
        self._in_gap = False
        self._metrics: dict[str, float] = {}

    def start(self, context: RunEvents) -> None:
        self._context = context
        self._threads = [threading.Thread(target=self._loop, name="process-watcher", daemon=True),
                         threading.Thread(target=self._scrape_loop, name="metrics-scraper", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # the watcher must outlive anything it reads
                log.exception("watcher tick failed")
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (machine busy): skip ahead instead of bursting
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def _scrape_loop(self) -> None:
        while not self._stop.is_set():
            self.scrape_once()
            self._stop.wait(self.interval * self.metrics_every)

    def scrape_once(self) -> None:
        """Read /metrics once; the figures are kept for the samples until the next scrape."""
        url = self.target.metrics_url()
        if not url or not self.target.pid():
            self._metrics = {}
            return
        try:
            self._metrics = fetch_metrics(url, timeout=self.metrics_timeout)
        except Exception as exc:  # server busy or restarting: no figures until it answers
            log.debug("metrics fetch failed: %s", exc)
            self._metrics = {}

    def sample_once(self) -> Sample:
        """Read memory, limit, restarts and memory.stat once and fire the sample, with the
        figures of the last /metrics scrape."""
        assert self._context is not None
        target = self.target
        cgroup = target.memory_group()
        memory: int | None = None
        rss: int | None = None
        source = target.isolation or "process"
        error = None
        stat: dict[str, int] = {}
        try:
            pid = target.pid()
            pids = cgroup.pids() if cgroup else ([pid] if pid is not None else [])
            rss = _rss_of(pids)
            memory = cgroup.usage_bytes() if cgroup else rss
            stat = cgroup.memory_stat() if cgroup else {}
        except OSError as exc:
            error = f"memory read failed: {exc}"
        self._note_gap(error)
        sample = Sample(t=time.time(), component=COMPONENT, memory_bytes=memory,
                        limit_bytes=target.limit_bytes(), restarts=target.restarts,
                        source=source, rss_bytes=rss, metrics=dict(self._metrics) if target.pid() else {},
                        memory_stat=stat)
        self._context.fire_sample(sample)
        return sample

    def fetch_heap(self, component: str, timeout: float) -> bytes | None:
        """The server's Go heap profile from its metrics port (harness.profiles.capture.HeapProfiled)."""
        url = self.target.metrics_url()
        if component != COMPONENT or url is None:
            return None
        if self.target.pid() is None:
            raise ConnectionError("the server is down")
        with urllib.request.urlopen(url.rsplit("/", 1)[0] + "/" + HEAP_PATH, timeout=timeout) as response:
            return response.read()

    def _note_gap(self, error: str | None) -> None:
        assert self._context is not None
        if error and not self._in_gap:
            self._context.fire_event(component=COMPONENT, type=events.WATCH_GAP, detail=error)
        self._in_gap = error is not None


def _rss_of(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return total
