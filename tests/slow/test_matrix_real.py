"""A real matrix: two published embedded Milvus versions x two shard counts, one server at a time.

Slow tier (`pytest -m slow`): four real runs of a small scenario, each on its own server on
free ports with a 4 GiB cgroup limit; the first install of a version takes about a minute.
Memory is sampled every 0.2 s so that the few seconds of load give a growth figure.
"""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest

from harness import cli
from harness.rundir import read_json

pytestmark = [pytest.mark.slow, pytest.mark.milvus]

VERSIONS = ("2.3.4", "2.3.5")
SHARDS = ("1", "4")
ROWS = 100_000
GIB = 2**30


def test_real_matrix_over_two_versions_and_two_shard_counts(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    code = cli.main(["matrix", "--milvus-versions", ",".join(VERSIONS), "--vary", f"shards={','.join(SHARDS)}",
                     "--scenario", "smoke", "--set", f"total_rows={ROWS}", "--memory-limit", "4GiB",
                     "--watch-interval", "0.2s", "--report-dir", str(reports), "--id", "real"])
    out = reports / "matrix-real"
    summary = read_json(out / "summary.json")
    cells = summary["cells"]
    assert [(c["version"], c["values"]["shards"]) for c in cells] == [(v, s) for v in VERSIONS for s in SHARDS]
    assert [c["verdict"] for c in cells] == ["PASS"] * 4, [c.get("reasons") for c in cells]
    assert code == 0 and summary["exit_code"] == 0 and summary["status"] == "FINISHED"
    for cell in cells:
        run = read_json(out / cell["run_dir"] / "run.json")
        run_summary = read_json(out / cell["run_dir"] / "summary.json")
        # Each cell ran the version and shard count it claims, under the limit it claims.
        assert run["milvus_version"] == cell["version"] and run_summary["milvus_version"] == cell["version"]
        assert run["overrides"] == {"total_rows": str(ROWS), "shards": cell["values"]["shards"]}
        assert run_summary["verdict"] == "PASS" and run_summary["rows"]["verified"] == ROWS
        assert cell["rows_acked"] == ROWS and cell["rows_acked_at_first_oom"] is None
        assert cell["limit_bytes"] == 4 * GIB
        assert 50 * 2**20 < cell["peak_memory_bytes"] < 4 * GIB
        assert cell["rows_per_s"] > 0 and cell["insert_p50_ms"] > 0
        assert isinstance(cell["memory_growth_mb_per_100k_rows"], (int, float))
        assert (out / cell["run_dir"] / "report.html").exists()
    page = (out / "index.html").read_text()
    assert len(re.findall(r'<tr class="cell" data-cell="\d" data-verdict="PASS">', page)) == 4
    assert all(f'id="cell-{n}"' in page for n in range(4))  # every cell's line in the one memory chart
    assert "Memory growth against shards" in page and "Memory growth against version" in page
    assert (out / "matrix.md").read_text().count("| PASS |") == 4
    # Every server was stopped: nothing this test started is still running.
    assert psutil.Process().children(recursive=True) == []
    # A second matrix with the same inputs reuses all four runs and starts no server.
    assert cli.main(["matrix", "--milvus-versions", ",".join(VERSIONS), "--vary", f"shards={','.join(SHARDS)}",
                     "--scenario", "smoke", "--set", f"total_rows={ROWS}", "--memory-limit", "4GiB",
                     "--watch-interval", "0.2s", "--report-dir", str(reports), "--id", "again"]) == 0
    again = read_json(reports / "matrix-again" / "summary.json")["cells"]
    assert [c["reused"] for c in again] == [True] * 4
    assert [c["run_dir"] for c in again] == [c["run_dir"] for c in cells]
