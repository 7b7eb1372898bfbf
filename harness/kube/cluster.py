"""`milvus-harness cluster up|down|status`: a kind cluster with the seed's Milvus topology.

`up` creates the kind cluster (k8s/kind-config.yaml), installs metrics-server and the
zilliztech/milvus chart (cluster mode, Pulsar, streaming nodes) with pinned chart versions,
and waits until every pod of the release is ready. Every helm and kubectl call names the
cluster's own context (`kind-<name>`), so the user's current context is never touched.

The kind target (harness/targets/kind.py) reuses these steps for its fresh install per
image tag.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from harness.errors import HarnessError, UsageError
from harness.kube import values as chart_values
from harness.kube.pods import check_streaming_nodes, pod_summary, release_pods, wait_ready
from harness.kube.contexts import DEFAULT_CLUSTER, api_client, check_kube_context, kind_context
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
#: The Milvus Service's NodePort (values-*.yaml) and where kind-config.yaml maps it on the host.
MILVUS_NODE_PORT = 30530
MILVUS_HOST_PORT = 19530
MILVUS_PORT = 19530
VALUES_PRESETS = ("seed", "laptop")


def milvus_service(release: str) -> str:
    """The name of the release's Milvus Service: the chart's "milvus.fullname" (templates/
    _helpers.tpl: the release name when it contains "milvus", else "<release>-milvus")."""
    return (release if "milvus" in release else f"{release}-milvus")[:63].rstrip("-")

INSTALL_HINTS = {
    "docker": "install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/",
    "kind": "install kind 0.20 or newer: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "helm": "install Helm 3.14 or newer: https://helm.sh/docs/intro/install/",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
}

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LINE_2_5 = re.compile(r"^v?2\.5([.-].*)?$")
_LINE_2_6 = re.compile(r"^v?2\.6([.-].*)?$")


@dataclass(frozen=True)
class ChartPin:
    """The chart version for an image tag (the values it needs: harness.kube.values)."""

    version: str


def chart_for_tag(tag: str) -> ChartPin:
    """4.2.x for 2.5 tags, 5.0.x for 2.6 and master tags."""
    if not _TAG.match(tag):
        raise UsageError(f"--milvus-version {tag!r} is not a valid image tag")
    if tag.startswith("master-"):
        chart_values.build_date(tag)  # a master tag's date must be a date
    if _LINE_2_5.match(tag):
        return ChartPin(CHART_2_5)
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
    #: More values files layered over `values` (the user's), stored with it as the base.
    values_files: list[str] = field(default_factory=list)
    image_repository: str = chart_values.DEFAULT_REPOSITORY
    namespace: str = "default"
    release: str = "milvus"
    timeout: float = 1800.0
    poll_interval: float = 5.0

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


def install_milvus(kube: Kube, spec: ClusterSpec, values: Path) -> ChartPin:
    """`helm upgrade --install` of the pinned chart with one file of effective values; does not wait.

    The file holds everything (image, switches, limits): no --set, so what is recorded as
    applied is exactly what helm got.
    """
    pin = chart_for_tag(spec.image_tag)
    kube.helm("upgrade", "--install", spec.release, "milvus", "--repo", MILVUS_REPO, "--version", pin.version,
              "--namespace", spec.namespace, "--create-namespace", "--values", str(values), "--timeout", "30m",
              what=f"install Milvus {spec.image_tag} (chart {pin.version})", timeout=1800)
    return pin


def base_values(spec: ClusterSpec) -> tuple[dict[str, Any], str]:
    """The profile (or file) of --values with the --values-file files over it, and where they came from."""
    sources = [values_file(spec.values)] + [values_file(f) for f in spec.values_files]
    trees = []
    for path in sources:
        tree = yaml.safe_load(path.read_text()) or {}
        if not isinstance(tree, dict):
            raise UsageError(f"--values {path}: not a mapping of Helm values")
        trees.append(tree)
    names = [spec.values] + [str(values_file(f)) for f in spec.values_files]
    return chart_values.merge(*trees), " + ".join(names)


def uninstall_milvus(kube: Kube, spec: ClusterSpec) -> None:
    """Uninstall the release and delete its volumes: the next install starts from nothing."""
    kube.helm("uninstall", spec.release, "--namespace", spec.namespace, "--ignore-not-found", "--wait",
              "--timeout", "10m", what=f"uninstall release {spec.release}", timeout=900)
    # Milvus and etcd label their claims app.kubernetes.io/instance, Pulsar and MinIO `release`.
    for selector in (f"app.kubernetes.io/instance={spec.release}", f"release={spec.release}"):
        kube.kubectl("--namespace", spec.namespace, "delete", "pvc", "--selector", selector,
                     "--ignore-not-found", "--wait=true", "--timeout=5m",
                     what=f"delete the volumes of release {spec.release}", timeout=600)


# --- the commands ---------------------------------------------------------------------------


def _say(console: "Console | None", text: str) -> None:
    if console is not None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)  # whole lines in CI logs
    else:
        log.info("%s", text)


def cluster_up(spec: ClusterSpec, console: "Console | None" = None) -> int:
    """Create the cluster if needed, store the base values, install metrics-server and Milvus, wait.

    Ready means every pod of the release ready, a Milvus proxy among them, and the streaming
    nodes the values ask for Running and Ready.
    """
    chart_for_tag(spec.image_tag)  # a bad tag or values file is refused before anything runs
    chart_values.check_repository(spec.image_repository)
    base, source = base_values(spec)
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
    effective = chart_values.effective_values(base, spec.image_tag, spec.image_repository)
    with tempfile.TemporaryDirectory(prefix="milvus-harness-up-") as tmp:
        path = Path(tmp) / "values.yaml"
        path.write_text(yaml.safe_dump(effective, sort_keys=False))
        with step(f"Milvus {spec.image_repository}:{spec.image_tag} ({source} values)"):
            pin = install_milvus(kube, spec, path)
    # After the install: helm has made the namespace (--create-namespace) the ConfigMap goes in.
    client = api_client(spec.context)
    try:
        with step(f"base values ({source}) in ConfigMap {spec.namespace}/{chart_values.configmap_name(spec.release)}"):
            chart_values.store_base(client, spec.namespace, spec.release, base, source)
    finally:
        client.close()
    pods = wait_ready(kube, spec, console=console)
    nodes = check_streaming_nodes(pods, spec, chart_values.streaming_replicas(effective))
    _say(console, f"Milvus {spec.image_tag} (chart {pin.version}) is ready on kind cluster {spec.name}"
                  f"{' (created)' if created else ''}: {len(pods)} pods, {len(nodes)} streaming nodes Running and "
                  f"Ready; endpoint http://127.0.0.1:{MILVUS_HOST_PORT} (NodePort {MILVUS_NODE_PORT})")
    _say(console, _server_version_line(spec))
    return 0


def _server_version_line(spec: ClusterSpec) -> str:
    """The server's own GetVersion through the mapped NodePort, checked against the tag."""
    from harness import milvus_client
    from harness.kube import identity
    from harness.targets.net import port_open

    address = f"127.0.0.1:{MILVUS_HOST_PORT}"
    if not identity.maps(identity.host_ports(spec.name, MILVUS_NODE_PORT), "127.0.0.1", MILVUS_HOST_PORT) \
            or not port_open("127.0.0.1", MILVUS_HOST_PORT):
        return f"server version not read: the kind node does not publish {address} (runs use a port-forward)"
    try:
        reported = milvus_client.server_version(address)
    except Exception as exc:  # the run checks again before loading; here it is information
        return f"server version not read at {address}: {exc}"
    check = identity.check_build(spec.image_tag, reported)
    return f"server version {reported!r} ({check.status}: {check.detail})"


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

