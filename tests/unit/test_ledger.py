"""The central ledger: leases by owner, the one acks.jsonl, and a lost owner's batches back in the pool."""

from harness.load.dispenser import Dispenser
from harness.load.ledger import Ledger
from harness.rundir import JsonlWriter, read_jsonl
from harness.scenario import model as scenarios

SCENARIO = scenarios.load("smoke").with_overrides({"total_rows": "40000"})  # 4 batches of 10,000


def _ledger(tmp_path, drained):
    return Ledger(SCENARIO, Dispenser(SCENARIO.batches, lambda: drained.append(True)),
                  JsonlWriter(tmp_path / "acks.jsonl"))


def _ack(k, worker):
    return {"t": 1.0, "batch": k, "rows": 10_000, "ok": True, "worker": worker}


def test_a_lost_owner_returns_its_unacked_batches_and_they_are_acked_once_by_another(tmp_path):
    drained: list[bool] = []
    ledger = _ledger(tmp_path, drained)
    a0, b1, a2 = ledger.lease("a"), ledger.lease("b"), ledger.lease("a")
    assert ledger.report("a", a0, _ack(a0, "a"), retry=False)
    assert ledger.holders() == {"a", "b"}
    assert ledger.lost("a", "worker a went missing") == [a2]  # acked a0 is not taken back
    assert ledger.holders() == {"b"}
    assert ledger.lease("b") == a2  # the returned batch comes first
    for k in (b1, a2):
        assert ledger.report("b", k, _ack(k, "b"), retry=False)
    last = ledger.lease("b")
    assert last == 3 and ledger.lease("b") is None and not drained
    ledger.report("b", last, _ack(last, "b"), retry=False)
    assert drained == [True]
    ledger.close()
    records = list(read_jsonl(tmp_path / "acks.jsonl"))
    lost = [r for r in records if r.get("lease_lost")]
    assert [(r["batch"], r["ok"], r["retry"], r["first_pk"], r["last_pk"]) for r in lost] == [(2, False, True, 20_000, 29_999)]
    acked = [r["batch"] for r in records if r["ok"]]
    assert sorted(acked) == [0, 1, 2, 3] and len(acked) == len(set(acked))


def test_a_report_from_an_owner_whose_lease_was_taken_back_is_stale_and_settles_nothing(tmp_path):
    drained: list[bool] = []
    ledger = _ledger(tmp_path, drained)
    k = ledger.lease("a")
    ledger.lost("a", "gone")
    again = ledger.lease("b")
    assert again == k
    assert not ledger.report("a", k, _ack(k, "a"), retry=False)  # came back late: the lease is b's
    assert ledger.holders() == {"b"}
    assert ledger.report("b", k, _ack(k, "b"), retry=False)
    ledger.close()
    records = list(read_jsonl(tmp_path / "acks.jsonl"))
    assert [(r["worker"], r.get("stale", False)) for r in records if r["ok"]] == [("a", True), ("b", False)]


def test_a_batch_never_sent_goes_back_without_a_record(tmp_path):
    ledger = _ledger(tmp_path, [])
    k = ledger.lease("a")
    assert ledger.report("a", k, None, retry=True)
    assert ledger.lease("b") == k
    ledger.close()
    assert list(read_jsonl(tmp_path / "acks.jsonl")) == []


def test_the_live_tally_counts_a_stale_ack_no_more(tmp_path):
    from harness.run.jsonl_tail import AckTally

    ledger = _ledger(tmp_path, [])
    k = ledger.lease("a")
    ledger.lost("a", "gone")
    ledger.report("b", ledger.lease("b"), _ack(k, "b"), retry=False)
    ledger.report("a", k, _ack(k, "a"), retry=False)  # late: stale
    ledger.close()
    tally = AckTally(tmp_path / "acks.jsonl")
    tally.poll()
    assert tally.acked_rows == 10_000 and tally.failed == 1  # the lost lease's record
