"""The MemoryStall detector: memory held at the limit while the load makes no progress."""

from harness.watch.events import RunEvents, Sample
from harness.watch.stall import StallDetector


def _sample(t, memory, limit=1000):
    return Sample(t=t, component="standalone", memory_bytes=memory, limit_bytes=limit, restarts=0, source="test")


def test_stall_needs_the_limit_and_no_progress():
    ctx = RunEvents()
    rows = [0]
    StallDetector(ctx, lambda: rows[0], seconds=5)
    for t in range(10):  # at the limit but rows keep arriving: no stall
        rows[0] += 1
        ctx.fire_sample(_sample(t, 990))
    assert not ctx.events
    for t in range(10, 20):  # below the limit, no progress: no stall
        ctx.fire_sample(_sample(t, 500))
    assert not ctx.events
    for t in range(20, 30):  # at the limit and stuck: one stall
        ctx.fire_sample(_sample(t, 995))
    assert [e.type for e in ctx.events] == ["MemoryStall"]
    assert ctx.events[0].t == 25


def test_no_stall_while_the_harness_holds_the_load():
    ctx = RunEvents()
    paused = [True]
    StallDetector(ctx, lambda: 0, seconds=5, paused=lambda: paused[0])
    for t in range(10):  # at the limit with no progress, but paused for a row check
        ctx.fire_sample(_sample(t, 995))
    assert not ctx.events
    paused[0] = False
    for t in range(10, 20):
        ctx.fire_sample(_sample(t, 995))
    assert [e.t for e in ctx.events] == [15]
