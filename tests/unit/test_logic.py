"""Pieces of the run that need no server: config rendering, stall detection, the dispenser,
the verdict rules, the summary figures."""

import json
import time

import pytest

from harness.errors import UsageError
from harness.load.dispenser import WAIT, Dispenser, LoadPause
from harness.rundir import RunDir
from harness.scenario.model import Rules
from harness.judge.summary import compute, lost_after_deaths, memory_growth
from harness.targets.embedded import parse_config_overrides, render_config
from harness.judge.verdict import Verdict, judge
from harness.run.lifecycle import stop_rule
from harness.watch.events import Event, RunContext, Sample
from harness.watch.stall import StallDetector

TEMPLATE = """
etcd:
  endpoints: localhost:{{ etcd_port(int): 2379 }}
  data:
    dir: {{ etcd_data_dir }}
dataNode:
  memory:
    forceSyncEnable: true
proxy:
  port: {{ proxy_port(int): 19530 }}
"""


def test_render_config_fills_ports_and_applies_overrides():
    import yaml

    text = render_config(TEMPLATE, {"etcd_port": 1234, "etcd_data_dir": "/x"},
                         parse_config_overrides({"dataNode.memory.forceSyncWatermark": "0.1"}),
                         internal={"etcd.config.path": "/e.yaml"})
    config = yaml.safe_load(text)
    assert config["etcd"]["endpoints"] == "localhost:1234"
    assert config["proxy"]["port"] == 19530  # default kept
    assert config["dataNode"]["memory"]["forceSyncWatermark"] == 0.1
    assert config["etcd"]["config"]["path"] == "/e.yaml"


def test_render_config_refuses_an_unknown_section():
    with pytest.raises(UsageError, match="dataNod"):
        render_config(TEMPLATE, {}, parse_config_overrides({"dataNod.memory.x": "1"}))
    with pytest.raises(UsageError, match="dotted"):
        parse_config_overrides({"a..b": "1"})


def _sample(t, memory, limit=1000):
    return Sample(t=t, component="standalone", memory_bytes=memory, limit_bytes=limit, restarts=0, source="test")


def test_stall_needs_the_limit_and_no_progress():
    ctx = RunContext()
    rows = [0]
    StallDetector(ctx, lambda: rows[0], seconds=5)
    for t in range(10):  # at the limit but rows keep arriving: no stall
        rows[0] += 1
        ctx.fire_sample(_sample(t, 990))
    assert not ctx.events
    for t in range(10, 20):  # below the limit, no progress: no stall
        ctx.fire_sample(_sample(t, 500))
    assert not ctx.events
    for t in range(20, 30):  # at the limit and stuck: one stall
        ctx.fire_sample(_sample(t, 995))
    assert [e.type for e in ctx.events] == ["MemoryStall"]
    assert ctx.events[0].t == 25


def test_no_stall_while_the_harness_holds_the_load():
    ctx = RunContext()
    paused = [True]
    StallDetector(ctx, lambda: 0, seconds=5, paused=lambda: paused[0])
    for t in range(10):  # at the limit with no progress, but paused for a row check
        ctx.fire_sample(_sample(t, 995))
    assert not ctx.events
    paused[0] = False
    for t in range(10, 20):
        ctx.fire_sample(_sample(t, 995))
    assert [e.t for e in ctx.events] == [15]


def test_dispenser_hands_out_each_batch_once_and_retries_unreached():
    drained = []
    d = Dispenser(4, lambda: drained.append(True))
    got = [d.lease(), d.lease()]
    d.settle(got[0])
    d.settle(got[1], retry=True)  # never reached the server: goes back to the front
    assert d.lease() == got[1]
    rest = [d.lease(), d.lease()]
    assert d.lease() is None
    for k in [got[1], *rest]:
        d.settle(k)
    assert sorted([got[0], got[1], *rest]) == [0, 1, 2, 3] and drained == [True]


def test_a_paused_dispenser_hands_out_nothing_and_reports_idle_once_nothing_is_in_flight(tmp_path):
    pause = LoadPause.in_dir(tmp_path)
    d = Dispenser(4, lambda: None, pause=pause)
    first = d.lease()
    pause.request()
    assert d.lease() == WAIT and not pause.wait_idle(0.2)  # batch `first` is still in flight
    d.settle(first)
    assert d.lease() == WAIT and pause.wait_idle(0.2)
    pause.release()
    assert d.lease() == 1 and not pause.idle_path.exists()


def _summary(acked=1000, lost=0, verified=1000, restarts=0, peak=500, limit=1000, p50=100.0):
    return {"rows": {"acked": acked, "lost": lost, "verified": verified, "lost_batches": [3] if lost else []},
            "components": {"standalone": {"peak_memory_bytes": peak, "limit_bytes": limit, "restarts": restarts}},
            "first_oom": None, "inserts": {"failures": 0, "rows_per_s": 10.0, "latency_ms": {"p50": p50, "p95": p50}}}


def test_judge():
    assert judge(Rules(), _summary(), [])[0] is Verdict.PASS
    assert judge(Rules(), _summary(acked=0), [])[0] is Verdict.INCONCLUSIVE
    verdict, reasons, _ = judge(Rules(), _summary(lost=50, verified=950), [])
    assert verdict is Verdict.FAIL
    assert reasons[0] == "1 batch, 50 acked rows missing though nothing died after they were acked (batch 3)"
    oom = {"t": 0, "component": "standalone", "type": "OOMKilled", "detail": ""}
    s = _summary(restarts=1)
    s["first_oom"] = {"rows_acked_before": 650_000}
    verdict, reasons, _ = judge(Rules(), s, [oom])
    assert verdict is Verdict.FAIL and "after 650,000 acked rows" in reasons[0]
    assert judge(Rules(fail_on_oom=False, fail_on_restart=False), s, [oom])[0] is Verdict.PASS
    assert judge(Rules(max_insert_p50_ms=50), _summary(), [])[0] is Verdict.FAIL
    assert judge(Rules(max_peak_memory_fraction=0.4), _summary(), [])[0] is Verdict.FAIL
    assert judge(Rules(max_peak_memory_fraction=0.6), _summary(), [])[0] is Verdict.PASS


def test_summary_counts_retried_batches_once(tmp_path):
    run_dir = RunDir.create(tmp_path, "r")
    acks = [
        {"t": 10, "t_start": 9, "batch": 0, "first_pk": 0, "last_pk": 9, "rows": 10, "ok": True, "latency_ms": 5},
        {"t": 11, "t_start": 10, "batch": 1, "first_pk": 10, "last_pk": 19, "rows": 10, "ok": False,
         "latency_ms": 1, "error": "UNAVAILABLE", "retry": True},
        {"t": 13, "t_start": 12, "batch": 1, "first_pk": 10, "last_pk": 19, "rows": 10, "ok": True, "latency_ms": 7},
    ]
    run_dir.acks.write_text("".join(json.dumps(a) + "\n" for a in acks))
    run_dir.events.write_text(json.dumps({"t": 8, "component": "harness", "type": "LoadStarted", "detail": ""}) + "\n")
    s = compute(run_dir, run_id="r", facts={}, scenario={"name": "x", "total_rows": 20}, started=0, ended=20,
                verification={"verified": 20, "lost": 0}, status="FINISHED", time_to_verdict=14)
    assert s["rows"]["acked"] == 20 and s["rows"]["failed"] == 0
    assert s["inserts"]["count"] == 3 and s["inserts"]["failures"] == 1
    assert s["inserts"]["rows_per_s"] == 4.0  # 20 rows between load start (8) and last ack (13)


def test_memory_growth_is_the_slope_per_100k_rows():
    acks = [{"t": float(t), "rows": 100_000, "ok": True} for t in range(1, 6)]
    samples = [{"t": t + 0.5, "memory_bytes": 1_000_000_000 + 400_000_000 * t} for t in range(1, 5)]
    assert memory_growth(samples, acks, None) == pytest.approx(400.0)


def test_lost_batches_are_charged_to_the_first_death_after_their_ack():
    acks = [{"batch": k, "t": 10.0 + k, "rows": 50_000, "ok": True} for k in range(6)]
    oom = {"t": 12.5, "component": "standalone", "type": "OOMKilled"}
    injected = {"t": 14.5, "component": "standalone", "type": "Exited", "data": {"injected": True}}
    groups = lost_after_deaths({0: 50_000, 1: 50_000, 2: 50_000, 4: 20_000, 5: 50_000}, acks, [injected, oom])
    assert [(g["death"] and g["death"]["t"], g["batches"], g["rows"]) for g in groups] == [
        (12.5, [0, 1, 2], 150_000), (14.5, [4], 20_000), (None, [5], 50_000)]
    summary = _summary(acked=300_000, lost=220_000, verified=80_000)
    summary["rows"]["lost_after"] = groups
    verdict, reasons, _ = judge(Rules(fail_on_oom=False, fail_on_restart=False), summary, [oom, injected])
    clock = time.strftime("%H:%M:%S", time.localtime(12.5))
    assert verdict is Verdict.FAIL and reasons == [
        f"3 batches, 150,000 acked rows missing after the standalone OOM kill at {clock} (batches 0, 1, 2); "
        f"1 batch, 20,000 acked rows missing after the standalone injected kill at "
        f"{time.strftime('%H:%M:%S', time.localtime(14.5))} (batch 4); "
        "1 batch, 50,000 acked rows missing though nothing died after they were acked (batch 5)"]


def test_a_short_count_after_a_restart_fails_the_run_when_the_end_check_cannot_run():
    summary = _summary(acked=400_000, verified=None)
    summary["rows"]["verify_note"] = "the server did not come back to answer queries"
    after = {"type": "OOMKilled", "t": 100.0, "component": "standalone", "injected": False}
    summary["rows"]["checked_after_restarts"] = [{"t": 130.0, "after": after, "acked": 400_000,
                                                  "present": 350_000, "missing": 50_000}]
    verdict, reasons, _ = judge(Rules(fail_on_oom=False, fail_on_restart=False), summary, [])
    assert verdict is Verdict.FAIL and reasons[0].startswith(
        "at least 50,000 of 400,000 acked rows missing after the standalone OOM kill at ")
    summary["rows"]["checked_after_restarts"][0].update(present=400_000, missing=0)
    assert judge(Rules(fail_on_oom=False, fail_on_restart=False), summary, [])[0] is Verdict.PASS


def test_an_interrupt_inside_a_deferred_block_arrives_after_it():
    import os
    import signal

    from harness.procs import interrupts_deferred

    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    recorded = []
    try:
        with pytest.raises(Stop):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the signal is handled here, outside a deferral
                recorded.append("resource")  # made and recorded before the interrupt lands
        assert recorded == ["resource"]
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_keep_going_runs_on_after_an_oom_kill_or_stall_and_restart_never_stops_at_any_death() -> None:
    """The run's stop rules: the first OOM kill or memory stall ends the load unless
    --keep-going; with --restart never any death ends it. (A real OOM kill under --keep-going
    is not in CI: see the note in tests/integration/test_documented_options.py.)"""
    oom = Event(t=1.0, component="standalone", type="OOMKilled")
    stall = Event(t=2.0, component="standalone", type="MemoryStall")
    exited = Event(t=3.0, component="standalone", type="Exited")
    assert stop_rule([oom], keep_going=False, restart="always") == \
        "stopped at the first OOMKilled (use --keep-going to continue)"
    assert stop_rule([stall], keep_going=False, restart="always") == \
        "stopped at the first MemoryStall (use --keep-going to continue)"
    assert stop_rule([oom, stall], keep_going=True, restart="always") is None
    assert stop_rule([exited], keep_going=False, restart="always") is None  # restarted, not a verdict
    assert stop_rule([exited], keep_going=True, restart="never") == "the server died (Exited) and --restart never"
