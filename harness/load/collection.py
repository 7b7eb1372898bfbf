"""The scenario's collection: created once per run (dropped first if it exists), never per user, or required to exist."""

from __future__ import annotations

from typing import Any

from harness.load import batches
from harness.errors import TargetError
from harness.milvus_client import Address, MilvusAdmin
from harness.scenario.model import Scenario


def schema(scenario: Scenario) -> Any:
    """The pymilvus CollectionSchema of the scenario (INT64 primary key, not auto-id)."""
    from pymilvus import DataType, MilvusClient

    built = MilvusClient.create_schema(auto_id=False, description=f"milvus-harness scenario {scenario.name}")
    built.add_field(batches.PK, DataType.INT64, is_primary=True)
    built.add_field(batches.PARTITION_KEY, DataType.INT64, is_partition_key=scenario.partitions > 1)
    built.add_field(batches.VECTOR, DataType.FLOAT_VECTOR, dim=scenario.dim)
    built.add_field(batches.FLOAT, DataType.FLOAT)
    built.add_field(batches.VARCHAR, DataType.VARCHAR, max_length=scenario.varchar_max_length)
    if scenario.with_json:
        built.add_field(batches.JSON, DataType.JSON)
    if scenario.with_arrays:
        built.add_field(batches.ARRAY_INT, DataType.ARRAY, element_type=DataType.INT64,
                        max_capacity=scenario.array_capacity)
        built.add_field(batches.ARRAY_STR, DataType.ARRAY, element_type=DataType.VARCHAR,
                        max_capacity=scenario.array_capacity, max_length=64)
    built.add_field(batches.BOOL, DataType.BOOL)
    return built


def create(address: Address, scenario: Scenario) -> None:
    """Drop and create the scenario's collection; a server that refuses it is TargetError."""
    with MilvusAdmin(address) as admin:
        try:
            if admin.client.has_collection(scenario.collection):
                admin.client.drop_collection(scenario.collection)
            kwargs: dict[str, Any] = {"num_shards": scenario.shards}
            if scenario.partitions > 1:
                kwargs["num_partitions"] = scenario.partitions
            # Bounded consistency, as the ORM's Collection() created it before.
            admin.client.create_collection(scenario.collection, schema=schema(scenario),
                                           consistency_level="Bounded", **kwargs)
        except Exception as exc:  # pymilvus raises MilvusException / grpc errors / ParamError
            raise TargetError(f"cannot create collection {scenario.collection!r} "
                              f"({scenario.shards} shards, {scenario.partitions} partitions): {exc}") from None


def require(address: Address, scenario: Scenario) -> None:
    """The scenario's collection must exist already (--collection-mode reuse); TargetError if not."""
    with MilvusAdmin(address) as admin:
        try:
            present = admin.client.has_collection(scenario.collection)
        except Exception as exc:  # as in create(): pymilvus and grpc errors
            raise TargetError(f"cannot look up collection {scenario.collection!r}: {exc}") from None
    if not present:
        raise TargetError(f"collection {scenario.collection!r} does not exist; --collection-mode create makes it")
