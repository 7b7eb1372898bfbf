"""After the load: which acked rows does Milvus really hold?

Two checks, both after a flush of the scenario's collection:

- `pk-ranges` counts rows by primary-key range with Strong consistency, naming the batches
  that are short. The collection must be indexed and loaded to be queried, so the query
  nodes must hold it: 6.68 M rows of 128-d vectors do not fit a small one, and loading them
  can OOM-kill it.
- `rows` compares the persisted row count (the data coordinator's segment row counts, no
  query node, no load) with the rows acked.

When every insert attempt was acked at its first try and no component died, no row can
have been written twice, so the row count equal to the rows acked proves none was lost:
that is the fast path, taken without an index or a load. (Segment row counts do not subtract
deletes, which live in delta logs: the harness never deletes, so a test that fakes a loss by
deleting rows must make the exact check run.) Otherwise (`doubts`) the count is
only a lower bound on the loss, and `plan` chooses pk-ranges when the estimate of the loaded
collection fits the memory the query nodes have, else rows (or takes what --verify asked for).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import psutil

from harness.judge.summary import acked_batches, describe_death, death_ref
from harness.load import batches
from harness.milvus_client import Address, MilvusAdmin
from harness.rundir import RunDir, read_jsonl
from harness.scenario.model import Scenario
from harness.units import format_bytes
from harness.watch import events as events_mod
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
    #: True when the row count alone decides (nothing was in doubt): no index, no load.
    fast: bool = False
    #: Why the row count alone could not decide (failed or retried inserts, deaths).
    doubts: tuple[str, ...] = ()

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


FAST_WHY = ("fast path: every insert was acked at its first try and no component died, so no row can be "
            "there twice and the persisted row count equal to the rows acked proves none is lost "
            "(no index, no load)")


def doubts(acks: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[str]:
    """Why the persisted row count alone cannot prove that no acked row was lost: inserts that
    failed (retried after UNAVAILABLE, or ended in doubt: timeout, connection lost, a server
    error; any of them may have been applied, in part, so rows may be there twice), and
    component deaths (OOM kills, exits, injected kills). Empty when nothing was in doubt."""
    failed = [a for a in acks if not a["ok"]]
    retried = [a for a in failed if a.get("retry")]
    doubtful = [a for a in failed if not a.get("retry")]
    found = []
    for group, what in ((retried, "retried"), (doubtful, "ended in doubt")):
        if group:
            batch_list = ", ".join(str(k) for k in sorted({a["batch"] for a in group})[:5])
            found.append(f"{len(group)} insert{'s' if len(group) != 1 else ''} {what} (batch {batch_list}; "
                         f"{str(group[0].get('error') or 'no error text')[:80]})")
    deaths = [e for e in events if e["type"] in (events_mod.OOM_KILLED, events_mod.EXITED)]
    if deaths:
        found.append(f"{len(deaths)} death{'s' if len(deaths) != 1 else ''} "
                     f"(first: {describe_death(death_ref(deaths[0]))})")
    return found


def doubtful_batches(acks: list[dict[str, Any]]) -> set[int]:
    """Batches with a failed attempt: a re-sent or half-applied insert may have left rows twice."""
    return {a["batch"] for a in acks if not a["ok"]}


def plan(requested: str | None, scenario: Scenario, acked_rows: int, capacity: int | None,
         capacity_source: str, in_doubt: list[str] | None = None) -> Plan:
    """The check to run: `requested` (--verify) if given; else the fast row count when
    `in_doubt` is empty (nothing failed, nothing died); else pk-ranges when the estimate of
    the loaded collection fits the capacity, else rows. `in_doubt` None means unknown (as
    good as doubtful)."""
    per_row = bytes_per_row(scenario)  # generates a whole batch: once
    estimate = load_estimate(per_row, acked_rows)
    sizes = (f"the collection loaded is estimated at {format_bytes(estimate)} ({acked_rows:,} rows x "
             f"{per_row:,.0f} B x {LOAD_OVERHEAD:g}); {capacity_source}")
    found = tuple(in_doubt or ())
    if requested is not None:
        return Plan(requested, f"asked for with --verify {requested} ({sizes})", estimate, capacity, doubts=found)
    if in_doubt is not None and not in_doubt:
        return Plan(ROWS, FAST_WHY, estimate, capacity, fast=True)
    needed = f"the row count alone cannot decide: {'; '.join(found)}. " if found else ""
    if capacity is not None and estimate <= capacity:
        return Plan(PK_RANGES, f"{needed}pk-ranges chosen because it fits: {sizes}", estimate, capacity, doubts=found)
    reason = "it would not fit" if capacity is not None else "it may not fit"
    return Plan(ROWS, f"{needed}rows chosen instead of pk-ranges because {reason}: {sizes}", estimate, capacity,
                doubts=found)


def verify(address: Address, collection: str, acked: list[dict[str, Any]], check: str = PK_RANGES,
           timeout: float = 300.0, doubtful: frozenset[int] = frozenset()) -> dict[str, Any]:
    """Run `check` on the acked batches: a dict for summary.json's rows (see verify_pk_ranges
    and verify_rows), with {"verified": None, "note": why} when nothing could be checked."""
    if check == NONE:
        return {"verified": None, "note": "verification skipped (--verify none)"}
    if check == ROWS:
        return verify_rows(address, collection, acked, timeout=timeout)
    return verify_pk_ranges(address, collection, acked, timeout=timeout, doubtful=doubtful)


def verify_rows(address: Address, collection: str, acked: list[dict[str, Any]], timeout: float = 300.0) -> dict[str, Any]:
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


def verify_pk_ranges(address: Address, collection: str, acked: list[dict[str, Any]],
                     timeout: float = 300.0, doubtful: frozenset[int] = frozenset()) -> dict[str, Any]:
    """{"verified": rows present of those acked, "lost": rows missing, "lost_batches": [...],
    "missing_by_batch": {batch: rows missing}, "count_queries": n} or {"verified": None,
    "note": why} when the server could not be asked. `doubtful` batches (see
    count_present) are counted one by one."""
    if not acked:
        return {"verified": 0, "lost": 0, "lost_batches": [], "count_queries": 0}
    queries = 0
    try:
        with MilvusAdmin(address, timeout=30) as admin:
            admin.flush(collection, timeout=timeout)
            admin.load_for_queries(collection, batches.VECTOR, timeout=timeout)

            def count(expr: str) -> int:
                nonlocal queries
                queries += 1
                return _count(admin, collection, expr)

            try:
                present = count_present(count, acked, doubtful)
            finally:
                try:
                    admin.release(collection, timeout=60)
                except Exception:  # releasing is a courtesy; the server is stopped next
                    pass
    except Exception as exc:  # pymilvus/grpc errors: the server could not answer
        log.warning("verification failed: %s", exc)
        return {"verified": None, "note": f"verification query failed: {str(exc)[:200]}"}
    return {**tally(acked, present), "count_queries": queries}


def tally(acked: list[dict[str, Any]], present: dict[int, int]) -> dict[str, Any]:
    """Rows present per acked batch, as summary.json's figures: verified (at most each batch's
    rows), lost and the short batches, and rows there twice (a retried insert the server had
    applied the first time too: not lost, but not what was asked for either)."""
    missing = {a["batch"]: a["rows"] - present[a["batch"]] for a in acked if present[a["batch"]] < a["rows"]}
    extra = {a["batch"]: present[a["batch"]] - a["rows"] for a in acked if present[a["batch"]] > a["rows"]}
    return {"verified": sum(min(present[a["batch"]], a["rows"]) for a in acked), "lost": sum(missing.values()),
            "lost_batches": sorted(missing), "missing_by_batch": missing,
            "duplicated": sum(extra.values()), "duplicated_batches": sorted(extra)}


def ranges_expr(group: list[dict[str, Any]]) -> str:
    """A filter matching the primary-key ranges of `group` (sorted by batch), adjacent ranges
    merged: one comparison pair per run of consecutive keys, runs joined with `or`."""
    runs: list[list[int]] = []
    for ack in group:
        if runs and ack["first_pk"] == runs[-1][1] + 1:
            runs[-1][1] = ack["last_pk"]
        else:
            runs.append([ack["first_pk"], ack["last_pk"]])
    return " or ".join(f"({batches.PK} >= {first} and {batches.PK} <= {last})" for first, last in runs)


def count_present(count: Callable[[str], int], acked: list[dict[str, Any]],
                  doubtful: frozenset[int] | set[int] = frozenset()) -> dict[int, int]:
    """Rows present per acked batch, with few count queries: the batches acked at their first
    try are counted together and a short group is halved until the short batches are named
    (1 query when none is missing, about 2 log2(n) per short batch). A group's count equal to
    its rows proves each batch whole only when no row can be there twice, so the `doubtful`
    batches (a failed attempt: re-sent or half applied) are counted one by one."""
    present: dict[int, int] = {}

    def visit(group: list[dict[str, Any]]) -> None:
        counted = count(ranges_expr(group))
        if len(group) == 1:
            present[group[0]["batch"]] = counted
        elif counted == sum(a["rows"] for a in group):
            present.update((a["batch"], a["rows"]) for a in group)
        else:
            half = len(group) // 2
            visit(group[:half])
            visit(group[half:])

    ordered = sorted(acked, key=lambda a: a["batch"])
    for ack in ordered:
        if ack["batch"] in doubtful:
            visit([ack])
    single_tries = [a for a in ordered if a["batch"] not in doubtful]
    if single_tries:
        visit(single_tries)
    return present


def _count(admin: MilvusAdmin, collection: str, expr: str) -> int:
    try:
        return admin.count(collection, expr)
    except Exception:
        # Servers before count(*) (2.2.x): fetch the keys and count them.
        rows = admin.client.query(collection, filter=expr, output_fields=[batches.PK], consistency_level="Strong")
        return len(rows)


def verify_after_load(target: "Target", address: Address, scenario: Scenario, run_dir: RunDir,
                      requested: str | None = None, context: RunEvents | None = None) -> dict[str, Any]:
    """Check the acked rows once the target is ready to answer, with the check `plan`
    chooses (or `requested`); the result says which check ran and why. With `context`,
    VerifyStarted and VerifyFinished events mark the check (the watchers stay on through it)."""
    acks = list(read_jsonl(run_dir.acks))
    acked = acked_batches(acks)
    acked_rows = sum(a["rows"] for a in acked)
    if target.kind == "embedded":
        capacity: int | None = psutil.virtual_memory().available
        source = f"the machine has {format_bytes(capacity)} available (the server's limit is lifted for the check)"
    else:
        capacity, source = query_capacity(context.latest if context is not None else {})
    in_doubt = doubts(acks, list(read_jsonl(run_dir.events)))
    chosen = plan(requested, scenario, acked_rows, capacity, source, in_doubt)
    if context is not None:
        context.fire_event(component="harness", type=events_mod.VERIFY_STARTED,
                           detail=f"{chosen.check} check: {chosen.why}", data=chosen.to_json())
    result = _check(target, address, scenario, acked, acks, chosen, requested, (capacity, source))
    if context is not None:
        context.fire_event(component="harness", type=events_mod.VERIFY_FINISHED,
                           detail=f"{result['check']['check']} check: verified {result.get('verified')}",
                           data={"check": result["check"]["check"], "verified": result.get("verified"),
                                 "lost": result.get("lost")})
    return result


def _check(target: "Target", address: str, scenario: Scenario, acked: list[dict[str, Any]],
           acks: list[dict[str, Any]], chosen: Plan, requested: str | None,
           capacity: tuple[int | None, str]) -> dict[str, Any]:
    """Run the chosen check; fall back to the row count when pk-ranges fails, and name the
    short batches with pk-ranges when the fast row count finds a difference."""
    if chosen.check == NONE:
        return {**verify(address, scenario.collection, acked, NONE), "check": chosen.to_json()}
    ready = target.prepare_verification()
    if not ready:
        return {"verified": None, "note": "the server did not come back to answer queries", "check": chosen.to_json()}
    doubtful = frozenset(doubtful_batches(acks))
    result = verify(address, scenario.collection, acked, chosen.check, doubtful=doubtful)
    acked_rows = sum(a["rows"] for a in acked)
    if chosen.fast and result.get("persisted") not in (None, acked_rows):
        # The count differs with nothing in doubt: name the batches if the load fits.
        exact = plan(None, scenario, acked_rows, *capacity,
                     in_doubt=[f"{result['persisted']:,} rows persisted of {acked_rows:,} acked"])
        if exact.check == PK_RANGES:
            counted = verify(address, scenario.collection, acked, PK_RANGES, doubtful=doubtful)
            if counted.get("verified") is not None:
                return {**counted, "persisted": result["persisted"], "check": exact.to_json()}
            exact = Plan(ROWS, f"pk-ranges failed ({counted.get('note')}), so the row count stands; {exact.why}",
                         exact.estimate_bytes, exact.capacity_bytes, doubts=exact.doubts)
        return {**result, "check": exact.to_json()}
    if result.get("verified") is None and requested is None and chosen.check == PK_RANGES:
        # The check chosen by the estimate failed (a query node died loading, say): the row
        # count needs no query node.
        fallback = verify_rows(address, scenario.collection, acked)
        chosen = Plan(ROWS, f"pk-ranges failed ({result.get('note')}), so the row count ran instead; {chosen.why}",
                      chosen.estimate_bytes, chosen.capacity_bytes, doubts=chosen.doubts)
        result = fallback
    return {**result, "check": chosen.to_json()}
