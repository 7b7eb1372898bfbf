"""Crash signatures from real Milvus: a server that aborts says why in its exit reason."""

from __future__ import annotations

import threading

import pytest

from harness.judge.verify import verify_pk_ranges
from harness.load import batches, collection
from harness.load.insert import NumpyInserter
from harness.scenario import model as scenarios
from harness.targets.embedded import EmbeddedTarget
from harness.targets.install import ensure_installed
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents
from waiting import wait_for

pytestmark = pytest.mark.milvus

#: Milvus 2.3.0 aborts in segcore when a query node loads a sealed segment of the seed
#: collection (observed: Assert "unsupported" at .../segcore/InsertRecord.h:330).
ABORTING_VERSION = "2.3.0"


def test_a_segcore_assertion_is_named_in_the_exit_reason(no_leftovers):
    ensure_installed(ABORTING_VERSION)  # downloads it once into the shared cache
    seed = scenarios.load("seed")
    context = RunEvents()
    options = TargetOptions(milvus_version=ABORTING_VERSION, memory_limit=None, restart="never",
                            collection=seed.collection)
    with EmbeddedTarget(options) as target:
        target.start(context)
        address = target.server.address
        collection.create(address, seed)
        inserter = NumpyInserter(address, seed.collection, seed, timeout=60)
        try:
            batch = batches.generate_batch(seed, 0)
            result = inserter.insert(batch)
        finally:
            inserter.close()
        assert result.ok, result
        acked = [{"batch": 0, "first_pk": batch.first_pk, "last_pk": batch.last_pk, "rows": result.rows}]
        # Loading the flushed segment is what aborts; the call itself fails once the server is gone.
        threading.Thread(target=verify_pk_ranges, args=(address, seed.collection, acked, 120.0),
                         daemon=True).start()
        wait_for(lambda: any(e.type == "Exited" for e in context.events), timeout=240,
                 what="the 2.3.0 server to die while loading the sealed segment")
    exited = next(e for e in context.events if e.type == "Exited")
    assert exited.data["exit_code"] < 0 and "SIGABRT" in exited.detail
    # The assertion and where it fired, not just the signal; and what the server was doing.
    assert 'assertion "unsupported" in segcore InsertRecord (InsertRecord.h:330)' in exited.detail, exited.detail
    assert "(*segmentLoader).Load" in exited.detail
    assert exited.data["crash"]["kind"] == "assertion"
