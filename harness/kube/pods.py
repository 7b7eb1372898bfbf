"""The release's pods: which are Milvus, when they are ready, whether the streaming nodes run.

Pods are read with `kubectl get pods --output json` (the Kube helper of harness.kube.cluster,
pinned to the cluster's context) and handled as plain JSON.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Sequence

from harness.errors import TargetError

if TYPE_CHECKING:
    from rich.console import Console

    from harness.kube.cluster import ClusterSpec, Kube

#: Waiting reasons that mean the image tag does not exist: waiting longer will not help.
_BAD_IMAGE = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")


def release_pods(kube: "Kube", spec: "ClusterSpec") -> list[dict[str, Any]]:
    """The release's pods (Milvus and its Pulsar, etcd and MinIO) as Kubernetes JSON."""
    out = kube.kubectl("--namespace", spec.namespace, "get", "pods", "--output", "json",
                       what="list the pods", timeout=120).stdout
    try:
        items = json.loads(out).get("items") or []
    except (json.JSONDecodeError, AttributeError):
        raise TargetError(f"`kubectl get pods` did not print a pod list: {out[:200]!r}") from None
    mine = []
    for pod in items:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if spec.release in (labels.get("app.kubernetes.io/instance"), labels.get("release")):
            mine.append(pod)
    return mine


def is_milvus_pod(pod: dict[str, Any], release: str) -> bool:
    """A Milvus server pod of the release: the chart's matchLabels (templates/_helpers.tpl
    "milvus.matchLabels"). Pulsar's pods carry `release`/`component` (its proxy is
    `component: proxy` too), etcd's `app.kubernetes.io/name: etcd`, MinIO's `app: minio`."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return (labels.get("app.kubernetes.io/name") == "milvus" and labels.get("app.kubernetes.io/instance") == release
            and labels.get("component") != "attu")


def check_streaming_nodes(pods: Sequence[dict[str, Any]], spec: "ClusterSpec", want: int) -> list[dict[str, Any]]:
    """The release's streaming nodes, each Running and Ready, at least `want` of them; else a TargetError."""
    nodes = [pod_summary(p) for p in pods if is_milvus_pod(p, spec.release)
             and ((p.get("metadata") or {}).get("labels") or {}).get("component") == "streamingnode"]
    good = [n for n in nodes if n["phase"] == "Running" and n["ready"]]
    if len(good) < want:
        seen = ", ".join(f"{n['name']} ({n['phase']}{', ready' if n['ready'] else ', not ready'})" for n in nodes)
        raise TargetError(f"Milvus {spec.image_tag}: {len(good)} of {want} streaming nodes are Running and Ready "
                          f"({seen or 'no streaming node pods'}); the chart values may not enable streaming for "
                          f"this image")
    return good


def pod_summary(pod: dict[str, Any]) -> dict[str, Any]:
    """Name, component, phase, readiness, restarts and what a waiting container waits for."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    waiting = [((s.get("state") or {}).get("waiting") or {}) for s in statuses]
    waiting = [w for w in waiting if w]
    ready = status.get("phase") == "Succeeded" or any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return {
        "name": meta.get("name", "?"),
        "component": (meta.get("labels") or {}).get("component", ""),
        "phase": status.get("phase", "?"),
        "ready": ready,
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
        "waiting": waiting[0].get("reason") if waiting else None,
        "message": waiting[0].get("message", "") if waiting else "",
    }


def wait_ready(kube: "Kube", spec: "ClusterSpec", timeout: float | None = None,
               console: "Console | None" = None) -> list[dict[str, Any]]:
    """Poll the release's pods until all are ready and a Milvus proxy is among them.

    A container that cannot pull its image fails at once (a missing tag will not appear by
    waiting); anything else not ready by the deadline is a TargetError naming the pods.
    """
    timeout = spec.timeout if timeout is None else timeout
    deadline = time.monotonic() + timeout
    progress = _progress(console)
    task = progress.add_task(f"Milvus {spec.image_tag}: waiting for pods", total=None) if progress else None
    try:
        while True:
            raw = release_pods(kube, spec)
            pods = [pod_summary(p) for p in raw]
            milvus = [pod_summary(p) for p in raw if is_milvus_pod(p, spec.release)]
            ready = [p for p in pods if p["ready"]]
            pending = [p for p in pods if not p["ready"]]
            if progress is not None and task is not None:
                waiting = ", ".join(p["name"] for p in pending[:3]) + (" ..." if len(pending) > 3 else "")
                progress.update(task, total=max(len(pods), 1), completed=len(ready),
                                description=f"Milvus {spec.image_tag}: {len(ready)}/{len(pods)} pods ready"
                                            + (f" (waiting: {waiting})" if waiting else ""))
            bad = [p for p in pending if p["waiting"] in _BAD_IMAGE and _image_missing(p["message"])]
            if bad:
                raise TargetError(f"image {spec.image_repository}:{spec.image_tag} cannot be pulled for pod "
                                  f"{bad[0]['name']}: {bad[0]['message'] or bad[0]['waiting']}")
            # Only a Milvus proxy counts: Pulsar's proxy pod is `component: proxy` too.
            if pods and not pending and any(p["component"] == "proxy" and p["ready"] for p in milvus):
                return raw
            if time.monotonic() >= deadline:
                names = ", ".join(f"{p['name']} ({p['waiting'] or p['phase']})" for p in pending) or "no pods yet"
                raise TargetError(f"Milvus {spec.image_tag} was not ready within {timeout:.0f} s; not ready: {names}; "
                                  f"see `kubectl --context {kube.context} --namespace {spec.namespace} get pods`")
            time.sleep(spec.poll_interval)
    finally:
        if progress is not None:
            progress.stop()


def _image_missing(message: str) -> bool:
    text = message.lower()
    return any(word in text for word in ("not found", "manifest unknown", "does not exist", "invalid reference"))


def _progress(console: "Console | None") -> Any:
    if console is None:
        return None
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=console, transient=False)
    progress.start()
    return progress
