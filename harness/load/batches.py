"""Deterministic batch generation: batch k of a scenario is a pure function of (scenario, k).

Primary keys of batch k are k*batch_rows ... k*batch_rows + n - 1 and the random columns come
from a generator seeded by k, so any batch can be regenerated to verify what Milvus holds.
Everything is made with numpy in bulk; per-row Python work is limited to what the wire
format needs (strings, JSON documents).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.scenario.model import Scenario

# Field names of the collection every scenario builds (harness/load/collection.py makes the schema).
PK = "id"
PARTITION_KEY = "tenant"
VECTOR = "embedding"
FLOAT = "score"
VARCHAR = "text"
JSON = "meta"
ARRAY_INT = "tag_ids"
ARRAY_STR = "labels"
BOOL = "active"

#: Tenant ids are drawn from this many values; Milvus hashes them onto the partitions.
TENANTS = 10_000
_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     etaoinshrdlu", dtype=np.uint8)
_LABELS = [f"label-{i:03d}" for i in range(64)]
_CATEGORIES = ["news", "blog", "paper", "forum", "wiki", "code", "mail", "chat"]


@dataclass
class Batch:
    """The columns of one batch, ready for an InsertRequest."""

    index: int
    ids: np.ndarray  # int64
    tenants: np.ndarray  # int64
    vectors: np.ndarray  # float32, shape (n, dim)
    scores: np.ndarray  # float32
    texts: list[str]
    metas: list[bytes] | None  # JSON documents
    # ARRAY columns as flat values plus per-row lengths (how the wire format wants them)
    tag_ids: np.ndarray | None  # int64, all rows' elements back to back
    tag_id_lengths: np.ndarray | None
    labels: list[str] | None
    label_lengths: np.ndarray | None
    active: np.ndarray  # bool

    @property
    def rows(self) -> int:
        return len(self.ids)

    @property
    def first_pk(self) -> int:
        return int(self.ids[0])

    @property
    def last_pk(self) -> int:
        return int(self.ids[-1])


def primary_keys(scenario: Scenario, k: int) -> tuple[int, int]:
    """First and last primary key of batch k (inclusive)."""
    first = k * scenario.batch_rows
    return first, first + scenario.batch_size(k) - 1


def generate_batch(scenario: Scenario, k: int) -> Batch:
    """Batch k of the scenario; the same (scenario, k) always gives the same rows."""
    n = scenario.batch_size(k)
    if n <= 0:
        raise IndexError(f"batch {k} is past the scenario's {scenario.batches} batches")
    rng = np.random.default_rng([k, scenario.dim, scenario.batch_rows])
    first = k * scenario.batch_rows
    ids = np.arange(first, first + n, dtype=np.int64)
    tenants = rng.integers(0, TENANTS, size=n, dtype=np.int64)
    vectors = _vectors(rng, n, scenario.dim)
    scores = rng.random(n, dtype=np.float32)
    texts = _texts(rng, n, scenario.varchar_max_length)
    metas = _metas(rng, ids, tenants) if scenario.with_json else None
    tag_ids = tag_id_lengths = labels = label_lengths = None
    if scenario.with_arrays:
        max_len = min(scenario.array_capacity, 8)
        tag_id_lengths = rng.integers(0, max_len + 1, size=n)
        tag_ids = rng.integers(0, 100_000, size=int(tag_id_lengths.sum()), dtype=np.int64)
        label_lengths = rng.integers(0, min(scenario.array_capacity, 4) + 1, size=n)
        picks = rng.integers(0, len(_LABELS), size=int(label_lengths.sum())).tolist()
        labels = [_LABELS[i] for i in picks]
    active = rng.random(n) < 0.8
    return Batch(k, ids, tenants, vectors, scores, texts, metas, tag_ids, tag_id_lengths, labels,
                 label_lengths, active)


def _vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Uniform [0, 1) in steps of 1/65536: raw generator bytes are several times faster than
    rng.random(dtype=float32), and a load test does not need finer vectors."""
    raw = np.frombuffer(rng.bytes(n * dim * 2), dtype=np.uint16).reshape(n, dim)
    return raw.astype(np.float32) * np.float32(1 / 65536)


def _texts(rng: np.random.Generator, n: int, max_length: int) -> list[str]:
    """Strings whose lengths vary like real text: mostly short, a long tail up to max_length."""
    lengths = np.clip(rng.lognormal(mean=4.0, sigma=0.6, size=n).astype(np.int64), 8, max_length)
    ends = np.cumsum(lengths)
    chars = _ALPHABET[rng.integers(0, len(_ALPHABET), size=int(ends[-1]))].tobytes().decode("ascii")
    starts = ends - lengths
    return [chars[s:e] for s, e in zip(starts.tolist(), ends.tolist())]


def _metas(rng: np.random.Generator, ids: np.ndarray, tenants: np.ndarray) -> list[bytes]:
    """A few keys per document, one of them a nested object."""
    cats = rng.integers(0, len(_CATEGORIES), size=len(ids)).tolist()
    ranks = rng.integers(0, 1000, size=len(ids)).tolist()
    weights = np.round(rng.random(len(ids)), 3).tolist()
    return [
        f'{{"source":"{_CATEGORIES[c]}","tenant":{t},"rank":{r},"nested":{{"id":{i},"w":{w}}}}}'.encode()
        for i, t, c, r, w in zip(ids.tolist(), tenants.tolist(), cats, ranks, weights)
    ]
