"""Where the memory went: memory.stat of a real cgroup, the split of samples, summary and report."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.judge.memory_split import memory_split_summary, split_memory
from harness.report import load_run, memory_section, render_report
from harness.profiles import store
from harness.report.charts import build_charts
from harness.targets.cgroup import CgroupUnavailable, MemoryCgroup
from run_dirs import copy_fixture

PROFILES = Path(__file__).parent.parent / "fixtures" / "profiles"

MiB = 2**20
HOLD = """
import sys, time
anon = bytearray(96 << 20)               # resident anonymous memory
with open(sys.argv[1], "wb") as f:       # page cache: written, not mapped
    f.write(b"x" * (48 << 20))
print("ready", flush=True)
time.sleep(120)
"""


def test_memory_stat_of_a_real_cgroup_tells_page_cache_from_anonymous_memory(tmp_path: Path) -> None:
    try:
        group = MemoryCgroup.create(f"test-{uuid.uuid4().hex[:8]}", 1024 * MiB)
    except CgroupUnavailable as exc:
        pytest.skip(str(exc))
    child = None
    try:
        before = group.memory_stat()
        assert set(before) >= {"anon", "page_cache", "mapped_file"}
        child = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "cached")], stdout=subprocess.PIPE,
                                 preexec_fn=group.add_self)
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        stat = group.memory_stat()
        parts = split_memory(stat, {}, None)
        assert stat["anon"] - before["anon"] >= 90 * MiB
        assert parts["page_cache"] is not None and parts["page_cache"] >= 45 * MiB
        assert parts["page_cache"] <= stat["page_cache"] - stat["mapped_file"]
    finally:
        if child is not None:
            child.kill()
            child.wait()
        group.remove()


def test_the_split_does_not_count_a_byte_twice() -> None:
    stat = {"anon": 700 * MiB, "page_cache": 300 * MiB, "mapped_file": 100 * MiB}
    metrics = {"process_resident_memory_bytes": 900 * MiB, "go_memstats_heap_inuse_bytes": 250 * MiB,
               "milvus_datanode_fg_buffer_size": 80 * MiB, "milvus_datanode_flowgraph_num": 16}
    parts = split_memory(stat, metrics, rss_bytes=None)
    assert parts["page_cache"] == 200 * MiB  # the mapped part is in the RSS already
    assert parts["outside_go_heap"] == 650 * MiB
    assert (parts["go_heap_other"], parts["write_buffer"]) == (170 * MiB, 80 * MiB)
    stacked = sum(parts[k] for k, _ in memory_section.PARTS)
    assert stacked == 200 * MiB + 900 * MiB  # page cache not mapped + resident set
    assert parts["flowgraphs"] == 16
    # nothing read, nothing claimed
    assert split_memory({}, {}, None) == dict.fromkeys(parts)


def test_summary_split_is_taken_before_the_death() -> None:
    samples = [{"t": float(t), "memory_bytes": m * MiB, "rss_bytes": m * MiB,
                "metrics": {"go_memstats_heap_inuse_bytes": h * MiB}, "memory_stat": {"page_cache": 10 * MiB}}
               for t, m, h in ((1, 100, 40), (2, 900, 300), (3, 200, 50), (4, 950, 10))]
    split = memory_split_summary(samples, until=3.0)  # the sample at t=4 is after the death
    assert split is not None
    assert split["at_peak"]["t"] == 2.0 and split["at_peak"]["go_heap_inuse"] == 300 * MiB
    assert split["last"]["t"] == 3.0
    assert split["sources"] == ["/metrics", "cgroup memory.stat"]
    assert memory_split_summary([{"t": 1.0, "memory_bytes": 5}], until=None) is None


def test_the_report_has_the_section_and_the_sites_table_when_the_run_has_profiles(tmp_path: Path) -> None:
    run_dir = copy_fixture("real-oom-2.3.5", tmp_path)  # a real OOM-killed run: /metrics figures, no memory.stat
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    assert memory_section.TITLE in page and 'id="chart-memory-split"' in page
    assert 'id="split-outside_go_heap"' in page and 'id="split-go_heap_other"' in page
    assert 'id="split-page_cache"' not in page  # not read on that run: not drawn
    assert 'id="allocation-sites"' not in page  # no profiles: no table
    markdown = (run_dir / "report.md").read_text()
    assert f"## {memory_section.TITLE}" in markdown and "(memory-split.png)" in markdown
    assert (run_dir / "memory-split.png").stat().st_size > 0
    # a heap profile captured from a real 2.3.5 server, stored as a run stores it
    (run_dir / "profiles").mkdir()
    shutil.copy(PROFILES / "milvus-2.3.5-heap.pb.gz", run_dir / "profiles" / "standalone-80.pb.gz")
    top = store.top_sites(run_dir)
    assert top and sum(site.bytes for site in top) == store.evidence(run_dir)[0].profile().total()
    render_report(run_dir, with_charts=False)
    page = (run_dir / "report.html").read_text()
    assert 'id="allocation-sites"' in page and html.escape(top[0].name) in page
    assert top[0].name in (run_dir / "report.md").read_text()


def test_no_split_no_chart(tmp_path: Path) -> None:
    run_dir = copy_fixture("real-oom-2.3.5", tmp_path)
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    (run_dir / "samples.jsonl").write_text("".join(
        json.dumps({k: v for k, v in s.items() if k != "metrics"}) + "\n" for s in samples))
    assert "memory-split" not in {c.name for c in build_charts(load_run(run_dir))}


def test_a_tick_without_metrics_is_not_taken_for_the_split() -> None:
    full = {"t": 1.0, "memory_bytes": 500 * MiB, "metrics": {"go_memstats_heap_inuse_bytes": 200 * MiB,
                                                             "process_resident_memory_bytes": 450 * MiB},
            "memory_stat": {"page_cache": 40 * MiB, "mapped_file": 0}}
    bare = {"t": 2.0, "memory_bytes": 900 * MiB, "memory_stat": {"page_cache": 40 * MiB}}  # /metrics did not answer
    split = memory_split_summary([full, bare], until=None)
    assert split is not None and split["at_peak"]["t"] == 1.0 and split["last"]["t"] == 1.0


def test_a_real_oom_killed_run_shows_where_its_memory_went(tmp_path: Path) -> None:
    run_dir = copy_fixture("real-oom-split-2.3.5", tmp_path)  # memory.stat and /metrics, 4 OOM kills
    summary = json.loads((run_dir / "summary.json").read_text())
    split = summary["components"]["standalone"]["memory_split"]
    peak = split["at_peak"]
    assert peak["t"] <= summary["first_oom"]["t"] and split["sources"] == ["/metrics", "cgroup memory.stat"]
    # recomputed from the samples as the summary does: the same figures
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert memory_split_summary(samples, until=summary["first_oom"]["t"])["at_peak"] == peak
    assert sum(peak[k] for k, _ in memory_section.PARTS) == peak["page_cache"] + peak["rss"]
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    assert all(f'id="split-{k}"' in page for k, _ in memory_section.PARTS)
    assert "802.96 MiB" in page  # the write buffer at the peak, as summary.json has it
