from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from harness.scenario import model as scenarios
from harness.errors import TargetError, UsageError
from harness.run.guards import check_milvus_version


def test_seed_matches_the_issue():
    s = scenarios.load("seed")
    assert (s.shards, s.partitions, s.batch_rows, s.total_rows, s.dim) == (16, 16, 50_000, 6_680_000, 128)
    assert s.with_json and s.with_arrays
    assert s.oldest_milvus() == "2.3.0"
    assert scenarios.load("no-arrays").oldest_milvus() == "2.2.9"


def test_a_version_that_refuses_arrays_is_refused_before_it_runs_a_scenario_with_arrays():
    seed = scenarios.load("seed")
    with pytest.raises(TargetError, match=r"milvus 2\.3\.1 cannot run scenario 'seed': it refuses ARRAY fields"):
        check_milvus_version("embedded", seed, "2.3.1")
    check_milvus_version("embedded", seed.with_overrides({"with_arrays": "false"}), "2.3.1")
    check_milvus_version("embedded", seed, "2.3.2")
    check_milvus_version("external", seed, "2.3.1")  # a remote server's schema support is its own answer
    with pytest.raises(TargetError, match="it needs 2.3.0 or newer"):
        check_milvus_version("embedded", seed, "2.2.16")


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
    ("insert_path", "fast", "numpy, rows"),
])
def test_bad_overrides_name_the_key(key, value, message):
    with pytest.raises(UsageError) as err:
        scenarios.load("seed").with_overrides({key: value})
    assert message in str(err.value)


#: A bad value for every scenario field and rule (description alone takes any text).
BAD_VALUE = {
    "name": ("seed/../x", "letters, digits, -, _ and ."), "collection": ("1st", "starting with a letter"),
    "shards": ("0", "1 to 16"), "partitions": ("5000", "out of range"), "dim": ("1", "2 to"),
    "varchar_max_length": ("8", "16 to 65535"), "with_json": ("maybe", "not a valid bool (true/false"),
    "with_arrays": ("2", "not a valid bool"), "array_capacity": ("0", "1 to 4096"),
    "batch_rows": ("-5", "greater than 0"), "total_rows": ("1.5", "not a valid int"), "users": ("300", "1 to 256"),
    "insert_path": ("fast", "numpy, rows"), "insert_timeout_s": ("0", "greater than 0"),
    "wait_s": ("-1", "0 to 3600 seconds"), "check_after_restart": ("maybe", "not a valid bool"),
    "embedded_memory_limit": ("lots", "is not a size"), "min_milvus_version": ("two", "a version such as"),
    "rules.fail_on_oom": ("maybe", "not a valid bool"), "rules.fail_on_restart": ("x", "not a valid bool"),
    "rules.fail_on_stall": ("x", "not a valid bool"), "rules.fail_on_lost_rows": ("x", "not a valid bool"),
    "rules.fail_on_unverified": ("x", "not a valid bool"),
    "rules.max_peak_memory_fraction": ("0", "above 0, at most 1"),
    "rules.max_insert_p50_ms": ("-1", "greater than 0"), "rules.max_insert_p95_ms": ("fast", "not a valid float"),
    "rules.min_rows_per_s": ("0", "greater than 0"),
    "rules.under_test": ("datanode,querynodes", "all, or Milvus roles separated by commas from standalone"),
}


def test_every_field_has_a_bad_value_under_test():
    names = {f.name for f in scenarios.fields(scenarios.Scenario)} - {"rules", "description"}
    names |= {f"rules.{f.name}" for f in scenarios.fields(scenarios.Rules)}
    assert names == set(BAD_VALUE)


@pytest.mark.parametrize("key", sorted(BAD_VALUE))
def test_a_bad_value_of_any_field_is_one_line_naming_it(key):
    value, message = BAD_VALUE[key]
    with pytest.raises(UsageError) as err:
        scenarios.load("seed").with_overrides({key: value})
    text = str(err.value)
    assert message in text and key.split(".")[-1] in text and "\n" not in text


@pytest.mark.parametrize("value", ["", "all,datanode", "DataNode", "streamingnode,,datanode"])
def test_bad_under_test_is_one_line_with_what_is_allowed(value):
    with pytest.raises(UsageError) as err:
        scenarios.load("seed").with_overrides({"rules.under_test": value})
    assert str(err.value).startswith(f"rules.under_test={value.replace(' ', '')!r} is not allowed: all, or Milvus roles")


def test_under_test_from_set_and_toml(tmp_path: Path):
    seed = scenarios.load("seed")
    assert seed.rules.under_test == ("streamingnode",) and scenarios.load("smoke").rules.under_test == ("all",)
    both = seed.with_overrides({"rules.under_test": "streamingnode, datanode"})
    assert both.rules.under_test == ("streamingnode", "datanode") and both.digest() != seed.digest()
    assert seed.with_overrides({"rules.under_test": "all"}).rules.covers("datanode")
    assert not seed.rules.covers("datanode") and seed.rules.covers("streamingnode")
    assert seed.rules.covers("standalone")  # the embedded server holds every role
    path = tmp_path / "t.toml"
    path.write_text('[rules]\nunder_test = ["querynode"]\n')
    assert scenarios.load(str(path)).rules.under_test == ("querynode",)
    path.write_text('[rules]\nunder_test = [1]\n')
    with pytest.raises(UsageError, match="under_test"):
        scenarios.load(str(path))


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
