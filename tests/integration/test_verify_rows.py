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
