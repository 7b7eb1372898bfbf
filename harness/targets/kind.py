"""The kind target: Milvus from the zilliztech/milvus chart on a local kind cluster.

Each start() is a fresh install with the requested image tag (uninstall, delete the
release's volumes, install, wait until ready), so runs of different versions never share
data. The values are rebuilt every time from the base `cluster up` stored in the cluster
(harness.kube.values) plus this image's and this run's own, never from the last install.
After install the streaming nodes must be Running and Ready, and before any row is sent the
endpoint must be this release: the NodePort that the kind node publishes on 127.0.0.1:19530
(else a `kubectl port-forward` the target starts and stops), answering with the build the tag
names (GetVersion). Milvus is left running after stop() for inspection; the next start()
replaces it.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.kube import cluster, contexts, identity, pods
from harness.kube import values as chart_values
from harness import milvus_client
from harness.errors import TargetError, UsageError
from harness.targets.milvus_config import parse_config_overrides
from harness.targets.net import free_ports, port_open
from harness.targets.protocol import Endpoint, Target, TargetOptions, Watcher
from harness.units import parse_bytes
from harness.watch import events
from harness.watch.kubernetes import KubernetesWatcher
from harness.watch.events import RunEvents

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger(__name__)

#: How long Milvus may take to answer once its pods are ready.
ANSWER_TIMEOUT = 300.0


#: The Milvus roles whose memory decides the seed scenario (until scenarios name them).
DEFAULT_UNDER_TEST = ("streamingnode",)


class PortForward:
    """`kubectl port-forward` held open for a run: started, checked, restarted, stopped.

    It runs for the whole run, so it is a Popen of its own rather than procs.run_command
    (which runs a command to completion); its output goes to a file shown on failure.
    """

    def __init__(self, context: str, namespace: str, resource: str, remote_port: int,
                 local_port: int | None = None) -> None:
        self.context, self.namespace, self.resource = context, namespace, resource
        self.remote_port = remote_port
        self.local_port = local_port
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def argv(self) -> list[str]:
        return ["kubectl", "--context", self.context, "--namespace", self.namespace, "port-forward",
                self.resource, f"{self.local_port}:{self.remote_port}", "--address", "127.0.0.1"]

    def start(self, timeout: float = 30.0) -> int:
        """Start it and wait until the local port accepts connections; returns the port."""
        if self.local_port is None:
            self.local_port = free_ports(1)[0]
        if self._log is not None:
            self._log.unlink(missing_ok=True)
        fd, name = tempfile.mkstemp(prefix="milvus-harness-port-forward-", suffix=".log")
        self._log = Path(name)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=fd,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError:
            raise TargetError(f"kubectl is not installed; {cluster.INSTALL_HINTS['kubectl']}") from None
        finally:
            os.close(fd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if port_open("127.0.0.1", self.local_port, timeout=0.5):
                return self.local_port
            time.sleep(0.1)
        code = self.proc.poll()
        output = self.output()
        self.stop()
        state = f"exited with {code}" if code is not None else f"did not open port {self.local_port} in {timeout:.0f} s"
        raise TargetError(f"cannot forward a port to {self.resource}: `{shlex.join(self.argv)}` {state}"
                          + (f"\n{output}" if output else ""))

    def output(self) -> str:
        if self._log is None or not self._log.exists():
            return ""
        lines = [line for line in self._log.read_text(errors="replace").splitlines() if line.strip()]
        return "\n".join(lines[-20:])

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        """Restart it on the same local port if it died (it does when the proxy pod restarts)."""
        if self.proc is not None and not self.alive:
            log.info("port-forward to %s ended (%s); restarting it", self.resource, self.output()[-200:])
            self.start()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def close(self) -> None:
        """Stop it and remove its log."""
        self.stop()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None


class KindTarget(Target):
    """Target protocol over a kind cluster made by `milvus-harness cluster up`.

    `under_test`: the Milvus roles whose pods the watcher also reads through their own
    /metrics on every poll (the finest memory figure there is).
    """

    kind = "kind"

    def __init__(self, options: TargetOptions, console: "Console | None" = None,
                 poll_interval: float = 5.0, ready_timeout: float = 1800.0,
                 answer_timeout: float = ANSWER_TIMEOUT, under_test: tuple[str, ...] = DEFAULT_UNDER_TEST) -> None:
        self.options = options
        self.context_name = contexts.context_for(options) or contexts.kind_context()
        if not self.context_name.startswith(contexts.KIND_PREFIX):
            # --allow-context may let a non-kind context through for `external`, never for kind.
            raise UsageError(f"--target kind needs a kind cluster's context (kind-<name>), not {self.context_name!r}")
        self.image_tag = options.milvus_version or cluster.DEFAULT_TAG
        self.version = self.image_tag  # what run keys and reports name the Milvus by
        self.pin = cluster.chart_for_tag(self.image_tag)
        self.repository = chart_values.check_repository(options.image_repository)
        self.overrides = parse_config_overrides(options.milvus_config)
        self.under_test = tuple(under_test)
        self.spec = cluster.ClusterSpec(name=self.context_name[len(contexts.KIND_PREFIX):], image_tag=self.image_tag,
                                        namespace=options.namespace, release=options.release,
                                        timeout=ready_timeout, poll_interval=poll_interval,
                                        image_repository=self.repository)
        self.kube = cluster.Kube(self.spec.name, self.context_name)
        self._console = console
        self._answer_timeout = answer_timeout
        self._tmp: Path | None = None
        self._values: dict[str, Any] = {}
        self._base_source: str | None = None
        self._forward: PortForward | None = None
        self._watcher: KubernetesWatcher | None = None
        self.endpoint: Endpoint | None = None
        self.endpoint_mode: str | None = None
        self.server_version: str | None = None
        self.build_check: identity.BuildCheck | None = None
        self.startup_seconds: float | None = None

    # --- Target protocol ---------------------------------------------------------------------

    def bring_up(self, context: RunEvents) -> Endpoint:
        contexts.check_context(self.options)
        cluster.require_tools(["kind", "helm", "kubectl", "docker"])
        if self.spec.name not in self.kube.clusters():
            raise UsageError(f"no kind cluster named {self.spec.name}; create it with "
                             f"`milvus-harness cluster up --name {self.spec.name}`")
        began = time.monotonic()
        self._values = self.effective_values()
        self._tmp = Path(tempfile.mkdtemp(prefix="milvus-harness-kind-"))
        path = self._tmp / "values.yaml"
        path.write_text(yaml.safe_dump(self._values, sort_keys=False))
        cluster.uninstall_milvus(self.kube, self.spec)
        cluster.install_milvus(self.kube, self.spec, path)
        ready = pods.wait_ready(self.kube, self.spec, console=self._console)
        pods.check_streaming_nodes(ready, self.spec, chart_values.streaming_replicas(self._values))
        self.endpoint = self._connect()
        self._check_build(self.endpoint.address)
        self.startup_seconds = time.monotonic() - began
        context.fire_event(component="proxy", type=events.READY,
                           detail=f"milvus {self.image_tag} answered on kind after {self.startup_seconds:.0f} s "
                                  f"({self.endpoint_mode} {self.endpoint.address}, server version "
                                  f"{self.server_version!r}: {self.build_check.status if self.build_check else '?'})",
                           data={"startup_seconds": round(self.startup_seconds, 2), "address": self.endpoint.address,
                                 "endpoint": self.endpoint_mode, "server_version": self.server_version})
        self._watcher = KubernetesWatcher.for_context(
            self.context_name, namespace=self.spec.namespace, selector=self.selector,
            interval=self.options.watch_interval, scrape_components=self.under_test)
        self._watcher.start(context)
        return self.endpoint

    def effective_values(self) -> dict[str, Any]:
        """The stored base + this image's values + this run's flags (harness.kube.values)."""
        client = contexts.api_client(self.context_name)
        try:
            stored = chart_values.read_base(client, self.spec.namespace, self.spec.release)
        finally:
            client.close()
        if stored is None:
            raise UsageError(f"kind cluster {self.spec.name} has no base values (ConfigMap {self.spec.namespace}/"
                             f"{chart_values.configmap_name(self.spec.release)}); store them with "
                             f"`milvus-harness cluster up --name {self.spec.name} --values laptop|seed|FILE`")
        base, self._base_source = stored
        return chart_values.effective_values(base, self.image_tag, self.repository,
                                             memory_limit=self.options.memory_limit, overrides=self.overrides)

    @property
    def selector(self) -> str:
        """The release's Milvus pods (its Pulsar, etcd and MinIO pods are not watched)."""
        return f"app.kubernetes.io/instance={self.spec.release},app.kubernetes.io/name=milvus"

    def _connect(self) -> Endpoint:
        """The NodePort when the kind node publishes it, else a port-forward; never a stranger's port."""
        host, port = "127.0.0.1", cluster.MILVUS_HOST_PORT
        published = identity.host_ports(self.spec.name, cluster.MILVUS_NODE_PORT)
        mapped = identity.maps(published, host, port)
        if port_open(host, port) and not mapped:
            raise UsageError(f"{host}:{port} accepts connections but kind node {identity.node_name(self.spec.name)} "
                             f"does not publish it (it publishes NodePort {cluster.MILVUS_NODE_PORT} at "
                             f"{', '.join(published) or 'nothing'}): another program listens there; stop it "
                             f"before loading this cluster")
        if mapped and port_open(host, port):
            self.endpoint_mode = "nodeport"
        else:
            self._forward = PortForward(self.context_name, self.spec.namespace, f"service/{cluster.milvus_service(self.spec.release)}",
                                        cluster.MILVUS_PORT)
            port = self._forward.start()
            self.endpoint_mode = "port-forward"
        address = f"{host}:{port}"
        if not milvus_client.wait_until(lambda: milvus_client.answers(address), time.monotonic() + self._answer_timeout,
                                        interval=1.0):
            raise TargetError(f"milvus {self.image_tag} on kind does not answer at {address} "
                              f"({self.endpoint_mode}) within {self._answer_timeout:.0f} s")
        return Endpoint(host, port)

    def _check_build(self, address: str) -> None:
        """GetVersion, recorded; a different build than the tag stops the run (one line, 125)."""
        try:
            self.server_version = milvus_client.server_version(address)
        except Exception as exc:
            raise TargetError(f"milvus {self.image_tag} at {address} answers but GetVersion failed: {exc}") from None
        self.build_check = identity.check_build(self.image_tag, self.server_version)
        if self.build_check.status == identity.MISMATCH:
            raise TargetError(f"wrong Milvus at {address} ({self.endpoint_mode}): {self.build_check.detail}; "
                              f"check --image-repository ({self.repository}) and the image loaded into kind")
        if self.build_check.status == identity.UNVERIFIED:
            log.warning("build of %s not verified: %s", self.image_tag, self.build_check.detail)

    def watchers(self) -> list[Watcher]:
        return [self._watcher] if self._watcher else []

    def wait_ready(self, timeout: float) -> bool:
        """After a restart: block until Milvus accepts writes again (port-forward restarted if needed)."""
        if self.endpoint is None:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._forward is not None:
                    self._forward.ensure()
            except TargetError as exc:
                log.info("%s", exc)
            if milvus_client.accepts_writes(self.endpoint.address, self.options.collection):
                return True
            time.sleep(1.0)
        return False

    def facts(self) -> dict[str, Any]:
        limits = ((self._values.get("streamingNode") or {}).get("resources") or {}).get("limits") or {}
        limit = self.options.memory_limit
        if limit is None and limits.get("memory"):
            try:
                limit = parse_bytes(str(limits["memory"]), "streamingNode memory limit")
            except UsageError:
                limit = None
        return {
            "target": self.kind,
            "milvus_version": self.image_tag,
            "image": f"{self.repository}:{self.image_tag}",
            "image_repository": self.repository,
            "image_tag": self.image_tag,
            "chart": f"milvus-{self.pin.version}",
            "chart_version": self.pin.version,
            "values_base": self._base_source,
            "values_applied": self._values,
            "server_version": self.server_version,
            "build_check": ({"status": self.build_check.status, "detail": self.build_check.detail}
                            if self.build_check else None),
            "kube_context": self.context_name,
            "namespace": self.spec.namespace,
            "release": self.spec.release,
            "memory_limit_bytes": limit,
            "isolation": "pod resources.limits.memory (streamingNode)",
            "streaming_node_replicas": chart_values.streaming_replicas(self._values) if self._values else None,
            "under_test": list(self.under_test),
            "address": self.endpoint.address if self.endpoint else None,
            "endpoint": self.endpoint_mode,
            "startup_seconds": round(self.startup_seconds, 2) if self.startup_seconds else None,
            "milvus_config": dict(self.overrides),
        }

    def stop(self) -> None:
        """Stop the watcher and the port-forward; Milvus stays for inspection."""
        if self._watcher is not None:
            self._watcher.stop()
        if self._forward is not None:
            self._forward.close()
            self._forward = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

