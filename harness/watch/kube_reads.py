"""What the Kubernetes watcher reads besides the pod list, and how API values are parsed.

- PodMetrics (metrics.k8s.io): each container's working set, with its own timestamp and window;
- a pod's own /metrics and Go heap profile, through the API server's pod proxy (port 9091);
- a dead container's log (kubelet keeps the previous one), for its crash signature;
- a container's memory limit, and the API's quantities, durations and timestamps.

Each read raises what the client raises, except where noted; the watcher (watch/kubernetes.py)
decides what a failure means (a WatchGap, back-off, or nothing).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from harness.watch import crash_log
from harness.watch.metrics import HEAP_PATH

log = logging.getLogger(__name__)

#: Milvus serves Prometheus metrics (and pprof) on this port in every pod.
METRICS_PORT = 9091
#: Lines of a dead container's log read for its crash signature: the goroutine dump follows
#: the panic or signal header, so the header is within this many lines of the end (one read per death).
CRASH_LOG_LINES = 100_000

#: (working-set bytes, the item's timestamp, its window) by (pod, container).
Usage = dict[tuple[str, str], tuple[int, float | None, float | None]]


def memory_limit(container: Any) -> int | None:
    """resources.limits.memory of a V1Container in bytes, or None when it has none."""
    from kubernetes.utils import parse_quantity

    limits = (container.resources.limits if container.resources is not None else None) or {}
    value = limits.get("memory")
    if value is None:
        return None
    try:
        return int(parse_quantity(value))
    except ValueError:
        return None


def pod_usage(custom_api: Any, namespace: str, selector: str, timeout: float) -> Usage:
    """Every container's working set from PodMetrics (metrics-server's figure, stamped with its own time)."""
    from kubernetes.utils import parse_quantity

    data = custom_api.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", namespace, "pods",
                                                    label_selector=selector, _request_timeout=timeout)
    usage: Usage = {}
    items = data.get("items") if isinstance(data, dict) else None
    for item in items or []:
        pod = (item.get("metadata") or {}).get("name")
        stamp, window = rfc3339(item.get("timestamp")), seconds(item.get("window"))
        for container in item.get("containers") or []:
            memory = (container.get("usage") or {}).get("memory")
            if pod and container.get("name") and memory is not None:
                try:
                    usage[(pod, container["name"])] = (int(parse_quantity(memory)), stamp, window)
                except ValueError:
                    log.debug("bad memory quantity %r for %s", memory, pod)
    return usage


def pod_metrics_text(core_api: Any, namespace: str, pod: str, timeout: float) -> str:
    """A pod's own Prometheus /metrics, through the API server's pod proxy."""
    return str(core_api.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{METRICS_PORT}", namespace, "metrics",
                                                                   _request_timeout=timeout))


def pod_heap(core_api: Any, namespace: str, pod: str, timeout: float) -> bytes:
    """A pod's Go heap profile (gzipped profile.proto), through the API server's pod proxy."""
    # Raw bytes: the client would decode a gzipped body as text otherwise.
    response = core_api.connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:{METRICS_PORT}", namespace, HEAP_PATH, _preload_content=False, _request_timeout=timeout)
    try:
        return response.data
    finally:
        response.release_conn()


def crash_signature(core_api: Any, namespace: str, pod: str, container: str, exit_code: int | None,
                    timeout: float) -> crash_log.CrashSignature | None:
    """The panic or assertion in a dead container's log, None when it exited cleanly, was
    SIGKILLed (137), or its log cannot be read (never raises)."""
    if exit_code in (0, 137):
        return None
    for previous in (True, False):  # restarted: kubelet's previous log; not yet: the current one
        try:
            text = core_api.read_namespaced_pod_log(pod, namespace, container=container, previous=previous,
                                                    tail_lines=CRASH_LOG_LINES, _request_timeout=timeout)
        except Exception as exc:  # no previous log (not restarted yet), or the API is busy
            log.debug("reading the log of %s/%s failed: %s", pod, container, exc)
            continue
        found = crash_log.extract([str(text)])
        if found is not None:
            return found
    return None


def seconds(value: Any) -> float | None:
    """A PodMetrics window ("10s", "1m0.5s", "15.004s") in seconds, or None."""
    if not isinstance(value, str) or not re.fullmatch(r"(\d+(\.\d+)?[hms])+", value):
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(n) * scale[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)([hms])", value))


def rfc3339(value: Any) -> float | None:
    """An API timestamp ("2025-03-11T14:02:11Z") as epoch seconds, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
