"""`matrix` and `bisect` through harness.cli.main, with scripted runs instead of Milvus.

Bad input must end in exit 2 with nothing created and nothing run. The aggregation is
tested with scripted cells: `harness.compare.matrix.run_cell` (the one seam of the matrix) and
`harness.run.lifecycle.run` (what bisect runs per version) are replaced by stand-ins that write a
real-shaped run directory whose verdict and figures a table decides, as asv's tests script
benchmark values. The published version list is fixed so no test asks the package index.
"""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from rich.console import Console

from harness import cli
from harness.compare import matrix
from harness.run import lifecycle
from harness.compare.bisect_command import Prefetcher
from harness.errors import HarnessError
from harness.rundir import SCHEMA_VERSION, RunDir, read_json
from harness.run.lifecycle import RunOptions, RunResult
from harness.judge.verdict import Verdict
from run_dirs import write_run_dir

PUBLISHED = ["2.2.16", "2.3.0", "2.3.1", "2.3.2", "2.3.3", "2.3.4", "2.3.5"]
GIB = 2**30


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed published list; and no test may start a real run or install anything."""
    from harness.targets import install

    monkeypatch.setattr(install, "published_versions", lambda refresh=False: list(PUBLISHED))

    def no_install(version: str) -> None:
        raise AssertionError(f"a test tried to install milvus {version}")

    monkeypatch.setattr(install, "ensure_installed", no_install)

    def no_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a test started a real run")

    monkeypatch.setattr(lifecycle, "run", no_run)


# --- a scripted run directory ---------------------------------------------------------------


def write_run(options: RunOptions, verdict: str, *, oom_at: int | None = None, growth: float = 300.0,
              rate: float = 40_000.0, p50: float = 700.0, status: str = "FINISHED", exit_code: int | None = None,
              crash: str | None = None) -> Path:
    """A run directory as lifecycle.run leaves it: run.json with the run key, summary, samples, acks."""
    scenario, target = lifecycle.prepare(options)
    version = target.milvus_version
    run_id = options.run_id or f"scripted-{scenario.name}-{version}-{len(list(options.report_dir.glob('*')))}"
    rd = RunDir.create(options.report_dir, run_id)
    key = lifecycle.run_key(scenario, target, version, options.overrides)
    t0, batch, rows_total = 1000.0, 50_000, scenario.total_rows
    acks, samples = [], []
    acked = 0
    k = 0
    while acked < rows_total and (oom_at is None or acked < oom_at):
        acks.append({"t": t0 + 2 * k + 1.5, "t_start": t0 + 2 * k + 1, "batch": k, "first_pk": acked,
                     "last_pk": acked + batch - 1, "rows": batch, "ok": True, "latency_ms": p50})
        acked += batch
        k += 1
    for i in range(2 * k + 2):
        rows_then = sum(a["rows"] for a in acks if a["t"] <= t0 + i)
        samples.append({"t": t0 + i, "component": "standalone", "memory_bytes": int(100e6 + growth * 10 * rows_then),
                        "limit_bytes": target.memory_limit, "restarts": 0, "source": "scripted"})
    summary: dict[str, Any] = {
        "run_id": run_id, "status": status, "verdict": verdict if status == "FINISHED" else "ABORTED",
        "reasons": [f"scripted {verdict}"], "target": target.target, "milvus_version": version,
        "memory_limit_bytes": target.memory_limit,
        "rows": {"planned": rows_total, "acked": acked, "failed": 0, "verified": acked, "lost": 0},
        "components": {"standalone": {"peak_memory_bytes": max(s["memory_bytes"] for s in samples),
                                      "limit_bytes": target.memory_limit, "restarts": 0,
                                      "oom_kills": 1 if oom_at is not None else 0, "stalls": 0}},
        "first_oom": ({"t": t0 + 2 * k + 1.8, "component": "standalone", "rows_acked_before": acked}
                      if oom_at is not None else None),
        "inserts": {"count": k, "failures": 0, "rows_per_s": rate,
                    "latency_ms": {"p50": p50, "p95": p50, "p99": p50, "max": p50}},
        "memory_growth_mb_per_100k_rows": growth,
        "crashes": [{"t": t0 + 1, "component": "standalone", "line": crash}] if crash else [],
    }
    if exit_code is not None:
        summary["exit_code"] = exit_code
    return write_run_dir(rd.path, run={"run_id": run_id, "key": key.to_json(), "scenario": {"name": scenario.name},
                                       "target": target.target, "milvus_version": version, "started": 1000.0},
                         summary=summary, acks=acks, samples=samples, events=[])


Script = Callable[[str, dict[str, str]], dict[str, Any]]


class ScriptedCells:
    """Stands in for matrix.run_cell: each cell's outcome comes from script(version, overrides)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[RunOptions] = []

    def __call__(self, options: RunOptions, console: Console) -> Path:
        self.calls.append(options)
        outcome = self.script(options.target.milvus_version or "", dict(options.overrides))
        if isinstance(outcome, BaseException):
            raise outcome
        return write_run(options, **outcome)


def by_shards(version: str, overrides: dict[str, str]) -> dict[str, Any]:
    """2.3.x with 16 shards OOMs; 2.2.16 with 16 shards cannot be tested; the rest pass."""
    shards = int(overrides.get("shards", "1"))
    if shards == 16 and version.startswith("2.3"):
        return {"verdict": "FAIL", "oom_at": 150_000, "growth": 400.0 + shards, "rate": 30_000.0,
                "crash": f"panic: scripted in {version}"}
    if shards == 16:
        return {"verdict": "INCONCLUSIVE", "growth": 250.0}
    return {"verdict": "PASS", "growth": 100.0 + shards, "rate": 50_000.0}


def main(args: list[str]) -> int:
    return cli.main(args)


def only_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# --- bad input: exit 2, nothing created, nothing run -----------------------------------------

BAD_MATRIX = [
    (["--profile-every", "5s"], "--profile-every '5s' is below the minimum of 10s"),
    (["--milvus-versions", "2.3.4,9.9.9"], "'9.9.9' is not published"),
    (["--milvus-versions", "2.3.4,2.3.4"], "names '2.3.4' twice"),
    (["--milvus-versions", "2.3.4,"], "no empty items"),
    (["--milvus-versions", "2.3.4", "--milvus-version", "2.3.5"], "not both"),
    (["--milvus-versions", "2.3.4", "--vary", "shards"], "is not key=v1,v2"),
    (["--milvus-versions", "2.3.4", "--vary", "=1,2"], "is not key=v1,v2"),
    (["--milvus-versions", "2.3.4", "--vary", "shard=1,4"], "did you mean 'shards'"),
    (["--milvus-versions", "2.3.4", "--vary", "name=a,b"], "not a scenario field"),
    (["--milvus-versions", "2.3.4", "--vary", "shards=1,,4"], "no empty items"),
    (["--milvus-versions", "2.3.4", "--vary", "shards=1,4,1"], "names '1' twice"),
    (["--milvus-versions", "2.3.4", "--vary", "shards=1,x"], "--vary shards: shards='x' is not a valid int"),
    (["--milvus-versions", "2.3.4", "--vary", "shards=1,64"], "out of range"),
    (["--milvus-versions", "2.3.4", "--vary", "shards=1", "--vary", "shards=4"], "given twice"),
    (["--milvus-versions", "2.3.4", "--vary", "shards=1,4", "--set", "shards=2"], "--set shards are both"),
    (["--milvus-versions", "2.3.4", "--vary", "memory_limit=2GiB,lots"], "'lots' is not a size"),
    (["--milvus-versions", "2.3.4", "--vary", "memory_limit=2GiB", "--memory-limit", "4GiB"], "both given"),
    (["--milvus-versions", "2.3.4", "--vary", "rules.max_insert_p50_ms=0,500"], "greater than 0"),
    (["--milvus-versions", "2.3.4", "--scenario", "nope"], "unknown scenario 'nope'"),
    (["--milvus-versions", "2.3.4", "--set", "total_rows=many"], "total_rows='many'"),
    (["--target", "external", "--milvus-versions", "2.3.4"], "--target embedded or kind"),
    (["--target", "kind"], "needs --milvus-versions"),
    (["--milvus-versions", "2.3.4", "--memory-limit", "2 bananas"], "not a size"),
    (["--milvus-versions", "2.3.4", "--id", "../elsewhere"], "--id '../elsewhere'"),
    # `all` is every published version, checked like a list: alone, and with the rest valid
    (["--milvus-versions", "all,2.3.4"], "'all' is not published"),
    (["--milvus-versions", "all", "--vary", "shards=1,x"], "--vary shards: shards='x' is not a valid int"),
    (["--milvus-versions", "all", "--milvus-version", "2.3.5"], "not both"),
]


@pytest.mark.parametrize(("args", "message"), BAD_MATRIX, ids=[" ".join(a) for a, _ in BAD_MATRIX])
def test_matrix_bad_input_is_exit_2_and_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        args: list[str], message: str) -> None:
    cells = ScriptedCells(lambda v, o: pytest.fail("a cell ran"))  # type: ignore[arg-type,return-value]
    monkeypatch.setattr(matrix, "run_cell", cells)
    reports = tmp_path / "reports"
    assert main(["matrix", *args, "--report-dir", str(reports)]) == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith("milvus-harness: error: ") and message in line, line
    assert not reports.exists()
    assert cells.calls == []


BAD_BISECT = [
    (["--good", "2.3.1", "--bad", "2.3.5", "--profile-every", "soon"], "--profile-every 'soon' is not a duration"),
    (["--good", "2.3.5", "--bad", "2.3.5"], "both '2.3.5'"),
    (["--good", "2.3.5", "--bad", "2.3.1"], "--good 2.3.5 is newer than --bad 2.3.1"),
    (["--good", "2.3.1", "--bad", "2.3.5", "--find-fix"], "with --find-fix the older version is bad"),
    (["--good", "2.3.9", "--bad", "2.3.5"], "did you mean 2.3.5"),
    (["--good", "2.3.1", "--bad", "3.0"], "--bad '3.0' is not a known version"),
    (["--good", "2.3.1"], "required: --bad"),
    (["--good", "2.3.1", "--bad", "2.3.5", "--milvus-version", "2.3.4"], "drop --milvus-version"),
    (["--good", "2.3.1", "--bad", "2.3.5", "--set", "shard=2"], "did you mean 'shards'"),
    (["--good", "2.3.1", "--bad", "2.3.5", "--set", "rules.max_insert_p50_ms=-5"], "greater than 0"),
    (["--target", "kind", "--good", "a", "--bad", "b"], "needs --versions-file"),
    (["--target", "external", "--good", "2.3.1", "--bad", "2.3.5"], "--target embedded or kind"),
    (["--good", "2.3.1", "--bad", "2.3.5", "--versions-file", "/nonexistent/tags.txt"], "cannot read"),
]


@pytest.mark.parametrize(("args", "message"), BAD_BISECT, ids=[" ".join(a) for a, _ in BAD_BISECT])
def test_bisect_bad_input_is_exit_2_and_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    reports = tmp_path / "reports"
    assert main(["bisect", *args, "--report-dir", str(reports)]) == 2  # lifecycle.run would fail the test
    line = only_line(capsys.readouterr().err)
    assert line.startswith("milvus-harness: error: ") and message in line, line
    assert not reports.exists()


def test_bisect_versions_file_must_name_published_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tags = tmp_path / "versions.txt"
    tags.write_text("# oldest first\n2.3.1\n2.3.7\n2.3.5\n")
    assert main(["bisect", "--good", "2.3.1", "--bad", "2.3.5", "--versions-file", str(tags),
                 "--report-dir", str(tmp_path / "reports")]) == 2
    assert "unpublished milvus version(s) 2.3.7" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


# --- matrix aggregation with scripted cells -----------------------------------------------------


def run_scripted_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: Script,
                        extra: list[str] | None = None, matrix_id: str = "t") -> tuple[int, ScriptedCells, Path]:
    cells = ScriptedCells(script)
    monkeypatch.setattr(matrix, "run_cell", cells)
    args = ["matrix", "--milvus-versions", "2.2.16,2.3.5", "--vary", "shards=1,16", "--scenario", "smoke",
            "--set", "total_rows=300000", "--memory-limit", "4GiB", "--report-dir", str(tmp_path / "reports"),
            "--id", matrix_id, *(extra or [])]
    code = main(args)
    return code, cells, tmp_path / "reports" / f"matrix-{matrix_id}"


def test_matrix_runs_every_cell_with_its_version_and_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, cells, _ = run_scripted_matrix(tmp_path, monkeypatch, by_shards)
    assert [(o.target.milvus_version, o.overrides["shards"]) for o in cells.calls] == [
        ("2.2.16", "1"), ("2.2.16", "16"), ("2.3.5", "1"), ("2.3.5", "16")]
    for options in cells.calls:
        assert options.overrides["total_rows"] == "300000"
        assert options.target.memory_limit == 4 * GIB
        assert options.scenario == "smoke"
    run_ids = [o.run_id for o in cells.calls]
    assert len(set(run_ids)) == 4 and all(r and r.startswith("t-smoke-") for r in run_ids)
    assert code == 1


def test_matrix_profile_every_reaches_every_cell_and_is_recorded(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, cells, out = run_scripted_matrix(tmp_path, monkeypatch, by_shards, extra=["--profile-every", "2m"])
    assert [o.profile_every for o in cells.calls] == [120.0] * 4
    assert read_json(out / "summary.json")["profile_every_s"] == 120.0
    assert "every 120 s, and at 50/80/95 % of the limit" in (out / "index.html").read_text()
    _, cells, out = run_scripted_matrix(tmp_path / "without", monkeypatch, by_shards)  # no reuse from above
    assert {o.profile_every for o in cells.calls} == {None}
    assert read_json(out / "summary.json")["profile_every_s"] is None


def test_matrix_all_versions_is_one_cell_per_published_version(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cells = ScriptedCells(by_shards)
    monkeypatch.setattr(matrix, "run_cell", cells)
    assert main(["matrix", "--milvus-versions", "all", "--scenario", "smoke", "--report-dir",
                 str(tmp_path / "reports"), "--id", "all"]) == 0
    assert [o.target.milvus_version for o in cells.calls] == PUBLISHED  # oldest first, each once
    summary = read_json(tmp_path / "reports" / "matrix-all" / "summary.json")
    assert [c["version"] for c in summary["cells"]] == PUBLISHED


def test_matrix_summary_holds_each_cells_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, out = run_scripted_matrix(tmp_path, monkeypatch, by_shards)
    assert code == 1  # one FAIL among the cells
    summary = read_json(out / "summary.json")
    assert summary["schema_version"] == SCHEMA_VERSION and summary["kind"] == "matrix" and summary["status"] == "FINISHED"
    assert summary["exit_code"] == 1
    assert summary["axes"] == {"shards": ["1", "16"]} and summary["versions"] == ["2.2.16", "2.3.5"]
    assert summary["counts"] == {"PASS": 2, "FAIL": 1, "INCONCLUSIVE": 1, "PENDING": 0}
    by_label = {c["label"]: c for c in summary["cells"]}
    assert {k: v["verdict"] for k, v in by_label.items()} == {
        "2.2.16 shards=1": "PASS", "2.2.16 shards=16": "INCONCLUSIVE",
        "2.3.5 shards=1": "PASS", "2.3.5 shards=16": "FAIL"}
    failed = by_label["2.3.5 shards=16"]
    assert failed["rows_acked_at_first_oom"] == 150_000
    assert failed["memory_growth_mb_per_100k_rows"] == 416.0
    assert failed["rows_per_s"] == 30_000.0 and failed["insert_p50_ms"] == 700.0
    assert failed["limit_bytes"] == 4 * GIB
    assert failed["peak_memory_bytes"] == int(100e6 + 416.0 * 10 * 150_000)
    assert by_label["2.3.5 shards=1"]["rows_acked_at_first_oom"] is None
    assert by_label["2.3.5 shards=1"]["rows_acked"] == 300_000
    for cell in summary["cells"]:
        link = out / cell["run_dir"]
        assert not Path(cell["run_dir"]).is_absolute() and cell["run_dir"].startswith("../")
        assert read_json(link / "summary.json")["verdict"] == cell["verdict"]
        assert cell["reused"] is False


def test_matrix_page_shows_every_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, out = run_scripted_matrix(tmp_path, monkeypatch, by_shards)
    page = (out / "index.html").read_text()
    rows = re.findall(r'<tr class="cell" data-cell="(\d)" data-verdict="(\w+)">', page)
    assert rows == [("0", "PASS"), ("1", "INCONCLUSIVE"), ("2", "PASS"), ("3", "FAIL")]
    assert 'data-verdict="FAIL"' in page.split('id="verdict"')[1][:40] or 'id="verdict" data-verdict="FAIL"' in page
    # One memory line per cell in one chart, the OOM marked, the shared limit drawn once.
    for n in range(4):
        assert f'id="cell-{n}"' in page
    assert 'id="oom-3"' in page and 'id="oom-2"' not in page
    assert page.count('id="limit"') == 1
    # Growth against both the version and the varied axis.
    assert "Memory growth against version" in page and "Memory growth against shards" in page
    assert 'id="growth-shards-0"' in page
    for cell in read_json(out / "summary.json")["cells"]:
        assert f'href="{cell["run_dir"]}/report.html"' in page
    md = (out / "matrix.md").read_text()
    assert re.search(r"\| `2\.3\.5` \| 16 \| FAIL \| 150,000 \| 150,000 \| [0-9.]+ MiB of 4\.00 GiB \| 416 \| 30,000 \| 700 \|",
                     md), md
    assert "![Memory against rows acked, every cell](memory-vs-rows.png)" in md
    # each cell's crash signature, told apart per version; "-" where nothing crashed
    crashes = re.findall(r'<tr class="cell".*?<td class="crash">(.*?)</td>', page)
    assert crashes == ["-", "-", "-", "standalone: panic: scripted in 2.3.5"], crashes
    assert md.count("standalone: panic: scripted in 2.3.5") == 1
    assert (out / "memory-vs-rows.png").stat().st_size > 1000
    assert (out / "growth-shards.png").exists() and (out / "growth-version.png").exists()


@pytest.mark.parametrize(("script", "expected"), [
    (lambda v, o: {"verdict": "PASS"}, 0),
    (lambda v, o: {"verdict": "INCONCLUSIVE" if v == "2.2.16" else "PASS"}, 125),
    (lambda v, o: {"verdict": "INCONCLUSIVE" if v == "2.2.16" else "FAIL"}, 1),
], ids=["all PASS", "one INCONCLUSIVE", "FAIL beats INCONCLUSIVE"])
def test_matrix_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: Script, expected: int) -> None:
    code, _, out = run_scripted_matrix(tmp_path, monkeypatch, script)
    assert code == expected
    assert read_json(out / "summary.json")["exit_code"] == expected


def test_matrix_reuses_finished_runs_with_the_same_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, first, out1 = run_scripted_matrix(tmp_path, monkeypatch, by_shards, matrix_id="one")
    assert len(first.calls) == 4
    code, second, out2 = run_scripted_matrix(tmp_path, monkeypatch, by_shards, matrix_id="two")
    assert second.calls == [] and code == 1
    cells1 = read_json(out1 / "summary.json")["cells"]
    cells2 = read_json(out2 / "summary.json")["cells"]
    assert [c["run_dir"] for c in cells2] == [c["run_dir"] for c in cells1]
    assert all(c["reused"] for c in cells2)
    assert "(reused)" in (out2 / "index.html").read_text()
    # Another limit is another key: everything runs again.
    _, third, _ = run_scripted_matrix(tmp_path, monkeypatch, by_shards, extra=["--memory-limit", "6GiB"],
                                      matrix_id="three")
    assert len(third.calls) == 4


def test_matrix_varies_the_memory_limit_and_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = ScriptedCells(lambda v, o: {"verdict": "PASS"})
    monkeypatch.setattr(matrix, "run_cell", cells)
    assert main(["matrix", "--milvus-versions", "2.3.5", "--vary", "memory_limit=2GiB,3GiB",
                 "--vary", "rules.max_insert_p50_ms=500,900", "--scenario", "smoke",
                 "--report-dir", str(tmp_path / "r"), "--id", "m"]) == 0
    assert [(o.target.memory_limit, o.overrides) for o in cells.calls] == [
        (2 * GIB, {"rules.max_insert_p50_ms": "500"}), (2 * GIB, {"rules.max_insert_p50_ms": "900"}),
        (3 * GIB, {"rules.max_insert_p50_ms": "500"}), (3 * GIB, {"rules.max_insert_p50_ms": "900"})]
    summary = read_json(tmp_path / "r" / "matrix-m" / "summary.json")
    assert summary["memory_limit_bytes"] is None
    assert [c["limit_bytes"] for c in summary["cells"]] == [2 * GIB, 2 * GIB, 3 * GIB, 3 * GIB]


def test_a_cell_that_cannot_install_is_inconclusive_and_the_matrix_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def script(version: str, overrides: dict[str, str]) -> Any:
        if version == "2.2.16":
            return HarnessError("cannot install milvus 2.2.16: pip exited with 1", 125)
        return {"verdict": "PASS"}

    code, cells, out = run_scripted_matrix(tmp_path, monkeypatch, script)
    assert code == 125 and len(cells.calls) == 4
    first = read_json(out / "summary.json")["cells"][0]
    assert first["verdict"] == "INCONCLUSIVE" and first["run_dir"] is None
    assert first["reasons"] == ["cannot install milvus 2.2.16: pip exited with 1"]
    assert "cannot install milvus 2.2.16" in (out / "index.html").read_text()


def test_an_interrupted_cell_stops_the_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def script(version: str, overrides: dict[str, str]) -> dict[str, Any]:
        if overrides["shards"] == "16":
            return {"verdict": "PASS", "status": "ABORTED", "exit_code": 130}
        return {"verdict": "PASS"}

    code, cells, out = run_scripted_matrix(tmp_path, monkeypatch, script)
    assert code == 130 and len(cells.calls) == 2  # 2.2.16 shards=1, then shards=16 was interrupted
    summary = read_json(out / "summary.json")
    assert summary["status"] == "ABORTED" and summary["exit_code"] is None
    assert [c["status"] for c in summary["cells"]] == ["FINISHED", "PENDING", "PENDING", "PENDING"]
    assert 'data-verdict="ABORTED"' in (out / "index.html").read_text()


# --- bisect through the CLI with scripted runs ---------------------------------------------------


class ScriptedRuns:
    """Stands in for lifecycle.run: the verdict of each version comes from a table."""

    def __init__(self, verdicts: dict[str, str]) -> None:
        self.verdicts = verdicts
        self.calls: list[str] = []
        self.options: list[RunOptions] = []

    def __call__(self, options: RunOptions, console: Console | None = None) -> RunResult:
        version = options.target.milvus_version or ""
        self.calls.append(version)
        self.options.append(options)
        verdict = self.verdicts[version]
        options = RunOptions(**{**options.__dict__, "run_id": f"run-{version}"})
        run_dir = write_run(options, verdict, p50=900.0 if verdict == "FAIL" else 500.0)
        return RunResult(Verdict(verdict), "FINISHED", run_dir, read_json(run_dir / "summary.json"))


def scripted_bisect(monkeypatch: pytest.MonkeyPatch, verdicts: dict[str, str]) -> tuple[ScriptedRuns, list[str]]:
    runs = ScriptedRuns(verdicts)
    monkeypatch.setattr(lifecycle, "run", runs)
    installed: list[str] = []
    from harness.targets import install

    monkeypatch.setattr(install, "ensure_installed", installed.append)
    return runs, installed


def test_bisect_lands_on_the_first_bad_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = {v: ("FAIL" if v >= "2.3.3" else "PASS") for v in PUBLISHED}
    runs, installed = scripted_bisect(monkeypatch, verdicts)
    reports = tmp_path / "reports"
    args = ["bisect", "--good", "2.2.16", "--bad", "2.3.5", "--scenario", "no-arrays",
            "--set", "rules.max_insert_p50_ms=700", "--report-dir", str(reports), "--id", "b"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "bisect: first bad version: 2.3.3 (last good: 2.3.2)" in out
    assert re.search(r"last good: 2\.3\.2 +\(.*run-2\.3\.2\)", out) and re.search(r"first bad: 2\.3\.3 +\(", out)
    assert runs.calls[:2] == ["2.2.16", "2.3.5"]
    assert len(runs.calls) <= math.ceil(math.log2(len(PUBLISHED))) + 2
    # What was prefetched was always a version the search could test next, never the endpoints' rerun.
    assert installed and set(installed) <= set(PUBLISHED) - {"2.2.16"}
    summary = read_json(reports / "bisect-b" / "summary.json")
    assert summary["first_bad"]["version"] == "2.3.3" and summary["last_good"]["version"] == "2.3.2"
    assert summary["context"]["overrides"] == "rules.max_insert_p50_ms=700"
    # The same bisect again reuses every run: nothing runs, the same answer.
    runs.calls.clear()
    assert main([*args[:-1], "again"]) == 0
    assert runs.calls == []
    assert "first bad version: 2.3.3" in capsys.readouterr().out


def test_bisect_profile_every_reaches_every_step_and_is_recorded(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    runs, _ = scripted_bisect(monkeypatch, {v: ("FAIL" if v >= "2.3.3" else "PASS") for v in PUBLISHED})
    reports = tmp_path / "reports"
    assert main(["bisect", "--good", "2.3.1", "--bad", "2.3.5", "--no-prefetch", "--profile-every", "90s",
                 "--report-dir", str(reports), "--id", "p"]) == 0
    assert len(runs.options) >= 3 and {o.profile_every for o in runs.options} == {90.0}
    context = read_json(reports / "bisect-p" / "summary.json")["context"]
    assert context["heap profiles"].startswith("every 90 s, and at 50/80/95 % of the limit")
    assert "every 90 s" in (reports / "bisect-p" / "index.html").read_text()


def test_bisect_undecided_is_125(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = {"2.3.0": "PASS", "2.3.1": "PASS", "2.3.2": "INCONCLUSIVE", "2.3.3": "FAIL"}
    runs, installed = scripted_bisect(monkeypatch, verdicts)
    assert main(["bisect", "--good", "2.3.1", "--bad", "2.3.3", "--no-prefetch",
                 "--report-dir", str(tmp_path / "r")]) == 125
    assert "could not be decided: 2.3.2 was INCONCLUSIVE" in capsys.readouterr().out
    assert runs.calls == ["2.3.1", "2.3.3", "2.3.2"]
    assert installed == []  # --no-prefetch: no version was installed ahead of its run


def test_bisect_wrong_endpoints_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    scripted_bisect(monkeypatch, {"2.3.0": "FAIL", "2.3.5": "PASS"})
    assert main(["bisect", "--good", "2.3.0", "--bad", "2.3.5", "--report-dir", str(tmp_path / "r")]) == 2
    assert "use --find-fix" in capsys.readouterr().out


def test_bisect_find_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = {v: ("PASS" if v >= "2.3.4" else "FAIL") for v in PUBLISHED}
    scripted_bisect(monkeypatch, verdicts)
    assert main(["bisect", "--find-fix", "--bad", "2.3.0", "--good", "2.3.5",
                 "--report-dir", str(tmp_path / "r")]) == 0
    assert "first good version: 2.3.4 (last bad: 2.3.3)" in capsys.readouterr().out


# --- the prefetcher ---------------------------------------------------------------------------


def test_prefetcher_installs_in_order_and_drops_stale_wishes() -> None:
    gate = threading.Event()
    started = threading.Event()
    done: list[str] = []

    def install(version: str) -> None:
        started.set()
        if version == "a":
            assert gate.wait(5)
        if version == "broken":
            raise RuntimeError("pip failed")
        done.append(version)

    with Prefetcher(install) as fetcher:
        fetcher.want(["a", "b"])
        assert started.wait(5)
        fetcher.want(["broken", "c", "a"])  # "b" is no longer wanted; "a" is already under way
        gate.set()
    # Leaving the context waited for the install in progress; the rest may or may not have run.
    assert done[0] == "a" and "b" not in done
    assert fetcher.installed == done


def test_prefetcher_close_waits_for_the_install_in_progress() -> None:
    release = threading.Event()
    started = threading.Event()
    finished: list[str] = []

    def install(version: str) -> None:
        started.set()
        release.wait(5)
        finished.append(version)

    fetcher = Prefetcher(install)
    fetcher.want(["x", "y"])
    assert started.wait(5)  # "x" is under way before we close (no race with the worker thread)
    threading.Timer(0.2, release.set).start()
    fetcher.close()
    assert finished == ["x"]  # "x" was under way and finished; "y" was dropped


# --- the rule the real bisect uses (docs/bisect.md) ----------------------------------------------


@pytest.mark.parametrize(("verified", "on", "expected"), [
    (None, True, Verdict.FAIL), (None, False, Verdict.INCONCLUSIVE), (500_000, True, Verdict.PASS)])
def test_fail_on_unverified(verified: int | None, on: bool, expected: Verdict) -> None:
    from harness.scenario.model import Rules
    from harness.judge.verdict import judge

    rows = {"planned": 500_000, "acked": 500_000, "failed": 0, "verified": verified, "lost": 0, "lost_batches": []}
    if verified is None:
        rows["verify_note"] = "verification query failed: wait for loading collection timeout"
    summary = {"rows": rows, "components": {"standalone": {"restarts": 0}},
               "inserts": {"failures": 0, "rows_per_s": 1.0, "latency_ms": {"p50": 1.0, "p95": 1.0}}}
    verdict, reasons, _ = judge(Rules(fail_on_unverified=on), summary, [])
    assert verdict == expected
    if expected == Verdict.FAIL:
        assert reasons == ["the acked rows could not be verified: "
                           "verification query failed: wait for loading collection timeout"]
