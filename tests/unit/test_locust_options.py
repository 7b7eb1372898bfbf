"""The insert locustfile's options, read as Locust hands them over (a Namespace, the web form's text)."""

import argparse
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.load.locust_options import LoadSettings, parse_overrides


def _options(**given):
    base = dict(scenario="smoke", set=None, collection_mode="create", acks_file="acks.jsonl", user=None,
                password=None, token=None, db_name=None, tls_ca=None, harness_run_dir="")
    return argparse.Namespace(**{**base, **given})


def test_set_reads_the_command_lines_list_and_the_forms_text_alike():
    assert parse_overrides(None) == parse_overrides("") == parse_overrides([]) == {}
    expected = {"total_rows": "200000", "rules.under_test": "datanode,querynode", "batch_rows": "10000"}
    assert parse_overrides(["total_rows=200000", "rules.under_test=datanode,querynode", "batch_rows=10000"]) == expected
    assert parse_overrides("total_rows=200000 rules.under_test=datanode,querynode, batch_rows=10000") == expected
    # Locust's form handling splits a list option's text at every comma before we see it
    assert parse_overrides(["total_rows=200000", "rules.under_test=datanode", "querynode", "batch_rows=10000"]) == expected


@pytest.mark.parametrize("given, says", [
    (dict(set=["total_rows=abc"]), "total_rows='abc' is not a valid int"),
    (dict(set="nokey"), "'nokey' is not key=value"),
    (dict(scenario="nope"), "unknown scenario 'nope'"),
    (dict(collection_mode="keep"), "--collection-mode 'keep': allowed are create, reuse"),
    (dict(user="u"), "--password is missing"),
    (dict(token="t", user="u", password="p"), "exclusive"),
])
def test_a_bad_option_is_one_message_naming_it(given, says):
    with pytest.raises(UsageError, match=None) as refused:
        LoadSettings.from_options(_options(**given), "http://127.0.0.1:19530", {})
    assert says in str(refused.value)


def test_the_host_is_required_and_must_be_a_milvus_address():
    with pytest.raises(UsageError, match="no Milvus address: give --host"):
        LoadSettings.from_options(_options(), None, {})
    with pytest.raises(UsageError, match="--host 'ftp://h:1' is not a Milvus address"):
        LoadSettings.from_options(_options(), "ftp://h:1", {})


def test_settings_resolve_host_credentials_and_scenario_and_survive_a_message(tmp_path):
    settings = LoadSettings.from_options(
        _options(set=["total_rows=200000"], db_name="db1", acks_file=str(tmp_path / "a.jsonl"),
                 harness_run_dir=str(tmp_path)), "http://127.0.0.1:19531", {"MILVUS_TOKEN": "secret"})
    assert settings.connection.address == "127.0.0.1:19531"
    assert settings.connection.credentials.token == "secret" and settings.connection.credentials.db_name == "db1"
    assert settings.scenario.total_rows == 200_000 and settings.scenario.name == "smoke"
    assert settings.down is not None and settings.down.path == tmp_path / "server.down"
    sent = settings.to_json()
    assert "secret" not in repr(sent)
    back = LoadSettings.from_json(sent, {"MILVUS_TOKEN": "secret"})
    assert back == settings
    assert LoadSettings.from_options(_options(), "127.0.0.1", {}).acks == Path("acks.jsonl")


def test_a_harness_run_gives_the_locustfile_its_options_but_no_secret(tmp_path):
    from harness.milvus_client import Connection, Credentials
    from harness.rundir import RunDir
    from harness.run.locust_procs import insert_options

    scenario_file = tmp_path / "mine.toml"
    scenario_file.write_text('collection = "mine"\n')
    connection = Connection("127.0.0.1:19531", Credentials(user="u", password="pw-secret", db_name="d1"))
    argv = insert_options(connection, str(scenario_file),
                          {"total_rows": "200000", "rules.under_test": "datanode,querynode"}, RunDir(tmp_path))
    assert "pw-secret" not in " ".join(argv) and "--password" not in argv and "--user" not in argv
    pairs = dict(zip(argv[::2], argv[1::2]))
    assert pairs["--host"] == "http://127.0.0.1:19531" and pairs["--collection-mode"] == "reuse"
    assert pairs["--scenario"] == str(scenario_file.resolve()) and pairs["--db-name"] == "d1"
    assert pairs["--acks-file"] == str(tmp_path / "acks.jsonl") and pairs["--harness-run-dir"] == str(tmp_path)
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert parse_overrides(sets) == {"total_rows": "200000", "rules.under_test": "datanode,querynode"}


@pytest.mark.parametrize("args, says", [
    (["--set", "total_rows=abc"], "total_rows='abc' is not a valid int"),
    (["--scenario", "nope"], "unknown scenario 'nope'"),
    ([], "no Milvus address: give --host"),
])
def test_plain_locust_refuses_a_bad_option_in_one_line_before_it_starts(tmp_path, args, says):
    """Plain `locust` in a child (importing Locust here would gevent-patch pytest)."""
    import subprocess
    import sys

    locustfile = Path(__file__).resolve().parents[2] / "locustfiles" / "milvus_insert.py"
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-t", "5s",
                           "--skip-log-setup", "--acks-file", str(tmp_path / "acks.jsonl"), *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"locust: error: {done.stderr.split('error: ', 1)[1].strip()}"]
    assert says in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "acks.jsonl").exists()
