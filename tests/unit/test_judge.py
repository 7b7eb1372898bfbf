"""Judging a run without a server: the verdict rules and the summary's figures."""

import time

import pytest

from harness.judge.summary import compute, lost_after_deaths, memory_growth
from harness.judge.verdict import Verdict, judge
from harness.rundir import RunDir
from harness.scenario.model import Rules
from run_dirs import write_run_dir


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
    acks = [
        {"t": 10, "t_start": 9, "batch": 0, "first_pk": 0, "last_pk": 9, "rows": 10, "ok": True, "latency_ms": 5},
        {"t": 11, "t_start": 10, "batch": 1, "first_pk": 10, "last_pk": 19, "rows": 10, "ok": False,
         "latency_ms": 1, "error": "UNAVAILABLE", "retry": True},
        {"t": 13, "t_start": 12, "batch": 1, "first_pk": 10, "last_pk": 19, "rows": 10, "ok": True, "latency_ms": 7},
    ]
    run_dir = RunDir(write_run_dir(tmp_path / "r", acks=acks,
                                   events=[{"t": 8, "component": "harness", "type": "LoadStarted", "detail": ""}]))
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
    # no loss seen after the restart, but the end check never ran: undecided, not PASS
    summary["rows"]["checked_after_restarts"][0].update(present=400_000, missing=0)
    assert judge(Rules(fail_on_oom=False, fail_on_restart=False), summary, [])[0] is Verdict.INCONCLUSIVE


def _cluster_summary(target="kind", verified=1000):
    s = _summary(verified=verified)
    s["target"] = target
    s["components"] = {name: {"peak_memory_bytes": 900, "limit_bytes": 1000, "restarts": 0}
                       for name in ("streamingnode", "streamingnode-2", "datanode", "proxy", "kube-apiserver")}
    return s


def _killed(s, component, t=1000.0):
    s["components"][component].update(restarts=1, oom_kills=1, rows_acked_before_first_oom=700)
    return [{"t": t, "component": component, "type": "OOMKilled", "detail": "exit code 137"},
            {"t": t + 1, "component": component, "type": "Restarted", "detail": "", "data": {"restarts": 1}}]


SEED_RULES = Rules(under_test=("streamingnode",))


def test_a_component_not_under_test_dying_is_inconclusive_naming_it():
    s = _cluster_summary()
    verdict, reasons, rules = judge(SEED_RULES, s, _killed(s, "datanode"))
    assert verdict is Verdict.INCONCLUSIVE and verdict.exit_code == 125
    assert reasons == [f"datanode OOM-killed at {time.strftime('%H:%M:%S', time.localtime(1000.0))} (not under "
                       "test): the cluster, not the component under test, failed"]
    assert [r.passed for r in rules if r.name in ("no OOM kill", "no restart")] == [True, True]
    # every component under test: the same kill FAILs
    verdict, reasons, _ = judge(Rules(under_test=("all",)), s, _killed(s, "datanode"))
    assert verdict is Verdict.FAIL and reasons[0].startswith("datanode OOM-killed at") and "after 700" in reasons[0]


def test_a_component_under_test_dying_fails_even_beside_a_cluster_failure():
    s = _cluster_summary()
    events = _killed(s, "datanode") + _killed(s, "streamingnode-2", t=1005.0)
    verdict, reasons, _ = judge(SEED_RULES, s, events)
    assert verdict is Verdict.FAIL and reasons[0].startswith("streamingnode-2 OOM-killed at")
    assert any(r.startswith("datanode OOM-killed") and "(not under test)" in r for r in reasons)


def test_restarts_exits_and_stalls_outside_the_test_are_inconclusive():
    s = _cluster_summary()
    s["components"]["proxy"]["restarts"] = 2
    verdict, reasons, _ = judge(SEED_RULES, s, [])
    assert verdict is Verdict.INCONCLUSIVE and reasons[0].startswith("proxy restarted 2 times (not under test)")
    s = _cluster_summary()
    stall = {"t": 1000.0, "component": "datanode", "type": "MemoryStall", "detail": "held"}
    assert judge(SEED_RULES, s, [stall])[0] is Verdict.INCONCLUSIVE
    assert judge(Rules(under_test=("streamingnode",), fail_on_stall=False), s, [stall])[0] is Verdict.PASS
    # a peak-memory bound applies to what is tested only
    assert judge(Rules(under_test=("proxy",), max_peak_memory_fraction=0.95), _cluster_summary(), [])[0] is Verdict.PASS
    assert judge(Rules(under_test=("datanode",), max_peak_memory_fraction=0.8), _cluster_summary(), [])[0] is Verdict.FAIL


def test_unchecked_rows_are_inconclusive_on_every_target():
    for target in ("kind", "external", "embedded"):
        s = _cluster_summary(target, verified=None)
        s["rows"]["verify_note"] = "verification skipped (--verify none)"
        verdict, reasons, _ = judge(SEED_RULES, s, [])
        assert verdict is Verdict.INCONCLUSIVE and reasons == [
            "the acked rows could not be checked: verification skipped (--verify none)"]
    # only a run whose rules do not ask about lost rows may pass without the check
    verdict, reasons, _ = judge(Rules(fail_on_lost_rows=False), _cluster_summary("embedded", verified=None), [])
    assert verdict is Verdict.PASS and reasons[0].endswith("(the lost-row rule is off)")


def test_an_event_during_verification_says_so():
    s = _cluster_summary()
    s["verify_started"] = 999.0
    reasons = judge(SEED_RULES, s, _killed(s, "datanode"))[1]
    assert "OOM-killed at" in reasons[0] and " during verification (not under test)" in reasons[0]


def test_nothing_under_test_watched_is_inconclusive():
    s = _cluster_summary()
    verdict, reasons, _ = judge(Rules(under_test=("querynode",)), s, [])
    assert verdict is Verdict.INCONCLUSIVE and reasons == [
        "no component under test (querynode) was watched, so its health was not checked; "
        "watched: datanode, proxy, streamingnode, streamingnode-2"]
    s["components"] = {}  # nothing watched at all (external without a kube context): the rows decide
    assert judge(Rules(under_test=("querynode",)), s, [])[0] is Verdict.PASS


def test_time_to_verdict_is_the_first_failing_death_or_the_end_of_the_check():
    from harness.judge.verdict import RuleResult, Verdict, decided_at

    deaths = [{"t": 30.0, "type": "Exited", "component": "standalone", "data": {"injected": True}},
              {"t": 40.0, "type": "OOMKilled", "component": "standalone"},
              {"t": 55.0, "type": "OOMKilled", "component": "standalone"}]
    oom = [RuleResult("no OOM kill", False, "OOM-killed"), RuleResult("no acked row lost", True, "all present")]
    assert decided_at(Verdict.FAIL, oom, deaths, verified_at=90.0) == (40.0, "the first OOMKilled (standalone) failed the run")
    # A FAIL decided by the check after the load (lost rows) and a PASS are known when the check ends.
    lost = [RuleResult("no OOM kill", True, "none"), RuleResult("no acked row lost", False, "1 batch missing")]
    assert decided_at(Verdict.FAIL, lost, deaths[:1], verified_at=90.0)[0] == 90.0
    assert decided_at(Verdict.PASS, oom[1:], [], verified_at=90.0) == (90.0, "the end of the check of the acked rows")
    # An injected kill is the experiment: it never decides a restart failure.
    restart = [RuleResult("no restart", False, "restarted")]
    assert decided_at(Verdict.FAIL, restart, deaths[:1], verified_at=None) == (None, "the acked rows were never checked")
