"""`run --target external` on a real embedded Milvus, its pods watched on the API stand-in.

The load, the collection and the verification are real (Milvus 2.x standalone started here);
the cluster's pods are the stand-in's, and one of them is OOM-killed (scripted) once the first
batch is acked. Which pod decides the verdict: a datanode is not under test (INCONCLUSIVE), a
streaming node is (FAIL). Small on purpose: the smoke collection, 10k-row batches.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from harness.scenario import model as scenarios
from harness.targets.embedded import EmbeddedTarget
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents
from k8s_fakes import container_status, make_pod

pytestmark = pytest.mark.milvus

PODS = [("m-streamingnode-0", "streamingnode", "16Gi"), ("m-datanode-0", "datanode", "8Gi"),
        ("m-querynode-0", "querynode", "8Gi"), ("m-proxy-0", "proxy", "1Gi")]


def _pods(killed: str | None = None) -> list[dict[str, Any]]:
    pods = []
    for name, component, limit in PODS:
        status = None
        if name == killed:
            status = [container_status(component, restarts=1,
                                       last_terminated={"reason": "OOMKilled", "finished": time.time()})]
        pods.append(make_pod(name, component, uid=name, containers=[(component, limit)], statuses=status))
    return pods


def _first_ack(report_dir: Path, proc: Any, timeout: float = 180.0) -> None:
    """Block until the run has acked its first batch (or fail if the harness ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for acks in report_dir.glob("*/acks.jsonl"):
            if any(json.loads(line)["ok"] for line in acks.read_text().splitlines() if line.endswith("}")):
                return
        assert proc.poll() is None, "the harness ended before any batch was acked"
        time.sleep(0.1)
    raise AssertionError("no batch was acked in time")


def _run_with_a_kill(harness_cli: Any, fake_api: Any, address: str, report_dir: Path, killed: str | None,
                     *extra: str) -> tuple[int, dict[str, Any], str]:
    with fake_api.lock:
        fake_api.pods = _pods()
    for name, component, _ in PODS:
        fake_api.set_usage(name, component, "1Gi")
    proc = harness_cli.start(
        "run", "--target", "external", "--uri", f"http://{address}", "--kube-context", "kind-test",
        "--scenario", "smoke", "--set", "rules.under_test=streamingnode", "--set", "total_rows=200000",
        "--set", "wait_s=1", "--watch-interval", "0.2s", "--report-dir", str(report_dir), *extra,
        env={**os.environ})
    if killed is not None:
        _first_ack(report_dir, proc)
        with fake_api.lock:
            fake_api.pods = _pods(killed)
    out, err = proc.communicate(timeout=300)
    run_dir = next(report_dir.iterdir())
    return proc.returncode, json.loads((run_dir / "summary.json").read_text()), out + err


def test_external_run_on_real_milvus_is_judged_by_the_component_under_test(
        tmp_path: Path, fake_api: Any, kubeconfig: Path, milvus_version: str, harness_cli: Any) -> None:
    smoke = scenarios.load("smoke")
    with EmbeddedTarget(TargetOptions(milvus_version=milvus_version, memory_limit=4 * 2**30)) as milvus:
        address = milvus.start(RunEvents()).address

        code, summary, output = _run_with_a_kill(harness_cli, fake_api, address, tmp_path / "datanode",
                                                 "m-datanode-0")
        assert code == 125, output
        assert summary["verdict"] == "INCONCLUSIVE"
        assert summary["reasons"][0].startswith("datanode OOM-killed at ")
        assert summary["reasons"][0].endswith("(not under test): the cluster, not the component under test, failed")
        rows = summary["rows"]
        # Loaded and verified on the real Milvus: the query node has room, so per PK range.
        assert 0 < rows["acked"] < smoke.total_rows and rows["verified"] == rows["acked"] and rows["lost"] == 0
        assert rows["check"]["check"] == "pk-ranges" and "fits" in rows["check"]["why"]
        report = (next((tmp_path / "datanode").iterdir()) / "report.md").read_text()
        # a death puts the row count in doubt: the exact check, and the report says why
        assert "pk-ranges: the row count alone cannot decide: 1 death" in report and "chosen because it fits" in report

        code, summary, output = _run_with_a_kill(harness_cli, fake_api, address, tmp_path / "streamingnode",
                                                 "m-streamingnode-0", "--verify", "rows")
        assert code == 1, output
        assert summary["verdict"] == "FAIL" and summary["reasons"][0].startswith("streamingnode OOM-killed at ")
        rows = summary["rows"]
        assert 0 < rows["acked"] and rows["verified"] == rows["acked"] and rows["persisted"] >= rows["acked"]
        assert rows["check"]["check"] == "rows" and rows["check"]["why"].startswith("asked for with --verify rows")

        # Nothing died, but the acked rows were not checked: on a cluster that is no PASS.
        code, summary, output = _run_with_a_kill(harness_cli, fake_api, address, tmp_path / "unchecked", None,
                                                 "--verify", "none", "--set", "total_rows=20000")
        assert code == 125, output
        assert summary["rows"]["acked"] == 20_000 and summary["rows"]["verified"] is None
        assert summary["reasons"] == ["the acked rows could not be checked: verification skipped (--verify none)"]
