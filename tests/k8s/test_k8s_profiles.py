"""Heap profiles through the API server's pod proxy, against FakeKubeAPI with the real client.

The profile served is one captured from real Milvus 2.3.5 (tests/fixtures/profiles); the
capturer must store it byte for byte, only for the roles under test, and a slow or failing
proxy must be a WatchGap while the watcher keeps sampling.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from harness.profiles import proto
from harness.profiles.capture import HEAP_PROFILE, ProfileCapturer
from harness.watch import events
from k8s_fakes import make_pod
from waiting import wait_for

PROFILE = (Path(__file__).resolve().parents[1] / "fixtures" / "profiles" / "milvus-2.3.5-heap.pb.gz").read_bytes()
SN = "milvus-streamingnode-0"


def _cluster(fake_api) -> None:
    fake_api.pods = [make_pod(SN, "streamingnode"), make_pod("milvus-proxy-0", "proxy")]
    fake_api.set_usage(SN, "streamingnode", "2Gi")  # of 16Gi: below every threshold
    fake_api.set_usage("milvus-proxy-0", "proxy", "15Gi")  # over 80 %, but not under test
    fake_api.pod_heap = {SN: PROFILE, "milvus-proxy-0": PROFILE}


def _heap_requests(fake_api) -> list[str]:
    # Decoded as the API server decodes it (the client sends pod%3A9091 and debug%2Fpprof%2Fheap).
    return [unquote(urlsplit(r).path) for r in fake_api.requests if "pprof" in r]


def _pod_lists(fake_api) -> int:
    return sum(1 for r in list(fake_api.requests) if urlsplit(r).path.endswith("/pods"))


def test_threshold_crossings_capture_the_pods_profile_through_the_proxy(fake_api, make_watcher, recorded, tmp_path):
    _cluster(fake_api)
    watcher = make_watcher(scrape_components=("streamingnode",))
    capturer = ProfileCapturer(recorded.context, tmp_path / "profiles", lambda: [watcher]).start()
    try:
        watcher.poll_once(recorded.context)
        fake_api.set_usage(SN, "streamingnode", "9Gi")  # 56 %
        watcher.poll_once()
        wait_for(lambda: capturer.captured, 30, "the 50 % capture")
        fake_api.set_usage(SN, "streamingnode", "15.5Gi")  # 97 %: 80 and 95 crossed at once
        watcher.poll_once()
        wait_for(lambda: len(capturer.captured) == 3, 30, "the 80 and 95 % captures")
    finally:
        capturer.stop()
    assert sorted(capturer.captured) == ["streamingnode-50.pb.gz", "streamingnode-80.pb.gz", "streamingnode-95.pb.gz"]
    for name in capturer.captured:
        assert (tmp_path / "profiles" / name).read_bytes() == PROFILE
    assert proto.decode((tmp_path / "profiles" / "streamingnode-80.pb.gz").read_bytes()).total() > 0
    # One fetch per crossing, by the pod proxy path on port 9091; never the proxy role's pod.
    assert _heap_requests(fake_api) == [f"/api/v1/namespaces/default/pods/{SN}:9091/proxy/debug/pprof/heap"] * 2
    profiled = [e for e in recorded.events if e.type == HEAP_PROFILE]
    assert [e.component for e in profiled] == ["streamingnode", "streamingnode"]
    assert profiled[1].data["files"] == ["streamingnode-80.pb.gz", "streamingnode-95.pb.gz"]
    assert profiled[1].data["bytes"] == len(PROFILE)


def test_a_failing_proxy_is_a_watch_gap_and_a_slow_one_does_not_hold_the_watcher(fake_api, make_watcher,
                                                                                 recorded, tmp_path):
    _cluster(fake_api)
    fake_api.pod_heap = {}  # the proxy answers 503
    watcher = make_watcher(scrape_components=("streamingnode",), interval=0.1)
    capturer = ProfileCapturer(recorded.context, tmp_path / "profiles", lambda: [watcher], timeout=1.5).start()
    try:
        watcher.poll_once(recorded.context)
        fake_api.set_usage(SN, "streamingnode", "9Gi")
        watcher.poll_once()
        wait_for(lambda: events.WATCH_GAP in recorded.types("streamingnode"), 30, "the 503 gap")
        gap = next(e for e in recorded.events if e.type == events.WATCH_GAP)
        assert "heap profile" in gap.detail and "503" in gap.detail and gap.data["source"] == "pprof"

        # A proxy slower than the capture timeout, while the watcher runs on its own thread.
        fake_api.pod_heap, fake_api.heap_delay = {SN: PROFILE}, 4.0
        watcher.start(recorded.context)
        fake_api.set_usage(SN, "streamingnode", "13Gi")  # 81 %
        wait_for(lambda: _heap_requests(fake_api)[1:], 30, "the slow capture to begin")
        polls_before = _pod_lists(fake_api)
        wait_for(lambda: len([e for e in recorded.events if e.type == events.WATCH_GAP]) == 2, 30, "the timeout gap")
        # The watcher kept polling every 0.1 s while the capture waited its 1.5 s out.
        assert _pod_lists(fake_api) - polls_before >= 5
        assert "timed out" in recorded.events[-1].detail or "Timeout" in recorded.events[-1].detail
    finally:
        watcher.stop()
        capturer.stop()
    assert not (tmp_path / "profiles").exists()


def test_every_n_seconds_each_profiled_component_is_captured(fake_api, make_watcher, recorded, tmp_path):
    _cluster(fake_api)
    watcher = make_watcher(scrape_components=("streamingnode",))
    watcher.poll_once(recorded.context)  # both components seen, neither past a threshold for the pod under test
    capturer = ProfileCapturer(recorded.context, tmp_path / "profiles", lambda: [watcher], every=0.6,
                               thresholds=(99,)).start()
    try:
        wait_for(lambda: len(capturer.captured) >= 2, 30, "two periodic captures")
    finally:
        capturer.stop()
    assert capturer.captured[:2] == ["streamingnode-t0.01m.pb.gz", "streamingnode-t0.02m.pb.gz"]
    # The proxy role is not under test: asked once, then never again.
    assert all("milvus-proxy-0" not in r for r in _heap_requests(fake_api))
