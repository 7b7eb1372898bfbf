"""Which check of the acked rows runs: the estimate of the loaded collection against the query nodes."""

from __future__ import annotations

import pytest

from harness.judge import verify
from harness.scenario import model as scenarios
from harness.watch.events import Sample

GiB = 2**30


def _sample(component: str, memory: int | None, limit: int | None) -> Sample:
    return Sample(t=0.0, component=component, memory_bytes=memory, limit_bytes=limit, restarts=0, source="test")


def test_bytes_per_row_is_measured_from_the_scenarios_data():
    seed = scenarios.load("seed")
    per_row = verify.bytes_per_row(seed)
    # 128 float32 = 512 B of vector, two int64, a float, a bool, and text/JSON/arrays on top
    assert 512 + 8 + 8 + 4 + 1 < per_row < 1200
    narrow = seed.with_overrides({"dim": "16", "with_json": "false", "with_arrays": "false"})
    assert verify.bytes_per_row(narrow) < per_row - 112 * 4


def test_seed_at_its_planned_rows_does_not_fit_two_small_query_nodes_but_fits_two_big_ones():
    seed = scenarios.load("seed")
    nodes = {"querynode": _sample("querynode", 1 * GiB, 4 * GiB), "querynode-2": _sample("querynode-2", GiB, 4 * GiB),
             "streamingnode": _sample("streamingnode", 10 * GiB, 16 * GiB)}
    capacity, source = verify.query_capacity(nodes)
    assert capacity == 6 * GiB and source.startswith("2 query nodes (querynode, querynode-2): 6.00 GiB free")
    chosen = verify.plan(None, seed, 6_680_000, capacity, source)
    assert chosen.check == "rows" and chosen.estimate_bytes > 6 * GiB and "would not fit" in chosen.why
    assert "6,680,000 rows" in chosen.why and source in chosen.why
    big = {n: _sample(n, GiB, 32 * GiB) for n in ("querynode", "querynode-2")}
    assert verify.plan(None, seed, 6_680_000, *verify.query_capacity(big)).check == "pk-ranges"


def test_unknown_capacity_chooses_the_row_count_and_a_request_wins():
    smoke = scenarios.load("smoke")
    assert verify.query_capacity({}) == (None, "no query node is watched")
    capacity, source = verify.query_capacity({"querynode": _sample("querynode", GiB, None)})
    assert capacity is None and source == "querynode has no memory limit"
    assert verify.plan(None, smoke, 100_000, capacity, source).check == "rows"
    for asked in verify.CHECKS:
        chosen = verify.plan(asked, smoke, 100_000, capacity, source)
        assert chosen.check == asked and chosen.why.startswith(f"asked for with --verify {asked}")


@pytest.mark.parametrize("args, message", [(["--verify", "all"], "invalid choice: 'all'")])
def test_bad_verify_is_exit_2(args, message, capsys):
    from harness.cli import main

    assert main(["run", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
