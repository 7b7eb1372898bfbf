"""The row-count check (no query node, no load) and the harness's flushes, on real embedded Milvus."""

from __future__ import annotations

import time

import pytest

from harness import milvus_client
from harness.judge.verify import verify_rows
from harness.load import batches, collection
from harness.load.insert import NumpyInserter
from harness.scenario import model as scenarios
from harness.targets.embedded import EmbeddedTarget
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents

pytestmark = pytest.mark.milvus
GiB = 2**30


def _persisted(address: str, name: str) -> int:
    with milvus_client.MilvusAdmin(address) as admin:
        return admin.persisted_rows(name)


def test_row_count_check_after_an_oom_kill_and_flushes_of_the_scenario_collection_only(milvus_version, no_leftovers):
    seed = scenarios.load("seed")
    # Someone else's collection with a few unflushed rows: too small for Milvus to sync on its own
    # under memory pressure (it syncs the largest buffers first), so only a flush persists them.
    other = seed.with_overrides({"name": "other", "collection": "someone_elses", "shards": "1", "partitions": "1",
                                 "batch_rows": "100", "total_rows": "100"})
    context = RunEvents()
    options = TargetOptions(milvus_version=milvus_version, memory_limit=int(1.5 * GiB), collection=seed.collection)
    with EmbeddedTarget(options) as target:
        target.start(context)
        address = target.server.address
        collection.create(address, other)
        collection.create(address, seed)
        acked: list[dict] = []
        for scenario in (other, seed):
            inserter = NumpyInserter(address, scenario.collection, scenario, timeout=30)
            try:
                assert inserter.insert(batches.generate_batch(scenario, 0)).ok
            finally:
                inserter.close()
        acked.append({"batch": 0, "rows": seed.batch_rows, "first_pk": 0, "last_pk": seed.batch_rows - 1})

        # Load until the kernel OOM-kills the server at 1.5 GiB.
        inserter = NumpyInserter(address, seed.collection, seed, timeout=30)
        try:
            for k in range(1, 40):
                result = inserter.insert(batches.generate_batch(seed, k))
                if not result.ok:
                    break
                first, last = batches.primary_keys(seed, k)
                acked.append({"batch": k, "rows": result.rows, "first_pk": first, "last_pk": last})
        finally:
            inserter.close()
        assert not result.ok, "1.5 GiB should not hold 40 batches of the seed collection"
        deadline = time.time() + 30
        while time.time() < deadline and not any(e.type == "OOMKilled" for e in context.events):
            time.sleep(0.1)
        assert any(e.type == "OOMKilled" for e in context.events)
        assert target.prepare_verification(180), "the restarted server should accept writes"

        acked_rows = sum(a["rows"] for a in acked)
        counted = verify_rows(address, seed.collection, acked)
        assert counted["verified"] == acked_rows and counted["lost"] == 0, counted
        # The batch that failed at the kill may or may not have landed: at most one more batch.
        assert acked_rows <= counted["persisted"] <= acked_rows + seed.batch_rows
        # Two batches that were never inserted are missed by the count: a lower bound on the loss.
        phantom = [{"batch": 900 + i, "rows": seed.batch_rows, "first_pk": 10**9 + i * seed.batch_rows,
                    "last_pk": 10**9 + (i + 1) * seed.batch_rows - 1} for i in range(2)]
        short = verify_rows(address, seed.collection, acked + phantom)
        assert short["lost"] == acked_rows + 2 * seed.batch_rows - counted["persisted"] >= seed.batch_rows
        # Readiness (prepare_verification) and the check flushed the scenario's collection only.
        assert _persisted(address, other.collection) == 0


def test_an_insert_cut_by_a_kill_is_in_doubt_and_the_exact_check_accounts_for_every_batch(tmp_path, milvus_version,
                                                                                         no_leftovers, direct_count):
    """The server is SIGKILLed while the next insert is in flight (the Locust user sends the batch
    it built ahead as soon as the previous one is acked). That insert fails: it may have been
    applied, in part, so the fast row count cannot decide and the exact check runs. Its
    per-batch figures must match a direct count(*) of every acked range: each batch it calls
    whole is whole, each it names missing is short by what it says."""
    import io

    from rich.console import Console

    from harness.rundir import read_jsonl
    from harness.run.lifecycle import RunOptions, run

    result = run(RunOptions(scenario="smoke", inject=["kill@rows=30000"], report_dir=tmp_path,
                            overrides={"total_rows": "80000"},
                            target=TargetOptions(milvus_version=milvus_version, restart_backoff=2.0)),
                 console=Console(file=io.StringIO()))
    summary, rows = result.summary, result.summary["rows"]
    events = list(read_jsonl(result.run_dir / "events.jsonl"))
    acks = list(read_jsonl(result.run_dir / "acks.jsonl"))
    killed = next(e["t"] for e in events if e["type"] == "Injected")
    cut = [a for a in acks if not a["ok"] and a["t_start"] < killed < a["t"]]
    assert cut, "an insert should have been in flight at the kill"
    check = rows["check"]
    assert check["check"] == "pk-ranges" and not check["fast"], check
    assert any("insert" in d and f"batch {cut[0]['batch']}" in d for d in check["doubts"]), check["doubts"]
    assert any("death" in d and "(first: standalone injected kill)" in d for d in check["doubts"]), check["doubts"]
    assert "the row count alone cannot decide" in check["why"]
    # The exact check against a direct count of each acked batch's range.
    acked = sorted((a for a in acks if a["ok"]), key=lambda a: a["batch"])
    assert direct_count.per_batch is not None and len(direct_count.per_batch) == len(acked) >= 7
    short = {a["batch"]: a["rows"] - n for a, n in zip(acked, direct_count.per_batch) if n < a["rows"]}
    assert rows["lost_batches"] == sorted(short) and rows["lost"] == sum(short.values())
    assert rows["verified"] == sum(min(n, a["rows"]) for a, n in zip(acked, direct_count.per_batch))
    assert summary["verdict"] == ("FAIL" if short else "PASS"), summary["reasons"]
    # Fewer count queries than batches: the batches acked at their first try were counted together.
    assert rows["count_queries"] < len(acked) or short
    assert summary["time_to_verdict_basis"] == "the end of the check of the acked rows" and summary["verify_s"] > 0
