"""After the load: which acked rows does Milvus really hold?

Flush, then count rows per acked batch by primary-key range with Strong consistency,
narrowing down to the batches that are short. A collection must be indexed and loaded to be
queried; the verifier does that itself after the load is over.
"""

from __future__ import annotations

import logging
from typing import Any

from harness.load import batches
from harness.milvus_client import MilvusAdmin

log = logging.getLogger(__name__)


def verify(address: str, collection: str, acked: list[dict[str, Any]], timeout: float = 300.0) -> dict[str, Any]:
    """{"verified": rows present of those acked, "lost": rows missing, "lost_batches": [...],
    "missing_by_batch": {batch: rows missing}} or {"verified": None, "note": why} when the
    server could not be asked."""
    if not acked:
        return {"verified": 0, "lost": 0, "lost_batches": []}
    try:
        with MilvusAdmin(address, timeout=30) as admin:
            coll = admin.collection(collection)
            coll.flush(timeout=timeout)
            if not coll.has_index():
                coll.create_index(batches.VECTOR, {"index_type": "FLAT", "metric_type": "L2", "params": {}},
                                  timeout=timeout)
            coll.load(timeout=timeout)
            try:
                present = _count_ranges(admin, collection, acked)
            finally:
                try:
                    coll.release(timeout=60)
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
            rows = admin.collection(collection).query(expr=expr, output_fields=[batches.PK],
                                                      consistency_level="Strong")
            counts.append(len(rows))
    return counts
