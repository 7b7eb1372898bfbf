"""The embedded target against real Milvus: limits, kills, restarts, ports, clean stops."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from harness.load import batches, collection
from harness import milvus_client
from harness.scenario import model as scenarios
from harness.load.insert import NumpyInserter
from harness.targets.protocol import TargetOptions
from harness.targets.embedded import EmbeddedTarget
from harness.watch.events import RunEvents
from harness.watch.stall import StallDetector

pytestmark = pytest.mark.milvus
GiB = 2**30


def _target(version: str, limit: float | None, **kw) -> EmbeddedTarget:
    # The collection the readiness check flushes after a restart (as lifecycle.prepare sets it):
    # until a flush of it works, the restarted server has not taken over its old session.
    kw.setdefault("collection", scenarios.load("seed").collection)
    return EmbeddedTarget(TargetOptions(milvus_version=version, memory_limit=int(limit * GiB) if limit else None,
                                        **kw))


def _insert_until(target: EmbeddedTarget, context: RunEvents, scenario, stop, max_batches: int):
    """Insert batches of the seed collection until stop(result) is true; returns the results."""
    address = target.server.address
    collection.create(address, scenario)
    inserter = NumpyInserter(address, scenario.collection, scenario, timeout=30)
    results = []
    try:
        for k in range(max_batches):
            result = inserter.insert(batches.generate_batch(scenario, k))
            results.append((time.time(), result))
            if stop(result):
                break
    finally:
        inserter.close()
    return results


def test_oom_kill_is_recorded_within_a_second_and_the_server_comes_back(milvus_version, no_leftovers):
    seed = scenarios.load("seed")
    context = RunEvents()
    with _target(milvus_version, 2) as target:  # kubelet's 10 s back-off: the old session expires meanwhile
        target.start(context)
        results = _insert_until(target, context, seed, lambda r: not r.ok, max_batches=40)
        failed_at, failed = results[-1]
        assert not failed.ok, "2 GiB should not hold 40 batches of the seed collection"
        deadline = time.time() + 60
        while time.time() < deadline and not any(e.type == "OOMKilled" for e in context.events):
            time.sleep(0.1)
        oom = [e for e in context.events if e.type == "OOMKilled"]
        assert len(oom) == 1 and oom[0].data["source"] == "kernel"
        # The kill is what failed the insert: the server died (kernel's time of death) while
        # that insert was in flight, after every insert before it was acked.
        last_acked_at = results[-2][0]
        assert last_acked_at <= oom[0].t and failed_at - failed.seconds <= oom[0].t
        assert target.oom_kills >= 1
        # The supervisor brings it back after kubelet's back-off. Under the same limit the
        # restarted server replays the acked rows from its WAL and may be killed again (a crash
        # loop, as a pod would show); with the limit lifted it must recover and take writes.
        deadline = time.time() + 30
        while time.time() < deadline and not any(e.type == "Restarted" for e in context.events):
            time.sleep(0.2)
        assert any(e.type == "Restarted" for e in context.events)
        assert target.prepare_verification(180), "the restarted server should accept writes"
        with milvus_client.MilvusAdmin(target.server.address) as admin:
            admin.flush(seed.collection)
            acked = sum(r.rows for _, r in results if r.ok)
            assert admin.row_count(seed.collection) >= acked
        assert context.latest["standalone"].restarts >= 1


def test_eight_gib_holds_200k_rows(milvus_version, no_leftovers):
    seed = scenarios.load("seed").with_overrides({"total_rows": "200000"})
    context = RunEvents()
    samples = []
    context.on_sample(samples.append)
    with _target(milvus_version, 8) as target:
        target.start(context)
        # The kernel enforces what was asked: the cgroup's own limit file says 8 GiB.
        assert target.cgroup is not None, "no memory cgroup could be made (tests run as root)"
        limit_file = target.cgroup.path / ("memory.limit_in_bytes" if target.cgroup.version == 1 else "memory.max")
        kernel_limit, isolation = int(limit_file.read_text()), target.cgroup.isolation
        assert kernel_limit == 8 * GiB
        results = _insert_until(target, context, seed, lambda r: False, max_batches=seed.batches)
        assert all(r.ok for _, r in results) and sum(r.rows for _, r in results) == 200_000
        sampled = len(samples)
        deadline = time.time() + 30
        while time.time() < deadline and len(samples) < sampled + 2:  # two samples after the last insert
            time.sleep(0.1)
    assert not [e for e in context.events if e.type in ("OOMKilled", "Restarted", "Exited", "MemoryStall")]
    assert samples and max(s.memory_bytes for s in samples) > 200 * 2**20  # the watcher saw it grow
    assert {s.source for s in samples} == {isolation}
    assert {s.limit_bytes for s in samples} == {kernel_limit}  # the reported limit is the kernel's


def test_two_servers_side_by_side_get_their_own_ports(milvus_version, no_leftovers):
    a, b = _target(milvus_version, None), _target(milvus_version, None)
    with a, b:
        threads = [threading.Thread(target=t.start, args=(RunEvents(),)) for t in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert a.server and b.server
        assert not set(a.server.ports.values()) & set(b.server.ports.values())
        assert a.server.metrics_port != b.server.metrics_port
        assert milvus_client.answers(a.server.address) and milvus_client.answers(b.server.address)


def test_restart_never_stops_at_the_first_death(milvus_version, no_leftovers):
    context = RunEvents()
    backoff = 0.5  # a target that ignored restart="never" would respawn within this
    with _target(milvus_version, None, restart="never", restart_backoff=backoff) as target:
        target.start(context)
        target.kill()
        deadline = time.time() + 30
        while time.time() < deadline and not any(e.type == "Exited" for e in context.events):
            time.sleep(0.1)
        exited = [e for e in context.events if e.type == "Exited"]
        assert exited and "SIGKILL" in exited[0].detail  # a plain kill is not an OOM kill
        # Ten back-offs after the death: a restart would have been spawned (and announced) by now.
        time.sleep(10 * backoff)
        assert not [e for e in context.events if e.type in ("Restarted", "Ready") and e.t > exited[0].t]
        assert target.restarts == 0 and target.pid() is None
        assert not target.wait_ready(2)


def test_a_stall_at_the_limit_is_a_memory_stall_not_a_kill(milvus_version, no_leftovers):
    """With the OOM killer off the server is held at its limit: usage pinned, inserts time out."""
    seed = scenarios.load("seed")
    context = RunEvents()
    acked = [0]
    StallDetector(context, lambda: acked[0], seconds=8)
    with _target(milvus_version, 1.5, oom_kill=False) as target:
        target.start(context)
        address = target.server.address
        collection.create(address, seed)
        inserter = NumpyInserter(address, seed.collection, seed, timeout=20)
        # The insert runs on a thread with a bound of its own: once in CI a blocking call to
        # the frozen server outlived its 20 s gRPC deadline by more than 10 minutes. Closing
        # the channel then cancels it.
        calls = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            for k in range(30):
                call = calls.submit(inserter.insert, batches.generate_batch(seed, k))
                try:
                    result = call.result(timeout=60)
                except concurrent.futures.TimeoutError:
                    inserter.close()
                    result = call.result(timeout=30)
                if not result.ok:
                    break
                acked[0] += result.rows
        finally:
            inserter.close()
            calls.shutdown(wait=False)
        assert not result.ok and ("DEADLINE_EXCEEDED" in result.error or "CANCELLED" in result.error), result.error
        deadline = time.time() + 30
        while time.time() < deadline and not any(e.type == "MemoryStall" for e in context.events):
            time.sleep(0.5)
        types = [e.type for e in context.events]
        assert "MemoryStall" in types and "OOMKilled" not in types and "Exited" not in types
        stall = next(e for e in context.events if e.type == "MemoryStall")
        assert stall.data["memory_bytes"] >= 0.97 * 1.5 * GiB
        assert target.pid() is not None  # alive, just stuck
        assert target.prepare_verification(60)  # lifting the limit lets it go on


def test_without_a_cgroup_the_watchdog_kills_at_the_limit(milvus_version, no_leftovers, monkeypatch, tmp_path):
    """Where no memory cgroup can be made, an RSS watchdog enforces the limit and says so."""
    from harness.targets import cgroup

    monkeypatch.setattr(cgroup, "CGROUP_ROOT", tmp_path / "no-cgroupfs")
    seed = scenarios.load("seed")
    context = RunEvents()
    with _target(milvus_version, 1.5, restart="never") as target:
        target.start(context)
        assert target.isolation == "watchdog" and target.cgroup is None
        _insert_until(target, context, seed, lambda r: not r.ok, max_batches=40)
        deadline = time.time() + 10
        while time.time() < deadline and not any(e.type == "OOMKilled" for e in context.events):
            time.sleep(0.1)
        oom = [e for e in context.events if e.type == "OOMKilled"]
        assert oom and oom[0].data["source"] == "watchdog"
        assert target.facts()["isolation"] == "watchdog"
        assert context.latest["standalone"].source == "watchdog"
