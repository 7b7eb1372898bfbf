"""Each command's plain `run(...)`, called as a function (harness/commands/), and the parser built from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import commands
from harness.cli import build_parser
from harness.commands import report, versions
from harness.errors import UsageError
from harness.targets.install import Install
from run_dirs import copy_fixture


def test_the_help_lists_every_command_module_in_order():
    listed = re.findall(r"^    (\w+) ", build_parser().format_help(), flags=re.M)
    assert listed == ["run", "ui", "report", "profile", "scenarios", "versions", "cluster", "watch", "matrix", "bisect", "compare"]
    assert [c.__name__.rsplit(".", 1)[1] for c in commands.ALL] == listed


def test_report_renders_a_finished_run_dir(tmp_path, capsys):
    run_dir = copy_fixture("pass", tmp_path)
    assert report.run(run_dir) == 0
    written = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert {p.name for p in written} >= {"report.md", "report.html", "junit.xml"}
    assert all(p.parent == run_dir and p.stat().st_size > 0 for p in written)


def test_report_refuses_a_dir_without_a_summary(tmp_path):
    with pytest.raises(UsageError, match="is not a finished run directory"):
        report.run(tmp_path)


def test_versions_installed_lists_the_complete_installs_oldest_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MILVUS_HARNESS_CACHE", str(tmp_path))
    for version in ("2.3.5", "2.2.16", "2.2.9", "2.3.0"):
        install = Install(version, tmp_path / "milvus" / version)
        install.binary.parent.mkdir(parents=True)
        install.binary.write_text("")
        if version != "2.3.0":  # a half install (no marker) is not listed
            install.marker.write_text("{}")
    assert versions.run(installed_only=True) == 0
    assert capsys.readouterr().out.splitlines() == ["2.2.9  (installed)", "2.2.16  (installed)",
                                                    "2.3.5  (installed)"]  # by version, not by text


def test_versions_lists_only_the_supported_ones_and_an_older_installed_one_is_refused(tmp_path, monkeypatch, capsys):
    import json

    from harness.targets.install import resolve_version

    monkeypatch.setenv("MILVUS_HARNESS_CACHE", str(tmp_path))
    (tmp_path / "versions.json").write_text(json.dumps({"versions": ["2.2.4", "2.2.8", "2.2.9", "2.3.5"]}))
    assert versions.run() == 0
    assert capsys.readouterr().out.splitlines() == ["2.2.9", "2.3.5  (default)"]
    # Even complete in the cache, a version older than the oldest supported is refused.
    old = Install("2.2.8", tmp_path / "milvus" / "2.2.8")
    old.binary.parent.mkdir(parents=True)
    old.binary.write_text("")
    old.marker.write_text("{}")
    with pytest.raises(UsageError, match=r"^milvus 2.2.8 is not supported: the oldest embedded Milvus the harness runs "
                                         r"is 2.2.9"):
        resolve_version("2.2.8")
    assert resolve_version("2.2.9") == "2.2.9"
