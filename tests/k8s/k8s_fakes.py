"""Test doubles for the Kubernetes side: an API-shaped HTTP server and pod JSON builders.

FakeKubeAPI answers the requests the harness makes, in the Kubernetes API's JSON shapes
(PodList, metrics.k8s.io PodMetricsList, the pod proxy's /metrics text and
/debug/pprof/heap bytes, ConfigMaps, and the objects in-cluster Locust creates and deletes:
k8s_objects); the test changes its state between polls. `down()` closes the listening socket (connection
refused), `up()` opens it again on the same port.

Pod labels are exactly those the charts put on their pod templates, read in
zilliztech/milvus-helm at tags milvus-4.2.58 and milvus-5.0.19:
- Milvus: charts/milvus/templates/<component>-deployment.yaml template labels =
  "milvus.matchLabels" (_helpers.tpl: app.kubernetes.io/name: milvus,
  app.kubernetes.io/instance: <release>) + component: "<component>" (+ user `labels`, none here);
- Pulsar (subchart pulsar-3.3.0, alias pulsarv3, nameOverride "pulsarv3"): templates/
  *-statefulset.yaml template labels = "pulsar.template.labels" (app: pulsarv3,
  release: <release>, cluster: <release>-pulsarv3) + component: proxy|broker|bookie|zookeeper;
- etcd (bitnami etcd 6.3.3 in 4.2.58, 8.12.0 in 5.0.19): "common.labels.standard"
  (app.kubernetes.io/name: etcd, helm.sh/chart: etcd-<v>, app.kubernetes.io/instance: <release>,
  app.kubernetes.io/managed-by: Helm);
- MinIO (subchart minio-8.0.17): templates/deployment.yaml template labels app: minio,
  release: <release>.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
_METRICS = re.compile(r"^/apis/metrics\.k8s\.io/v1beta1/namespaces/([^/]+)/pods$")
_CONFIGMAPS = re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$")
_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+):(\d+)/proxy/(.*)$")
_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+)/log$")


def iso(t: float) -> str:
    """Epoch seconds as the API's RFC 3339 timestamps (whole seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors (a=b, a==b, a!=b), comma-separated, as the API server does."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        else:
            key, value = re.split("==?", term, maxsplit=1)
            if labels.get(key) != value:
                return False
    return True


def container_status(name: str, *, restarts: int = 0, started: float | None = None,
                     last_terminated: dict[str, Any] | None = None, terminated: dict[str, Any] | None = None,
                     waiting: tuple[str, str] | None = None, ready: bool = True) -> dict[str, Any]:
    """A v1 ContainerStatus. `last_terminated` / `terminated`: reason, exit_code, started and
    finished (epoch)."""

    def term(spec: dict[str, Any]) -> dict[str, Any]:
        finished = spec.get("finished", time.time())
        return {"exitCode": spec.get("exit_code", 137), "reason": spec.get("reason", "OOMKilled"),
                "startedAt": iso(spec.get("started", finished - 60)), "finishedAt": iso(finished),
                "containerID": spec.get("container_id", f"containerd://{uuid.uuid4().hex}")}

    if terminated is not None:
        state: dict[str, Any] = {"terminated": term(terminated)}
    elif waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    else:
        state = {"running": {"startedAt": iso(started if started is not None else time.time() - 100)}}
    return {
        "name": name, "ready": ready and "running" in state, "restartCount": restarts,
        "image": "milvusdb/milvus:v2.6.15", "imageID": "docker.io/milvusdb/milvus@sha256:" + "0" * 64,
        "containerID": f"containerd://{uuid.uuid4().hex}", "started": "running" in state,
        "state": state, "lastState": {"terminated": term(last_terminated)} if last_terminated else {},
    }


def make_pod(name: str, component: str, *, containers: list[tuple[str, str | None]] | None = None,
             statuses: list[dict[str, Any]] | None = None, uid: str | None = None, ready: bool = True,
             release: str = "milvus", namespace: str = "default", phase: str = "Running",
             deleting: bool = False, reason: str | None = None, message: str | None = None,
             labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A v1 Pod of the Milvus chart: labels app.kubernetes.io/name=milvus, instance, component.

    `containers` are (name, memory limit) pairs; `statuses` default to one running status each.
    """
    containers = containers or [(component, "16Gi")]
    spec_containers = []
    for cname, limit in containers:
        resources: dict[str, Any] = {"requests": {"cpu": "1", "memory": "2Gi"}}
        if limit is not None:
            resources["limits"] = {"cpu": "4", "memory": limit}
        spec_containers.append({"name": cname, "image": "milvusdb/milvus:v2.6.15", "resources": resources})
    statuses = statuses if statuses is not None else [container_status(c) for c, _ in containers]
    meta: dict[str, Any] = {
        "name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
        "creationTimestamp": iso(time.time() - 300),
        "labels": {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": release,
                   "component": component, **(labels or {})},
    }
    if deleting:
        meta["deletionTimestamp"] = iso(time.time())
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": statuses,
    }
    if reason:
        status["reason"] = reason
        status["message"] = message or ""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": spec_containers, "restartPolicy": "Always"}, "status": status}


def pulsar_pod(name: str, component: str, *, release: str = "milvus", **kwargs: Any) -> dict[str, Any]:
    """A pod of the Pulsar subchart (pulsarv3): labels app/release/cluster/component only."""
    pod = make_pod(name, component, release=release, **kwargs)
    pod["metadata"]["labels"] = {"app": "pulsarv3", "release": release, "cluster": f"{release}-pulsarv3",
                                 "component": component}
    return pod


def etcd_pod(name: str, *, release: str = "milvus", chart: str = "etcd-8.12.0", **kwargs: Any) -> dict[str, Any]:
    """A pod of the bitnami etcd subchart."""
    pod = make_pod(name, "etcd", release=release, **kwargs)
    pod["metadata"]["labels"] = {"app.kubernetes.io/name": "etcd", "helm.sh/chart": chart,
                                 "app.kubernetes.io/instance": release, "app.kubernetes.io/managed-by": "Helm"}
    return pod


def minio_pod(name: str, *, release: str = "milvus", **kwargs: Any) -> dict[str, Any]:
    """A pod of the MinIO subchart."""
    pod = make_pod(name, "minio", release=release, **kwargs)
    pod["metadata"]["labels"] = {"app": "minio", "release": release}
    return pod


class FakeKubeAPI:
    """A Kubernetes-API-shaped HTTP server on 127.0.0.1; the test scripts its state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pods: list[dict[str, Any]] = []
        #: (pod, container) -> memory quantity, e.g. "1536Mi"
        self.usage: dict[tuple[str, str], str] = {}
        self.metrics_status = 200
        self.metrics_delay = 0.0
        self.pods_status = 200
        self.pods_body: str | None = None  # raw body instead of the pod list (garbage tests)
        self.pod_metrics_text: dict[str, str] = {}
        #: (pod, container, previous) -> the container's log text (previous: the last terminated one)
        self.container_logs: dict[tuple[str, str, bool], str] = {}
        #: pod name -> the gzipped heap profile its pod proxy serves at :9091/debug/pprof/heap
        self.pod_heap: dict[str, bytes] = {}
        self.heap_delay = 0.0  # seconds the heap answer takes (a busy Go runtime, a slow proxy)
        #: pod name -> PodMetrics item timestamp (epoch) and window; default: now and 10s
        self.metrics_stamp: dict[str, tuple[float, str]] = {}
        #: (namespace, name) -> ConfigMap JSON
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        #: Objects in-cluster Locust creates (k8s_objects): (plural, namespace, name) -> body; every
        #: create and delete in order; pod name -> local port its pod proxy forwards to; component ->
        #: (reason, message) its new pods wait with.
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.object_log: list[tuple[str, str, str, str, dict[str, Any] | None]] = []
        self.pod_backends: dict[str, int] = {}
        self.waiting_for: dict[str, tuple[str, str]] = {}
        self.on_pod_created: list[Any] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Listen (again) on the same port."""
        import k8s_objects

        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                api._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                if not k8s_objects.post(api, self):
                    api._write_configmap(self, create=True)

            def do_DELETE(self) -> None:  # noqa: N802
                k8s_objects.delete(api, self)

            def do_PUT(self) -> None:  # noqa: N802
                api._write_configmap(self, create=False)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening: the watcher now gets connection refused."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    stop = down

    def set_usage(self, pod: str, container: str, quantity: str) -> None:
        with self.lock:
            self.usage[(pod, container)] = quantity

    # --- request handling -----------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        import k8s_objects

        parts = urlsplit(req.path)
        path = unquote(parts.path)  # the client sends pod:port as pod%3Aport, as the API server accepts
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append(req.path)
        if k8s_objects.get(self, req, path):
            return
        if m := _PODS.match(path):
            with self.lock:
                status, body = self.pods_status, self.pods_body
                pods = [p for p in self.pods if p["metadata"]["namespace"] == m.group(1)
                        and selector_matches(query.get("labelSelector", ""), p["metadata"]["labels"])]
            if status != 200:
                return self.send_status(req, status, "InternalError", "etcdserver: request timed out")
            if body is not None:
                return self.send(req, 200, body.encode(), "application/json")
            return self.send_json(req, 200, {"kind": "PodList", "apiVersion": "v1",
                                         "metadata": {"resourceVersion": "1"}, "items": pods})
        if m := _METRICS.match(path):
            with self.lock:
                status, delay = self.metrics_status, self.metrics_delay
            if delay:
                time.sleep(delay)
            if status == 404:
                return self.send_status(req, 404, "NotFound", "the server could not find the requested resource")
            if status != 200:
                return self.send_status(req, status, "ServiceUnavailable", "the server is currently unable to handle the request")
            return self.send_json(req, 200, self._pod_metrics(m.group(1), query.get("labelSelector", "")))
        if (m := _CONFIGMAPS.match(path)) and m.group(2):
            with self.lock:
                found = self.configmaps.get((m.group(1), m.group(2)))
            if found is None:
                return self.send_status(req, 404, "NotFound", f'configmaps "{m.group(2)}" not found')
            return self.send_json(req, 200, found)
        if m := _LOG.match(path):
            previous = query.get("previous") in ("true", "True")
            with self.lock:
                text = self.container_logs.get((m.group(2), query.get("container", ""), previous))
            if text is None:
                return self.send_status(req, 400, "BadRequest", 'previous terminated container not found')
            if "tailLines" in query:
                text = "".join(text.splitlines(keepends=True)[-int(query["tailLines"]):])
            return self.send(req, 200, text.encode(), "text/plain")
        if (m := _PROXY.match(path)) and m.group(4) == "debug/pprof/heap":
            with self.lock:
                heap, delay = self.pod_heap.get(m.group(2)), self.heap_delay
            if delay:
                time.sleep(delay)
            if heap is None or m.group(3) != "9091":
                return self.send_status(req, 503, "ServiceUnavailable", "no endpoints available")
            return self.send(req, 200, heap, "application/octet-stream")
        if m := _PROXY.match(path):
            with self.lock:
                text = self.pod_metrics_text.get(m.group(2))
            if text is None or m.group(3) != "9091" or m.group(4) != "metrics":
                return self.send_status(req, 503, "ServiceUnavailable", "no endpoints available")
            return self.send(req, 200, text.encode(), "text/plain; version=0.0.4")
        return self.send_status(req, 404, "NotFound", f"no route {path}")

    def _pod_metrics(self, namespace: str, selector: str) -> dict[str, Any]:
        items = []
        with self.lock:
            for pod in self.pods:
                meta = pod["metadata"]
                if meta["namespace"] != namespace or not selector_matches(selector, meta["labels"]):
                    continue
                containers = [{"name": c["name"], "usage": {"cpu": "250m", "memory": self.usage[(meta["name"], c["name"])]}}
                              for c in pod["spec"]["containers"] if (meta["name"], c["name"]) in self.usage]
                if containers:
                    stamp, window = self.metrics_stamp.get(meta["name"], (time.time(), "10s"))
                    items.append({"metadata": {"name": meta["name"], "namespace": namespace, "labels": meta["labels"],
                                               "creationTimestamp": iso(time.time())},
                                  "timestamp": iso(stamp), "window": window, "containers": containers})
        return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}

    def _write_configmap(self, req: BaseHTTPRequestHandler, create: bool) -> None:
        """POST .../configmaps (create; 409 if it exists) and PUT .../configmaps/NAME (404 if not)."""
        path = unquote(urlsplit(req.path).path)
        with self.lock:
            self.requests.append(f"{req.command} {req.path}")
        m = _CONFIGMAPS.match(path)
        if m is None or bool(m.group(2)) == create:
            return self.send_status(req, 405, "MethodNotAllowed", f"no {req.command} on {path}")
        body = json.loads(req.rfile.read(int(req.headers.get("Content-Length") or 0)) or b"{}")
        name = m.group(2) or body["metadata"]["name"]
        key = (m.group(1), name)
        with self.lock:
            exists = key in self.configmaps
            if create and exists:
                return self.send_status(req, 409, "AlreadyExists", f'configmaps "{name}" already exists')
            if not create and not exists:
                return self.send_status(req, 404, "NotFound", f'configmaps "{name}" not found')
            body.setdefault("metadata", {})["namespace"] = m.group(1)
            body["kind"], body["apiVersion"] = "ConfigMap", "v1"
            self.configmaps[key] = body
        return self.send_json(req, 201 if create else 200, body)

    def send_status(self, req: BaseHTTPRequestHandler, code: int, reason: str, message: str) -> None:
        self.send_json(req, code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": message, "reason": reason, "code": code})

    def send_json(self, req: BaseHTTPRequestHandler, code: int, data: dict[str, Any]) -> None:
        self.send(req, code, json.dumps(data).encode(), "application/json")

    @staticmethod
    def send(req: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str) -> None:
        try:
            req.send_response(code)
            req.send_header("Content-Type", content_type)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass


def write_kubeconfig(path: Path, contexts: dict[str, str], current: str | None = None) -> Path:
    """A kubeconfig with one cluster, user and context per name -> API server URL."""
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in contexts.items()],
        "users": [{"name": n, "user": {"token": "test-token"}} for n in contexts],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in contexts],
        "current-context": current or next(iter(contexts)),
    }
    path.write_text(yaml.safe_dump(config))
    return path
