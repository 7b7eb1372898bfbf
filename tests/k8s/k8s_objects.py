"""The stand-in API server's writable objects: what in-cluster Locust creates and deletes.

Pods, Services, ConfigMaps and apps/v1 Deployments can be created (POST, 409 when the name
is taken) and deleted (DELETE, 404 when missing), and a pod read by name. Every create and
delete is logged in order in `api.object_log` as (verb, kind, namespace, name, body). A pod
is "scheduled" at once: Running and ready, unless `api.waiting_for[component]` names a
waiting reason and message for its containers. A Deployment makes its replicas' pods, and
deleting it deletes them, as the garbage collector would. The pod proxy of a pod named in
`api.pod_backends` (name -> local port) forwards GET and POST to 127.0.0.1:port, which is
how a test serves a master's files from a real harness.kube.locust_pod; each callable of
`api.on_pod_created` gets every pod created, a Deployment's too (a test starts that pod's
container here).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from k8s_fakes import container_status, iso

if TYPE_CHECKING:
    from k8s_fakes import FakeKubeAPI

_COLLECTION = re.compile(r"^/api/v1/namespaces/([^/]+)/(pods|services|configmaps)(?:/([^/:]+))?$")
_APPS = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/(deployments)(?:/([^/]+))?$")
_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+):(\d+)/proxy/(.*)$")
KINDS = {"pods": "Pod", "services": "Service", "configmaps": "ConfigMap", "deployments": "Deployment"}


def _route(path: str) -> tuple[str, str, str | None] | None:
    m = _COLLECTION.match(path) or _APPS.match(path)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _find(api: "FakeKubeAPI", plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    if plural == "pods":
        return next((p for p in api.pods if p["metadata"]["namespace"] == namespace
                     and p["metadata"]["name"] == name), None)
    if plural == "configmaps":
        return api.configmaps.get((namespace, name))
    return api.objects.get((plural, namespace, name))


def _scheduled(api: "FakeKubeAPI", pod: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A created pod as the kubelet would report it: Running, or waiting as the test scripted."""
    meta = pod.setdefault("metadata", {})
    meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=iso(time.time()))
    component = (meta.get("labels") or {}).get("app.kubernetes.io/component", "")
    waiting = api.waiting_for.get(component)
    names = [c["name"] for c in pod["spec"]["containers"]]
    statuses = [container_status(n, waiting=waiting) for n in names]
    pod["status"] = {"phase": "Pending" if waiting else "Running",
                     "conditions": [{"type": "Ready", "status": "False" if waiting else "True"}],
                     "containerStatuses": statuses}
    return pod


def post(api: "FakeKubeAPI", req: BaseHTTPRequestHandler) -> bool:
    """Create an object, or forward a POST through the pod proxy; False when not ours."""
    path = unquote(urlsplit(req.path).path)
    if (m := _PROXY.match(path)) and m.group(2) in api.pod_backends:
        return _forward(api, req, m, "POST")
    route = _route(path)
    if route is None or route[2] is not None:
        return False
    namespace, plural, _ = route
    with api.lock:
        api.requests.append(f"POST {req.path}")
    body = json.loads(req.rfile.read(int(req.headers.get("Content-Length") or 0)) or b"{}")
    name = body["metadata"]["name"]
    with api.lock:
        if _find(api, plural, namespace, name) is not None:
            api.send_status(req, 409, "AlreadyExists", f'{plural} "{name}" already exists')
            return True
        body["metadata"]["namespace"] = namespace
        body["kind"] = KINDS[plural]
        api.object_log.append(("create", KINDS[plural], namespace, name, json.loads(json.dumps(body))))
        made: list[dict[str, Any]] = []
        if plural == "pods":
            api.pods.append(_scheduled(api, body, namespace))
            made.append(body)
        elif plural == "configmaps":
            api.configmaps[(namespace, name)] = body
        else:
            api.objects[(plural, namespace, name)] = body
            if plural == "deployments":
                for _ in range(int(body["spec"].get("replicas", 1))):
                    template = json.loads(json.dumps(body["spec"]["template"]))
                    pod = {"apiVersion": "v1", "kind": "Pod", "spec": template["spec"],
                           "metadata": {"name": f"{name}-{uuid.uuid4().hex[:5]}", "labels": template["metadata"]["labels"],
                                        "annotations": {"fake/owner": name}}}
                    api.pods.append(_scheduled(api, pod, namespace))
                    made.append(pod)
    for pod in made:  # outside the lock: a hook may start a process that calls this server
        for hook in list(api.on_pod_created):
            hook(pod)
    api.send_json(req, 201, body)
    return True


def delete(api: "FakeKubeAPI", req: BaseHTTPRequestHandler) -> None:
    """Delete an object by name (a Deployment's pods with it)."""
    route = _route(unquote(urlsplit(req.path).path))
    if route is None or route[2] is None:
        return api.send_status(req, 405, "MethodNotAllowed", f"no DELETE on {req.path}")
    namespace, plural, name = route
    with api.lock:
        api.requests.append(f"DELETE {req.path}")
        found = _find(api, plural, namespace, name)
        if found is None:
            return api.send_status(req, 404, "NotFound", f'{plural} "{name}" not found')
        api.object_log.append(("delete", KINDS[plural], namespace, name, None))
        if plural == "pods":
            api.pods.remove(found)
        elif plural == "configmaps":
            del api.configmaps[(namespace, name)]
        else:
            del api.objects[(plural, namespace, name)]
            api.pods = [p for p in api.pods if (p["metadata"].get("annotations") or {}).get("fake/owner") != name
                        or p["metadata"]["namespace"] != namespace]
    # As the API server answers: pods and services with the object, the others with a Status.
    api.send_json(req, 200, found if plural in ("pods", "services") else
                  {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})


def get(api: "FakeKubeAPI", req: BaseHTTPRequestHandler, path: str) -> bool:
    """A pod by name, or a GET through the pod proxy to a test's backend; False when not ours."""
    if (m := _PROXY.match(path)) and m.group(2) in api.pod_backends:
        return _forward(api, req, m, "GET")
    route = _route(path)
    if route is None or route[1] != "pods" or route[2] is None:
        return False
    with api.lock:
        pod = _find(api, "pods", route[0], route[2])
    if pod is None:
        api.send_status(req, 404, "NotFound", f'pods "{route[2]}" not found')
    else:
        api.send_json(req, 200, pod)
    return True


def _forward(api: "FakeKubeAPI", req: BaseHTTPRequestHandler, m: re.Match[str], method: str) -> bool:
    port = api.pod_backends[m.group(2)]
    with api.lock:
        api.requests.append(f"{method} {req.path}")
    if method == "POST":
        req.rfile.read(int(req.headers.get("Content-Length") or 0))
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{m.group(4)}", method=method,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            api.send(req, answer.status, answer.read(), answer.headers.get("Content-Type", "text/plain"))
    except urllib.error.HTTPError as exc:
        api.send(req, exc.code, exc.read(), "application/json")
    except OSError as exc:  # nothing listens: what the API server answers for a pod not serving
        api.send_status(req, 503, "ServiceUnavailable", f"error trying to reach service: {exc}")
    return True
