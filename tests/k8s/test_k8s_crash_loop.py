"""A pod that crash-loops while not Ready, replayed through the real kubernetes client: each
death at its own finishedAt, then the run's crash-loop rule stops the load and fails it, as
on the embedded target."""

from __future__ import annotations

import json
import time

from harness.judge.summary import compute
from harness.judge.verdict import Verdict, judge
from harness.run.lifecycle import stop_rule
from harness.run.recovery import CrashLoopDetector
from harness.rundir import RunDir
from harness.scenario import model as scenarios
from harness.watch import events
from harness.watch.events import Recorder, RunEvents
from harness.watch.kubernetes import CRASH_LOOP_BACK_OFF
from k8s_fakes import container_status, make_pod

ACKED = 350_000
BACK_OFF = ("CrashLoopBackOff", "back-off 40s restarting failed container=streamingnode")


def _pod(status: dict, ready: bool) -> dict:
    return make_pod("milvus-streamingnode-0", "streamingnode", uid="sn-0", statuses=[status], ready=ready)


def test_a_pod_crash_looping_while_not_ready_ends_the_run_with_fail(fake_api, make_watcher, tmp_path):
    run_dir = RunDir.create(tmp_path, "k8s-crash-loop")
    context = RunEvents(run_dir)
    recorder = Recorder(context, run_dir)
    detector = CrashLoopDetector(context, acked_rows=lambda: ACKED)
    stop_events: list = []
    context.on_event(lambda e: stop_events.append(e) if e.type in (events.OOM_KILLED, events.EXITED) else None)
    seed = scenarios.load("seed")
    with run_dir.acks.open("w") as acks:  # the rows acked before the first kill
        for k in range(ACKED // seed.batch_rows):
            acks.write(json.dumps({"t": time.time() - 300, "t_start": time.time() - 301, "batch": k,
                                   "first_pk": k * seed.batch_rows, "last_pk": (k + 1) * seed.batch_rows - 1,
                                   "rows": seed.batch_rows, "ok": True, "latency_ms": 900.0}) + "\n")
    context.fire_event(component="harness", type=events.LOAD_STARTED, detail="1 user", t=time.time() - 310)

    fake_api.pods = [_pod(container_status("streamingnode"), ready=True)]
    watcher = make_watcher()
    assert watcher.poll_once(context)

    base = int(time.time()) - 200
    killed = [base, base + 32, base + 80, base + 140]  # the first under load, then while recovering
    started = [None, base + 12, base + 60, base + 121]
    # Kubelet's view, poll by poll: killed, backing off, running again but not Ready, killed ...
    for i, at in enumerate(killed):
        term = {"reason": "OOMKilled", "exit_code": 137, "finished": at, "container_id": f"c{i}",
                "started": started[i] if started[i] is not None else at - 600}
        fake_api.pods = [_pod(container_status("streamingnode", restarts=i, terminated=term), ready=False)]
        assert watcher.poll_once()
        fake_api.pods = [_pod(container_status("streamingnode", restarts=i + 1, waiting=BACK_OFF,
                                               last_terminated=term), ready=False)]
        assert watcher.poll_once()
        if i + 1 < len(started):
            fake_api.pods = [_pod(container_status("streamingnode", restarts=i + 1, started=started[i + 1],
                                                   last_terminated=term, ready=False), ready=False)]
            assert watcher.poll_once()
    watcher.stop()

    ooms = [e for e in context.events if e.type == events.OOM_KILLED]
    assert [e.t for e in ooms] == killed  # each at its own finishedAt, not when it was seen
    assert len([e for e in context.events if e.type == CRASH_LOOP_BACK_OFF]) == 4
    assert not [e for e in context.events if e.type == events.READY]
    loops = [e for e in context.events if e.type == events.CRASH_LOOP]
    assert len(loops) == 1 and loops[0].t >= ooms[3].t and loops[0].component == "streamingnode"
    # The run stops on it even with --keep-going, as the run loop does.
    reason = stop_rule(stop_events, keep_going=True, restart="always") or detector.reason
    assert reason == ("streamingnode crash-looping: OOM-killed 3 times while recovering (each within ~20 s of "
                      "restart), never ready again after 350,000 acked rows")
    context.fire_event(component="harness", type=events.LOAD_STOPPED, detail=reason)
    recorder.close()

    summary = compute(run_dir, run_id="k8s-crash-loop", facts={"target": "kind"}, scenario=seed.to_json(),
                      started=time.time() - 320, ended=time.time(), verification={"verified": ACKED, "lost": 0},
                      status="FINISHED", time_to_verdict=None)
    verdict, reasons, rules = judge(seed.rules, summary, [e.to_json() for e in context.events])
    assert verdict is Verdict.FAIL and reasons[0] == reason
    assert [r["outcome"] for r in summary["recoveries"]] == ["OOMKilled", "OOMKilled", "OOMKilled", "unfinished"]
