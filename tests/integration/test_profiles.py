"""Heap profiles of a real embedded Milvus: the decoder against Go's own text form, and
capturing while the watcher samples at 1 Hz."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from harness.load import batches, collection
from harness.load.insert import NumpyInserter
from harness.profiles import proto, sites, text
from harness.profiles.capture import HEAP_PROFILE, ProfileCapturer
from harness.scenario import model as scenarios
from harness.targets.embedded import EmbeddedTarget
from harness.targets.protocol import TargetOptions
from harness.watch import events
from harness.watch.events import RunEvents
from harness.watch.process import COMPONENT
from waiting import wait_for

pytestmark = pytest.mark.milvus


def _debug1(target: EmbeddedTarget) -> str:
    url = target.server.metrics_url.rsplit("/", 1)[0] + "/debug/pprof/heap?debug=1"
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_decoded_profile_matches_go_debug1_totals_and_capturing_misses_no_1hz_sample(milvus_version, no_leftovers,
                                                                                      tmp_path):
    seed = scenarios.load("seed")
    context = RunEvents()
    samples = []
    context.on_sample(samples.append)
    with EmbeddedTarget(TargetOptions(milvus_version=milvus_version, memory_limit=4 * 2**30,
                                      collection=seed.collection)) as target:
        target.start(context)
        collection.create(target.server.address, seed)
        inserter = NumpyInserter(target.server.address, seed.collection, seed, timeout=60)
        try:
            for k in range(2):  # a heap with the insert path in it, not only start-up
                assert inserter.insert(batches.generate_batch(seed, k)).ok
        finally:
            inserter.close()
        watcher = target.watchers()[0]

        # The proto and the text form of the same GC cycle: debug=1 read before and after the
        # proto with the same header means no GC published a new profile in between.
        for _ in range(5):
            before = _debug1(target)
            data = watcher.fetch_heap(COMPONENT, timeout=30)
            after = _debug1(target)
            if text.header_totals(before) == text.header_totals(after):
                break
        else:
            pytest.fail("every pair of debug=1 reads straddled a GC")
        decoded, legacy = proto.decode(data), text.parse(before)
        inuse_objects, inuse_bytes, *_ = text.header_totals(before)
        assert inuse_bytes > 0 and legacy.total() >= inuse_bytes  # scaled up from the sample
        assert decoded.total() == legacy.total()
        assert decoded.total("inuse_objects") == legacy.total("inuse_objects")
        assert sites.by(decoded) == sites.by(legacy)
        assert sites.total_of(sites.top(sites.by(decoded), 10)) == decoded.total()

        # Captures back to back (a stall event each) while the watcher samples at 1 Hz.
        def captured() -> int:
            return sum(1 for e in context.events if e.type == HEAP_PROFILE)

        # On the watcher's thread, as the stall detector does in a run: a stall on every sample.
        stalling = threading.Event()
        context.on_sample(lambda s: stalling.is_set() and context.fire_event(
            component=COMPONENT, type=events.MEMORY_STALL, detail="test: capture now"))
        capturer = ProfileCapturer(context, tmp_path / "profiles", target.watchers).start()
        try:
            began = time.time()
            stalling.set()
            wait_for(lambda: time.time() - began > 12 and captured() >= 5, 120, "12 s of captures")
            stalling.clear()
            ended = time.time()
        finally:
            stalling.clear()
            capturer.stop()
        during = [s.t for s in samples if began <= s.t <= ended and s.component == COMPONENT]
        gaps = [b - a for a, b in zip(during, during[1:])]
        assert captured() >= 5, [e.detail for e in context.events]
        assert len(during) >= 11 and max(gaps) < 1.6, gaps
        assert (tmp_path / "profiles" / "standalone-stall.pb.gz").exists()
        assert not any(e.type == events.WATCH_GAP for e in context.events)

        # The end of a load nobody died in (a new capturer: this one saw the stalls above).
        end = ProfileCapturer(RunEvents(), tmp_path / "end", target.watchers).start()
        try:
            end.context.fire_sample(samples[-1])
            end.capture_end()  # returns once it is stored
        finally:
            end.stop()
        assert end.captured == ["standalone-end.pb.gz"]
        assert proto.decode((tmp_path / "end" / "standalone-end.pb.gz").read_bytes()).total() > 0
