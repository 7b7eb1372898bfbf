import json
import subprocess
import sys

import pytest

from harness.errors import UsageError
from harness.units import format_bytes, parse_bytes, parse_duration


@pytest.mark.parametrize("text,expected", [
    ("2.5GiB", int(2.5 * 2**30)), ("512MiB", 512 * 2**20), ("3GB", 3 * 10**9), ("1073741824", 2**30),
    ("16Gi", 16 * 2**30), ("100 KB", 100_000), ("1kib", 1024),
    # Kubernetes quantities, as a pod limit says them
    ("2G", 2 * 10**9), ("2Gi", 2 * 2**30), ("2.5Gi", int(2.5 * 2**30)), ("500M", 500 * 10**6), ("1e9", 10**9),
    ("128k", 128_000), ("512B", 512),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["0", "abc", "-1GiB", "2.5XB", "", "GiB", "0MiB", "2g", "500m", "2GG"])
def test_parse_bytes_refuses(text):
    with pytest.raises(UsageError) as err:
        parse_bytes(text, "--memory-limit")
    assert "--memory-limit" in str(err.value)


def test_parse_bytes_agrees_with_the_kubernetes_client():
    from kubernetes.utils import parse_quantity

    for text in ("2G", "2Gi", "512Mi", "1e9", "1.5Gi", "3T", "128k", "7Ei"):
        assert parse_bytes(text) == int(parse_quantity(text)), text


def test_durations():
    assert parse_duration("90s") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1.5h") == 5400
    for bad in ("soon", "1h 30m", "-5s", "1.5h30m", ""):
        with pytest.raises(UsageError, match="not a duration"):
            parse_duration(bad, "--run-time")


def test_durations_agree_with_locust():
    """Locust's own parser, run in a child: importing locust here would gevent-patch pytest."""
    spans = ["20", "20s", "3m", "2h", "1h20m", "3h30m10s", "90s", "1h30m", "45m15s"]
    code = ("import json, sys; from locust.util.timespan import parse_timespan; "
            "print(json.dumps([parse_timespan(s) for s in json.loads(sys.argv[1])]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(spans)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert [parse_duration(s) for s in spans] == json.loads(out.strip().splitlines()[-1])


def test_format_bytes():
    assert format_bytes(int(2.5 * 2**30)) == "2.50 GiB"
    assert format_bytes(None) == "-"
