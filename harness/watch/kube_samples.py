"""Which samples one poll of the Kubernetes watcher fires for one container, and the state
that decides it (a PodMetrics figure fires once per new timestamp; a memory-less sample only
carries a new limit or restart count)."""

from __future__ import annotations

from harness.watch import sources
from harness.watch.events import RunEvents, Sample


class ContainerSamples:
    """Per container and poll: a PodMetrics sample when metrics-server has a new figure, a
    /metrics sample when the pod's own metrics were read, and a memory-less one (limit,
    restarts) when neither is new."""

    def __init__(self) -> None:
        #: (pod, container) -> the last PodMetrics (timestamp, bytes) sampled: a repeat is not a new sample
        self._stamps: dict[tuple[str, str], tuple[float | None, int]] = {}
        self._carried: dict[str, tuple[int | None, int]] = {}  # series -> (limit, restarts) last sampled

    def fire(self, ctx: RunEvents, *, series: str, pod: str, container: str, limit: int | None, restarts: int,
             measured: tuple[int, float | None, float | None] | None, metrics: dict[str, float] | None,
             now: float) -> None:
        """`measured`: PodMetrics' (bytes, timestamp, window), None when it has no figure;
        `metrics`: the pod's own /metrics read this poll (main container only), else None."""
        where = f"{pod}/{container}"
        common = {"component": series, "limit_bytes": limit, "restarts": restarts}
        fired = False  # a sample with a new memory figure, this poll
        if measured is not None:
            memory, stamp, window = measured
            key = (pod, container)
            if stamp is None or self._stamps.get(key) != (stamp, memory):
                self._stamps[key] = (stamp, memory)
                ctx.fire_sample(Sample(t=stamp if stamp is not None else now, memory_bytes=memory,
                                       source=f"{sources.METRICS_SERVER}:{where}",
                                       metrics={"window_seconds": window} if window else {}, **common))
                fired = True
        rss = metrics.get("process_resident_memory_bytes") if metrics else None
        if metrics:
            ctx.fire_sample(Sample(t=now, memory_bytes=int(rss) if rss is not None else None,
                                   rss_bytes=int(rss) if rss is not None else None,
                                   source=f"{sources.POD_METRICS}:{where}", metrics=dict(metrics), **common))
            fired = True
        # Nothing new measured: a memory-less sample while memory is unknown, or to carry a
        # new limit or restart count (a repeated PodMetrics figure is not a new sample).
        carried = (limit, restarts)
        if not fired and (measured is None or self._carried.get(series) != carried):
            ctx.fire_sample(Sample(t=now, memory_bytes=None, source=f"{sources.METRICS_SERVER}:{where}", **common))
        self._carried[series] = carried
