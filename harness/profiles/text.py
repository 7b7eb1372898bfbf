"""Go's legacy text heap profile (`/debug/pprof/heap?debug=1`) read into the same Profile.

Each record is "inuse_objects: inuse_bytes [alloc_objects: alloc_bytes] @ pcs" followed by
"#\t<pc>\t<function>+<offset>\t<file:line>" frames. The counts there are as sampled; the
proto form scales each record by 1 / (1 - exp(-avg_size / rate)) (Go's scaleHeapSample in
runtime/pprof), and so does this reader, so both forms of one GC cycle agree.
"""

from __future__ import annotations

import math
import re

from harness.profiles.proto import HeapSample, Profile, ProfileError

_HEADER = re.compile(r"^heap profile: (\d+): (\d+) \[(\d+): (\d+)\] @ heap/(\d+)")
_RECORD = re.compile(r"^(\d+): (\d+) \[(\d+): (\d+)\] @")
_FRAME = re.compile(r"^#\t0x[0-9a-f]+\t(\S+?)\+0x[0-9a-f]+\t")
SAMPLE_TYPES = (("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"),
                ("inuse_space", "bytes"))


def scale(count: int, size: int, rate: int) -> tuple[int, int]:
    """Go's scaleHeapSample: the sampled (count, bytes) of a record as estimated totals."""
    if count == 0 or size == 0:
        return 0, 0
    if rate <= 1:
        return count, size
    factor = 1 / (1 - math.exp(-(size / count) / rate))
    return int(count * factor), int(size * factor)


def header_totals(text: str) -> tuple[int, int, int, int, int]:
    """The header's (inuse objects, inuse bytes, alloc objects, alloc bytes, 2 * sampling rate), as sampled."""
    match = _HEADER.match(text)
    if match is None:
        raise ProfileError("not a debug=1 heap profile (no 'heap profile:' header)")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def parse(text: str) -> Profile:
    """The records of a debug=1 heap profile, scaled as the proto form scales them."""
    rate = header_totals(text)[4] // 2
    samples: list[HeapSample] = []
    counts: tuple[int, ...] | None = None
    stack: list[str] = []

    def flush() -> None:
        if counts is not None:
            inuse_n, inuse_b, alloc_n, alloc_b = counts
            a = scale(alloc_n, alloc_b, rate)
            i = scale(inuse_n, inuse_b, rate)
            samples.append(HeapSample(tuple(stack), (a[0], a[1], i[0], i[1])))

    for line in text.splitlines()[1:]:
        if line.startswith("# runtime.MemStats"):
            break
        if m := _RECORD.match(line):
            flush()
            counts, stack = tuple(int(g) for g in m.groups()), []
        elif m := _FRAME.match(line):
            stack.append(m.group(1))
    flush()
    return Profile(sample_types=SAMPLE_TYPES, samples=tuple(samples), time_nanos=0)
