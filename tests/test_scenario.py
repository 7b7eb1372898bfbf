from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from harness import scenario as scenarios
from harness.errors import UsageError


def test_seed_matches_the_issue():
    s = scenarios.load("seed")
    assert (s.shards, s.partitions, s.batch_rows, s.total_rows, s.dim) == (16, 16, 50_000, 6_680_000, 128)
    assert s.with_json and s.with_arrays
    assert s.oldest_milvus() == "2.3.0"
    assert scenarios.load("no-arrays").oldest_milvus() == "2.2.9"


def test_overrides_apply_by_type_and_change_the_hash():
    s = scenarios.load("seed")
    t = s.with_overrides({"shards": "1", "partitions": "64", "batch_rows": "10000", "dim": "768",
                          "rules.max_insert_p95_ms": "2000", "with_json": "false"})
    assert (t.shards, t.partitions, t.batch_rows, t.dim, t.with_json) == (1, 64, 10_000, 768, False)
    assert t.rules.max_insert_p95_ms == 2000.0
    assert t.digest() != s.digest()
    assert s.with_overrides({}).digest() == s.digest()


@pytest.mark.parametrize("key,value,message", [
    ("shardz", "1", "did you mean 'shards'"),
    ("dim", "abc", "dim='abc' is not a valid int"),
    ("batch_rows", "0", "batch_rows=0 is out of range"),
    ("dim", "0", "dim=0 is out of range"),
    ("shards", "17", "1 to 16"),
    ("with_json", "maybe", "not a valid bool"),
    ("rules.max_peak_memory_fraction", "2", "at most 1"),
    ("rules.nope", "1", "unknown rule"),
    ("insert_path", "fast", "numpy, columns, rows"),
])
def test_bad_overrides_name_the_key(key, value, message):
    with pytest.raises(UsageError) as err:
        scenarios.load("seed").with_overrides({key: value})
    assert message in str(err.value)


def test_unknown_scenario_names_builtins():
    with pytest.raises(UsageError) as err:
        scenarios.load("nope")
    assert "seed" in str(err.value) and "smoke" in str(err.value)


def test_toml_file(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text('shards = 2\ntotal_rows = 1000\nbatch_rows = 100\n[rules]\nmax_insert_p50_ms = 50\n')
    s = scenarios.load(str(path))
    assert (s.name, s.shards, s.batches, s.rules.max_insert_p50_ms) == ("mine", 2, 10, 50.0)
    path.write_text("shards = 'x'")
    with pytest.raises(UsageError, match="shards"):
        scenarios.load(str(path))
    path.write_text("shards = [")
    with pytest.raises(UsageError, match="not valid TOML"):
        scenarios.load(str(path))


_toml_values = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.booleans(),
                         st.text(max_size=20), st.lists(st.integers(), max_size=3),
                         st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in scenarios.fields(scenarios.Scenario)] + ["bogus"]),
                       _toml_values, max_size=6))
def test_loader_never_crashes(data):
    """Any mapping either loads or is refused with a UsageError: never another exception."""
    try:
        scenarios.from_mapping(data)
    except UsageError as exc:
        assert "\n" not in str(exc)
