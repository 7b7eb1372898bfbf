"""Run keys and the reuse of finished runs, against run directories written here."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from harness.compare.run_keys import (
    RunKey,
    component_total,
    find_finished_run,
    finished_summary,
    memory_limit_bytes,
    peak_memory_bytes,
    run_key_of,
)
from harness.rundir import SCHEMA_VERSION
from run_dirs import write_run_dir

GIB = 2**30


def seed_key(**changes: Any) -> RunKey:
    fields: dict[str, Any] = {
        "target": "embedded",
        "milvus_version": "2.3.5",
        "scenario_hash": "3f1c9a0d",
        "memory_limit_bytes": int(2.5 * GIB),
        "overrides": {"shards": "16", "partitions": "16"},
    }
    fields.update(changes)
    return RunKey(**fields)


def make_run(report_dir: Path, name: str, key: RunKey | dict[str, Any] | None, summary: dict[str, Any] | None,
             mtime: int | None = None) -> Path:
    run: dict[str, Any] = {"harness_version": "0.1.0", "target": "embedded"}
    if key is not None:
        run["key"] = key.to_json() if isinstance(key, RunKey) else key
    return write_run_dir(report_dir / name, run=run, summary=summary, summary_mtime_ns=mtime)


def finished(verdict: str = "FAIL", status: str = "FINISHED") -> dict[str, Any]:
    return {
        "status": status,
        "verdict": verdict,
        "reasons": ["standalone was OOM-killed after 650000 rows"],
        "rows": {"planned": 1_000_000, "acked": 650_000},
        "components": {
            "streamingnode-0": {"peak_memory_bytes": 2 * GIB, "limit_bytes": 16 * GIB, "restarts": 1, "oom_kills": 1},
            "streamingnode-1": {"peak_memory_bytes": 3 * GIB, "limit_bytes": 16 * GIB, "restarts": 2, "oom_kills": 1},
        },
    }


# --- RunKey -----------------------------------------------------------------------------------


def test_digest_is_stable() -> None:
    # Pinned: a change here orphans every stored run, so it must be deliberate (bump SCHEMA_VERSION).
    assert seed_key().digest() == "fe7fa4874014b6ee"
    canonical = (
        '{"memory_limit_bytes":2684354560,"milvus_version":"2.3.5",'
        '"overrides":[["partitions","16"],["shards","16"]],"scenario_hash":"3f1c9a0d","target":"embedded"}'
    )
    assert seed_key().digest() == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_override_order_and_spelling_do_not_change_the_key() -> None:
    a = seed_key(overrides={"shards": "16", "partitions": "16"})
    b = seed_key(overrides=[("partitions", 16), ("shards", "16")])
    assert a == b and hash(a) == hash(b) and a.digest() == b.digest()
    assert a.overrides == (("partitions", "16"), ("shards", "16"))
    assert seed_key(overrides={"flag": True}).overrides == (("flag", "true"),)


@pytest.mark.parametrize(
    "change",
    [
        {"target": "kind"},
        {"milvus_version": "2.3.4"},
        {"scenario_hash": "3f1c9a0e"},
        {"memory_limit_bytes": 3 * GIB},
        {"memory_limit_bytes": None},
        {"overrides": {"shards": "4", "partitions": "16"}},
        {"overrides": {"shards": "16"}},
    ],
)
def test_any_field_changes_the_digest(change: dict[str, Any]) -> None:
    assert seed_key(**change) != seed_key()
    assert seed_key(**change).digest() != seed_key().digest()


def test_json_round_trip() -> None:
    key = seed_key()
    data = key.to_json()
    assert data["overrides"] == [["partitions", "16"], ["shards", "16"]]
    assert RunKey.from_json(data) == key
    external = RunKey("external", None, "abc", None)
    assert RunKey.from_json(external.to_json()) == external


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target": "embedded"}, "lacks milvus_version, scenario_hash, memory_limit_bytes"),
        ([1, 2], "is a JSON object"),
        ({**seed_key().to_json(), "overrides": "shards=16"}, "not a list of pairs"),
        ({**seed_key().to_json(), "overrides": [["a", "1"], ["a", "2"]]}, "given twice"),
        ({**seed_key().to_json(), "memory_limit_bytes": "2.5GiB"}, "not a whole number"),
    ],
)
def test_malformed_keys_are_value_errors(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunKey.from_json(data)


# --- find_finished_run ------------------------------------------------------------------------


def test_finds_the_run_with_the_same_key(tmp_path: Path) -> None:
    make_run(tmp_path, "other-version", seed_key(milvus_version="2.3.4"), finished())
    wanted = make_run(tmp_path, "wanted", seed_key(), finished("PASS"))
    make_run(tmp_path, "other-limit", seed_key(memory_limit_bytes=3 * GIB), finished())
    assert find_finished_run(tmp_path, seed_key()) == wanted
    assert run_key_of(wanted) == seed_key()


def test_different_key_is_never_reused(tmp_path: Path) -> None:
    make_run(tmp_path, "a", seed_key(overrides={"shards": "4"}), finished())
    make_run(tmp_path, "b", seed_key(target="kind"), finished())
    assert find_finished_run(tmp_path, seed_key()) is None


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE"])
def test_every_verdict_of_a_finished_run_is_reused(tmp_path: Path, verdict: str) -> None:
    run = make_run(tmp_path, "r", seed_key(), finished(verdict))
    assert find_finished_run(tmp_path, seed_key()) == run


@pytest.mark.parametrize(
    "summary",
    [
        None,  # still running, or killed before the summary
        finished(status="ABORTED"),
        finished(status="RUNNING"),
        finished(verdict="MAYBE"),
        {**finished(), "schema_version": SCHEMA_VERSION + 1},  # a newer harness wrote it: not comparable
        {**finished(), "schema_version": SCHEMA_VERSION - 1},  # an older one: its time to verdict meant another moment
    ],
)
def test_unfinished_runs_are_not_reused(tmp_path: Path, summary: dict[str, Any] | None) -> None:
    run = make_run(tmp_path, "r", seed_key(), summary)
    assert find_finished_run(tmp_path, seed_key()) is None
    assert finished_summary(run) is None


def test_runs_without_a_usable_key_are_skipped(tmp_path: Path) -> None:
    make_run(tmp_path, "no-key", None, finished())
    make_run(tmp_path, "bad-key", {"target": "embedded"}, finished())
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "run.json").write_text('{"schema_version": 1, "key": {')
    (torn / "summary.json").write_text("{}")
    (tmp_path / "bisect-1").mkdir()  # report dirs of other commands have no run.json
    assert find_finished_run(tmp_path, seed_key()) is None
    assert find_finished_run(tmp_path / "missing", seed_key()) is None


def test_newest_of_several_matching_runs_wins(tmp_path: Path) -> None:
    make_run(tmp_path, "z-old", seed_key(), finished("FAIL"), mtime=1_000_000_000_000_000_000)
    new = make_run(tmp_path, "a-new", seed_key(), finished("PASS"), mtime=2_000_000_000_000_000_000)
    make_run(tmp_path, "aborted-newest", seed_key(), finished(status="ABORTED"), mtime=3_000_000_000_000_000_000)
    assert find_finished_run(tmp_path, seed_key()) == new


def test_summary_figures() -> None:
    summary = finished()
    assert peak_memory_bytes(summary) == 3 * GIB
    assert memory_limit_bytes(summary) == 16 * GIB
    assert component_total(summary, "oom_kills") == 2 and component_total(summary, "restarts") == 3
    assert peak_memory_bytes({}) is None and memory_limit_bytes({"components": {}}) is None
    assert component_total({"components": {"a": {"restarts": None}}}, "restarts") is None
