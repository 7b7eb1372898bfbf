"""Byte sizes and durations as users write them."""

from __future__ import annotations

import re

from harness.errors import UsageError

_BYTE_UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
    # Kubernetes spellings, so a pod limit can be pasted as it is.
    "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def parse_bytes(text: str | int, what: str = "size") -> int:
    """Parse '2.5GiB', '512MiB', '3GB', '1073741824' into bytes; a bad value is a UsageError."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).upper() if match else ""
        if not match or unit not in _BYTE_UNITS:
            raise UsageError(
                f"{what} {text!r} is not a size; use a number with KiB/MiB/GiB/KB/MB/GB or bytes, e.g. 2.5GiB"
            )
        value = int(float(match.group(1)) * _BYTE_UNITS[unit])
    if value <= 0:
        raise UsageError(f"{what} {text!r} must be greater than zero, e.g. 2.5GiB")
    return value


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Parse '90s', '5m', '1.5h', '250ms' or plain seconds into seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise UsageError(f"{what} {text!r} is not a duration; use e.g. 30s, 5m, 1h or 250ms")
        value = float(match.group(1)) * _SECONDS[match.group(2)]
    if value <= 0:
        raise UsageError(f"{what} {text!r} must be greater than zero")
    return value


def format_bytes(value: float | None) -> str:
    """2684354560 -> '2.50 GiB'."""
    if value is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{int(value)} B"
