"""Where a memory sample comes from, and which source of a component is the finest.

A component can be sampled by more than one source: on Kubernetes, metrics-server's
PodMetrics (the container working set, refreshed every 10-15 s) and Milvus's own /metrics
read through the API server's pod proxy on every poll (the process's resident set). Sample
`source` strings are "<kind>:<where>"; peaks and charts use the kind whose memory samples
are closest together, so a short pre-OOM peak is not averaged away by a coarse source.
"""

from __future__ import annotations

import statistics
from typing import Iterable

#: metrics.k8s.io PodMetrics: container working set, stamped with the item's own timestamp.
METRICS_SERVER = "metrics-server"
#: Milvus's /metrics through the pod proxy: process_resident_memory_bytes, at the time read.
POD_METRICS = "pod-metrics"


def source_kind(source: str) -> str:
    """"metrics-server:pod/container" -> "metrics-server"; a source without ':' is its own kind."""
    return source.split(":", 1)[0]


def finest_kind(samples: Iterable[tuple[float, str, int | None]]) -> str | None:
    """The source kind with the smallest median spacing between memory samples (t, source, memory).

    Kinds with a single memory sample rank after those with two or more; None when no
    sample has memory.
    """
    times: dict[str, list[float]] = {}
    for t, source, memory in samples:
        if memory is not None:
            times.setdefault(source_kind(source), []).append(t)
    if not times:
        return None

    def spacing(kind: str) -> tuple[float, int]:
        ts = sorted(times[kind])
        gaps = [b - a for a, b in zip(ts, ts[1:]) if b > a]
        return (statistics.median(gaps) if gaps else float("inf"), -len(ts))

    return min(times, key=spacing)


def finest_sources(samples: Iterable[dict]) -> dict[str, str | None]:
    """Component -> its finest source kind, for samples as read from samples.jsonl."""
    by_component: dict[str, list[tuple[float, str, int | None]]] = {}
    for s in samples:
        by_component.setdefault(s["component"], []).append(
            (float(s["t"]), str(s.get("source") or ""), s.get("memory_bytes")))
    return {component: finest_kind(rows) for component, rows in by_component.items()}
