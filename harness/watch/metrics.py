"""Milvus's Prometheus metrics: the figures the watchers keep, parsed from /metrics text.

Both watchers read the same endpoint (port 9091): the process watcher over loopback, the
Kubernetes watcher through the API server's pod proxy. Lines are pre-filtered by name before
prometheus_client parses them, so parsing stays cheap at a 1-2 s poll.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

#: Go's heap profile on the same port (gzipped profile.proto; harness.profiles reads it).
HEAP_PATH = "debug/pprof/heap"

#: Metric names kept from /metrics (summed over labels): process and Go heap, and the
#: data node's write-buffer figures where the version exposes them.
METRIC_PREFIXES = (
    "process_resident_memory_bytes",
    "go_memstats_heap_inuse_bytes",
    "go_memstats_heap_alloc_bytes",
    "go_memstats_sys_bytes",
    "milvus_datanode_",
)
_DATANODE_WORDS = ("buffer", "memory", "size", "flush", "consume_bytes", "flowgraph_num")


def _wanted(line: str) -> bool:
    if line.startswith("#"):
        return False
    if not line.startswith(METRIC_PREFIXES):
        return False
    if line.startswith("milvus_datanode_"):
        name = line.split("{", 1)[0].split(" ", 1)[0]
        return any(word in name for word in _DATANODE_WORDS) and not name.endswith("_bucket")
    return True


def parse_metrics(text: str) -> dict[str, float]:
    """Selected metrics from Prometheus text, summed over their label sets."""
    kept = "\n".join(line for line in text.splitlines() if _wanted(line)) + "\n"
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(kept):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values
