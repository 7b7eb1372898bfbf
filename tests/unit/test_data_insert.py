"""Batch generation is deterministic, and the hand-built InsertRequest equals protobuf's."""

import numpy as np
import pytest
from pymilvus.grpc_gen import milvus_pb2

from harness.load import batches, insert
from harness.scenario import model as scenarios


@pytest.fixture(scope="module")
def seed():
    return scenarios.load("seed").with_overrides({"batch_rows": "5000", "total_rows": "12000"})


def test_batch_is_a_pure_function_of_scenario_and_k(seed):
    a, b = batches.generate_batch(seed, 1), batches.generate_batch(seed, 1)
    assert np.array_equal(a.vectors, b.vectors) and a.texts == b.texts and a.metas == b.metas
    assert (a.first_pk, a.last_pk) == (5000, 9999) == batches.primary_keys(seed, 1)
    assert not np.array_equal(a.vectors, batches.generate_batch(seed, 0).vectors)
    last = batches.generate_batch(seed, 2)
    assert (last.rows, last.first_pk, last.last_pk) == (2000, 10000, 11999)
    with pytest.raises(IndexError):
        batches.generate_batch(seed, 3)


def test_texts_vary_in_length_within_the_limit(seed):
    lengths = [len(t) for t in batches.generate_batch(seed, 0).texts]
    assert max(lengths) <= seed.varchar_max_length and min(lengths) >= 8
    assert len(set(lengths)) > 50


def test_wire_request_parses_to_the_batch(seed):
    batch = batches.generate_batch(seed, 1)
    request = milvus_pb2.InsertRequest.FromString(insert.build_insert_request("c", seed, batch))
    assert request.collection_name == "c" and request.num_rows == batch.rows
    fields = {f.field_name: f for f in request.fields_data}
    assert list(fields) == [batches.PK, batches.PARTITION_KEY, batches.VECTOR, batches.FLOAT, batches.VARCHAR, batches.JSON,
                            batches.ARRAY_INT, batches.ARRAY_STR, batches.BOOL]
    assert list(fields[batches.PK].scalars.long_data.data) == batch.ids.tolist()
    vectors = np.array(fields[batches.VECTOR].vectors.float_vector.data, dtype=np.float32).reshape(-1, seed.dim)
    assert np.array_equal(vectors, batch.vectors) and fields[batches.VECTOR].vectors.dim == seed.dim
    assert np.array_equal(np.array(fields[batches.FLOAT].scalars.float_data.data, dtype=np.float32), batch.scores)
    assert list(fields[batches.VARCHAR].scalars.string_data.data) == batch.texts
    assert list(fields[batches.JSON].scalars.json_data.data) == batch.metas
    ends = np.cumsum(batch.tag_id_lengths)
    rows = fields[batches.ARRAY_INT].scalars.array_data
    assert rows.element_type == 5 and len(rows.data) == batch.rows
    for i in range(batch.rows):
        assert list(rows.data[i].long_data.data) == batch.tag_ids[ends[i] - batch.tag_id_lengths[i]:ends[i]].tolist()
    label_ends = np.cumsum(batch.label_lengths)
    labels = fields[batches.ARRAY_STR].scalars.array_data
    assert labels.element_type == 21
    for i in range(batch.rows):
        assert list(labels.data[i].string_data.data) == batch.labels[label_ends[i] - batch.label_lengths[i]:label_ends[i]]
        assert labels.data[i].WhichOneof("data") == "string_data"
    assert list(fields[batches.BOOL].scalars.bool_data.data) == batch.active.tolist()


def test_varints_of_large_values():
    values = np.array([0, 1, 127, 128, 300, 16383, 16384, 2**35, 2**62], dtype=np.int64)
    lengths = np.array([3, 0, 6])
    from pymilvus.grpc_gen import schema_pb2

    parsed = schema_pb2.ArrayArray.FromString(insert.encode_int64_arrays(values, lengths))
    assert [list(r.long_data.data) for r in parsed.data] == [[0, 1, 127], [], [128, 300, 16383, 16384, 2**35, 2**62]]


def test_batch_columns_match_the_wire_path(seed):
    batch = batches.generate_batch(seed, 0)
    columns = insert.batch_columns(batch)
    assert columns[batches.PK][:3] == [0, 1, 2]
    assert sum(len(a) for a in columns[batches.ARRAY_INT]) == len(batch.tag_ids)
    assert columns[batches.JSON][0]["nested"]["id"] == 0
