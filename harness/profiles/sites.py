"""In-use bytes of a heap profile by allocation site: by function and by Milvus package, and
the growth between two captures.

A site's bytes are flat (each sample counted once, at one site), so the sites of a profile
add up to its in-use total: a top-N list ends with an "other sites" row that keeps the sum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from harness.profiles.proto import INUSE_SPACE, Profile

#: Functions of these module paths are Milvus's own code (milvus, milvus-proto, milvus-storage).
MILVUS_MODULE = "github.com/milvus-io/"
#: The row that holds every site below the top N.
OTHER = "(other sites)"
BY_FUNCTION = "function"
BY_PACKAGE = "package"


@dataclass(frozen=True)
class Site:
    """An allocation site and the bytes it holds; `growth_bytes` since an earlier capture
    (None when there is none to compare with)."""

    name: str
    bytes: int
    share: float
    growth_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def package_of(function: str) -> str:
    """The Go package of a symbol: "github.com/x/y/pkg.(*T).M" -> "github.com/x/y/pkg"."""
    slash = function.rfind("/")
    dot = function.find(".", slash + 1)
    return function if dot < 0 else function[:dot]


def leaf_function(stack: tuple[str, ...]) -> str:
    """The function that allocated: the innermost frame."""
    return stack[0] if stack else "?"


def milvus_package(stack: tuple[str, ...]) -> str:
    """The innermost Milvus package on the stack (what in Milvus holds the memory), or the leaf's
    package marked as outside Milvus when no Milvus frame is on it (runtime, gRPC internals)."""
    for frame in stack:
        if frame.startswith(MILVUS_MODULE):
            return package_of(frame)
    return f"(outside milvus) {package_of(leaf_function(stack))}"


def aggregate(profile: Profile, key: Callable[[tuple[str, ...]], str],
              sample_type: str = INUSE_SPACE) -> dict[str, int]:
    """`sample_type` values summed by `key(stack)`; the values add up to profile.total()."""
    i = profile.index(sample_type)
    out: dict[str, int] = {}
    for sample in profile.samples:
        value = sample.values[i]
        if value:
            name = key(sample.stack)
            out[name] = out.get(name, 0) + value
    return out


KEYS: dict[str, Callable[[tuple[str, ...]], str]] = {BY_FUNCTION: leaf_function, BY_PACKAGE: milvus_package}


def by(profile: Profile, what: str = BY_FUNCTION) -> dict[str, int]:
    """In-use bytes by function (the allocating frame) or by Milvus package."""
    return aggregate(profile, KEYS[what])


def top(totals: dict[str, int], n: int = 10, before: dict[str, int] | None = None) -> list[Site]:
    """The `n` largest sites, then one OTHER row with the rest, so the bytes keep their sum.

    With `before` (the same aggregation of an earlier capture) each site carries its growth.
    """
    whole = sum(totals.values()) or 1
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    sites = [Site(name, size, size / whole, None if before is None else size - before.get(name, 0))
             for name, size in ranked[:n]]
    rest = ranked[n:]
    if rest:
        size = sum(v for _, v in rest)
        # Everything not listed, sites gone since `before` included: the growths keep their sum too.
        growth = None if before is None else (
            sum(totals.values()) - sum(before.values()) - sum(s.growth_bytes or 0 for s in sites))
        sites.append(Site(OTHER, size, size / whole, growth))
    return sites


def growth(before: dict[str, int], after: dict[str, int], n: int = 10) -> list[Site]:
    """The sites that changed most between two aggregations (largest growth first; shrinking
    sites last), each with its bytes in `after`."""
    names = set(before) | set(after)
    whole = sum(after.values()) or 1
    changed = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in names), key=lambda d: (-abs(d[0]), d[1]))
    return [Site(k, after.get(k, 0), after.get(k, 0) / whole, d) for d, k in changed[:n] if d]


def total_of(sites: Iterable[Site]) -> int:
    """The bytes of a list of sites (all of a profile's when it came from `top`)."""
    return sum(s.bytes for s in sites)
