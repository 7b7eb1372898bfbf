import pytest

from harness.errors import UsageError
from harness.units import format_bytes, parse_bytes, parse_duration


@pytest.mark.parametrize("text,expected", [
    ("2.5GiB", int(2.5 * 2**30)), ("512MiB", 512 * 2**20), ("3GB", 3 * 10**9), ("1073741824", 2**30),
    ("16Gi", 16 * 2**30), ("100 KB", 100_000), ("1kib", 1024),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["0", "abc", "-1GiB", "2.5XB", "", "GiB", "0MiB"])
def test_parse_bytes_refuses(text):
    with pytest.raises(UsageError) as err:
        parse_bytes(text, "--memory-limit")
    assert "--memory-limit" in str(err.value)


def test_durations():
    assert parse_duration("90s") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("250ms") == 0.25
    with pytest.raises(UsageError):
        parse_duration("soon")


def test_format_bytes():
    assert format_bytes(int(2.5 * 2**30)) == "2.50 GiB"
    assert format_bytes(None) == "-"
