"""--milvus-config overrides: dotted milvus.yaml keys with YAML scalar values.

The embedded target writes them into its milvus.yaml; the kind target passes them to the
chart as extraConfigFiles."user.yaml" (nested YAML the chart merges into milvus.yaml).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from harness.errors import UsageError


def parse_config_overrides(pairs: dict[str, str]) -> dict[str, Any]:
    """--milvus-config values as YAML scalars ('0.1' -> 0.1, 'true' -> True)."""
    parsed = {}
    for key, text in pairs.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", key):
            raise UsageError(f"--milvus-config key {key!r} is not a dotted milvus.yaml key, "
                             "e.g. dataNode.memory.forceSyncWatermark=0.1")
        parsed[key] = yaml.safe_load(text) if text else ""
    return parsed


def nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys as the nested mapping milvus.yaml uses."""
    root: dict[str, Any] = {}
    for dotted, value in overrides.items():
        node = root
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return root
