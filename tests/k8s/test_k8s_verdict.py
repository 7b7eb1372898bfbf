"""Verdicts scoped to the component under test, from pods watched through the real kubernetes client.

Each run here is a real run directory: the KubernetesWatcher polls the API stand-in through a
kubeconfig and records into it, the acks are those of a load, and lifecycle.finalize_run
computes the summary, judges it and renders the reports, as `run` does after a load. Only the
load itself and Milvus are left out (tests/integration/test_external_watched.py has them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.judge.verdict import Verdict
from harness.rundir import RunDir, write_json
from harness.run import lifecycle
from harness.run.lifecycle import RunOptions, RunResult
from harness.targets.protocol import TargetOptions
from harness.watch import events
from harness.watch.events import Recorder, RunEvents
from k8s_fakes import container_status, make_pod

GiB = 2**30
ROWS = 50_000


def _cluster_pods(killed: str | None = None, at: float = 0.0) -> list[dict[str, Any]]:
    """The seed's topology in miniature; `killed` names the pod whose container was OOM-killed."""
    names = [("milvus-streamingnode-0", "streamingnode", "16Gi"), ("milvus-streamingnode-1", "streamingnode", "16Gi"),
             ("milvus-datanode-0", "datanode", "8Gi"), ("milvus-querynode-0", "querynode", "8Gi"),
             ("milvus-proxy-0", "proxy", "1Gi")]
    pods = []
    for name, component, limit in names:
        status = None
        if name == killed:
            status = [container_status(component, restarts=1,
                                       last_terminated={"reason": "OOMKilled", "finished": at})]
        pods.append(make_pod(name, component, uid=name, containers=[(component, limit)], statuses=status))
    return pods


def _wait(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def watched_run(make_watcher: Any, fake_api: Any, options: RunOptions, killed: str | None,
                while_verifying: bool = False) -> RunResult:
    """One run whose components are watched on the stand-in; `killed`: the pod OOM-killed mid-load
    (or, `while_verifying`, after the load, once verification has begun)."""
    scenario, target_options = lifecycle.prepare(options)
    version = target_options.milvus_version
    began = time.time()
    run_id = options.run_id or f"{version}-{killed or 'healthy'}-{int(began * 1000)}"
    run_dir = RunDir.create(options.report_dir, run_id)
    write_json(run_dir.run_json, lifecycle.run_inputs(run_id, options, scenario, target_options, version, began))
    context = RunEvents(run_dir)
    recorder = Recorder(context, run_dir)
    with fake_api.lock:
        fake_api.pods = _cluster_pods()
    for pod in fake_api.pods:
        name, component = pod["metadata"]["name"], pod["metadata"]["labels"]["component"]
        fake_api.set_usage(name, component, "1Gi")
    watcher = make_watcher()
    try:
        watcher.start(context)
        _wait(lambda: {"streamingnode", "streamingnode-2", "datanode", "querynode", "proxy"} <= set(context.latest),
              "a sample of every pod")
        context.fire_event(component="harness", type=events.LOAD_STARTED, detail="scripted load")
        acks = []
        for k in range(4):  # acked before the kill (the API's timestamps are whole seconds)
            t = time.time() - 2 + k * 0.1
            acks.append({"t": t, "t_start": t - 0.5, "batch": k, "first_pk": k * ROWS,
                         "last_pk": (k + 1) * ROWS - 1, "rows": ROWS, "ok": True, "latency_ms": 500.0})
        run_dir.acks.write_text("".join(json.dumps(a) + "\n" for a in acks))
        def kill() -> None:
            with fake_api.lock:
                fake_api.pods = _cluster_pods(killed, at=time.time() + 1)  # whole seconds: after what came before
            _wait(lambda: any(e.type == events.OOM_KILLED for e in context.events), "the OOM kill")

        if killed is not None and not while_verifying:
            kill()
        context.fire_event(component="harness", type=events.LOAD_STOPPED, detail="scripted load ended")
        context.fire_event(component="harness", type=events.VERIFY_STARTED, detail="scripted check")
        if killed is not None and while_verifying:
            kill()
    finally:
        watcher.stop()
        recorder.close()
    verification = {"verified": 4 * ROWS, "lost": 0, "lost_batches": [],
                    "check": {"check": "rows", "why": "scripted", "estimate_bytes": None, "capacity_bytes": None}}
    return lifecycle.finalize_run(run_dir, run_id=run_id, scenario=scenario,
                                  facts={"target": target_options.target, "milvus_version": version},
                                  began=began, verification=verification)


def _options(tmp_path: Path, **overrides: str) -> RunOptions:
    return RunOptions(scenario="seed", overrides=dict(overrides), report_dir=tmp_path / "reports",
                      target=TargetOptions(target="kind", milvus_version="v2.6.15"))


def test_a_datanode_oom_with_the_streaming_nodes_under_test_is_inconclusive(make_watcher, fake_api, tmp_path):
    result = watched_run(make_watcher, fake_api, _options(tmp_path), killed="milvus-datanode-0")
    assert result.verdict is Verdict.INCONCLUSIVE and result.exit_code == 125
    reason = result.summary["reasons"][0]
    assert reason.startswith("datanode OOM-killed at ") and reason.endswith(
        " (not under test): the cluster, not the component under test, failed")
    assert len(result.summary["reasons"]) == 1  # its restart is the same failure, not a second one
    assert "datanode OOM-killed" in (result.run_dir / "report.md").read_text()


def test_a_streaming_node_oom_fails(make_watcher, fake_api, tmp_path):
    result = watched_run(make_watcher, fake_api, _options(tmp_path), killed="milvus-streamingnode-1")
    assert result.verdict is Verdict.FAIL and result.exit_code == 1
    assert result.summary["reasons"][0].startswith("streamingnode-2 OOM-killed at ")
    assert "after 200,000 acked rows" in result.summary["reasons"][0]


def test_with_every_component_under_test_a_datanode_oom_fails(make_watcher, fake_api, tmp_path):
    options = _options(tmp_path, **{"rules.under_test": "all"})
    result = watched_run(make_watcher, fake_api, options, killed="milvus-datanode-0")
    assert result.verdict is Verdict.FAIL and result.exit_code == 1
    assert result.summary["reasons"][0].startswith("datanode OOM-killed at ")
    assert "not under test" not in " ".join(result.summary["reasons"])


def test_a_healthy_run_passes(make_watcher, fake_api, tmp_path):
    result = watched_run(make_watcher, fake_api, _options(tmp_path), killed=None)
    assert result.verdict is Verdict.PASS, result.summary["reasons"]


def test_a_query_node_oom_while_verifying_is_seen_and_said(make_watcher, fake_api, tmp_path):
    result = watched_run(make_watcher, fake_api, _options(tmp_path), killed="milvus-querynode-0",
                         while_verifying=True)
    assert result.verdict is Verdict.INCONCLUSIVE and result.exit_code == 125
    reason = result.summary["reasons"][0]
    assert reason.startswith("querynode OOM-killed at ") and " during verification (not under test)" in reason
    # under test, the same kill FAILs and says when it happened
    result = watched_run(make_watcher, fake_api, _options(tmp_path, **{"rules.under_test": "querynode"}),
                         killed="milvus-querynode-0", while_verifying=True)
    assert result.verdict is Verdict.FAIL
    assert result.summary["reasons"][0].startswith("querynode OOM-killed at ")
    assert " during verification after 200,000 acked rows" in result.summary["reasons"][0]


TAGS = ["master-20250301-aaaaaaa1", "master-20250302-aaaaaaa2", "master-20250303-aaaaaaa3",
        "master-20250304-aaaaaaa4", "master-20250305-aaaaaaa5", "master-20250306-aaaaaaa6",
        "master-20250307-aaaaaaa7"]


@pytest.mark.parametrize("first_bad", [5, 4])
def test_bisect_steps_around_a_tag_whose_datanode_died(make_watcher, fake_api, tmp_path, monkeypatch, capsys,
                                                       first_bad):
    """Tags from `first_bad` on OOM a streaming node; the midpoint tag's datanode is OOM-killed
    instead. Away from the boundary the search steps around it; right before it, it cannot decide."""
    flaky = TAGS[3]
    ran: list[tuple[str, str]] = []

    def run(options: RunOptions, console: Any = None) -> RunResult:
        tag = options.target.milvus_version or ""
        killed = ("milvus-datanode-0" if tag == flaky
                  else "milvus-streamingnode-0" if tag >= TAGS[first_bad] else None)
        result = watched_run(make_watcher, fake_api, options, killed=killed)
        ran.append((tag, result.summary["verdict"]))
        return result

    monkeypatch.setattr(lifecycle, "run", run)
    versions = tmp_path / "tags.txt"
    versions.write_text("\n".join(TAGS) + "\n")
    code = main(["bisect", "--target", "kind", "--versions-file", str(versions), "--good", TAGS[0],
                 "--bad", TAGS[-1], "--report-dir", str(tmp_path / "reports"), "--id", "b"])
    out = capsys.readouterr().out
    assert (flaky, "INCONCLUSIVE") in ran, ran  # the search did reach the tag that could not decide
    summary = json.loads((tmp_path / "reports" / "bisect-b" / "summary.json").read_text())
    assert [s["version"] for s in summary["tested"] if s["verdict"] == "INCONCLUSIVE"] == [flaky]
    if first_bad == 5:
        assert code == 0, out
        assert f"first bad version: {TAGS[5]} (last good: {TAGS[4]})" in out
    else:
        assert code == 125, out
        assert f"could not be decided: {flaky} was INCONCLUSIVE" in out
