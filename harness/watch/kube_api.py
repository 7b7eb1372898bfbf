"""Kubernetes API failures as the watcher meets them: one line each, back-off, one gap event.

The API server or the metrics API failing, missing (404), unavailable (503) or slow is a
WatchGap event when it starts, retried with doubling back-off; never fatal to a watcher.
"""

from __future__ import annotations

import logging
import time

from harness.watch import events
from harness.watch.events import RunEvents

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


def describe_error(exc: BaseException) -> str:
    """One line for an API failure: HTTP status, timeout or connection error."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    if isinstance(exc, ApiException):
        hint = {404: " (not served: is metrics-server installed?)",
                503: " (service unavailable: the API is not ready)"}.get(exc.status or 0, "")
        return f"HTTP {exc.status} {exc.reason or ''}".rstrip() + hint
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, Urllib3Timeout):
        return f"no answer in time ({exc})"
    if isinstance(exc, NewConnectionError):
        return f"cannot connect ({exc})"
    if isinstance(exc, ProtocolError):
        return f"connection lost ({exc})"
    return f"{type(exc).__name__}: {exc}"[:300]


class Backoff:
    """Doubling delays after consecutive failures (base, 2 base, 4 base, ...), capped."""

    def __init__(self, base: float, cap: float = MAX_BACKOFF) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self.not_before = 0.0

    def failed(self, now: float) -> float:
        """Record a failure at monotonic time `now`; returns how long to wait."""
        self.failures += 1
        delay = min(self.cap, self.base * 2 ** self.failures)
        self.not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0

    def due(self, now: float) -> bool:
        return now >= self.not_before


class Gap:
    """One WatchGap event when a source starts failing; logged again when it recovers."""

    def __init__(self, component: str, what: str) -> None:
        self.component = component
        self.what = what
        self.since: float | None = None

    def fail(self, context: RunEvents, reason: str) -> None:
        if self.since is None:
            self.since = time.time()
            context.fire_event(component=self.component, type=events.WATCH_GAP,
                               detail=f"{self.what}: {reason}", data={"source": self.component})

    def ok(self) -> None:
        if self.since is not None:
            log.info("%s answers again after %.1f s", self.what, time.time() - self.since)
            self.since = None
