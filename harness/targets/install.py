"""One cached install of the PyPI `milvus` server per version, made once and reused.

Like an asv environment: named after its version, created idempotently under a lock, and
only used once its marker file says it is complete. The install holds the package files
and the server binaries the package ships compressed, unpacked once here rather than into
every run's data dir.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from packaging.version import InvalidVersion, Version

from harness.errors import TargetError, UsageError
from harness.procs import run_command
from harness.rundir import write_text

log = logging.getLogger(__name__)

PACKAGE = "milvus"
#: The embedded server exists on PyPI from 2.2.4 on (2.1.0 has another layout).
OLDEST = Version("2.2.4")
#: The oldest embedded server the harness runs: every published version from here to 2.3.5
#: created, loaded, verified and judged a run with the harness's pymilvus 2.6
#: (tests/slow/test_versions_real.py); older ones were not tested and are refused.
OLDEST_SUPPORTED = Version("2.2.9")
_VERSION_LIST_TTL = 24 * 3600


def cache_dir() -> Path:
    """Root of the install cache: $MILVUS_HARNESS_CACHE, else the user's cache dir."""
    env = os.environ.get("MILVUS_HARNESS_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("milvus-harness"))


@dataclass(frozen=True)
class Install:
    """A complete install of one server version."""

    version: str
    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "milvus"

    @property
    def lib_dir(self) -> Path:
        return self.root / "bin"

    @property
    def package_dir(self) -> Path:
        return self.root / "site" / PACKAGE

    @property
    def config_template(self) -> Path:
        return self.package_dir / "data" / "config.yaml.template"

    @property
    def glog_conf(self) -> Path:
        return self.package_dir / "data" / "glog.conf"

    @property
    def marker(self) -> Path:
        return self.root / "install.json"

    def complete(self) -> bool:
        return self.marker.exists() and self.binary.exists()


def _sort_key(version: str) -> Version:
    return Version(version)


def check_supported(version: str) -> None:
    """Refuse (exit 2) an embedded version older than OLDEST_SUPPORTED, in one line."""
    try:
        too_old = Version(version) < OLDEST_SUPPORTED
    except InvalidVersion:
        return  # not a version: the published-list check names it
    if too_old:
        raise UsageError(f"milvus {version} is not supported: the oldest embedded Milvus the harness runs "
                         f"is {OLDEST_SUPPORTED} (older servers were not tested with its pymilvus client)")


def published_versions(refresh: bool = False) -> list[str]:
    """Installable `milvus` versions the harness supports, oldest first (asked of the package
    index, cached a day)."""
    return [v for v in _published(refresh) if Version(v) >= OLDEST_SUPPORTED]


def _published(refresh: bool) -> list[str]:
    """Every `milvus` version on the package index from OLDEST on, oldest first."""
    cached = cache_dir() / "versions.json"
    if not refresh and cached.exists() and time.time() - cached.stat().st_mtime < _VERSION_LIST_TTL:
        return json.loads(cached.read_text())["versions"]
    try:
        result = run_command(
            [sys.executable, "-m", "pip", "index", "versions", PACKAGE, "--disable-pip-version-check"],
            what="list published milvus versions", timeout=120,
        )
    except TargetError:
        if cached.exists():  # offline: the last list we saw is better than nothing
            log.warning("package index not reachable; using the cached version list")
            return json.loads(cached.read_text())["versions"]
        raise
    versions: list[str] = []
    for line in result.stdout.splitlines():
        if line.startswith("Available versions:"):
            versions = [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    keep = []
    for text in versions:
        try:
            if Version(text) >= OLDEST:
                keep.append(text)
        except InvalidVersion:
            continue
    if not keep:
        raise TargetError("the package index lists no milvus server versions")
    keep.sort(key=_sort_key)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_text(cached, json.dumps({"versions": keep}))
    return keep


def installed_versions() -> list[str]:
    root = cache_dir() / "milvus"
    found = [p.name for p in root.glob("*") if p.is_dir() and Install(p.name, p).complete()]
    return sorted(found, key=_sort_key)


def resolve_version(requested: str | None) -> str:
    """The version to use: the requested one if published, else the newest; bad input is exit 2."""
    if requested is not None:
        check_supported(requested)
        installed = installed_versions()
        if requested in installed:
            return requested  # no index round-trip for what is already here
    versions = published_versions()
    if requested is None:
        return versions[-1]
    if requested not in versions:
        raise UsageError(
            f"milvus version {requested!r} is not published; published: {', '.join(versions)}"
        )
    return requested


def ensure_installed(version: str) -> Install:
    """Install `milvus==version` into the cache once; later calls return the same install."""
    install = Install(version, cache_dir() / "milvus" / version)
    if install.complete():
        return install
    install.root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = install.root.parent / f".{version}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel bisect prefetch may be installing it
        if install.complete():
            return install
        shutil.rmtree(install.root, ignore_errors=True)
        install.root.mkdir(parents=True)
        try:
            run_command(
                [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
                 "--target", str(install.root / "site"), f"{PACKAGE}=={version}"],
                what=f"install milvus {version}", timeout=900,
            )
            # The package ships its binaries xz-compressed; let its own code unpack them, once.
            run_command(
                [sys.executable, "-c",
                 "import sys; sys.path.insert(0, sys.argv[1]); import milvus; "
                 "milvus._initialize_data_files(sys.argv[2])",
                 str(install.root / "site"), str(install.root)],
                what=f"unpack milvus {version} binaries", timeout=900,
            )
        except BaseException:
            shutil.rmtree(install.root, ignore_errors=True)
            raise
        install.marker.write_text(json.dumps({"version": version, "installed": time.time()}))
    return install
