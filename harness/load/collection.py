"""The scenario's collection: created once per run (dropped first if it exists), never per user."""

from __future__ import annotations

from typing import Any

from harness.load import batches
from harness.errors import TargetError
from harness.milvus_client import Address, MilvusAdmin
from harness.scenario.model import Scenario


def schema(scenario: Scenario) -> Any:
    """The pymilvus CollectionSchema of the scenario (INT64 primary key, not auto-id)."""
    from pymilvus import CollectionSchema, DataType, FieldSchema

    fields = [
        FieldSchema(batches.PK, DataType.INT64, is_primary=True, auto_id=False),
        FieldSchema(batches.PARTITION_KEY, DataType.INT64, is_partition_key=scenario.partitions > 1),
        FieldSchema(batches.VECTOR, DataType.FLOAT_VECTOR, dim=scenario.dim),
        FieldSchema(batches.FLOAT, DataType.FLOAT),
        FieldSchema(batches.VARCHAR, DataType.VARCHAR, max_length=scenario.varchar_max_length),
    ]
    if scenario.with_json:
        fields.append(FieldSchema(batches.JSON, DataType.JSON))
    if scenario.with_arrays:
        fields.append(FieldSchema(batches.ARRAY_INT, DataType.ARRAY, element_type=DataType.INT64,
                                  max_capacity=scenario.array_capacity))
        fields.append(FieldSchema(batches.ARRAY_STR, DataType.ARRAY, element_type=DataType.VARCHAR,
                                  max_capacity=scenario.array_capacity, max_length=64))
    fields.append(FieldSchema(batches.BOOL, DataType.BOOL))
    return CollectionSchema(fields, description=f"milvus-harness scenario {scenario.name}")


def create(address: Address, scenario: Scenario) -> None:
    """Drop and create the scenario's collection; a server that refuses it is TargetError."""
    from pymilvus import Collection, utility

    with MilvusAdmin(address) as admin:
        try:
            if utility.has_collection(scenario.collection, using=admin.alias):
                utility.drop_collection(scenario.collection, using=admin.alias)
            kwargs: dict[str, Any] = {"shards_num": scenario.shards}
            if scenario.partitions > 1:
                kwargs["num_partitions"] = scenario.partitions
            Collection(scenario.collection, schema(scenario), using=admin.alias, **kwargs)
        except Exception as exc:  # pymilvus raises MilvusException / grpc errors / ParamError
            raise TargetError(f"cannot create collection {scenario.collection!r} "
                              f"({scenario.shards} shards, {scenario.partitions} partitions): {exc}") from None
