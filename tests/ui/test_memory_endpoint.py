"""The memory tab's JSON on its own: its shape, and numbers equal to the run directory's files.

RunView (what /memory serves) over checked-in run directories; the control channel over HTTP
and an idle session's answer; and, with real embedded Milvus, /harness/memory through Locust's web app (behind
--web-auth) while a run loads, then its report link once it is stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from harness.profiles import store
from harness.rundir import read_jsonl
from harness.run.lifecycle import RunOptions
from harness.errors import UsageError
from harness.webui.control import ControlChannel
from harness.webui.options import WebOptions
from harness.webui.run_view import RunView
from harness.webui.session import UiSession
from run_dirs import FIXTURES, copy_fixture, write_run_dir

RUN_KEYS = {"run_id", "run_dir", "scenario", "target", "started", "load_started", "load_stopped", "stop_reason",
            "rows", "acked", "components", "events", "verdict", "report"}
COMPONENT_KEYS = {"samples", "count", "latest", "peak_memory_bytes", "limit_bytes", "restarts", "oom_kills"}


def _as_served(sample: dict) -> dict:
    """A samples.jsonl line as the endpoint serves it: grouped by component, without metrics."""
    return {k: v for k, v in sample.items() if k not in ("component", "metrics")}


def _file_samples(run_dir: Path, component: str) -> list[dict]:
    return [_as_served(s) for s in read_jsonl(run_dir / "samples.jsonl") if s["component"] == component]


def test_a_judged_run_is_served_as_its_files_say():
    run_dir = FIXTURES / "oom-kill"
    snapshot = RunView(run_dir).snapshot()
    json.dumps(snapshot)  # plain JSON all through
    assert set(snapshot) == RUN_KEYS
    assert snapshot["run_id"] == "oom-kill"
    samples = list(read_jsonl(run_dir / "samples.jsonl"))
    assert set(snapshot["components"]) == {s["component"] for s in samples}
    for name, component in snapshot["components"].items():
        assert set(component) == COMPONENT_KEYS
        expected = _file_samples(run_dir, name)
        assert component["samples"] == expected  # every number, in file order
        assert component["count"] == len(expected) and component["latest"] == expected[-1]
        assert component["peak_memory_bytes"] == max(s["memory_bytes"] for s in expected)
        assert component["limit_bytes"] == expected[-1]["limit_bytes"]
    summary = json.loads((run_dir / "summary.json").read_text())
    standalone = snapshot["components"]["standalone"]
    assert standalone["oom_kills"] == summary["components"]["standalone"]["oom_kills"] == 1
    assert standalone["restarts"] == summary["components"]["standalone"]["restarts"]
    assert snapshot["rows"]["acked"] == summary["rows"]["acked"]
    assert snapshot["rows"]["planned"] == summary["rows"]["planned"]
    acked = [a for a in read_jsonl(run_dir / "acks.jsonl") if a["ok"]]
    assert [t for t, _rows in snapshot["acked"]] == sorted(a["t"] for a in acked)
    assert snapshot["acked"][-1][1] == sum(a["rows"] for a in acked)
    assert [e["type"] for e in snapshot["events"]] == [e["type"] for e in read_jsonl(run_dir / "events.jsonl")]
    assert snapshot["verdict"] == {"value": "FAIL", "final": True, "reasons": summary["reasons"], "status": "FINISHED"}
    assert snapshot["report"]["summary"] == "oom-kill/summary.json"
    assert snapshot["stop_reason"] == "stop on the first OOM kill"


def test_since_serves_only_newer_samples():
    run_dir = FIXTURES / "pass"
    everything = RunView(run_dir).snapshot()["components"]["standalone"]["samples"]
    cut = everything[len(everything) // 2]["t"]
    newer = RunView(run_dir).snapshot(since=cut)["components"]["standalone"]
    assert newer["samples"] == [s for s in everything if s["t"] > cut] and newer["samples"]
    assert newer["count"] == len(everything)  # the figures still cover the whole run


def test_a_live_run_grows_line_by_line_and_is_judged_so_far(tmp_path):
    run_dir = copy_fixture("oom-kill", tmp_path)
    (run_dir / "summary.json").unlink()  # not judged yet: the rules on the figures so far
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "samples.jsonl").write_text("".join(lines[:5]))
    view = RunView(run_dir)
    first = view.snapshot()
    assert first["components"]["standalone"]["count"] == 5 and first["report"] is None
    verdict = first["verdict"]
    assert verdict["value"] == "FAIL" and verdict["final"] is False
    assert any("OOM-killed" in reason for reason in verdict["reasons"])
    with (run_dir / "samples.jsonl").open("a") as handle:
        handle.write("".join(lines[5:8]))
        handle.write(lines[8][:20])  # a torn line (being written) is not served
    second = view.snapshot(since=first["components"]["standalone"]["latest"]["t"])
    assert second["components"]["standalone"]["samples"] == [_as_served(json.loads(x)) for x in lines[5:8]]


def test_a_run_without_an_acked_insert_has_no_verdict_yet(tmp_path):
    run_dir = write_run_dir(tmp_path / "fresh", run=json.loads((FIXTURES / "pass" / "run.json").read_text()))
    snapshot = RunView(run_dir).snapshot()
    assert snapshot["verdict"]["value"] is None and snapshot["components"] == {}
    assert snapshot["rows"]["acked"] == 0 and snapshot["scenario"]["name"]


class _OneRunApi:
    """A ControlApi that serves one run directory, as a UI session does once its run is stopped."""

    token = "s3cret-token"

    def __init__(self, run_dir: Path) -> None:
        self.view = RunView(run_dir)

    def state(self) -> dict:
        return {"phase": "ready", "run_id": self.view.run_id, "active": False, "stop_request": None}

    def memory(self, since=None) -> dict:
        return {"run": self.view.snapshot(since)}

    def start_run(self, fields, users) -> dict:
        raise UsageError(f"no runs here ({fields})")

    def stop_run(self, run_id, reason) -> dict:
        return {"phase": "ready", "stopped": run_id, "reason": reason}


def test_the_control_channel_serves_it_with_its_token():
    channel = ControlChannel(_OneRunApi(FIXTURES / "oom-kill"))
    url, token = channel.url, {"X-Harness-Token": _OneRunApi.token}
    try:
        assert requests.get(url + "/memory").status_code == 403
        assert requests.get(url + "/memory", headers={"X-Harness-Token": "guess"}).status_code == 403
        assert requests.post(url + "/runs/oom-kill/stop", json={}).status_code == 403
        answer = requests.get(url + "/memory", headers=token)
        assert answer.status_code == 200
        run = answer.json()["run"]
        assert run["run_id"] == "oom-kill"
        assert run["components"]["standalone"]["samples"] == _file_samples(FIXTURES / "oom-kill", "standalone")
        cut = run["components"]["standalone"]["samples"][3]["t"]
        newer = requests.get(url + f"/memory?since={cut!r}", headers=token).json()["run"]
        assert all(s["t"] > cut for s in newer["components"]["standalone"]["samples"])
        assert requests.get(url + "/state", headers=token).json()["run_id"] == "oom-kill"
        assert requests.get(url + "/memory?since=soon", headers=token).status_code == 400
        assert requests.get(url + "/nowhere", headers=token).status_code == 404
        refused = requests.post(url + "/runs", json={"fields": {"shards": "x"}}, headers=token)
        assert refused.status_code == 400 and "no runs here" in refused.json()["error"]
        stopped = requests.post(url + "/runs/oom-kill/stop", json={"reason": "the Stop button"}, headers=token)
        assert stopped.status_code == 202 and stopped.json()["stopped"] == "oom-kill"
        assert stopped.json()["reason"] == "the Stop button"
    finally:
        channel.close()


def test_an_idle_session_serves_its_scenario_and_target(tmp_path):
    session = UiSession(RunOptions(scenario="smoke", report_dir=tmp_path), WebOptions(), console=None)
    try:
        body = session.memory()
        json.dumps(body)
        assert {"schema_version", "now", "phase", "message", "target", "scenario", "latest", "run", "runs"} <= set(body)
        assert body["scenario"]["name"] == "smoke" and body["run"] is None and body["runs"] == []
        assert session.state() == {"phase": "starting milvus", "message": "", "run_id": None, "active": False,
                                   "stop_request": None}
    finally:
        session.close(0)
    assert not list(tmp_path.iterdir())  # an idle session made no run directory


# --- live, through Locust's web app -------------------------------------------------------------


def _swarm(server, auth, **fields) -> dict:
    form = {"user_count": "1", "spawn_rate": "1", "host": "", "total_rows": "200000", "batch_rows": "10000",
            "shards": "1", "partitions": "4", **fields}
    return requests.post(server.url + "/swarm", data=form, auth=auth, timeout=300).json()


def _memory(server, auth, since=None) -> dict:
    params = {"since": repr(since)} if since is not None else {}
    answer = requests.get(server.url + "/harness/memory", params=params, auth=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.ui
@pytest.mark.milvus
def test_live_numbers_through_the_web_ui_equal_samples_jsonl(no_leftovers, milvus_version, ui_server):
    server = ui_server("--scenario", "smoke", "--milvus-version", milvus_version, "--web-auth", "tester:s3cret")
    assert "warning" not in server.stderr()  # loopback, and a password besides
    for path in ("/", "/harness/memory", "/harness/static/memory.js", "/stats/requests"):
        assert requests.get(server.url + path, timeout=10).status_code == 401, path
    assert requests.get(server.url + "/", auth=("tester", "wrong"), timeout=10).status_code == 401
    auth = ("tester", "s3cret")
    page = requests.get(server.url + "/", auth=auth, timeout=10).text
    assert "harness/static/memory.js" in page and "milvus_memory" in page

    idle = _memory(server, auth)
    assert idle["run"] is None and idle["phase"] == "ready"
    assert idle["target"]["memory_limit_bytes"] == 4 * 2**30 and idle["target"]["milvus_version"] == milvus_version

    refused = _swarm(server, auth, total_rows="lots")
    assert refused["success"] is False and "total_rows='lots' is not a valid int" in refused["message"]
    assert not server.runs()

    assert _swarm(server, auth, total_rows="3000000")["success"] is True
    deadline = time.monotonic() + 90
    body = _memory(server, auth)
    while not (body["run"] and body["run"]["components"].get("standalone", {}).get("count", 0) >= 6):
        assert time.monotonic() < deadline, body
        time.sleep(1)
        body = _memory(server, auth)
    run = body["run"]
    run_dir = Path(run["run_dir"])
    served = run["components"]["standalone"]["samples"]
    in_file = _file_samples(run_dir, "standalone")
    assert served == in_file[:len(served)]  # the file may have grown since; never differs
    assert run["target"]["memory_limit_bytes"] == 4 * 2**30 and run["target"]["isolation"]
    assert run["scenario"]["total_rows"] == 3_000_000 and run["verdict"]["final"] is False
    assert run["rows"]["acked"] <= sum(a["rows"] for a in read_jsonl(run_dir / "acks.jsonl") if a["ok"])
    cut = served[2]["t"]
    newer = _memory(server, auth, since=cut)["run"]["components"]["standalone"]["samples"]
    assert newer and all(s["t"] > cut for s in newer)
    assert newer == _file_samples(run_dir, "standalone")[3:3 + len(newer)]

    assert requests.post(server.url + "/stop", auth=auth, timeout=180).json()["success"] is True
    deadline = time.monotonic() + 180
    while not (body["run"]["verdict"]["final"] and "html" in body["run"]["report_urls"]):
        assert time.monotonic() < deadline, body["phase"]
        time.sleep(1)
        body = _memory(server, auth)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert body["run"]["verdict"]["value"] == summary["verdict"] == "PASS"
    assert body["run"]["rows"]["acked"] == summary["rows"]["acked"]
    final_samples = _file_samples(run_dir, "standalone")
    assert _memory(server, auth)["run"]["components"]["standalone"]["samples"] == final_samples
    report = body["run"]["report_urls"]["html"]
    assert requests.get(server.url + "/" + report.lstrip("./"), timeout=10).status_code == 401
    answer = requests.get(server.url + "/" + report.lstrip("./"), auth=auth, timeout=10)
    assert answer.status_code == 200 and run["run_id"] in answer.text
    assert body["runs"][0]["run_id"] == run["run_id"] and body["runs"][0]["verdict"] == "PASS"



def _wait_memory(server, auth, until, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    body = _memory(server, auth)
    while not until(body):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {body['phase']}"
        time.sleep(1)
        body = _memory(server, auth)
    return body


@pytest.mark.ui
@pytest.mark.milvus
def test_the_first_oom_kill_stops_the_load_and_fails_the_run(no_leftovers, milvus_version, ui_server):
    # 10 samples a second: at 1 Hz memory once went from 65 % to the kill between two samples,
    # so no sample saw 80 % (a capture needs a sample past it).
    server = ui_server("--scenario", "smoke", "--milvus-version", milvus_version, "--memory-limit", "512MiB",
                       "--watch-interval", "0.1s")
    assert _swarm(server, None, total_rows="3000000")["success"] is True
    body = _wait_memory(server, None, lambda b: b["run"] and "html" in (b["run"].get("report_urls") or {}), 300,
                        "the stop rule and the report")
    run = body["run"]
    summary = json.loads((Path(run["run_dir"]) / "summary.json").read_text())
    assert run["verdict"]["value"] == summary["verdict"] == "FAIL"
    assert "OOM-killed" in summary["reasons"][0]
    assert run["stop_reason"].startswith("stopped at the first OOMKilled")
    assert run["components"]["standalone"]["oom_kills"] == 1
    assert summary["rows"]["acked"] < 3_000_000 and summary["rows"]["verified"] == summary["rows"]["acked"]
    # Heap profiles on the way up, as `run` takes them; none at the end of a load that killed the server.
    labels = {c.label for c in store.captures(Path(run["run_dir"]))}
    assert {"50", "80"} <= labels and "end" not in labels, labels
    assert 'id="allocation-sites"' in (Path(run["run_dir"]) / "report.html").read_text()
    # Locust stopped the test itself, when the harness asked.
    stats = requests.get(server.url + "/stats/requests", timeout=10).json()
    assert stats["state"] == "stopped"


@pytest.mark.ui
@pytest.mark.milvus
def test_ctrl_c_during_a_run_writes_its_partial_report_and_leaves_nothing(no_leftovers, milvus_version, ui_server):
    server = ui_server("--scenario", "smoke", "--milvus-version", milvus_version)
    assert _swarm(server, None, total_rows="3000000")["success"] is True
    body = _wait_memory(server, None, lambda b: b["run"] and b["run"]["rows"]["acked"] > 0, 90, "rows acked")
    assert server.interrupt() == 0, server.stdout() + server.stderr()
    assert not server.alive_descendants()
    summary = json.loads((Path(body["run"]["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "ABORTED" and summary["verdict"] == "ABORTED"
    assert summary["rows"]["acked"] > 0
    assert (Path(body["run"]["run_dir"]) / "report.html").exists()
    assert "interrupted" in server.stdout() and "nothing left running" in server.stdout()
