"""A report dir that cannot take a run (read-only, full, not a directory) fails at start:
one line, exit 2, no run directory, nothing started.

Read-only and full file systems are real tmpfs mounts (root only; skipped elsewhere)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.rundir import MIN_FREE_BYTES, RunDir, new_numbered_dir


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for where in made:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def full_dir(tmp_path: Path, mounts: list[Path]) -> Path:
    """A file system with 2 MiB left: writable, but far too small for a run."""
    where = tmp_path / "full"
    _mount_tmpfs(where, "size=2m")
    mounts.append(where)
    return where


@pytest.fixture
def read_only_dir(tmp_path: Path, mounts: list[Path]) -> Path:
    where = tmp_path / "ro"
    _mount_tmpfs(where, f"ro,size={2 * MIN_FREE_BYTES}")
    mounts.append(where)
    return where


@pytest.fixture
def file_as_parent(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a directory\n")
    return tmp_path / "a-file" / "reports"


def test_a_full_report_dir_is_refused_and_left_empty(full_dir: Path) -> None:
    with pytest.raises(UsageError, match=r"has 2\.00 MiB free; a run needs at least 100\.00 MiB"):
        RunDir.create(full_dir, "run-1")
    assert list(full_dir.iterdir()) == []


def test_a_disk_that_fills_while_the_run_dir_is_made_leaves_nothing(tmp_path: Path, mounts: list[Path],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The free-space check passes (the threshold is lowered), then the probe write meets ENOSPC.
    where = tmp_path / "tiny"
    _mount_tmpfs(where, "size=64k")
    mounts.append(where)
    (where / "filler").write_bytes(b"\0" * (64 * 1024))  # every page taken
    monkeypatch.setattr("harness.rundir.MIN_FREE_BYTES", 0)
    with pytest.raises(UsageError, match="is not writable: No space left on device"):
        RunDir.create(where, "run-1")
    assert [p.name for p in where.iterdir()] == ["filler"]


def test_a_read_only_report_dir_is_refused(read_only_dir: Path) -> None:
    with pytest.raises(UsageError, match="is not writable: Read-only file system"):
        RunDir.create(read_only_dir, "run-1")
    with pytest.raises(UsageError, match="is not writable: Read-only file system"):
        new_numbered_dir(read_only_dir, "matrix-", "x")


@pytest.mark.parametrize("command", [["run"], ["matrix", "--milvus-versions", "2.3.5"]])
@pytest.mark.parametrize("kind", ["full_dir", "read_only_dir", "file_as_parent"])
def test_cli_refuses_an_unusable_report_dir_in_one_line(command: list[str], kind: str,
                                                        request: pytest.FixtureRequest, no_leftovers: None) -> None:
    report_dir: Path = request.getfixturevalue(kind)
    result = subprocess.run([sys.executable, "-m", "harness.cli", *command, "--report-dir", str(report_dir)],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert f"report dir {report_dir}" in lines[0] and ("free" in lines[0] or "not writable" in lines[0])
    if report_dir.is_dir():
        assert list(report_dir.iterdir()) == []
