"""Faults on real embedded Milvus: injected kills and pauses, and the harness interrupted in
each phase (partial report, exit 130/143, nothing left running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.rundir import read_jsonl
from run_dirs import only_run
from waiting import wait_for

pytestmark = pytest.mark.milvus

#: With wait_s=1 a smoke load of this size runs about 40 s.
SLOW_LOAD_ROWS = 300_000


def _start(cli, report_dir: Path, *args: str) -> subprocess.Popen:
    return cli.start("run", "--report-dir", str(report_dir), *args)


def test_injected_kill_is_marked_apart_and_the_load_carries_on(tmp_path, milvus_version, harness_cli):
    # Paced (1 s between batches) so the load outlasts the ~20 s the restarted server needs
    # before flush works again: the row check after the restart runs while the load goes on.
    proc = _start(harness_cli, tmp_path, "--scenario", "smoke", "--set", f"total_rows={SLOW_LOAD_ROWS}", "--set", "wait_s=1",
                  "--inject", "kill@rows=60000", "--restart-backoff", "2s")
    out, err = proc.communicate(timeout=600)
    run_dir = only_run(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    events = list(read_jsonl(run_dir / "events.jsonl"))
    types = [e["type"] for e in events]
    assert "Injected" in types and "Restarted" in types and "OOMKilled" not in types
    exited = [e for e in events if e["type"] == "Exited"]
    assert exited and exited[0]["data"]["injected"] is True
    comp = summary["components"]["standalone"]
    assert comp["oom_kills"] == 0 and comp["injected_kills"] == 1 and comp["restarts"] == 1
    # the load went on after the kill: rows were acked after it, and no acked row was lost
    kill_t = next(e["t"] for e in events if e["type"] == "Injected")
    assert any(a["ok"] and a["t"] > kill_t for a in read_jsonl(run_dir / "acks.jsonl"))
    assert summary["rows"]["lost"] == 0 and summary["rows"]["verified"] == summary["rows"]["acked"]
    assert summary["verdict"] == "PASS" and proc.returncode == 0, out + err
    # Once the server answered again the load was paused and the rows counted against the acks.
    [check] = [e for e in events if e["type"] == "RowsChecked"]
    ready_again = [e for e in events if e["type"] == "Ready"][1]
    assert check["t"] > ready_again["t"] and check["data"]["after"]["injected"] is True
    assert check["data"]["missing"] == 0 and check["data"]["present"] >= check["data"]["acked"] > 0
    held = (check["t"] - check["data"]["held_s"] + 0.1, check["t"] - 0.1)  # flush and count, load held
    assert held[1] - held[0] > 0.3
    assert not [a for a in read_jsonl(run_dir / "acks.jsonl") if held[0] < a["t_start"] < held[1]
                or held[0] < a["t"] < held[1]]  # no insert began or ended while the harness held the load


def test_injected_pause_is_recorded_and_survived(tmp_path, milvus_version, harness_cli):
    # Paced (0.5 s between batches) so that the load is still going when the pause comes.
    proc = _start(harness_cli, tmp_path, "--scenario", "smoke", "--set", "wait_s=0.5", "--inject", "stop@3s:5s")
    out, err = proc.communicate(timeout=600)
    run_dir = only_run(tmp_path)
    injected = [e for e in read_jsonl(run_dir / "events.jsonl") if e["type"] == "Injected"]
    assert [e["data"]["action"] for e in injected] == ["stop", "cont"]
    stopped, resumed = injected[0]["t"], injected[1]["t"]
    assert resumed - stopped >= 5  # held for the whole pause
    # The server really was stopped: no insert was acknowledged while it was (1 s for an answer
    # sent just before SIGSTOP to be recorded), and an insert sent meanwhile waited for SIGCONT.
    acks = list(read_jsonl(run_dir / "acks.jsonl"))
    assert not [a for a in acks if a["ok"] and stopped + 1.0 < a["t"] < resumed]
    assert any(a["t_start"] < resumed <= a["t"] for a in acks)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["components"]["standalone"]["restarts"] == 0
    assert summary["rows"]["acked"] > 0 and summary["rows"]["lost"] == 0, out + err


@pytest.mark.parametrize("phase,sig,code", [
    ("start", signal.SIGTERM, 143),
    ("load", signal.SIGINT, 130),
    ("verify", signal.SIGINT, 130),
])
def test_interrupt_in_each_phase_leaves_a_partial_report_and_nothing_running(
        phase, sig, code, tmp_path, milvus_version, harness_cli):
    proc = _start(harness_cli, tmp_path, "--scenario", "smoke", "--set", "total_rows=400000")
    if phase == "start":
        wait_for(lambda: any(tmp_path.glob("*/run.json")))
    elif phase == "load":
        wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob("*/acks.jsonl")))
    else:
        wait_for(lambda: any(e["type"] == "LoadStopped" for p in tmp_path.glob("*/events.jsonl")
                              for e in read_jsonl(p)))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == code, out + err
    run_dir = only_run(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ABORTED" and summary["verdict"] == "ABORTED"
    # The interrupt landed in the phase the test names.
    types = [e["type"] for e in read_jsonl(run_dir / "events.jsonl")]
    if phase == "start":
        assert "LoadStarted" not in types and not list(read_jsonl(run_dir / "acks.jsonl"))
    elif phase == "load":
        assert "LoadStarted" in types and "LoadStopped" not in types
        assert 0 < summary["rows"]["acked"] < 400_000
    else:
        assert "LoadStopped" in types and summary["rows"]["verified"] is None, summary["rows"]
    assert (run_dir / "report.html").exists()
    assert "Traceback" not in err


def test_interrupt_during_install_removes_the_half_install(tmp_path, milvus_version, harness_cli):
    cache = tmp_path / "cache"
    env = {**os.environ, "MILVUS_HARNESS_CACHE": str(cache)}
    report_dir = tmp_path / "reports"
    proc = harness_cli.start("run", "--milvus-version", milvus_version, "--report-dir", str(report_dir), env=env)
    wait_for(lambda: (cache / "milvus" / milvus_version).exists(), timeout=120)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert not (cache / "milvus" / milvus_version / "install.json").exists()
    assert not (cache / "milvus" / milvus_version).exists()  # no half install left to trust later
    summary = json.loads((only_run(report_dir) / "summary.json").read_text())
    assert summary["status"] == "ABORTED"


def test_watcher_survives_read_errors_and_marks_the_gap(tmp_path, milvus_version, no_leftovers, monkeypatch):
    """The cgroup's usage file fails to read for 3 s mid-load (EIO): the watcher keeps sampling,
    marks the gap (samples without memory, one WatchGap event) and the run goes on to PASS."""
    import errno
    import io

    from rich.console import Console

    from harness.targets.cgroup import MemoryCgroup
    from harness.run.lifecycle import RunOptions, run
    from harness.targets.protocol import TargetOptions

    real_usage = MemoryCgroup.usage_bytes
    window: dict[str, float] = {}

    def flaky_usage(self: MemoryCgroup) -> int:
        begins = window.get("begins")
        if begins is not None and begins <= time.time() < begins + 3.0:
            raise OSError(errno.EIO, "Input/output error")
        return real_usage(self)

    def gap_once_loading(event) -> None:  # the window opens 1 s into the load
        if event.type == "LoadStarted":
            window.setdefault("begins", event.t + 1.0)

    monkeypatch.setattr(MemoryCgroup, "usage_bytes", flaky_usage)
    # Paced so that the load (when the watcher samples) outlasts the 3 s gap by several seconds.
    result = run(RunOptions(scenario="smoke", overrides={"wait_s": "0.5"}, report_dir=tmp_path,
                            target=TargetOptions(milvus_version=milvus_version, watch_interval=0.5)),
                 console=Console(file=io.StringIO()),
                 on_context=lambda context: context.on_event(gap_once_loading))
    run_dir = result.run_dir
    if result.summary.get("isolation") == "watchdog":
        pytest.skip("no memory cgroup here: the watcher reads RSS instead")
    samples = list(read_jsonl(run_dir / "samples.jsonl"))
    in_gap = [s for s in samples if window["begins"] <= s["t"] < window["begins"] + 3.0]
    after = [s for s in samples if s["t"] >= window["begins"] + 3.5]
    assert len(in_gap) >= 4 and all(s["memory_bytes"] is None for s in in_gap)
    assert after and all(s["memory_bytes"] for s in after)  # sampling resumed on its own
    gaps = [e for e in read_jsonl(run_dir / "events.jsonl") if e["type"] == "WatchGap"]
    assert len(gaps) == 1 and "Input/output error" in gaps[0]["detail"]
    assert result.summary["components"]["standalone"]["watch_gaps"] == 1
    assert result.summary["verdict"] == "PASS" and (run_dir / "report.html").exists()


def test_sigterm_while_the_report_renders_aborts_with_a_partial_report(tmp_path, milvus_version, no_leftovers,
                                                                      monkeypatch):
    """The last phase: SIGTERM arrives while the charts are drawn. The run is ABORTED (143) and
    keeps what it had judged; the pages are written without charts."""
    import io

    from rich.console import Console

    import harness.report
    from harness.run.lifecycle import RunOptions, run
    from harness.targets.protocol import TargetOptions

    draw_charts = harness.report.build_charts
    signalled: list[bool] = []

    def sigterm_then_draw(report):
        if not signalled:
            signalled.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return draw_charts(report)

    monkeypatch.setattr(harness.report, "build_charts", sigterm_then_draw)
    result = run(RunOptions(scenario="smoke", overrides={"total_rows": "50000"}, report_dir=tmp_path,
                            target=TargetOptions(milvus_version=milvus_version)),
                 console=Console(file=io.StringIO()))
    assert signalled and result.status == "ABORTED" and result.exit_code == 143
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "ABORTED" and summary["judged_verdict"] == "PASS"
    assert "interrupted while its report was rendered" in summary["reasons"][0]
    assert (result.run_dir / "report.html").exists() and (result.run_dir / "report.md").exists()
    assert not (result.run_dir / "memory.png").exists()  # the partial pages have no charts


def _delete_pks(address: str, collection: str, pks: range) -> None:
    """Make acked rows disappear through Milvus itself, the way a lost WAL would show."""
    from harness.milvus_client import MilvusAdmin

    with MilvusAdmin(address, timeout=30) as admin:
        admin.client.delete(collection, filter="id in [%s]" % ",".join(map(str, pks)))


def test_rows_gone_after_an_oom_kill_are_charged_to_it_and_match_a_direct_count(tmp_path, milvus_version,
                                                                                no_leftovers, direct_count):
    """A real OOM kill (the kernel's, under oom@ pressure in the server's cgroup: quicker in CI
    than the seed's own growth at 2 GiB, judged the same); the run stops at it. Once the server
    is back for the end check, batch 1 is deleted. The harness must count it lost, charge it to
    the OOM kill, and agree with a direct count(*) of every acked range."""
    import io

    from rich.console import Console

    from harness.run.lifecycle import RunOptions, run
    from harness.targets.protocol import TargetOptions

    direct_count.before = lambda address, coll: _delete_pks(address, coll, range(10_000, 20_000))
    result = run(RunOptions(scenario="smoke", inject=["oom@rows=60000"], report_dir=tmp_path,
                            overrides={"total_rows": "400000"},
                            target=TargetOptions(milvus_version=milvus_version, memory_limit=2**30)),
                 console=Console(file=io.StringIO()))
    rows, summary = result.summary["rows"], result.summary
    assert summary["first_oom"] and summary["components"]["standalone"]["oom_kills"] >= 1
    assert 60_000 <= rows["acked"] < 400_000 and rows["lost"] == 10_000 and rows["lost_batches"] == [1]
    assert rows["verified"] == sum(direct_count.present()) == rows["acked"] - 10_000
    [group] = rows["lost_after"]
    assert group["death"]["type"] == "OOMKilled" and group["rows"] == 10_000
    assert any(r.startswith("1 batch, 10,000 acked rows missing after the standalone OOM kill at ")
               for r in summary["reasons"]) and result.exit_code == 1


def test_rows_gone_after_a_kill_are_reported_per_batch_and_match_a_direct_count(tmp_path, milvus_version,
                                                                                 no_leftovers, direct_count):
    """After an injected kill the test deletes one acked batch through Milvus itself (the way a
    lost WAL would show), then lets the run finish. The harness must name that batch, charge it
    to the kill, FAIL, and its figures must match what a direct count(*) finds."""
    import io

    from rich.console import Console

    from harness.run.lifecycle import RunOptions, run
    from harness.targets.protocol import TargetOptions

    seen: dict = {}

    def delete_batch_0_once_back(event) -> None:
        if event.type == "Ready" and "address" in event.data:
            seen["address"] = event.data["address"]
        elif event.type == "Ready" and "deleted" not in seen:  # the Ready after the kill
            _delete_pks(seen["address"], "harness_smoke", range(10_000))
            seen["deleted"] = True

    result = run(RunOptions(scenario="smoke", inject=["kill@rows=60000"], report_dir=tmp_path,
                            overrides={"total_rows": "150000", "wait_s": "1"},
                            target=TargetOptions(milvus_version=milvus_version, restart_backoff=2.0)),
                 console=Console(file=io.StringIO()),
                 on_context=lambda context: context.on_event(delete_batch_0_once_back))
    rows = result.summary["rows"]
    assert seen.get("deleted") and result.summary["verdict"] == "FAIL" and result.exit_code == 1
    assert rows["lost"] == 10_000 and rows["lost_batches"] == [0]
    assert rows["verified"] == sum(direct_count.present()) == rows["acked"] - 10_000
    [group] = rows["lost_after"]
    assert group["batches"] == [0] and group["death"]["injected"] is True
    assert "1 batch, 10,000 acked rows missing after the standalone injected kill at" in result.summary["reasons"][0]
