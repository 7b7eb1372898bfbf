"""Report rendering against the checked-in run directories in tests/fixtures/runs/.

Every directory there is rendered (a fixture captured from a real run is picked up by being
dropped next to the synthetic ones); its numbers must match its own summary.json.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.judge.memory_split import has_split, split_memory
from harness.report import load_run, render_report
from harness.units import format_bytes
from run_dirs import FIXTURES, copy_fixture

RUN_DIRS = sorted(p for p in FIXTURES.iterdir() if p.is_dir() and (p / "run.json").exists())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def edit_summary(run_dir: Path, **changes: Any) -> dict[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(changes)
    for key, value in changes.items():
        if value is None:
            summary.pop(key)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return summary


def svg_ids(page: str) -> list[str]:
    return re.findall(r'\bid="([^"]+)"', page)


def banner_of(page: str) -> str:
    match = re.search(r'<section class="banner v-(\w+)"[^>]*data-verdict="(\w+)"', page)
    assert match, "no verdict banner"
    assert match.group(1) == match.group(2).lower()
    return match.group(2)


@pytest.fixture(params=RUN_DIRS, ids=[p.name for p in RUN_DIRS])
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    run_dir = copy_fixture(request.param.name, tmp_path)
    written = render_report(run_dir)
    assert written == [run_dir / "report.md", run_dir / "report.html", run_dir / "junit.xml"]
    assert all(p.stat().st_size > 0 for p in written)
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_fixtures_exist() -> None:
    names = {p.name for p in RUN_DIRS}
    assert {"oom-kill", "pass"} <= names


def test_html_has_the_charts_and_no_external_urls(rendered: tuple[Path, dict[str, Any]]) -> None:
    run_dir, _ = rendered
    page = (run_dir / "report.html").read_text()
    run = load_run(run_dir)
    expected = ["memory"] if any(s.memory_bytes is not None for s in run.samples) else []
    if run.acks:
        expected += ["rows", "latency"] + (["memory-vs-rows"] if expected else [])
    if run_dir.name in ("oom-kill", "pass"):
        assert len(expected) == 4
    if any(has_split(split_memory(s.memory_stat, s.metrics, s.rss_bytes)) for s in run.samples):
        expected.append("memory-split")
    for chart in expected:
        assert f'<figure id="chart-{chart}"><svg' in page, chart
    assert page.count("<svg") == len(expected)
    # opened from disk or a CI artifact: nothing may be fetched
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "url(http" not in page and "@import" not in page
    ids = svg_ids(page)
    assert len(ids) == len(set(ids)), "ids repeat across the inline SVGs"
    ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))  # the inline SVG is well-formed


def test_memory_chart_has_limit_line_and_event_markers(rendered: tuple[Path, dict[str, Any]]) -> None:
    run_dir, summary = rendered
    page = (run_dir / "report.html").read_text()
    memory_svg = page[page.index('<figure id="chart-memory">'):]
    memory_svg = memory_svg[:memory_svg.index("</figure>")]
    ids = set(svg_ids(memory_svg))
    for name, component in summary["components"].items():
        assert f"memory-{name}" in ids
        if component.get("limit_bytes"):
            assert f"limit-{name}" in ids
    events = {e.type for e in load_run(run_dir).events}
    assert ("oom-marker" in ids) == ("OOMKilled" in events) == (summary.get("first_oom") is not None)
    assert ("restart-marker" in ids) == ("Restarted" in events)
    assert (run_dir / "memory.png").read_bytes().startswith(PNG_MAGIC)


def test_html_numbers_match_summary(rendered: tuple[Path, dict[str, Any]]) -> None:
    run_dir, summary = rendered
    page = (run_dir / "report.html").read_text()
    assert banner_of(page) == summary["verdict"]
    for reason in summary["reasons"]:
        assert f"<li>{html.escape(reason)}</li>" in page
    for component in summary["components"].values():
        assert format_bytes(component["peak_memory_bytes"]) in page
    assert f"<th>Acked</th><td>{summary['rows']['acked']:,}</td>" in page
    assert f"<th>Planned</th><td>{summary['rows']['planned']:,}</td>" in page
    p95 = (summary["inserts"].get("latency_ms") or {}).get("p95")
    if p95 is not None:
        assert f"<th>Latency p95</th><td>{p95:,.0f} ms</td>" in page
    assert f"<h1>{summary['scenario']} on Milvus {summary['milvus_version']}" in page


def test_markdown_matches_summary(rendered: tuple[Path, dict[str, Any]]) -> None:
    run_dir, summary = rendered
    text = (run_dir / "report.md").read_text()
    title = f"{summary['verdict']}: {summary['scenario']} on Milvus {summary['milvus_version']}"
    assert text.startswith("# ") and title in text.splitlines()[0]
    for reason in summary["reasons"]:
        assert f"- {reason}" in text
    assert "](memory.png)" in text
    assert f"| **Acked** | {summary['rows']['acked']:,} |" in text
    for name, component in summary["components"].items():
        assert (f"| {name} | {format_bytes(component['peak_memory_bytes'])} | "
                f"{format_bytes(component['limit_bytes'])} |") in text
        assert f"| {component['restarts']} | {component['oom_kills']} | {component['stalls']} |" in text


#: What each fixture's junit.xml must hold, worked out by hand from its events (not from the
#: renderer): test cases in order, each with "failure", "skipped" or None (passed).
JUNIT_EXPECTED: dict[str, list[tuple[str, str | None]]] = {
    "oom-kill": [("fail_on_oom", "failure"), ("fail_on_restart", "failure"), ("fail_on_stall", None),
                 ("fail_on_lost_rows", None)],
    "pass": [("seed", None)],
    "real-oom-2.3.5": [("no OOM kill", "failure"), ("no restart", "failure"), ("no memory stall", None),
                       ("no acked row lost", None)],
    # three OOM kills while recovering, every acked row still there
    "crash-loop-2.3.5": [("no crash loop", "failure"), ("no OOM kill", "failure"), ("no restart", "failure"),
                         ("no memory stall", None), ("no acked row lost", None)],
    # four OOM kills, three of them while recovering (--verify none: no row was checked)
    "real-oom-split-2.3.5": [("no crash loop", "failure"), ("no OOM kill", "failure"), ("no restart", "failure"),
                             ("no memory stall", None), ("no acked row lost", None)],
    # PASS: nothing died, every row verified
    "real-pass-a": [("no crash loop", None), ("no OOM kill", None), ("no restart", None), ("no memory stall", None),
                    ("no acked row lost", None)],
    "real-pass-b": [("no crash loop", None), ("no OOM kill", None), ("no restart", None), ("no memory stall", None),
                    ("no acked row lost", None)],
}


def test_junit_counts(rendered: tuple[Path, dict[str, Any]]) -> None:
    run_dir, _ = rendered
    assert run_dir.name in JUNIT_EXPECTED, "a new fixture: add its expected test cases to JUNIT_EXPECTED"
    expected = JUNIT_EXPECTED[run_dir.name]
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("name") == "milvus-harness"
    cases = suite.findall("testcase")
    outcome = [(c.get("name"), next((x.tag for x in c if x.tag in ("failure", "skipped")), None)) for c in cases]
    assert outcome == expected
    assert int(suite.get("tests")) == len(expected)
    assert int(suite.get("failures")) == sum(o == "failure" for _, o in expected)
    assert int(suite.get("skipped")) == sum(o == "skipped" for _, o in expected)
    assert int(suite.get("errors")) == 0
    for failure in suite.findall("testcase/failure"):
        assert failure.text and failure.get("message")


def test_oom_fixture_tells_the_story(tmp_path: Path) -> None:
    """The seed's local reproduction: the numbers a user reads first."""
    run_dir = copy_fixture("oom-kill", tmp_path)
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    text = (run_dir / "report.md").read_text()
    assert "standalone OOM-killed at 06:13:42 after 650,000 acked rows; peak 2.50 GiB of 2.50 GiB" in page
    assert "OOM kill after 650,000 rows" in page  # the annotation on the memory chart
    assert '<div class="value">2.50 GiB</div>' in page
    assert "382 MB per 100k rows" in page and "382 MB per 100k rows" in text
    assert "| **First OOM kill** | standalone at +22.8 s after 650,000 acked rows |" in text
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    assert "locust.html" not in page  # no Locust report in this run dir: no dead link


def test_pass_fixture_links_locust_report(tmp_path: Path) -> None:
    run_dir = copy_fixture("pass", tmp_path)
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    for name in ("locust.html", "samples.jsonl", "events.jsonl", "logs/"):
        assert f'href="{name}"' in page
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("1", "0")
    assert suite.find("testcase").get("name") == "seed"


def test_torn_last_line_still_renders(tmp_path: Path) -> None:
    run_dir = copy_fixture("oom-kill", tmp_path)
    complete = len(load_run(run_dir).samples)
    for name in ("samples.jsonl", "events.jsonl", "acks.jsonl"):
        with (run_dir / name).open("a") as handle:
            handle.write('{"t": 1718000041.9, "component": "standal')  # harness killed mid-write
    assert len(load_run(run_dir).samples) == complete
    render_report(run_dir)
    assert '<figure id="chart-memory"><svg' in (run_dir / "report.html").read_text()


def test_aborted_run_has_grey_banner(tmp_path: Path) -> None:
    run_dir = copy_fixture("oom-kill", tmp_path)
    edit_summary(run_dir, status="ABORTED", verdict="INCONCLUSIVE",
                 reasons=["interrupted (Ctrl-C) after 650,000 acked rows"], rules=None)
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    assert banner_of(page) == "ABORTED"
    assert "interrupted (Ctrl-C) after 650,000 acked rows" in page
    assert "ABORTED" in (run_dir / "report.md").read_text().splitlines()[0]
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("skipped"), suite.get("failures")) == ("1", "1", "0")


def test_inconclusive_is_skipped_per_rule(tmp_path: Path) -> None:
    run_dir = copy_fixture("oom-kill", tmp_path)
    edit_summary(run_dir, verdict="INCONCLUSIVE", reasons=["the target never became ready"])
    render_report(run_dir)
    assert banner_of((run_dir / "report.html").read_text()) == "INCONCLUSIVE"
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert suite.get("skipped") == suite.get("tests") == "4"
    assert suite.get("failures") == "0"


def test_fail_without_failed_rule_still_fails_in_junit(tmp_path: Path) -> None:
    run_dir = copy_fixture("oom-kill", tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    edit_summary(run_dir, rules=[dict(r, passed=True) for r in summary["rules"]])
    render_report(run_dir)
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("5", "1")


def test_missing_samples_and_acks(tmp_path: Path) -> None:
    run_dir = copy_fixture("oom-kill", tmp_path)
    (run_dir / "samples.jsonl").unlink()
    (run_dir / "acks.jsonl").write_text("")
    written = render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    assert "No memory samples were recorded." in page and "<svg" not in page
    assert not (run_dir / "memory.png").exists()
    assert "memory.png" not in (run_dir / "report.md").read_text()
    assert banner_of(page) == "FAIL"
    ET.parse(written[2])


def test_stale_memory_png_is_removed(tmp_path: Path) -> None:
    run_dir = copy_fixture("oom-kill", tmp_path)
    render_report(run_dir)
    (run_dir / "samples.jsonl").unlink()
    render_report(run_dir)
    assert not (run_dir / "memory.png").exists()


def test_no_components_no_summary(tmp_path: Path) -> None:
    """A run killed before the verdict and before any sample: still a page, grey, and an error."""
    run_dir = tmp_path / "early"
    run_dir.mkdir()
    (run_dir / "run.json").write_text((FIXTURES / "oom-kill" / "run.json").read_text())
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    assert banner_of(page) == "ABORTED"
    assert "summary.json was not written" in page
    assert "No components were watched." in page
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")


def test_empty_components_in_summary(tmp_path: Path) -> None:
    run_dir = copy_fixture("pass", tmp_path)
    edit_summary(run_dir, components={})
    (run_dir / "samples.jsonl").write_text("")
    render_report(run_dir)
    assert "No components were watched." in (run_dir / "report.html").read_text()


def test_multiple_components_get_their_own_lines(tmp_path: Path) -> None:
    """Two streaming nodes, as in the seed's cluster: one memory and one limit line each."""
    run_dir = copy_fixture("oom-kill", tmp_path)
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    doubled = []
    for line in lines:
        sample = json.loads(line)
        doubled.append(json.dumps(dict(sample, component="streamingnode-0")))
        doubled.append(json.dumps(dict(sample, component="streamingnode-1", limit_bytes=3 * 2**30)))
    (run_dir / "samples.jsonl").write_text("\n".join(doubled) + "\n")
    edit_summary(run_dir, components=None)
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    ids = set(svg_ids(page))
    assert {"memory-streamingnode-0", "memory-streamingnode-1",
            "limit-streamingnode-0", "limit-streamingnode-1"} <= ids
    assert "<td>streamingnode-1</td>" in page and "3.00 GiB" in page


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    run_dir = copy_fixture("oom-kill", tmp_path)
    render_report(run_dir)
    first = [(run_dir / n).read_text() for n in ("report.md", "report.html", "junit.xml")]
    render_report(run_dir)
    assert first == [(run_dir / n).read_text() for n in ("report.md", "report.html", "junit.xml")]


def test_crash_loop_fixture_shows_each_recovery(tmp_path: Path) -> None:
    """A real crash loop: the reason first, each restart's recovery in a table and on the chart."""
    run_dir = copy_fixture("crash-loop-2.3.5", tmp_path)
    render_report(run_dir)
    page = (run_dir / "report.html").read_text()
    text = (run_dir / "report.md").read_text()
    reason = ("standalone crash-looping: OOM-killed 3 times while recovering (each within ~28 s of restart), "
              "never ready again after 400,000 acked rows")
    assert f"- {reason}" in text and html.escape(reason) in page
    assert "## Recovery after each restart" in text
    assert "| standalone | 1 | +109.3 s | OOM-killed while recovering | 28.5 s | 2.00 GiB |" in text
    assert "| standalone | 4 | +3 min 11 s | ready | 45.1 s | 4.08 GiB |" in text
    assert page.count("OOM-killed while recovering") == 3 and 'id="recoveries"' in page
    ids = svg_ids(page)
    assert {"recovery-1", "recovery-2", "recovery-3", "recovery-4", "crash-loop-marker"} <= set(ids)
    # The memory line goes on through the restarts and the check after the load.
    stopped = next(e["t"] for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())
                   if e["type"] == "LoadStopped")
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert max(s["t"] for s in samples) > stopped + 60
