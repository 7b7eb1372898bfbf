"""`milvus-harness cluster up|down|status`: a kind cluster with the seed's Milvus topology.

`up` creates the kind cluster (k8s/kind-config.yaml), installs metrics-server and the
zilliztech/milvus chart (cluster mode, Pulsar, streaming nodes) with pinned chart versions,
and waits until every pod of the release is ready. Every helm and kubectl call names the
cluster's own context (`kind-<name>`), so the user's current context is never touched.

The kind target (harness/targets/kind.py) reuses these steps for its fresh install per
image tag.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from harness.errors import HarnessError, TargetError, UsageError
from harness.kube.contexts import DEFAULT_CLUSTER, check_kube_context, kind_context
from harness.procs import require_tool, run_command

if TYPE_CHECKING:
    import subprocess

    from rich.console import Console

log = logging.getLogger(__name__)

MILVUS_REPO = "https://zilliztech.github.io/milvus-helm/"
METRICS_SERVER_REPO = "https://kubernetes-sigs.github.io/metrics-server/"
#: metrics-server chart 3.12.2 ships metrics-server 0.7.2.
METRICS_SERVER_CHART = "3.12.2"
#: zilliztech/milvus chart versions, one per Milvus line. k8s/values-*.yaml use only keys
#: that exist in both (checked against their values.yaml; see docs/kind.md).
CHART_2_5 = "4.2.58"  # appVersion 2.5.16; streaming nodes need streaming.enabled=true
CHART_2_6 = "5.0.19"  # appVersion 2.6.15; also for master-* tags (2.6 development)
DEFAULT_TAG = "v2.6.15"
IMAGE_REPOSITORY = "milvusdb/milvus"
#: The Milvus Service's NodePort (values-*.yaml) and where kind-config.yaml maps it on the host.
MILVUS_NODE_PORT = 30530
MILVUS_HOST_PORT = 19530
MILVUS_PORT = 19530
VALUES_PRESETS = ("seed", "laptop")

INSTALL_HINTS = {
    "docker": "install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/",
    "kind": "install kind 0.20 or newer: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "helm": "install Helm 3.14 or newer: https://helm.sh/docs/intro/install/",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
}

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LINE_2_5 = re.compile(r"^v?2\.5([.-].*)?$")
_LINE_2_6 = re.compile(r"^v?2\.6([.-].*)?$")
#: Waiting reasons that mean the image tag does not exist: waiting longer will not help.
_BAD_IMAGE = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")


@dataclass(frozen=True)
class ChartPin:
    """The chart version for an image tag and the --set flags that line needs."""

    version: str
    sets: tuple[str, ...] = ()


def chart_for_tag(tag: str) -> ChartPin:
    """4.2.x for 2.5 tags (with streaming.enabled), 5.0.x for 2.6 and master tags."""
    if not _TAG.match(tag):
        raise UsageError(f"--milvus-version {tag!r} is not a valid image tag")
    if _LINE_2_5.match(tag):
        return ChartPin(CHART_2_5, ("streaming.enabled=true",))
    if _LINE_2_6.match(tag) or tag.startswith("master-"):
        return ChartPin(CHART_2_6)
    raise UsageError(f"--milvus-version {tag!r}: the kind target runs Milvus 2.5, 2.6 and master image tags "
                     "(e.g. v2.5.16, v2.6.15, master-20250311-0698d04f)")


def k8s_dir() -> Path:
    """The k8s/ directory: $MILVUS_HARNESS_K8S, else the checkout's, else ./k8s."""
    env = os.environ.get("MILVUS_HARNESS_K8S")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "k8s", Path.cwd() / "k8s"]
    for path in candidates:
        if (path / "kind-config.yaml").is_file():
            return path
    raise UsageError("cannot find the k8s/ directory (kind-config.yaml, values files); run from a "
                     "milvus-harness checkout or set MILVUS_HARNESS_K8S")


def values_file(choice: str) -> Path:
    """`seed`, `laptop` or a path to a values file."""
    if choice in VALUES_PRESETS:
        return k8s_dir() / f"values-{choice}.yaml"
    path = Path(choice).expanduser()
    if not path.is_file():
        raise UsageError(f"--values {choice!r}: not seed, laptop or an existing values file")
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"--values {choice}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return path


def require_tools(names: Sequence[str]) -> None:
    """Every tool on PATH, or one UsageError line saying how to install each missing one."""
    missing = []
    for name in names:
        try:
            require_tool(name, INSTALL_HINTS[name])
        except HarnessError as exc:
            missing.append(str(exc))
    if missing:
        raise UsageError("; ".join(missing))


class Kube:
    """kind, helm and kubectl, every helm and kubectl call pinned to one context."""

    def __init__(self, cluster: str = DEFAULT_CLUSTER, context: str | None = None) -> None:
        self.cluster = cluster
        self.context = context or kind_context(cluster)

    def kind(self, *args: str, what: str, timeout: float | None = None,
             check: bool = True) -> "subprocess.CompletedProcess[str]":
        return run_command(["kind", *args], what=what, timeout=timeout, check=check)

    def helm(self, *args: str, what: str, timeout: float | None = None,
             check: bool = True) -> "subprocess.CompletedProcess[str]":
        return run_command(["helm", *args, "--kube-context", self.context], what=what, timeout=timeout, check=check)

    def kubectl(self, *args: str, what: str, timeout: float | None = None,
                check: bool = True) -> "subprocess.CompletedProcess[str]":
        return run_command(["kubectl", "--context", self.context, *args], what=what, timeout=timeout, check=check)

    def clusters(self) -> list[str]:
        """Names of the kind clusters on this machine."""
        out = self.kind("get", "clusters", what="list kind clusters", timeout=60).stdout
        return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith("No kind clusters")]


@dataclass
class ClusterSpec:
    """What `cluster up` and the kind target install, and where."""

    name: str = DEFAULT_CLUSTER
    image_tag: str = DEFAULT_TAG
    values: str = "laptop"
    namespace: str = "default"
    release: str = "milvus"
    timeout: float = 1800.0
    poll_interval: float = 5.0
    sets: list[str] = field(default_factory=list)

    @property
    def context(self) -> str:
        return kind_context(self.name)


# --- steps ----------------------------------------------------------------------------------


def check_docker() -> None:
    """kind needs a running Docker engine, not just the client."""
    run_command(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=60,
                what="reach the Docker engine (is it running?)")


def create_cluster(kube: Kube, config: Path) -> bool:
    """`kind create cluster` unless it exists; True when it was created."""
    if kube.cluster in kube.clusters():
        return False
    kube.kind("create", "cluster", "--name", kube.cluster, "--config", str(config), "--wait", "180s",
              what=f"create the kind cluster {kube.cluster}", timeout=900)
    return True


def install_metrics_server(kube: Kube) -> None:
    kube.helm("upgrade", "--install", "metrics-server", "metrics-server", "--repo", METRICS_SERVER_REPO,
              "--version", METRICS_SERVER_CHART, "--namespace", "kube-system",
              "--values", str(k8s_dir() / "metrics-server-values.yaml"), "--wait", "--timeout", "5m",
              what="install metrics-server", timeout=600)


def install_milvus(kube: Kube, spec: ClusterSpec, values: Sequence[Path]) -> ChartPin:
    """`helm upgrade --install` of the pinned chart with the image tag; does not wait."""
    pin = chart_for_tag(spec.image_tag)
    args = ["upgrade", "--install", spec.release, "milvus", "--repo", MILVUS_REPO, "--version", pin.version,
            "--namespace", spec.namespace, "--create-namespace"]
    for path in values:
        args += ["--values", str(path)]
    for item in (f"image.all.tag={spec.image_tag}", *pin.sets, *spec.sets):
        args += ["--set", item]
    args += ["--timeout", "30m"]
    kube.helm(*args, what=f"install Milvus {spec.image_tag} (chart {pin.version})", timeout=1800)
    return pin


def release_values(kube: Kube, spec: ClusterSpec) -> dict[str, Any] | None:
    """The values the release was installed with (None when there is no release)."""
    result = kube.helm("get", "values", spec.release, "--namespace", spec.namespace, "--output", "yaml",
                       what=f"read the values of release {spec.release}", timeout=120, check=False)
    if result.returncode != 0:
        if "not found" in (result.stderr + result.stdout):
            return None
        raise TargetError(f"cannot read the values of release {spec.release}: `helm get values` exited with "
                          f"{result.returncode}\n{(result.stderr or result.stdout).strip()[-2000:]}")
    data = yaml.safe_load(result.stdout) or {}
    return data if isinstance(data, dict) else {}


def uninstall_milvus(kube: Kube, spec: ClusterSpec) -> None:
    """Uninstall the release and delete its volumes: the next install starts from nothing."""
    kube.helm("uninstall", spec.release, "--namespace", spec.namespace, "--ignore-not-found", "--wait",
              "--timeout", "10m", what=f"uninstall release {spec.release}", timeout=900)
    # Milvus and etcd label their claims app.kubernetes.io/instance, Pulsar and MinIO `release`.
    for selector in (f"app.kubernetes.io/instance={spec.release}", f"release={spec.release}"):
        kube.kubectl("--namespace", spec.namespace, "delete", "pvc", "--selector", selector,
                     "--ignore-not-found", "--wait=true", "--timeout=5m",
                     what=f"delete the volumes of release {spec.release}", timeout=600)


def release_pods(kube: Kube, spec: ClusterSpec) -> list[dict[str, Any]]:
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


def wait_ready(kube: Kube, spec: ClusterSpec, timeout: float | None = None,
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
            pods = [pod_summary(p) for p in release_pods(kube, spec)]
            ready = [p for p in pods if p["ready"]]
            pending = [p for p in pods if not p["ready"]]
            if progress is not None and task is not None:
                waiting = ", ".join(p["name"] for p in pending[:3]) + (" ..." if len(pending) > 3 else "")
                progress.update(task, total=max(len(pods), 1), completed=len(ready),
                                description=f"Milvus {spec.image_tag}: {len(ready)}/{len(pods)} pods ready"
                                            + (f" (waiting: {waiting})" if waiting else ""))
            bad = [p for p in pending if p["waiting"] in _BAD_IMAGE and _image_missing(p["message"])]
            if bad:
                raise TargetError(f"image {IMAGE_REPOSITORY}:{spec.image_tag} cannot be pulled for pod "
                                  f"{bad[0]['name']}: {bad[0]['message'] or bad[0]['waiting']}")
            if pods and not pending and any(p["component"] == "proxy" for p in pods):
                return pods
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


# --- the commands ---------------------------------------------------------------------------


def _say(console: "Console | None", text: str) -> None:
    if console is not None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)  # whole lines in CI logs
    else:
        log.info("%s", text)


def cluster_up(spec: ClusterSpec, console: "Console | None" = None) -> int:
    """Create the cluster if needed, install metrics-server and Milvus, wait until ready."""
    chart_for_tag(spec.image_tag)  # a bad tag or values file is refused before anything runs
    values = values_file(spec.values)
    config = k8s_dir() / "kind-config.yaml"
    require_tools(["docker", "kind", "helm", "kubectl"])
    check_docker()
    kube = Kube(spec.name)
    step = _Steps(console)
    with step(f"kind cluster {spec.name}"):
        created = create_cluster(kube, config)
    # kind wrote its context into the kubeconfig: check it is the local cluster before using it.
    check_kube_context(spec.context, hint="kind did not write it; check `kind get kubeconfig`")
    with step(f"metrics-server {METRICS_SERVER_CHART}"):
        install_metrics_server(kube)
    with step(f"Milvus {spec.image_tag} ({spec.values} values)"):
        pin = install_milvus(kube, spec, [values])
    pods = wait_ready(kube, spec, console=console)
    _say(console, f"Milvus {spec.image_tag} (chart {pin.version}) is ready on kind cluster {spec.name}"
                  f"{' (created)' if created else ''}: {len(pods)} pods; "
                  f"endpoint http://127.0.0.1:{MILVUS_HOST_PORT} (NodePort {MILVUS_NODE_PORT})")
    return 0


def cluster_down(spec: ClusterSpec, console: "Console | None" = None) -> int:
    """Delete the kind cluster (and with it Milvus and its volumes)."""
    require_tools(["kind"])
    kube = Kube(spec.name)
    if spec.name not in kube.clusters():
        _say(console, f"no kind cluster named {spec.name}")
        return 0
    with _Steps(console)(f"deleting kind cluster {spec.name}"):
        kube.kind("delete", "cluster", "--name", spec.name, what=f"delete the kind cluster {spec.name}", timeout=600)
    return 0


def cluster_status(spec: ClusterSpec, console: "Console | None" = None) -> int:
    """Print the release's pods; 0 when every one is ready, 1 otherwise (or no cluster)."""
    require_tools(["kind", "kubectl"])
    kube = Kube(spec.name)
    if spec.name not in kube.clusters():
        _say(console, f"no kind cluster named {spec.name}; create it with `milvus-harness cluster up`")
        return 1
    check_kube_context(spec.context)
    pods = [pod_summary(p) for p in release_pods(kube, spec)]
    if console is not None:
        from harness.console import print_pods

        print_pods(console, f"kind-{spec.name} / {spec.namespace} / release {spec.release}", pods)
    if not pods:
        _say(console, f"release {spec.release} has no pods in namespace {spec.namespace}")
        return 1
    return 0 if all(p["ready"] for p in pods) else 1


class _Steps:
    """Prints each step as it starts and ends; a failing step's error carries its command."""

    def __init__(self, console: "Console | None") -> None:
        self.console = console

    def __call__(self, what: str) -> "_Step":
        return _Step(self.console, what)


class _Step:
    def __init__(self, console: "Console | None", what: str) -> None:
        self.console, self.what = console, what

    def __enter__(self) -> None:
        self.began = time.monotonic()
        _say(self.console, f"- {self.what} ...")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            _say(self.console, f"  {self.what}: done in {time.monotonic() - self.began:.0f} s")

