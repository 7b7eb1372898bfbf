"""Where the memory went: one sample's memory split into parts that do not overlap.

The parts, bottom to top of the report's stacked chart:

- `page_cache`: the cgroup's page cache that no process maps (memory.stat cache/file minus
  mapped_file). It counts against a cgroup limit but is in no process's RSS.
- `outside_go_heap`: the server's resident set (process_resident_memory_bytes) minus the Go
  heap in use: C++ segcore, RocksDB/rocksmq, the allocators, mapped files, Go stacks.
- `go_heap_other`: the Go heap in use (go_memstats_heap_inuse_bytes) minus the write buffer.
- `write_buffer`: the data node's buffered insert data (milvus_datanode_fg_buffer_size, the
  memory size of the flow graphs' buffers, held on the Go heap), where the version has it.

A part is None when its source was not read (no cgroup: no page cache; no /metrics answer:
no Go figures). The figures come from the watcher's samples (harness.watch.process reads
memory.stat every tick and /metrics every few ticks, so Go figures lag by up to that much).
"""

from __future__ import annotations

from typing import Any, Mapping

RSS_METRIC = "process_resident_memory_bytes"
GO_HEAP_METRIC = "go_memstats_heap_inuse_bytes"
GO_SYS_METRIC = "go_memstats_sys_bytes"
WRITE_BUFFER_METRIC = "milvus_datanode_fg_buffer_size"
FLOWGRAPHS_METRIC = "milvus_datanode_flowgraph_num"

#: The stacked parts in chart order (bottom first), with their labels.
PARTS = (
    ("page_cache", "page cache (not mapped)"),
    ("outside_go_heap", "resident outside the Go heap"),
    ("go_heap_other", "Go heap (other)"),
    ("write_buffer", "write buffer (fg_buffer_size)"),
)


def split_memory(memory_stat: Mapping[str, Any], metrics: Mapping[str, Any],
                 rss_bytes: int | None) -> dict[str, int | None]:
    """The parts of one sample, plus the figures they came from (rss, go_heap_inuse, go_sys,
    flowgraphs); see the module docstring for what each part is."""
    cache, mapped = memory_stat.get("page_cache"), memory_stat.get("mapped_file")
    page_cache = max(0, int(cache) - int(mapped or 0)) if cache is not None else None
    rss = metrics.get(RSS_METRIC, rss_bytes)
    heap = metrics.get(GO_HEAP_METRIC)
    buffer = metrics.get(WRITE_BUFFER_METRIC)
    outside = max(0, int(rss) - int(heap)) if rss is not None and heap is not None else None
    write_buffer = min(int(buffer), int(heap)) if buffer is not None and heap is not None else None
    heap_other = int(heap) - (write_buffer or 0) if heap is not None else None
    return {
        "page_cache": page_cache,
        "outside_go_heap": outside,
        "go_heap_other": heap_other,
        "write_buffer": write_buffer,
        "rss": int(rss) if rss is not None else None,
        "go_heap_inuse": int(heap) if heap is not None else None,
        "go_sys": _int(metrics.get(GO_SYS_METRIC)),
        "flowgraphs": _int(metrics.get(FLOWGRAPHS_METRIC)),
    }


def has_split(parts: Mapping[str, int | None]) -> bool:
    """True when at least the Go heap or the page cache was read (else there is nothing to split)."""
    return parts.get("go_heap_inuse") is not None or parts.get("page_cache") is not None


def memory_split_summary(samples: list[dict[str, Any]], until: float | None) -> dict[str, Any] | None:
    """summary.json's figures for one component's samples (dicts as in samples.jsonl): the
    split at its peak memory sample up to `until` (the first death or the end of the load)
    and at its last sample before then; None when no sample could be split."""
    kept = [s for s in samples if (until is None or s["t"] <= until)]
    split = [(s, split_memory(s.get("memory_stat") or {}, s.get("metrics") or {}, s.get("rss_bytes")))
             for s in kept]
    split = [(s, parts) for s, parts in split if has_split(parts)]
    if any(parts["go_heap_inuse"] is not None for _, parts in split):
        # /metrics did not answer on some ticks: those samples would hide the Go figures
        split = [(s, parts) for s, parts in split if parts["go_heap_inuse"] is not None]
    if not split:
        return None
    peak_sample, peak_parts = max(split, key=lambda sp: sp[0].get("memory_bytes") or 0)
    last_sample, last_parts = split[-1]
    return {
        "at_peak": {"t": peak_sample["t"], "memory_bytes": peak_sample.get("memory_bytes"), **peak_parts},
        "last": {"t": last_sample["t"], "memory_bytes": last_sample.get("memory_bytes"), **last_parts},
        "sources": sorted({"cgroup memory.stat" for s, _ in split if s.get("memory_stat")}
                          | {"/metrics" for s, _ in split if s.get("metrics")}),
    }


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
