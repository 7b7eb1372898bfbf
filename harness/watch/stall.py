"""MemoryStall: usage held at the limit while the load makes no progress.

At 3 GiB with fast inserts the embedded server is not killed: usage stays pinned at the
limit, the page cache is squeezed to a few MB and inserts time out. That is as much a
failure as a kill and must not read as healthy.
"""

from __future__ import annotations

from typing import Callable

from harness.watch import events
from harness.watch.events import RunEvents, Sample

#: "At the limit" means within this fraction of it (the kernel reclaims just below the limit).
AT_LIMIT_FRACTION = 0.97


class StallDetector:
    """Listens to samples; fires MemoryStall once per episode of `seconds` at the limit without progress."""

    def __init__(self, context: RunEvents, progress: Callable[[], int], seconds: float = 20.0,
                 paused: Callable[[], bool] = lambda: False) -> None:
        self.context = context
        self.progress = progress
        self.paused = paused  # the harness holds the load itself (row check after a restart)
        self.seconds = seconds
        self._since: dict[str, tuple[float, int]] = {}
        self._fired: set[str] = set()
        context.on_sample(self._on_sample)

    def _on_sample(self, sample: Sample) -> None:
        limit, memory = sample.limit_bytes, sample.memory_bytes
        component = sample.component
        if not limit or memory is None or memory < limit * AT_LIMIT_FRACTION or self.paused():
            self._since.pop(component, None)
            self._fired.discard(component)
            return
        done = self.progress()
        since = self._since.get(component)
        if since is None or done != since[1]:
            self._since[component] = (sample.t, done)  # at the limit, but rows still arrive
            return
        if sample.t - since[0] >= self.seconds and component not in self._fired:
            self._fired.add(component)
            self.context.fire_event(
                component=component, type=events.MEMORY_STALL, t=sample.t,
                detail=(f"memory held at {memory / 2**30:.2f} of {limit / 2**30:.2f} GiB for "
                        f"{sample.t - since[0]:.0f} s with no rows acked"),
                data={"memory_bytes": memory, "limit_bytes": limit, "since": since[0]})
