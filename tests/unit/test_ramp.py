"""The concurrency ramp's step rule and its measurement of a step on acks (harness.load.ramp)."""

import math

from harness.load.ramp import GROWTH, WINDOW_BATCHES, WINDOW_MIN_S, Ramp, best_users, describe, next_users, read_record
from harness.rundir import JsonlWriter


def test_the_ramp_starts_at_one_user_and_always_tries_two():
    assert next_users([]) == 1
    assert next_users([100.0]) == 2
    assert next_users([100.0]) == 2 and next_users([1000.0]) == 2


def test_the_ramp_goes_on_while_each_step_grows_by_at_least_ten_percent():
    assert next_users([100.0, 100.0 * GROWTH]) == 3  # exactly 10 % is enough
    assert next_users([100.0, 120.0, 150.0]) == 4
    assert next_users([100.0, 109.9]) is None
    assert next_users([100.0, 130.0, 135.0]) is None  # 3.8 % over the step before: over


def test_the_ramp_stops_at_the_user_limit():
    assert next_users([1.0, 2.0, 4.0], max_users=3) is None
    assert next_users([1.0, 2.0], max_users=3) == 3


def test_the_best_step_is_the_highest_rows_per_s_and_the_fewer_users_on_a_tie():
    assert best_users([100.0, 130.0, 125.0]) == 2
    assert best_users([100.0, 105.0]) == 2  # grew, but less than 10 %: the ramp ends and holds 2
    assert best_users([100.0, 90.0]) == 1
    assert best_users([100.0, 100.0]) == 1


def _acks(first_t: float, interval: float, count: int, rows: int = 1000, sent_before: float = 1.0):
    return [{"ok": True, "t_start": first_t + i * interval - sent_before, "t": first_t + i * interval, "rows": rows}
            for i in range(count)]


def test_a_step_skips_one_ack_per_user_then_measures_its_window():
    ramp = Ramp()
    assert ramp.users(now=0.0) == 1
    # Warm-up ack at t=1, then one ack a second: rows/s over the window is 1000.
    ramp.add(_acks(1.0, 1.0, WINDOW_BATCHES))
    assert ramp.rates == [] and ramp.users() == 1  # the window lacks one ack yet
    ramp.add(_acks(1.0 + WINDOW_BATCHES, 1.0, 1))
    assert ramp.rates == [1000.0]
    assert ramp.users() == 2


def test_acks_of_batches_sent_before_a_step_began_do_not_count_for_it():
    ramp = Ramp()
    ramp.users(now=0.0)
    ramp.add(_acks(1.0, 1.0, WINDOW_BATCHES + 1), now=10.0)
    began = ramp.step.began
    # Sent before step 2 began: ignored however many arrive.
    ramp.add([{"ok": True, "t_start": began - 0.5, "t": began + 1 + i, "rows": 1000} for i in range(10)])
    assert ramp.rates == [1000.0] and ramp.users() == 2
    # Failed inserts carry no rows and are no measurement either.
    ramp.add([{"ok": False, "t_start": began + 1, "t": began + 2, "rows": 1000}] * 10)
    assert len(ramp.rates) == 1


def test_a_ramp_settles_on_the_best_step_and_records_each_step(tmp_path):
    record = JsonlWriter(tmp_path / "ramp.jsonl")
    ramp = Ramp(record=record)
    ramp.users(now=0.0)
    t = 1.0
    for per_second in (1000, 1500, 1550):  # +50 %, then +3 %: the ramp ends after three steps
        began = ramp.step.began
        users = ramp.users()
        window = max(WINDOW_BATCHES, math.ceil(WINDOW_MIN_S * per_second / 1000))  # batches and seconds
        acks = _acks(max(t, began) + 1.0, 1000 / per_second, users + window + 1, sent_before=0.5)
        ramp.add(acks, now=acks[-1]["t"])
        t = acks[-1]["t"]
    record.close()
    assert [round(r) for r in ramp.rates] == [1000, 1500, 1550]
    assert ramp.chosen == 3 and ramp.users() == 3
    ramp.add(_acks(t + 1, 0.1, 50))  # settled: later acks change nothing
    assert ramp.users() == 3 and len(ramp.rates) == 3
    recorded = read_record(tmp_path / "ramp.jsonl")
    assert [s["users"] for s in recorded["steps"]] == [1, 2, 3]
    assert [round(s["rows_per_s"]) for s in recorded["steps"]] == [1000, 1500, 1550]
    assert recorded["chosen_users"] == 3


def test_a_short_window_is_not_a_measurement():
    ramp = Ramp()
    ramp.users(now=0.0)
    ramp.add(_acks(1.0, 0.01, WINDOW_BATCHES + 5))  # enough acks, but well under WINDOW_MIN_S
    assert ramp.rates == []


def test_a_pinned_and_a_ramped_run_never_share_a_key():
    from harness.run.lifecycle import RunOptions, prepare, run_key

    ramped, ramped_target = prepare(RunOptions(scenario="smoke"))
    pinned, pinned_target = prepare(RunOptions(scenario="smoke", users=2))
    assert ramped.users is None and pinned.users == 2
    assert run_key(ramped, ramped_target, "2.3.5", {}) != run_key(pinned, pinned_target, "2.3.5", {})


def test_the_summary_line_says_how_the_users_were_set():
    assert describe({"mode": "pinned", "users": 2}) == "2 users (pinned)"
    settled = {"mode": "ramp", "users": 2, "settled": True,
               "steps": [{"users": 1, "rows_per_s": 1000.0}, {"users": 2, "rows_per_s": 1500.0},
                         {"users": 3, "rows_per_s": 1450.0}]}
    assert describe(settled) == ("2 users, the ramp's best step: 1 user 1,000 rows/s; 2 users 1,500 rows/s (+50%); "
                                 "3 users 1,450 rows/s (-3%)")
    assert describe({"mode": "ramp", "users": 1, "settled": False, "steps": []}).startswith(
        "the load ended while the ramp measured 1 user")
