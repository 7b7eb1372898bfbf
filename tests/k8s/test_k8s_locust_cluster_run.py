"""A whole `run --target kind --locust in-cluster` on a real Milvus, the cluster being the stand-in.

A real embedded Milvus stands for the release's Service: the kind node "publishes" its port
(stand-in `docker port`), so the kind target loads it, creates the collection and verifies the
rows there. When the lifecycle creates the master pod, the test starts that pod's container
here (harness.kube.locust_pod with real Locust inserting through the harness's own
locustfile and the run's load.json, its acks in the pod's data directory); everything else
(image build, kind load, helm, the Milvus and Locust pods) is the stand-ins'. So the branch of
the run lifecycle, the copy of acks while loading and the verification of the copied acks on
Milvus are real; the Locust workers (pods of the stand-in) do not insert.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from harness.judge.verdict import Verdict
from harness.kube import cluster
from harness.kube import locust_manifests as manifests
from harness.run.lifecycle import RunOptions, run
from harness.run.locust_procs import LOCUSTFILES
from harness.targets.embedded import EmbeddedTarget
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents
from k8s_fakes import make_pod, write_kubeconfig
from locust_master import LocalMaster

pytestmark = pytest.mark.milvus

CTX = "kind-milvus-harness"
BASE = {"cluster": {"enabled": True}, "streamingNode": {"replicas": 2}}


def test_an_in_cluster_locust_run_is_verified_on_real_milvus(tmp_path: Path, fake_api, standins, milvus_version,
                                                             no_leftovers, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", {CTX: fake_api.url})))
    fake_api.configmaps[("default", "milvus-harness-base-values")] = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "milvus-harness-base-values", "namespace": "default"},
        "data": {"values.yaml": yaml.safe_dump(BASE), "source": "laptop"}}
    milvus_pods = [make_pod("milvus-proxy-0", "proxy"), make_pod("milvus-streamingnode-0", "streamingnode"),
                   make_pod("milvus-streamingnode-1", "streamingnode")]
    fake_api.pods = list(milvus_pods)
    report_dir = tmp_path / "reports"
    masters: list[LocalMaster] = []

    def start_master_container(pod: dict) -> None:
        if pod["metadata"]["name"] != manifests.MASTER:
            return
        config = json.loads((next(report_dir.iterdir()) / "load.json").read_text())
        data = tmp_path / "master-pod-data"
        data.mkdir()
        (data / "load.json").write_text(json.dumps({**config, "acks": str(data / "acks.jsonl")}))
        masters.append(LocalMaster(data, [sys.executable, "-m", "locust", "-f", LOCUSTFILES / "insert.py",
                                          "--harness-config", data / "load.json", "--headless", "-u", "1", "-r", "1",
                                          "--csv", data / "locust", "--html", data / "locust.html",
                                          "--exit-code-on-error", "0"], tmp_path / "master.log"))
        fake_api.pod_backends[manifests.MASTER] = masters[-1].port

    fake_api.on_pod_created.append(start_master_container)
    try:
        with EmbeddedTarget(TargetOptions(milvus_version=milvus_version, memory_limit=4 * 2**30)) as milvus:
            port = milvus.start(RunEvents()).port
            monkeypatch.setattr(cluster, "MILVUS_HOST_PORT", port)
            standins.on("kind", "get", "clusters", stdout="milvus-harness\n")
            standins.on("docker", "port", stdout=f"127.0.0.1:{port}\n")
            standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods",
                        stdout=json.dumps({"items": milvus_pods}))
            options = RunOptions(scenario="smoke", overrides={"total_rows": "40000"}, report_dir=report_dir,
                                 workers=2, users=1, locust="in-cluster",
                                 target=TargetOptions(target="kind", milvus_version="master-20250313-5735c3ef",
                                                      watch_interval=0.2))
            result = run(options, console=Console(file=io.StringIO()))
    finally:
        for master in masters:
            master.stop()
    summary = result.summary
    assert result.verdict == Verdict.PASS, summary["reasons"]
    assert summary["rows"]["acked"] == 40_000 and summary["rows"]["verified"] == 40_000
    assert (result.run_dir / "acks.jsonl").read_bytes() == (tmp_path / "master-pod-data" / "acks.jsonl").read_bytes()
    assert (result.run_dir / "locust_stats.csv").exists() and (result.run_dir / "locust.html").exists()
    assert [c[:3] for c in standins.calls() if c[0] in ("docker", "kind") and c[1] in ("build", "load")] == [
        ["docker", "build", "-f"], ["kind", "load", "docker-image"]]
    created = [name for verb, _, _, name, _ in fake_api.object_log if verb == "create"]
    deleted = [name for verb, _, _, name, _ in fake_api.object_log if verb == "delete"]
    assert len(created) == 4 and sorted(deleted) == sorted(created)
    assert json.loads((result.run_dir / "run.json").read_text())["locust"] == "in-cluster"
