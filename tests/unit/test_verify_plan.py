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


def _ack(k: int, ok: bool = True, rows: int = 100, **extra) -> dict:
    return {"t": 1000.0 + k, "batch": k, "first_pk": k * rows, "last_pk": (k + 1) * rows - 1, "rows": rows, "ok": ok,
            **extra}


def test_nothing_in_doubt_takes_the_fast_row_count_even_where_pk_ranges_would_fit():
    smoke = scenarios.load("smoke")
    clean = [_ack(k) for k in range(4)]
    assert verify.doubts(clean, [{"type": "LoadStopped", "t": 2000.0, "component": "harness"}]) == []
    chosen = verify.plan(None, smoke, 400, 64 * GiB, "plenty", verify.doubts(clean, []))
    assert chosen.check == "rows" and chosen.fast and chosen.why.startswith("fast path: ")
    # --verify still forces the exact check; an unknown history (None) is not taken for a clean one.
    assert verify.plan("pk-ranges", smoke, 400, 64 * GiB, "plenty", []).check == "pk-ranges"
    assert verify.plan(None, smoke, 400, 64 * GiB, "plenty", None).check == "pk-ranges"


def test_failed_inserts_and_deaths_need_the_exact_check_and_say_why():
    smoke = scenarios.load("smoke")
    acks = [_ack(0), _ack(1, ok=False, error="UNAVAILABLE: Connection reset", retry=True), _ack(1),
            _ack(2, ok=False, error="DEADLINE_EXCEEDED: Deadline Exceeded", retry=False), _ack(3)]
    death = {"type": "Exited", "t": 1001.5, "component": "standalone", "data": {"injected": True}}
    found = verify.doubts(acks, [death])
    assert found == ["1 insert retried (batch 1; UNAVAILABLE: Connection reset)",
                     "1 insert ended in doubt (batch 2; DEADLINE_EXCEEDED: Deadline Exceeded)",
                     "1 death (first: standalone injected kill)"]
    assert verify.doubtful_batches(acks) == {1, 2}
    chosen = verify.plan(None, smoke, 300, 64 * GiB, "plenty", found)
    assert chosen.check == "pk-ranges" and not chosen.fast and chosen.doubts == tuple(found)
    assert "cannot decide: 1 insert retried" in chosen.why
    # Only a death: still no fast path (a restart may have lost what was acked before it).
    assert verify.plan(None, smoke, 300, 64 * GiB, "plenty", verify.doubts([_ack(0)], [death])).check == "pk-ranges"
    # Does not fit: the row count, as a lower bound, with the doubts named.
    tight = verify.plan(None, smoke, 300, 1, "1 B free", found)
    assert tight.check == "rows" and not tight.fast and "would not fit" in tight.why


class _Server:
    """Primary keys as a server would hold them, counted by the filters verify builds."""

    def __init__(self, keys: list[int]) -> None:
        self.keys = keys
        self.queries: list[str] = []

    def count(self, expr: str) -> int:
        import re

        self.queries.append(expr)
        ranges = [(int(a), int(b)) for a, b in re.findall(r"id >= (\d+) and id <= (\d+)", expr)]
        assert ranges and expr.count(" or ") == len(ranges) - 1
        return sum(1 for key in self.keys if any(a <= key <= b for a, b in ranges))


def test_pk_range_counts_take_one_query_when_nothing_is_missing_and_name_the_short_batches():
    acked = [_ack(k) for k in range(16) if k != 5]  # batch 5 failed: its keys are not asked about
    whole = [key for a in acked for key in range(a["first_pk"], a["last_pk"] + 1)] + list(range(500, 520))
    server = _Server(whole)
    assert verify.count_present(server.count, acked) == {a["batch"]: 100 for a in acked}
    assert len(server.queries) == 1 and "(id >= 0 and id <= 499) or (id >= 600 and id <= 1599)" == server.queries[0]

    short = _Server([key for key in whole if not 930 <= key < 1000 and not 1200 <= key < 1300])
    present = verify.count_present(short.count, acked)
    assert {k: n for k, n in present.items() if n < 100} == {9: 30, 12: 0}
    assert len(short.queries) < len(acked)  # per batch, as before, would take 15


def test_a_doubtful_batch_written_twice_cannot_hide_a_loss_elsewhere():
    acked = [_ack(k) for k in range(8)]
    keys = [key for a in acked for key in range(a["first_pk"], a["last_pk"] + 1)]
    # Batch 2 was re-sent and is there twice; batch 6 lost 100 rows: the total still matches.
    keys = [k for k in keys if not 600 <= k < 700] + list(range(200, 300))
    assert _Server(keys).count(verify.ranges_expr(acked)) == 800
    present = verify.count_present(_Server(keys).count, acked, doubtful={2})
    assert present[2] == 200 and present[6] == 0 and all(present[k] == 100 for k in (0, 1, 3, 4, 5, 7))
    # In the summary: the loss named, and the second copy counted apart, never as verified rows.
    figures = verify.tally(acked, present)
    assert (figures["verified"], figures["lost"], figures["lost_batches"]) == (700, 100, [6])
    assert (figures["duplicated"], figures["duplicated_batches"]) == (100, [2])
