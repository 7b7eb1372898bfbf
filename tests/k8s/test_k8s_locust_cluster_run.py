"""Whole `run --target kind --locust in-cluster` runs on a real Milvus, the cluster being the stand-in.

A real embedded Milvus stands for the release's Service: the kind node "publishes" its port
(stand-in `docker port`), so the kind target loads it, creates the collection and verifies the
rows there. When the lifecycle creates a Locust pod, the test starts that pod's container here
as a process group; image build, kind load, helm and the Milvus pods are the stand-ins'. So the
lifecycle's in-cluster branch, the copy of acks while loading and their verification on Milvus
are real; what a kubelet, the pod network and the image would add is not.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from rich.console import Console

from harness.judge.verdict import Verdict
from harness.kube import cluster
from harness.kube import locust_manifests as manifests
from harness.run.lifecycle import RunOptions, RunResult, run
from harness.targets.embedded import EmbeddedTarget
from harness.targets.net import free_ports
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents
from k8s_fakes import make_pod, write_kubeconfig
from locust_master import REPO, LocalMaster, start_group, stop_group

pytestmark = pytest.mark.milvus

CTX = "kind-milvus-harness"
BASE = {"cluster": {"enabled": True}, "streamingNode": {"replicas": 2}}
#: The top-level locustfile the pods run (branch locust-top); harness/locustfiles/insert.py before it.
TOP_LOCUSTFILE = REPO / "locustfiles" / "milvus_insert.py"
PodHook = Callable[[dict, int], None]


@pytest.fixture
def in_cluster_run(tmp_path, fake_api, standins, milvus_version, no_leftovers, monkeypatch) -> Iterator[Any]:
    """run(...) of the smoke scenario with --locust in-cluster on kind, Milvus being a real embedded
    server; `on_pod(pod, milvus_port)` starts a Locust pod's container here (its processes go in
    `groups`, ended afterwards)."""
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", {CTX: fake_api.url})))
    fake_api.configmaps[("default", "milvus-harness-base-values")] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "milvus-harness-base-values", "namespace": "default"},
        "data": {"values.yaml": yaml.safe_dump(BASE), "source": "laptop"}}
    milvus_pods = [make_pod("milvus-proxy-0", "proxy"), make_pod("milvus-streamingnode-0", "streamingnode"),
                   make_pod("milvus-streamingnode-1", "streamingnode")]
    fake_api.pods = list(milvus_pods)
    groups: list[subprocess.Popen[bytes]] = []

    def start(on_pod: PodHook, total_rows: int, workers: int) -> RunResult:
        with EmbeddedTarget(TargetOptions(milvus_version=milvus_version, memory_limit=4 * 2**30)) as milvus:
            port = milvus.start(RunEvents()).port
            monkeypatch.setattr(cluster, "MILVUS_HOST_PORT", port)
            standins.on("kind", "get", "clusters", stdout="milvus-harness\n")
            standins.on("docker", "port", stdout=f"127.0.0.1:{port}\n")
            standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods",
                        stdout=json.dumps({"items": milvus_pods}))
            fake_api.on_pod_created.append(lambda pod: on_pod(pod, port))
            options = RunOptions(scenario="smoke", overrides={"total_rows": str(total_rows)},
                                 report_dir=tmp_path / "reports", workers=workers, users=2, locust="in-cluster",
                                 target=TargetOptions(target="kind", milvus_version="master-20250313-5735c3ef",
                                                      watch_interval=0.2))
            try:
                return run(options, console=Console(file=io.StringIO()))
            finally:
                for proc in groups:
                    stop_group(proc)

    start.groups = groups  # type: ignore[attr-defined]
    yield start


def _cleaned_up(fake_api: Any, standins: Any, log: str) -> None:
    assert [c[:3] for c in standins.calls() if c[0] in ("docker", "kind") and c[1] in ("build", "load")] == [
        ["docker", "build", "-f"], ["kind", "load", "docker-image"]]
    created = [name for verb, _, _, name, _ in fake_api.object_log if verb == "create"]
    deleted = [name for verb, _, _, name, _ in fake_api.object_log if verb == "delete"]
    assert len(created) == 4 and sorted(deleted) == sorted(created) and "could not delete" not in log


def pod_command(pod: dict, *, milvus_port: int, master_port: int, data: Path, config: Path) -> list[str]:
    """A Locust pod's command line as it would run in the cluster, pointed at this machine: the
    image's paths to the test's directories, the Services' names to loopback, free ports."""
    container = pod["spec"]["containers"][0]
    argv = [*container["command"], *container["args"]]
    if argv[:3] == ["python", "-m", "harness.kube.locust_pod"]:
        argv = argv[argv.index("--") + 1:]  # LocalMaster runs the wrapper itself
    out: list[str] = []
    for i, arg in enumerate(argv):
        before = argv[i - 1] if i else ""
        if i == 0 and arg == "python":
            arg = sys.executable
        elif arg == manifests.LOCUSTFILE:
            arg = str(TOP_LOCUSTFILE)
        elif arg.startswith(manifests.DATA_DIR + "/"):
            arg = str(data / arg.removeprefix(manifests.DATA_DIR + "/"))
        elif arg.startswith(manifests.CONFIG_DIR + "/"):
            arg = str(config / arg.removeprefix(manifests.CONFIG_DIR + "/"))
        elif before == "--host":
            arg = f"http://127.0.0.1:{milvus_port}"
        elif before in ("--master-bind-port", "--master-port"):
            arg = str(master_port)
        elif before == "--master-host":
            arg = "127.0.0.1"
        out.append(arg)
    if "--master" in out:
        out += ["--master-bind-host", "127.0.0.1"]
    return out


def test_the_pods_own_commands_insert_every_row_through_the_master(in_cluster_run, fake_api, standins, tmp_path,
                                                                   caplog):
    """The master and both workers run exactly the commands the pods get (paths and names pointed
    here): the workers insert, the master alone writes the acks, the run verifies them."""
    data, config = tmp_path / "master-pod-data", tmp_path / "config"
    master_port = free_ports(1)[0]

    def on_pod(pod: dict, port: int) -> None:
        if not config.exists():
            config.mkdir()
            for name, text in fake_api.configmaps[("default", manifests.SCENARIO_CONFIGMAP)]["data"].items():
                (config / name).write_text(text)
        argv = pod_command(pod, milvus_port=port, master_port=master_port, data=data, config=config)
        if pod["metadata"]["name"] == manifests.MASTER:
            master = LocalMaster(data, argv, tmp_path / "pods.log")
            in_cluster_run.groups.append(master.proc)
            fake_api.pod_backends[manifests.MASTER] = master.port
        else:
            in_cluster_run.groups.append(start_group(argv, tmp_path / "pods.log"))

    result = in_cluster_run(on_pod, total_rows=200_000, workers=2)
    assert result.verdict == Verdict.PASS, result.summary["reasons"] + [(tmp_path / "pods.log").read_text()[-3000:]]
    acks = [json.loads(line) for line in (result.run_dir / "acks.jsonl").read_text().splitlines()]
    assert sorted(a["batch"] for a in acks if a["ok"]) == list(range(20))  # every batch once
    assert result.summary["rows"]["verified"] == 200_000
    assert "insert" in (result.run_dir / "locust_stats.csv").read_text() and (result.run_dir / "locust.html").exists()
    assert json.loads((result.run_dir / "run.json").read_text())["locust"] == "in-cluster"
    _cleaned_up(fake_api, standins, caplog.text)
