"""The bisect search against scripted targets: the verdict of each version is decided by a table.

Like asv's tests of `asv find`, the search must land on a known version; here the "runs"
are dictionary look-ups, so every boundary position and skip pattern is cheap to try.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.compare.bisect_command import run_bisect
from harness.compare.bisect_search import (
    Outcome,
    RunOutcome,
    bisect,
    check_range,
    compare_link,
    describe,
    read_versions_file,
    verdict_of,
)
from harness.errors import ExitCode, Interrupted, TargetError, UsageError
from harness.compare.run_keys import RunKey
from harness.rundir import SCHEMA_VERSION, read_json
from harness.judge.verdict import Verdict
from run_dirs import write_run_dir

P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE


def names(n: int) -> list[str]:
    return [f"v{i:02d}" for i in range(n)]


class Scripted:
    """A target whose verdict per version is scripted; records every evaluation."""

    def __init__(self, verdicts: Mapping[str, Verdict]) -> None:
        self.verdicts = dict(verdicts)
        self.calls: list[str] = []

    def __call__(self, version: str) -> Verdict:
        assert version in self.verdicts, f"evaluated {version}, which is outside the scripted range"
        assert version not in self.calls, f"evaluated {version} twice"
        self.calls.append(version)
        return self.verdicts[version]


class Cache:
    """The caller-side cache: a dict in front of an evaluate callable."""

    def __init__(self, evaluate: Callable[[str], Any]) -> None:
        self.evaluate = evaluate
        self.store: dict[str, Any] = {}

    def __call__(self, version: str) -> Any:
        if version not in self.store:
            self.store[version] = self.evaluate(version)
        return self.store[version]


def regression_at(versions: list[str], first_bad: int, skip: set[int] = frozenset()) -> Scripted:
    return Scripted({v: I if i in skip else (P if i < first_bad else F) for i, v in enumerate(versions)})


def budget(n: int) -> int:
    return math.ceil(math.log2(n)) + 2


@pytest.mark.parametrize("n", [2, 3, 20])
def test_finds_every_boundary_within_budget(n: int) -> None:
    versions = names(n)
    for first_bad in range(1, n):
        target = regression_at(versions, first_bad)
        result = bisect(versions, versions[0], versions[-1], target)
        assert result.outcome is Outcome.FOUND and result.exit_code == 0
        assert result.first_bad.version == versions[first_bad]
        assert result.last_good.version == versions[first_bad - 1]
        assert result.first_bad.verdict is F and result.last_good.verdict is P
        assert len(target.calls) <= budget(n), (first_bad, target.calls)
        assert target.calls[:2] == [versions[0], versions[-1]]  # endpoints first
        assert result.evaluated == target.calls


def test_only_versions_between_the_endpoints_are_evaluated() -> None:
    versions = names(20)
    for first_bad in range(4, 16):
        # Versions outside v03..v15 are not scripted: evaluating one fails the test.
        target = Scripted({v: (P if i < first_bad else F) for i, v in enumerate(versions) if 3 <= i <= 15})
        result = bisect(versions, "v03", "v15", target)
        assert result.first_bad.version == versions[first_bad]
        assert result.versions == tuple(versions[3:16])
        assert len(target.calls) <= budget(13)


def test_result_carries_what_evaluate_returned() -> None:
    versions = names(5)
    result = bisect(versions, "v00", "v04", lambda v: (P if v < "v03" else F, f"/runs/{v}"))
    assert result.first_bad.result == (F, "/runs/v03")
    assert result.last_good.result == (P, "/runs/v02")


@pytest.mark.parametrize("n", [3, 20])
def test_find_fix_finds_every_first_good(n: int) -> None:
    versions = names(n)
    for first_good in range(1, n):
        target = Scripted({v: (F if i < first_good else P) for i, v in enumerate(versions)})
        result = bisect(versions, good=versions[-1], bad=versions[0], evaluate=target, find_fix=True)
        assert result.outcome is Outcome.FOUND
        assert result.first_good.version == versions[first_good]
        assert result.last_bad.version == versions[first_good - 1]
        assert result.first_bad is None and result.last_good is None
        assert len(target.calls) <= budget(n)
        assert "first good version" in result.reason


def test_skip_far_from_the_boundary_is_stepped_around() -> None:
    versions = names(20)
    target = regression_at(versions, 15, skip={9, 10})
    result = bisect(versions, "v00", "v19", target)
    assert result.outcome is Outcome.FOUND and result.first_bad.version == "v15"
    roles = {s.version: s.role for s in result.steps}
    assert roles["v09"] == "midpoint" and I in [s.verdict for s in result.steps]
    assert "neighbour" in roles.values()


@pytest.mark.parametrize("first_bad", range(2, 18))
def test_skip_just_before_the_boundary_is_undecided(first_bad: int) -> None:
    versions = names(20)
    result = bisect(versions, "v00", "v19", regression_at(versions, first_bad, skip={first_bad - 1}))
    assert result.outcome is Outcome.UNDECIDED and result.exit_code == 125
    assert result.candidates == (versions[first_bad - 1], versions[first_bad])
    assert result.last_good.version == versions[first_bad - 2]
    assert result.first_bad.version == versions[first_bad]
    assert "could not be decided" in result.reason and versions[first_bad - 1] in result.reason


@pytest.mark.parametrize("first_bad", range(1, 18))
def test_skipped_first_bad_is_undecided(first_bad: int) -> None:
    versions = names(20)
    result = bisect(versions, "v00", "v19", regression_at(versions, first_bad, skip={first_bad}))
    assert result.outcome is Outcome.UNDECIDED
    assert result.candidates == (versions[first_bad], versions[first_bad + 1])


def test_skips_on_both_sides_list_the_whole_candidate_range() -> None:
    versions = names(20)
    result = bisect(versions, "v00", "v19", regression_at(versions, 10, skip={8, 9, 10, 11}))
    assert result.outcome is Outcome.UNDECIDED
    assert result.candidates == ("v08", "v09", "v10", "v11", "v12")
    assert "v08, v09, v10, v11 were INCONCLUSIVE" in result.reason
    assert (result.last_good.version, result.first_bad.version) == ("v07", "v12")


def test_undecided_reason_names_only_the_skips_that_hide_the_boundary() -> None:
    versions = names(20)
    result = bisect(versions, "v00", "v19", regression_at(versions, 15, skip={9, 14}))
    assert "v09" in result.evaluated  # skipped and stepped around
    assert result.candidates == ("v14", "v15")
    assert result.reason.startswith("could not be decided: v14 was INCONCLUSIVE;")


@pytest.mark.parametrize("n", [3, 20])
def test_every_candidate_skipped(n: int) -> None:
    versions = names(n)
    target = Scripted({v: P if i == 0 else F if i == n - 1 else I for i, v in enumerate(versions)})
    result = bisect(versions, versions[0], versions[-1], target)
    assert result.outcome is Outcome.UNDECIDED
    assert result.candidates == tuple(versions[1:])
    assert sorted(target.calls) == versions  # each tried once, no more


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_search_invariants(data: st.DataObject) -> None:
    """Found exactly when neither side of the boundary is skipped; never a version twice."""
    n = data.draw(st.integers(2, 40), label="n")
    first_bad = data.draw(st.integers(1, n - 1), label="first_bad")
    skip = data.draw(st.sets(st.integers(1, n - 2), max_size=n), label="skip") if n > 2 else set()
    versions = names(n)
    target = regression_at(versions, first_bad, skip)
    result = bisect(versions, versions[0], versions[-1], target)
    if {first_bad - 1, first_bad} & skip:
        assert result.outcome is Outcome.UNDECIDED
        assert versions[first_bad] in result.candidates
        assert all(versions.index(v) in skip for v in result.candidates[:-1])
    else:
        assert result.outcome is Outcome.FOUND and result.first_bad.version == versions[first_bad]
    if not skip:
        assert len(target.calls) <= budget(n)


def test_candidates_announced_before_each_evaluation_predict_the_next() -> None:
    versions = names(20)
    for first_bad in range(1, 20):
        announced: list[list[str]] = []
        target = regression_at(versions, first_bad)
        bisect(versions, "v00", "v19", target, on_candidates=lambda c: announced.append(list(c)))
        assert len(announced) == len(target.calls)
        for before, tested_next in zip(announced, target.calls[1:]):
            assert tested_next in before[:2], (first_bad, announced, target.calls)


def test_candidates_include_the_neighbour_of_a_skip() -> None:
    versions = names(20)
    announced: list[list[str]] = []
    target = regression_at(versions, 4, skip={9})
    bisect(versions, "v00", "v19", target, on_candidates=lambda c: announced.append(list(c)))
    assert len(announced) == len(target.calls)  # one announcement before each evaluation
    for before, tested_next in zip(announced, target.calls[1:]):
        assert tested_next in before
    # v09 was skipped; what came next was its neighbour, and it was announced before it ran.
    skipped = target.calls.index("v09")
    neighbour = target.calls[skipped + 1]
    assert neighbour in ("v08", "v10") and neighbour in announced[skipped]


def test_on_step_sees_every_step_with_what_remains() -> None:
    versions = names(9)
    seen = []
    result = bisect(versions, "v00", "v08", regression_at(versions, 6), on_step=seen.append)
    assert [s.version for s in seen] == result.evaluated
    assert [s.number for s in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].remaining == ("v06",)
    assert all(len(b.remaining) <= len(a.remaining) for a, b in zip(seen, seen[1:]))


def test_repeated_bisect_with_a_cache_evaluates_nothing() -> None:
    versions = names(20)
    target = regression_at(versions, 13, skip={12})
    cache = Cache(target)
    first = bisect(versions, "v00", "v19", cache)
    calls = len(target.calls)
    second = bisect(versions, "v00", "v19", cache)
    assert len(target.calls) == calls
    assert second.evaluated == first.evaluated and second.candidates == first.candidates


# --- wrong endpoints and bad input ---------------------------------------------------------------


def test_good_that_fails_stops_after_the_endpoints() -> None:
    versions = names(10)
    target = Scripted({v: F for v in versions})
    result = bisect(versions, "v00", "v09", target)
    assert result.outcome is Outcome.WRONG_ENDPOINTS and result.exit_code == 2
    assert target.calls == ["v00", "v09"]
    assert result.reason == "--good v00 was FAIL, not PASS"


def test_bad_that_passes_stops_after_the_endpoints() -> None:
    versions = names(10)
    target = Scripted({v: P for v in versions})
    result = bisect(versions, "v00", "v09", target)
    assert result.outcome is Outcome.WRONG_ENDPOINTS
    assert result.reason == "--bad v09 was PASS, not FAIL"
    assert target.calls == ["v00", "v09"]


def test_reversed_endpoints_suggest_find_fix() -> None:
    versions = names(10)
    result = bisect(versions, "v00", "v09", Scripted({v: F if v < "v05" else P for v in versions}))
    assert result.outcome is Outcome.WRONG_ENDPOINTS and "--find-fix" in result.reason
    fixed = bisect(versions, "v09", "v00", Scripted({v: F if v < "v05" else P for v in versions}), find_fix=True)
    assert fixed.first_good.version == "v05"
    back = bisect(versions, "v09", "v00", Scripted({v: P if v < "v05" else F for v in versions}), find_fix=True)
    assert back.outcome is Outcome.WRONG_ENDPOINTS and "drop --find-fix" in back.reason


def test_inconclusive_endpoint_is_undecided() -> None:
    versions = names(10)
    result = bisect(versions, "v00", "v09", Scripted({v: I if v == "v00" else F for v in versions}))
    assert result.outcome is Outcome.UNDECIDED and result.exit_code == 125
    assert "--good v00 was INCONCLUSIVE" in result.reason
    assert len(result.steps) == 2


@pytest.mark.parametrize(
    ("versions", "good", "bad", "find_fix", "message"),
    [
        (names(5), "v02", "v02", False, "both 'v02'"),
        (["2.2.16", "2.3.0", "2.3.5"], "v2.3.0", "2.3.5", False, "--good 'v2.3.0' is not a known version; did you mean 2.3.0?"),
        (names(5), "v00", "v44", False, "--bad 'v44' is not a known version"),
        (names(5), "v04", "v00", False, "--good v04 is newer than --bad v00; --good must be the older"),
        (names(5), "v00", "v04", True, "--bad v04 must be older than --good v00"),
        (["v1"], "v1", "v1", False, "at least two versions"),
        (["a", "b", "a"], "a", "b", False, "names 'a' twice"),
    ],
)
def test_bad_input_is_a_usage_error(versions: list[str], good: str, bad: str, find_fix: bool, message: str) -> None:
    target = Scripted({})
    with pytest.raises(UsageError, match=message.replace("?", r"\?")) as info:
        bisect(versions, good, bad, target, find_fix=find_fix)
    assert info.value.exit_code == ExitCode.USAGE == 2
    assert "\n" not in str(info.value)
    assert target.calls == []


def test_check_range_returns_older_then_newer() -> None:
    assert check_range(names(6), "v01", "v04") == (1, 4)
    assert check_range(names(6), "v04", "v01", find_fix=True) == (1, 4)


def test_long_version_lists_are_abbreviated_in_errors() -> None:
    with pytest.raises(UsageError) as info:
        check_range(names(30), "nope", "v03")
    assert "v00, v01, v02, ..., v27, v28, v29 (30 versions)" in str(info.value)


def test_verdict_of_accepts_the_shapes_evaluate_returns() -> None:
    assert verdict_of("PASS") is P
    assert verdict_of(F) is F
    assert verdict_of((I, Path("/x"), {})) is I
    assert verdict_of(RunOutcome(F, None, {})) is F
    with pytest.raises(ValueError, match="no PASS/FAIL/INCONCLUSIVE"):
        verdict_of("MAYBE")


# --- compare links and version files -------------------------------------------------------------


def test_compare_link_for_dated_master_tags() -> None:
    assert compare_link("master-20250310-1a2b3c4d", "master-20250312-5735c3ef") == (
        "https://github.com/milvus-io/milvus/compare/1a2b3c4d...5735c3ef"
    )
    assert compare_link("master-20250310-1a2b3c4d-amd64", "master-20250312-5735c3ef-amd64").endswith(
        "/compare/1a2b3c4d...5735c3ef"
    )
    assert compare_link("2.2.16", "2.3.0") is None
    assert compare_link("master-20250310-1a2b3c4d", "2.3.0") is None
    assert compare_link("master-2025031-1a2b3c4d", "master-20250312-5735c3ef") is None
    assert compare_link("master-20250310-1a2b3c4d", "master-20250311-1a2b3c4d") is None


def test_result_compare_link_uses_the_boundary() -> None:
    tags = ["master-20250301-aaaaaaa1", "master-20250302-bbbbbbb2", "master-20250303-ccccccc3",
            "master-20250304-ddddddd4", "master-20250305-eeeeeee5"]
    result = bisect(tags, tags[0], tags[-1], lambda v: P if v < tags[3] else F)
    assert result.compare_link == "https://github.com/milvus-io/milvus/compare/ccccccc3...ddddddd4"


def test_read_versions_file(tmp_path: Path) -> None:
    path = tmp_path / "tags.txt"
    path.write_text("# oldest first\nmaster-20250301-aaaaaaa1\n\n  master-20250302-bbbbbbb2  # the fix?\n")
    assert read_versions_file(path) == ["master-20250301-aaaaaaa1", "master-20250302-bbbbbbb2"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="lists no versions"):
        read_versions_file(tmp_path / "empty.txt")
    with pytest.raises(UsageError, match="cannot read"):
        read_versions_file(tmp_path / "missing.txt")


# --- run_bisect: the command's core with scripted runs writing fake run directories -------------

GIB = 2**30


_RUN_NUMBERS = itertools.count(1)


class FakeRuns:
    """run_version for run_bisect: writes a run directory with run.json and summary.json."""

    def __init__(self, report_dir: Path, verdicts: Mapping[str, Verdict], key_for: Callable[[str], RunKey]) -> None:
        self.report_dir = report_dir
        self.verdicts = dict(verdicts)
        self.key_for = key_for
        self.calls: list[str] = []

    def __call__(self, version: str) -> tuple[Verdict, Path, dict[str, Any]]:
        self.calls.append(version)
        verdict = self.verdicts[version]
        if verdict is I and version.endswith("-broken"):
            raise TargetError(f"milvus {version} did not start")
        peak = int((2.6 if verdict is F else 1.8) * GIB)
        summary = {
            "status": "FINISHED",
            "verdict": verdict.value,
            "reasons": ["streamingnode-1 was OOM-killed after 650000 rows"] if verdict is F else [],
            "rows": {"planned": 1_000_000, "acked": 650_000 if verdict is F else 1_000_000},
            "components": {"standalone": {"peak_memory_bytes": peak, "limit_bytes": int(2.5 * GIB),
                                          "restarts": int(verdict is F), "oom_kills": int(verdict is F)}},
        }
        run_dir = write_run_dir(self.report_dir / f"run-{version}-{next(_RUN_NUMBERS)}",
                                run={"key": self.key_for(version).to_json()}, summary=summary,
                                files={"report.html": "<html></html>"})
        return verdict, run_dir, read_json(run_dir / "summary.json")


def key_for(version: str) -> RunKey:
    return RunKey("embedded", version, "sha256:seed", int(2.5 * GIB), {"shards": "16"})


def test_run_bisect_writes_the_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    versions = ["2.2.4", "2.2.9", "2.2.16", "2.3.0", "2.3.1", "2.3.5"]
    runs = FakeRuns(reports, {v: P if v < "2.3" else F for v in versions}, key_for)
    steps = []
    result = run_bisect(versions, "2.2.4", "2.3.5", runs, reports, key_for=key_for, bisect_id="t1",
                        context={"target": "embedded", "memory limit": "2.50 GiB"}, on_step=steps.append)
    assert result.exit_code == 0 and result.first_bad.version == "2.3.0"
    assert result.report_dir == reports / "bisect-t1"
    assert isinstance(result.first_bad.result, RunOutcome) and result.first_bad.result.run_dir.is_dir()
    assert [s.version for s in steps] == runs.calls == result.evaluated

    summary = read_json(reports / "bisect-t1" / "summary.json")
    assert summary["schema_version"] == SCHEMA_VERSION and summary["status"] == "FINISHED"
    assert summary["outcome"] == "FOUND" and summary["exit_code"] == 0
    assert summary["last_good"]["version"] == "2.2.16" and summary["first_bad"]["version"] == "2.3.0"
    assert summary["first_bad"]["run_dir"] == str(result.first_bad.result.run_dir)
    assert summary["compare_link"] is None  # release versions, not dated master tags
    assert summary["range"] == versions
    tested = {row["version"]: row for row in summary["tested"]}
    assert set(tested) == set(runs.calls)
    assert tested["2.3.0"]["verdict"] == "FAIL" and tested["2.3.0"]["peak_memory_bytes"] == int(2.6 * GIB)
    assert tested["2.3.0"]["oom_kills"] == 1 and tested["2.3.0"]["rows_acked"] == 650_000
    assert tested["2.2.4"]["verdict"] == "PASS" and tested["2.2.4"]["reused"] is False

    md = (reports / "bisect-t1" / "bisect.md").read_text()
    page = (reports / "bisect-t1" / "index.html").read_text()
    svg = (reports / "bisect-t1" / "peak-memory.svg").read_text()
    for version in runs.calls:
        assert f"`{version}`" in md and f"<code>{version}</code>" in page and version in svg
    assert "2.60 GiB" in md and "2.60 GiB" in page and "limit 2.50 GiB" in svg
    assert "first bad version: 2.3.0 (last good: 2.2.16)" in md
    assert "../run-2.3.0-" in page and "report.html" in page  # relative links to each run's report
    assert "<svg" in page and all(f"<title>{v}: " in page for v in runs.calls)
    assert "memory limit" in page
    import xml.dom.minidom

    xml.dom.minidom.parseString(svg)  # well-formed, so it renders standalone too

    lines = describe(result)
    assert lines[0] == "bisect: first bad version: 2.3.0 (last good: 2.2.16)"
    assert any("first bad: 2.3.0" in line and str(result.first_bad.result.run_dir) in line for line in lines)


def test_repeated_run_bisect_reuses_every_run(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    versions = names(12)
    verdicts = {v: P if v < "v07" else F for v in versions}
    first = run_bisect(versions, "v00", "v11", FakeRuns(reports, verdicts, key_for), reports, key_for=key_for)
    again_runs = FakeRuns(reports, verdicts, key_for)
    prefetch: list[list[str]] = []
    again = run_bisect(versions, "v00", "v11", again_runs, reports, key_for=key_for, on_candidates=prefetch.append)
    assert again_runs.calls == []
    assert all(c == [] or set(c).isdisjoint(first.evaluated) for c in prefetch)  # nothing to install for reused runs
    assert again.first_bad.version == first.first_bad.version == "v07"
    assert again.report_dir != first.report_dir  # a second report dir, not an overwrite
    assert all(row["reused"] for row in read_json(again.report_dir / "summary.json")["tested"])
    assert "(reused)" in (again.report_dir / "bisect.md").read_text()

    # Another memory limit is another key: nothing is reused.
    other_runs = FakeRuns(reports, verdicts, key_for)
    other_key = lambda v: RunKey("embedded", v, "sha256:seed", 3 * GIB, {"shards": "16"})  # noqa: E731
    run_bisect(versions, "v00", "v11", other_runs, reports, key_for=other_key)
    assert other_runs.calls == again.evaluated


def test_run_bisect_find_fix_with_master_tags(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    tags = [f"master-202503{d:02d}-{d:07x}a" for d in range(1, 11)]
    runs = FakeRuns(reports, {t: F if t < tags[6] else P for t in tags}, key_for)
    result = run_bisect(tags, good=tags[-1], bad=tags[0], run_version=runs, report_dir=reports, find_fix=True)
    assert result.first_good.version == tags[6] and result.last_bad.version == tags[5]
    link = f"https://github.com/milvus-io/milvus/compare/{tags[5].split('-')[2]}...{tags[6].split('-')[2]}"
    summary = read_json(result.report_dir / "summary.json")
    assert summary["mode"] == "find-fix" and summary["compare_link"] == link
    assert summary["first_good"]["version"] == tags[6] and summary["first_bad"] is None
    assert link in (result.report_dir / "index.html").read_text()
    assert link in (result.report_dir / "bisect.md").read_text()


def test_run_bisect_target_error_is_a_skip(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    versions = ["v0", "v1", "v2-broken", "v3", "v4"]
    verdicts = {"v0": P, "v1": P, "v2-broken": I, "v3": F, "v4": F}
    result = run_bisect(versions, "v0", "v4", FakeRuns(reports, verdicts, key_for), reports)
    assert result.outcome is Outcome.UNDECIDED and result.exit_code == 125
    assert result.candidates == ("v2-broken", "v3")
    row = next(r for r in read_json(result.report_dir / "summary.json")["tested"] if r["version"] == "v2-broken")
    assert row["verdict"] == "INCONCLUSIVE" and row["run_dir"] is None
    assert row["reasons"] == ["milvus v2-broken did not start"] and row["peak_memory_bytes"] is None
    assert "v2-broken" in (result.report_dir / "index.html").read_text()


def test_run_bisect_wrong_endpoints_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    versions = names(4)
    result = run_bisect(versions, "v00", "v03", FakeRuns(reports, {v: F for v in versions}, key_for), reports)
    assert result.exit_code == 2
    summary = read_json(result.report_dir / "summary.json")
    assert summary["outcome"] == "WRONG_ENDPOINTS" and summary["reason"] == "--good v00 was FAIL, not PASS"
    assert len(summary["tested"]) == 2
    assert describe(result)[0].startswith("bisect stopped: --good v00 was FAIL")


def test_run_bisect_bad_input_creates_nothing(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    with pytest.raises(UsageError):
        run_bisect(names(4), "v03", "v00", FakeRuns(reports, {}, key_for), reports)
    assert not reports.exists()


def test_run_bisect_interrupted_leaves_an_aborted_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    versions = names(8)
    runs = FakeRuns(reports, {v: P if v < "v05" else F for v in versions}, key_for)

    def run_version(version: str) -> tuple[Verdict, Path, dict[str, Any]]:
        if len(runs.calls) == 3:
            raise Interrupted(2)
        return runs(version)

    with pytest.raises(Interrupted):
        run_bisect(versions, "v00", "v07", run_version, reports, bisect_id="x")
    summary = json.loads((reports / "bisect-x" / "summary.json").read_text())
    assert summary["status"] == "ABORTED" and summary["reason"] == "stopped: stopped by SIGINT"
    assert len(summary["tested"]) == 3
