"""A real bisect across five published embedded Milvus versions (slow tier: `pytest -m slow`).

The difference it finds was measured here (docs/bisect.md): with 16 shards x 16 partition-key
partitions and no ARRAY field (scenario no-arrays), 500,000 rows under an 8 GiB limit, every
2.2.x flushed, indexed and loaded the collection for verification in about 40 s, while 2.3.0
and 2.3.1 never finished loading it within the verifier's 300 s (6 runs of 6). With
`rules.fail_on_unverified` that is PASS up to 2.2.16 and FAIL from 2.3.0, so the search over
2.2.14, 2.2.15, 2.2.16, 2.3.0, 2.3.1 must end at 2.3.0. It takes about 15 minutes: the two
2.3.x runs each wait out the verifier's timeout.
"""

from __future__ import annotations

import math
from pathlib import Path

import psutil
import pytest

from harness import cli
from harness.rundir import read_json

pytestmark = [pytest.mark.slow, pytest.mark.milvus]

RANGE = ["2.2.14", "2.2.15", "2.2.16", "2.3.0", "2.3.1"]


def test_real_bisect_finds_the_first_version_that_cannot_load_the_collection(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    args = ["bisect", "--good", RANGE[0], "--bad", RANGE[-1], "--scenario", "no-arrays",
            "--set", "total_rows=500000", "--set", "rules.fail_on_unverified=true",
            "--memory-limit", "8GiB", "--report-dir", str(reports), "--id", "real"]
    code = cli.main(args)
    out = capsys.readouterr().out
    summary = read_json(reports / "bisect-real" / "summary.json")
    tested = {row["version"]: row for row in summary["tested"]}
    assert code == 0, (out, {v: (r["verdict"], r["reasons"]) for v, r in tested.items()})
    assert summary["range"] == RANGE
    assert summary["first_bad"]["version"] == "2.3.0" and summary["last_good"]["version"] == "2.2.16"
    assert "first bad version: 2.3.0 (last good: 2.2.16)" in out
    assert len(tested) <= math.ceil(math.log2(len(RANGE))) + 2
    assert tested["2.3.0"]["verdict"] == "FAIL" and tested["2.2.16"]["verdict"] == "PASS"
    assert any("could not be verified" in r for r in tested["2.3.0"]["reasons"])
    for row in tested.values():
        assert row["run_dir"] and read_json(Path(row["run_dir"]) / "summary.json")["verdict"] == row["verdict"]
    assert (reports / "bisect-real" / "index.html").exists()
    assert psutil.Process().children(recursive=True) == []  # every server stopped
    # The same bisect again reuses every run and starts nothing.
    assert cli.main([*args[:-1], "again"]) == 0
    again = read_json(reports / "bisect-again" / "summary.json")
    assert all(row["reused"] for row in again["tested"])
    assert again["first_bad"]["version"] == "2.3.0"
