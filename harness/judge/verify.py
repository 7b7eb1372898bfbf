"""After the load: which acked rows does Milvus really hold?

Two checks, both after a flush of the scenario's collection:

- `pk-ranges` counts rows per acked batch by primary-key range with Strong consistency,
  narrowing down to the batches that are short. The collection must be indexed and loaded
  to be queried, so the query nodes must hold it: 6.68 M rows of 128-d vectors do not fit a
  small one, and loading them can OOM-kill it.
- `rows` compares the persisted row count (the data coordinator's segment row counts, no
  query node, no load) with the rows acked: a lower bound on the loss, with no batch named.

`plan` chooses between them from an estimate of the loaded collection against the memory
the query nodes have (or takes what --verify asked for).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

import psutil

from harness.judge.summary import acked_batches
from harness.load import batches
from harness.milvus_client import MilvusAdmin
from harness.rundir import RunDir, read_jsonl
from harness.scenario.model import Scenario
from harness.units import format_bytes
from harness.watch import events
from harness.watch.events import RunEvents, Sample

if TYPE_CHECKING:
    from harness.targets.protocol import Target

log = logging.getLogger(__name__)

PK_RANGES, ROWS, NONE = "pk-ranges", "rows", "none"
CHECKS = (PK_RANGES, ROWS, NONE)
#: Loaded size over the raw field bytes: the FLAT index built for the query holds the vectors
#: again, and segments carry their own overhead. A generous factor: an underestimate risks an
#: OOM of the query node, an overestimate only the coarser check.
LOAD_OVERHEAD = 2.0
#: Roles whose memory a loaded collection lives in.
QUERY_ROLES = ("querynode", "standalone")


@dataclass(frozen=True)
class Plan:
    """Which check runs and why, with the figures it was chosen from."""

    check: str
    why: str
    estimate_bytes: int | None = None
    capacity_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bytes_per_row(scenario: Scenario) -> float:
    """Raw field bytes per row, measured on the scenario's first batch (strings, JSON and
    arrays included as generated)."""
    b = batches.generate_batch(scenario, 0)
    total = b.ids.nbytes + b.tenants.nbytes + b.vectors.nbytes + b.scores.nbytes + b.active.nbytes
    total += sum(len(t) for t in b.texts) + sum(len(m) for m in b.metas or [])
    total += (b.tag_ids.nbytes if b.tag_ids is not None else 0) + sum(len(x) for x in b.labels or [])
    return total / b.rows


def load_estimate(per_row: float, rows: int) -> int:
    """Bytes the query nodes need to load `rows` rows of `per_row` raw bytes each."""
    return int(rows * per_row * LOAD_OVERHEAD)


def query_capacity(latest: Mapping[str, Sample]) -> tuple[int | None, str]:
    """Free memory under the limits of the watched query nodes (limit minus last usage), and
    where that figure comes from; None when no query node with a memory limit is watched."""
    from harness.judge.verdict import role_of

    nodes = {name: s for name, s in latest.items() if "/" not in name and role_of(name) in QUERY_ROLES}
    if not nodes:
        return None, "no query node is watched"
    unlimited = sorted(name for name, s in nodes.items() if not s.limit_bytes)
    if unlimited:
        return None, f"{', '.join(unlimited)} {'has' if len(unlimited) == 1 else 'have'} no memory limit"
    free = sum(max(0, (s.limit_bytes or 0) - (s.memory_bytes or 0)) for s in nodes.values())
    return free, (f"{len(nodes)} query node{'s' if len(nodes) != 1 else ''} ({', '.join(sorted(nodes))}): "
                  f"{format_bytes(free)} free under their limits")


def plan(requested: str | None, scenario: Scenario, acked_rows: int, capacity: int | None,
         capacity_source: str) -> Plan:
    """The check to run: `requested` (--verify) if given, else pk-ranges when the estimate
    of the loaded collection fits the capacity, else rows."""
    per_row = bytes_per_row(scenario)  # generates a whole batch: once
    estimate = load_estimate(per_row, acked_rows)
    sizes = (f"the collection loaded is estimated at {format_bytes(estimate)} ({acked_rows:,} rows x "
             f"{per_row:,.0f} B x {LOAD_OVERHEAD:g}); {capacity_source}")
    if requested is not None:
        return Plan(requested, f"asked for with --verify {requested} ({sizes})", estimate, capacity)
    if capacity is not None and estimate <= capacity:
        return Plan(PK_RANGES, f"chosen because it fits: {sizes}", estimate, capacity)
    reason = "it would not fit" if capacity is not None else "it may not fit"
    return Plan(ROWS, f"chosen instead of pk-ranges because {reason}: {sizes}", estimate, capacity)


def verify(address: str, collection: str, acked: list[dict[str, Any]], check: str = PK_RANGES,
           timeout: float = 300.0) -> dict[str, Any]:
    """Run `check` on the acked batches: a dict for summary.json's rows (see verify_pk_ranges
    and verify_rows), with {"verified": None, "note": why} when nothing could be checked."""
    if check == NONE:
        return {"verified": None, "note": "verification skipped (--verify none)"}
    if check == ROWS:
        return verify_rows(address, collection, acked, timeout=timeout)
    return verify_pk_ranges(address, collection, acked, timeout=timeout)


def verify_rows(address: str, collection: str, acked: list[dict[str, Any]], timeout: float = 300.0) -> dict[str, Any]:
    """Flush, then the persisted row count against the rows acked: {"verified": rows
    accounted for, "lost": at least this many missing, "persisted": the count}."""
    acked_rows = sum(a["rows"] for a in acked)
    try:
        with MilvusAdmin(address, timeout=30) as admin:
            admin.flush(collection, timeout=timeout)
            persisted = admin.persisted_rows(collection, timeout=timeout)
    except Exception as exc:  # pymilvus/grpc errors: the server could not answer
        log.warning("row count failed: %s", exc)
        return {"verified": None, "note": f"persisted row count failed: {str(exc)[:200]}"}
    return {"verified": min(persisted, acked_rows), "lost": max(0, acked_rows - persisted), "lost_batches": [],
            "persisted": persisted}


def verify_pk_ranges(address: str, collection: str, acked: list[dict[str, Any]],
                     timeout: float = 300.0) -> dict[str, Any]:
    """{"verified": rows present of those acked, "lost": rows missing, "lost_batches": [...],
    "missing_by_batch": {batch: rows missing}} or {"verified": None, "note": why} when the
    server could not be asked."""
    if not acked:
        return {"verified": 0, "lost": 0, "lost_batches": []}
    try:
        with MilvusAdmin(address, timeout=30) as admin:
            admin.flush(collection, timeout=timeout)
            admin.load_for_queries(collection, batches.VECTOR, timeout=timeout)
            try:
                present = _count_ranges(admin, collection, acked)
            finally:
                try:
                    admin.release(collection, timeout=60)
                except Exception:  # releasing is a courtesy; the server is stopped next
                    pass
    except Exception as exc:  # pymilvus/grpc errors: the server could not answer
        log.warning("verification failed: %s", exc)
        return {"verified": None, "note": f"verification query failed: {str(exc)[:200]}"}
    missing = {a["batch"]: a["rows"] - n for a, n in zip(acked, present) if n < a["rows"]}
    verified = sum(min(n, a["rows"]) for a, n in zip(acked, present))
    return {"verified": verified, "lost": sum(missing.values()), "lost_batches": sorted(missing),
            "missing_by_batch": missing}


def _count_ranges(admin: MilvusAdmin, collection: str, acked: list[dict[str, Any]]) -> list[int]:
    """Rows present in each acked batch's primary-key range. One query for all when the
    total matches; otherwise per batch (counting is cheap next to loading)."""
    counts = []
    for ack in acked:
        expr = f"{batches.PK} >= {ack['first_pk']} and {batches.PK} <= {ack['last_pk']}"
        try:
            counts.append(admin.count(collection, expr))
        except Exception:
            # Servers before count(*) (2.2.x): fetch the keys and count them.
            rows = admin.client.query(collection, filter=expr, output_fields=[batches.PK],
                                      consistency_level="Strong")
            counts.append(len(rows))
    return counts


def verify_after_load(target: "Target", address: str, scenario: Scenario, run_dir: RunDir,
                      requested: str | None = None, context: RunEvents | None = None) -> dict[str, Any]:
    """Check the acked rows once the target is ready to answer, with the check `plan`
    chooses (or `requested`); the result says which check ran and why. With `context`, a
    VerifyStarted event marks where verification begins (the watchers stay on through it)."""
    acked = acked_batches(list(read_jsonl(run_dir.acks)))
    acked_rows = sum(a["rows"] for a in acked)
    if target.kind == "embedded":
        capacity: int | None = psutil.virtual_memory().available
        source = f"the machine has {format_bytes(capacity)} available (the server's limit is lifted for the check)"
    else:
        capacity, source = query_capacity(context.latest if context is not None else {})
    chosen = plan(requested, scenario, acked_rows, capacity, source)
    if context is not None:
        context.fire_event(component="harness", type=events.VERIFY_STARTED,
                           detail=f"{chosen.check} check: {chosen.why}", data=chosen.to_json())
    if chosen.check == NONE:
        return {**verify(address, scenario.collection, acked, NONE), "check": chosen.to_json()}
    ready = target.prepare_verification()
    if not ready:
        return {"verified": None, "note": "the server did not come back to answer queries", "check": chosen.to_json()}
    result = verify(address, scenario.collection, acked, chosen.check)
    if result.get("verified") is None and requested is None and chosen.check == PK_RANGES:
        # The check chosen by the estimate failed (a query node died loading, say): the row
        # count needs no query node.
        fallback = verify_rows(address, scenario.collection, acked)
        chosen = Plan(ROWS, f"pk-ranges failed ({result.get('note')}), so the row count ran instead; {chosen.why}",
                      chosen.estimate_bytes, chosen.capacity_bytes)
        result = fallback
    return {**result, "check": chosen.to_json()}
