"""Byte sizes and durations as users write them: one parser each, used by every command.

Sizes are Kubernetes quantities (what a pod limit says: `2Gi`, `2G`, `512Mi`, `1e9`), plus the
byte-suffixed spellings people also write (`2.5GiB`, `3GB`). Durations are Locust's timespans
(`90s`, `5m`, `1h30m`, `20`), plus one number with a unit for what Locust cannot say (`250ms`,
`1.5h`).
"""

from __future__ import annotations

import decimal
import re

from harness.errors import UsageError

#: What `--help` says a size may be.
SIZE_HELP = ("a Kubernetes quantity (2Gi = 2 x 1024^3 bytes, 2G = 2 x 1000^3, 512Mi, 1e9) "
             "or with a B (2.5GiB, 3GB)")
#: What `--help` says a duration may be.
DURATION_HELP = "a Locust timespan (90s, 5m, 1h30m; a plain number is seconds) or 250ms, 1.5h"

# Byte-suffixed spellings map onto the Kubernetes suffix of the same value: GiB -> Gi, GB -> G.
_B_SUFFIX = re.compile(r"^(.*?[0-9.])\s*([KMGTPE]i?)B$", re.IGNORECASE)
# Locust's timespan grammar (locust.util.timespan). Not imported from there: importing locust
# monkey-patches the importing process with gevent, and only Locust's own processes may be.
_TIMESPAN = re.compile(r"^(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?$")
_DECIMAL_UNIT = re.compile(r"^([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def _quantity(text: str) -> decimal.Decimal:
    """A Kubernetes quantity in bytes (kubernetes.utils.parse_quantity, the client's own parser)."""
    from kubernetes.utils import parse_quantity

    text = text.strip().replace(" ", "")
    match = _B_SUFFIX.match(text)
    if match:
        number, unit = match.groups()
        # Kubernetes spells kilo as a lower-case k and kibi as Ki.
        unit = "k" if unit.upper() == "K" else unit[0].upper() + unit[1:].lower()
        text = number + unit
    elif text[-1:] in ("B", "b") and text[:-1][-1:].isdigit():
        text = text[:-1]  # plain bytes: 512B
    return decimal.Decimal(parse_quantity(text))


def parse_bytes(text: str | int, what: str = "size") -> int:
    """Parse '2Gi', '2G', '2.5GiB', '512MiB', '1073741824' into bytes; a bad value is a UsageError."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        try:
            value = int(_quantity(str(text)))
        except (ValueError, TypeError, decimal.InvalidOperation):
            raise UsageError(f"{what} {text!r} is not a size; use {SIZE_HELP}") from None
    if value <= 0:
        raise UsageError(f"{what} {text!r} must be greater than zero, e.g. 2Gi")
    return value


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Parse '90s', '5m', '1h30m', '250ms', '1.5h' or plain seconds into seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        spec = str(text).strip()
        timespan = _TIMESPAN.match(spec)
        if timespan and spec:
            value = float(int(timespan["h"] or 0) * 3600 + int(timespan["m"] or 0) * 60 + int(timespan["s"] or 0))
        else:
            match = _DECIMAL_UNIT.match(spec)
            if not match:
                raise UsageError(f"{what} {text!r} is not a duration; use {DURATION_HELP}")
            value = float(match.group(1)) * _SECONDS[match.group(2) or "s"]
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


def plural(n: int, word: str) -> str:
    """"1 shard", "16 shards", "1,000 rows"."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"
