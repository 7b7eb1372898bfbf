"""Scenarios: what collection to build and how to load it, frozen and validated.

Built-in scenarios live in harness/scenario/builtin/*.toml; a user's TOML file is loaded the same
way. `--set key=value` overrides any field (rules as `rules.<name>=...`); a bad key or value
is a UsageError naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from harness.errors import UsageError
from harness.units import parse_bytes

BUILTIN_DIR = Path(__file__).parent / "builtin"
#: Milvus caps shards per collection (proxy.maxShardNum) and partitions per collection.
MAX_SHARDS = 16
MAX_PARTITIONS = 4096
MAX_DIM = 32768
INSERT_PATHS = ("numpy", "rows")
#: Milvus roles, as the chart's `component` pod label and the embedded target name them.
MILVUS_ROLES = ("standalone", "proxy", "mixcoord", "rootcoord", "querycoord", "datacoord", "indexcoord",
                "querynode", "datanode", "indexnode", "streamingnode")
ALL_ROLES = "all"


@dataclass(frozen=True)
class Rules:
    """When a run FAILs. Thresholds left at None are not checked."""

    fail_on_oom: bool = True
    fail_on_restart: bool = True
    fail_on_stall: bool = True
    fail_on_lost_rows: bool = True
    #: FAIL when the acked rows could not be verified at all (the server did not flush, index
    #: and load the collection within the verifier's timeout). Off by default: after an OOM
    #: kill that says nothing new. See docs/bisect.md for where versions differ on it.
    fail_on_unverified: bool = False
    max_peak_memory_fraction: float | None = None  # of the limit, e.g. 0.9
    max_insert_p50_ms: float | None = None
    max_insert_p95_ms: float | None = None
    min_rows_per_s: float | None = None
    #: The Milvus roles whose OOM kill, restart or stall FAILs the run; the same of any other
    #: Milvus component makes it INCONCLUSIVE (the cluster failed, not what is tested).
    #: "all" covers every component. The standalone server (the embedded target) hosts every
    #: role, so it is always under test.
    under_test: tuple[str, ...] = (ALL_ROLES,)

    def covers(self, role: str) -> bool:
        """Is a component of this role under test?"""
        return role == "standalone" or ALL_ROLES in self.under_test or role in self.under_test


@dataclass(frozen=True)
class Scenario:
    """One workload: the collection's shape, the batches, the load and the rules."""

    name: str = "seed"
    description: str = ""
    collection: str = "harness_seed"
    shards: int = 16
    partitions: int = 16
    dim: int = 128
    varchar_max_length: int = 256
    with_json: bool = True
    with_arrays: bool = True
    array_capacity: int = 16
    batch_rows: int = 50_000
    total_rows: int = 6_680_000
    #: Concurrent Locust users; None ramps them until the server is saturated (harness.load.ramp).
    users: int | None = None
    insert_path: str = "numpy"
    insert_timeout_s: float = 60.0
    #: Pause of each user between inserts (0: as fast as Milvus takes them); soak runs use it.
    wait_s: float = 0.0
    #: After each restart, pause the load, flush and count rows against the acks (harness.judge.restart_check).
    check_after_restart: bool = True
    #: Used when --memory-limit is not given on the embedded target.
    embedded_memory_limit: str | None = None
    #: The oldest Milvus that can run this scenario (ARRAY fields need 2.3.0; partition keys 2.2.9).
    min_milvus_version: str | None = None
    rules: Rules = field(default_factory=Rules)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def batches(self) -> int:
        """How many batches the planned rows take (the last one may be short)."""
        return -(-self.total_rows // self.batch_rows)

    def batch_size(self, k: int) -> int:
        return min(self.batch_rows, self.total_rows - k * self.batch_rows)

    def oldest_milvus(self) -> str:
        """The oldest server version the scenario's schema needs."""
        needed = "2.3.0" if self.with_arrays else ("2.2.9" if self.partitions > 1 else "2.2.4")
        declared = self.min_milvus_version
        if declared:
            from packaging.version import Version

            return max(declared, needed, key=Version)
        return needed

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Hash of everything that changes what Milvus sees (not the name or description)."""
        data = self.to_json()
        data.pop("name")
        data.pop("description")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, overrides: Mapping[str, str]) -> "Scenario":
        """A copy with `--set key=value` applied; values are parsed by the field's type."""
        top: dict[str, Any] = {}
        rules: dict[str, Any] = {}
        for key, text in overrides.items():
            if key.startswith("rules."):
                name = key.split(".", 1)[1]
                rules[name] = _convert(f"rules.{name}", text, _field_types(Rules), "rule")
            else:
                top[key] = _convert(key, text, _field_types(Scenario), "scenario field")
        if rules:
            top["rules"] = replace(self.rules, **rules)
        return replace(self, **top)


def _field_types(cls: type) -> dict[str, Any]:
    return {f.name: f.type for f in fields(cls) if f.name != "rules"}


def _convert(key: str, value: Any, types: dict[str, Any], what: str) -> Any:
    """Convert a --set string (or a TOML value) to the field's type; refuse what does not fit."""
    name = key.split(".", 1)[-1]
    if name not in types:
        close = difflib.get_close_matches(name, list(types), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown {what} {key!r}{hint} (known: {', '.join(sorted(types))})")
    kind = types[name]
    optional = "None" in kind
    if value is None and optional:
        return None
    if isinstance(value, str) and optional and value.lower() in ("none", "null", ""):
        return None
    try:
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes", "on"):
                return True
            if str(value).lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).replace("_", "")) if isinstance(value, str) else int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
                raise ValueError
            return tuple(i.strip() for i in items)
        if not isinstance(value, str):
            raise ValueError
        return value
    except (ValueError, TypeError):
        allowed = kind.replace(" | None", " or none").replace("tuple[str, ...]", "list of names")
        if kind.startswith("bool"):
            allowed += " (true/false, yes/no, on/off, 1/0)"
        raise UsageError(f"{key}={value!r} is not a valid {allowed}") from None


def _validate(s: Scenario) -> None:
    def bad(key: str, value: Any, allowed: str) -> UsageError:
        return UsageError(f"{key}={value!r} is out of range: {allowed}")

    if not s.name or not s.name.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
        raise bad("name", s.name, "letters, digits, -, _ and . (it names run directories)")
    if s.min_milvus_version is not None:
        from packaging.version import InvalidVersion, Version

        try:
            Version(s.min_milvus_version)
        except InvalidVersion:
            raise bad("min_milvus_version", s.min_milvus_version, "a version such as 2.3.0") from None
    if not s.collection.replace("_", "a").isalnum() or not (s.collection[0].isalpha() or s.collection[0] == "_"):
        raise bad("collection", s.collection, "letters, digits and _, starting with a letter or _")
    if not 1 <= s.shards <= MAX_SHARDS:
        raise bad("shards", s.shards, f"1 to {MAX_SHARDS} (Milvus's proxy.maxShardNum)")
    if not 1 <= s.partitions <= MAX_PARTITIONS:
        raise bad("partitions", s.partitions, f"1 to {MAX_PARTITIONS}")
    if not 2 <= s.dim <= MAX_DIM:
        raise bad("dim", s.dim, f"2 to {MAX_DIM}")
    if not 16 <= s.varchar_max_length <= 65535:
        raise bad("varchar_max_length", s.varchar_max_length, "16 to 65535")
    if not 1 <= s.array_capacity <= 4096:
        raise bad("array_capacity", s.array_capacity, "1 to 4096")
    if s.batch_rows <= 0:
        raise bad("batch_rows", s.batch_rows, "greater than 0")
    if s.total_rows <= 0:
        raise bad("total_rows", s.total_rows, "greater than 0")
    if s.users is not None and not 1 <= s.users <= 256:
        raise bad("users", s.users, "1 to 256, or none to ramp them (the default)")
    if s.insert_path not in INSERT_PATHS:
        raise bad("insert_path", s.insert_path, ", ".join(INSERT_PATHS))
    if not 0 <= s.wait_s <= 3600:
        raise bad("wait_s", s.wait_s, "0 to 3600 seconds")
    if s.insert_timeout_s <= 0:
        raise bad("insert_timeout_s", s.insert_timeout_s, "greater than 0")
    if s.embedded_memory_limit is not None:
        parse_bytes(s.embedded_memory_limit, "embedded_memory_limit")
    r = s.rules
    if r.max_peak_memory_fraction is not None and not 0 < r.max_peak_memory_fraction <= 1:
        raise bad("rules.max_peak_memory_fraction", r.max_peak_memory_fraction, "above 0, at most 1")
    unknown = [role for role in r.under_test if role not in MILVUS_ROLES and role != ALL_ROLES]
    if unknown or not r.under_test or (ALL_ROLES in r.under_test and len(r.under_test) > 1):
        raise UsageError(f"rules.under_test={','.join(r.under_test)!r} is not allowed: {ALL_ROLES}, or "
                         f"Milvus roles separated by commas from {', '.join(MILVUS_ROLES)}")
    for name in ("max_insert_p50_ms", "max_insert_p95_ms", "min_rows_per_s"):
        value = getattr(r, name)
        if value is not None and value <= 0:
            raise bad(f"rules.{name}", value, "greater than 0")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load(name_or_path: str = "seed") -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    if not (name_or_path.endswith(".toml") or path.exists()):
        path = BUILTIN_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise UsageError(f"unknown scenario {name_or_path!r}; built in: {', '.join(builtin_names())}, "
                             "or give the path of a .toml file")
    return load_toml(path)


def load_toml(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"scenario file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"scenario file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"scenario file {path} is not valid TOML: {exc}") from None
    return from_mapping(data, default_name=path.stem)


def from_mapping(data: Mapping[str, Any], default_name: str = "custom") -> Scenario:
    """A Scenario from parsed TOML: every key checked, every value converted or refused."""
    if not isinstance(data, Mapping):
        raise UsageError("a scenario must be a TOML table")
    values: dict[str, Any] = {"name": default_name}
    types = _field_types(Scenario)
    for key, value in data.items():
        if key == "rules":
            if not isinstance(value, Mapping):
                raise UsageError("rules must be a TOML table, e.g. [rules]")
            rule_types = _field_types(Rules)
            values["rules"] = Rules(**{f"{k}": _convert(f"rules.{k}", v, rule_types, "rule")
                                       for k, v in value.items()})
        else:
            values[key] = _convert(str(key), value, types, "scenario field")
    return Scenario(**values)
