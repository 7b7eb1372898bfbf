"""Heap profiles read in Python: the decoder, the aggregation, a run's captures and `profile`.

The profile is one captured from real Milvus 2.3.5 (tests/fixtures/profiles); its debug=1
twin of the same GC cycle is checked against it in tests/integration/test_profiles.py.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.profiles import proto, sites, store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "profiles" / "milvus-2.3.5-heap.pb.gz"


@pytest.fixture(scope="module")
def profile() -> proto.Profile:
    return proto.decode(FIXTURE.read_bytes())


def test_decodes_a_go_heap_profile(profile):
    assert [t for t, _ in profile.sample_types] == ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]
    assert profile.time_nanos > 1.7e18  # a 2020s wall clock in ns
    assert profile.total() > 100 * 2**20
    # Gzipped or not, the same profile.
    assert proto.decode(gzip.decompress(FIXTURE.read_bytes())).total() == profile.total()


@pytest.mark.parametrize("what", [sites.BY_FUNCTION, sites.BY_PACKAGE])
def test_top_sites_add_up_to_the_profiles_in_use_total(profile, what):
    top = sites.top(sites.by(profile, what), 5)
    assert len(top) == 6 and top[-1].name == sites.OTHER
    assert sites.total_of(top) == profile.total()
    assert [s.bytes for s in top[:5]] == sorted((s.bytes for s in top[:5]), reverse=True)
    assert abs(sum(s.share for s in top) - 1) < 1e-9


def test_milvus_packages_name_the_milvus_code_holding_the_memory(profile):
    by_package = sites.by(profile, sites.BY_PACKAGE)
    assert "github.com/milvus-io/milvus/internal/storage" in by_package
    # A protobuf decode under a Milvus call counts for the Milvus package that called it.
    leaf = sites.by(profile, sites.BY_FUNCTION)
    assert "google.golang.org/protobuf/internal/impl.consumeFloatSlice" in leaf
    assert not any(k.startswith("google.golang.org/protobuf") for k in by_package)
    assert sites.package_of("github.com/milvus-io/milvus/internal/storage.(*InsertData).Get") == \
        "github.com/milvus-io/milvus/internal/storage"
    assert sites.package_of("runtime.malg") == "runtime"


def test_growth_between_two_aggregations():
    before = {"a": 100, "b": 50, "c": 10}
    after = {"a": 400, "b": 20, "d": 5}
    grown = sites.growth(before, after)
    assert [(s.name, s.growth_bytes) for s in grown] == [("a", 300), ("b", -30), ("c", -10), ("d", 5)]
    top = sites.top(after, 1, before)
    assert [(s.name, s.growth_bytes) for s in top] == [("a", 300), (sites.OTHER, 25 - 60)]


def test_garbage_is_a_profile_error():
    with pytest.raises(proto.ProfileError):
        proto.decode(gzip.compress(b"\x0a\xff"))
    with pytest.raises(proto.ProfileError):
        proto.decode(b"\x1f\x8bnot gzip")


def _run_dir(tmp_path: Path, names: list[str], death_t: float | None, death: str = "OOMKilled") -> Path:
    run = tmp_path / "run"
    (run / "profiles").mkdir(parents=True)
    data = FIXTURE.read_bytes()
    t0 = proto.decode(data).time_nanos / 1e9
    for i, name in enumerate(names):
        # The same profile with its time moved i seconds on (time_nanos is field 9, a varint).
        raw = gzip.decompress(data) + bytes([9 << 3]) + _varint(int((t0 + i) * 1e9))
        (run / "profiles" / f"{name}.pb.gz").write_bytes(gzip.compress(raw))
    events = [{"t": t0 - 10, "component": "harness", "type": "LoadStarted"}]
    if death_t is not None:
        events.append({"t": t0 + death_t, "component": "standalone", "type": death})
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / "run.json").write_text(json.dumps({"started": t0 - 20}))
    return run


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def test_the_evidence_is_the_last_capture_before_the_first_death(tmp_path):
    run = _run_dir(tmp_path, ["standalone-50", "standalone-80", "standalone-95", "standalone-end"], death_t=2.5)
    assert [c.name for c in store.captures(run)] == ["standalone-50", "standalone-80", "standalone-95",
                                                     "standalone-end"]
    last, first = store.evidence(run)
    assert (last.name, first.name) == ("standalone-95", "standalone-50")
    top = store.top_sites(run, 3)
    assert sites.total_of(top) == proto.decode(FIXTURE.read_bytes()).total()
    assert all(s.growth_bytes == 0 for s in top)  # the same heap each time
    assert store.top_sites(tmp_path) == []


def test_a_stalls_evidence_is_its_stall_capture(tmp_path):
    # The stall capture is requested by the stall event, so it is taken just after it.
    run = _run_dir(tmp_path, ["standalone-50", "standalone-80", "standalone-stall"], death_t=1.5,
                   death="MemoryStall")
    last, first = store.evidence(run)
    assert (last.name, first.name) == ("standalone-stall", "standalone-50")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "profile", *args], capture_output=True,
                          text=True, timeout=120)


def test_profile_command_prints_captures_sites_and_a_diff(tmp_path):
    run = _run_dir(tmp_path, ["standalone-50", "standalone-80"], death_t=None)
    result = _cli(str(run), "--top", "3")
    assert result.returncode == 0, result.stderr
    assert "standalone-50" in result.stdout and "mergeFloatVectorField" in result.stdout
    assert "growth since standalone-50" in result.stdout
    other = tmp_path / "other.pb.gz"
    shutil.copy(FIXTURE, other)
    result = _cli("--diff", str(other), str(run), "--by", "package")
    assert result.returncode == 0, result.stderr
    assert "B - A" in result.stdout and "total in use" in result.stdout


BAD = [
    (["/nonexistent"], "is not a run directory"),
    ([], "give a RUN_DIR, or --diff A B"),
    (["--diff", "/nonexistent.pb.gz", "x"], "is not a heap profile file or a run directory"),
    (["--top", "0", "."], "--top 0 is out of range"),
    (["--by", "line", "."], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(argv, message):
    result = _cli(*argv)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_file_that_is_not_a_profile_is_bad_input(tmp_path):
    run = _run_dir(tmp_path, ["standalone-50"], death_t=None)
    (run / "notes.txt").write_text("hello")
    result = _cli("--diff", str(run / "notes.txt"), str(run))
    assert result.returncode == 2 and "is not a heap profile" in result.stderr
    result = _cli(str(run), "--diff", "standalone-50", "standalone-99")
    assert result.returncode == 2 and "is not a capture of" in result.stderr and "standalone-50" in result.stderr


class _StoredHeap:
    """A HeapProfiled watcher that serves the fixture's bytes (the capturer's side, not Milvus's)."""

    def __init__(self) -> None:
        self.fetched = 0

    def fetch_heap(self, component: str, timeout: float) -> bytes | None:
        self.fetched += 1
        return FIXTURE.read_bytes() if component == "standalone" else None


def test_periodic_captures_end_with_the_load_so_end_stays_the_last(tmp_path):
    import time

    from harness.profiles.capture import ProfileCapturer
    from harness.watch.events import RunEvents, Sample
    from waiting import wait_for

    context, watcher = RunEvents(), _StoredHeap()
    context.fire_sample(Sample(t=time.time(), component="standalone", memory_bytes=1, limit_bytes=None,
                               restarts=0, source="test"))
    capturer = ProfileCapturer(context, tmp_path / "profiles", lambda: [watcher], every=0.05).start()
    try:
        wait_for(lambda: len(capturer.captured) >= 3, 30, "three periodic captures")
        capturer.capture_end()
        after_end = list(capturer.captured)
        time.sleep(0.5)  # ten periods: none may follow the end
        assert capturer.captured == after_end and after_end[-1] == "standalone-end.pb.gz"
    finally:
        capturer.stop()
    assert all(n.startswith("standalone-t") for n in after_end[:-1])
