"""The project installs where pyproject says it does: a wheel of it, and every dependency as a
wheel (`pip install --only-binary :all:`), into a fresh venv of a CPython it declares.

The newest declared CPython found on the machine runs in the default tier; every other one
found is in the slow tier. A declared version with no interpreter here is skipped, by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared_pythons() -> list[str]:
    """The CPython versions pyproject's classifiers declare, e.g. ['3.10', '3.11'], oldest first."""
    found = [m.group(1) for c in PYPROJECT["project"]["classifiers"]
             if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]
    return sorted(found, key=lambda v: int(v.split(".")[1]))


def interpreter(version: str) -> str | None:
    """A working python<version> on this machine: on PATH, or in pyenv's versions."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:  # a pyenv shim may refuse
            return candidate
    return None


DECLARED = declared_pythons()
AVAILABLE = {v: interpreter(v) for v in DECLARED}
NEWEST = max((v for v, exe in AVAILABLE.items() if exe), key=lambda v: int(v.split(".")[1]), default=None)


#: What a run imports before it talks to Milvus, and the seed's schema built with pymilvus.
IMPORTS = """
import sys, harness, harness.cli, harness.load.insert, harness.load.user, pymilvus
from harness.load import collection
from harness.scenario import model
collection.schema(model.load("seed"))
print("%d.%d" % sys.version_info[:2], harness.__file__, pymilvus.__version__)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(ROOT)],
                   check=True, timeout=600)
    [built] = out.glob("milvus_harness-*.whl")
    return built


def params() -> list:
    marks = {v: [] if v == NEWEST else [pytest.mark.slow] for v in DECLARED}
    return [pytest.param(v, marks=marks[v], id=f"py{v}") for v in DECLARED]


def test_the_declared_pythons_match_requires_python() -> None:
    assert DECLARED, "pyproject declares no Python version classifiers"
    assert PYPROJECT["project"]["requires-python"] == f">={DECLARED[0]}"
    assert "tomli>=2; python_version < '3.11'" in PYPROJECT["project"]["dependencies"]


@pytest.mark.parametrize("version", params())
def test_wheel_only_install_imports_and_runs_help(version: str, wheel: Path, tmp_path: Path) -> None:
    python = AVAILABLE[version]
    if python is None:
        pytest.skip(f"no CPython {version} on this machine")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                "--disable-pip-version-check", "--only-binary", ":all:", str(wheel)],
                               capture_output=True, text=True, timeout=1800)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # Imported from the venv, not from this checkout: run outside it, with no PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    imported = subprocess.run([str(venv / "bin" / "python"), "-c", IMPORTS], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    python_version, harness_file, pymilvus_version = imported.stdout.split()
    assert python_version == version and harness_file.startswith(str(venv))
    assert re.fullmatch(r"2\.6\.\d+", pymilvus_version)
    helped = subprocess.run([str(venv / "bin" / "milvus-harness"), "--help"], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, env=env)
    assert helped.returncode == 0 and "usage: milvus-harness" in helped.stdout, helped.stderr
    # The insert locustfile ships in the wheel (what `run` starts), and the top-level one, which
    # re-exports it, runs on the installed package: it gets as far as Milvus (none on port 1).
    assert (Path(harness_file).parent / "locustfiles" / "milvus_insert.py").is_file()
    refused = subprocess.run([str(venv / "bin" / "locust"), "-f", str(ROOT / "locustfiles" / "milvus_insert.py"),
                              "--headless", "-u", "1", "-r", "1", "-t", "20s", "--host", "http://127.0.0.1:1",
                              "--scenario", "smoke", "--acks-file", str(tmp_path / "acks.jsonl")],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "cannot reach Milvus at http://127.0.0.1:1" in refused.stderr, refused.stderr
