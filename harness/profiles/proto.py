"""A decoder for the few messages of pprof's profile.proto that a Go heap profile needs.

Go's /debug/pprof/heap answers a gzipped `perftools.profiles.Profile` (github.com/google/pprof,
proto/profile.proto). Hand-written on purpose: the wire format is five varint/length rules,
and a generated module would pin a protobuf runtime version for four messages. Field numbers
are those of profile.proto: Profile{1 sample_type, 2 sample, 4 location, 5 function,
6 string_table, 9 time_nanos}, ValueType{1 type, 2 unit}, Sample{1 location_id, 2 value},
Location{1 id, 4 line}, Line{1 function_id}, Function{1 id, 2 name}.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Iterator

#: The sample type whose values are the bytes in use at the last GC (Go's heap profile).
INUSE_SPACE = "inuse_space"


class ProfileError(ValueError):
    """The bytes are not a (gzipped) profile.proto."""


@dataclass(frozen=True)
class HeapSample:
    """One stack and its values, in the order of `Profile.sample_types`; `stack` leaf first."""

    stack: tuple[str, ...]
    values: tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """The decoded parts of a profile: sample types (type, unit), samples and capture time."""

    sample_types: tuple[tuple[str, str], ...]
    samples: tuple[HeapSample, ...]
    time_nanos: int

    def index(self, sample_type: str = INUSE_SPACE) -> int:
        """Position of `sample_type` in each sample's values."""
        for i, (name, _) in enumerate(self.sample_types):
            if name == sample_type:
                return i
        raise ProfileError(f"no {sample_type} in this profile (it has {[t for t, _ in self.sample_types]})")

    def total(self, sample_type: str = INUSE_SPACE) -> int:
        """The sum of `sample_type` over all samples (the profile's in-use bytes for inuse_space)."""
        i = self.index(sample_type)
        return sum(s.values[i] for s in self.samples)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProfileError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProfileError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, int for varints / bytes for length-delimited) of one message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ProfileError("truncated field")
            yield number, buf[pos:pos + size]
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProfileError(f"unsupported wire type {wire}")


def _ints(value: int | bytes) -> list[int]:
    """A repeated integer field: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def _signed(v: int) -> int:
    """int64 fields arrive as two's complement varints."""
    return v - (1 << 64) if v >= 1 << 63 else v


def decode(data: bytes) -> Profile:
    """Decode a profile.proto, gzipped (as Go serves it) or not."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ProfileError(f"not a gzipped profile: {exc}") from None
    strings: list[str] = []
    sample_types: list[tuple[int, int]] = []
    raw_samples: list[tuple[list[int], list[int]]] = []
    locations: dict[int, list[int]] = {}  # location id -> function ids, leaf (innermost inline) first
    functions: dict[int, int] = {}  # function id -> name string index
    time_nanos = 0
    for number, value in _fields(data):
        if number == 6 and isinstance(value, bytes):
            strings.append(value.decode("utf-8", "replace"))
        elif number == 1 and isinstance(value, bytes):
            vt = dict(_fields(value))
            sample_types.append((int(vt.get(1, 0)), int(vt.get(2, 0))))
        elif number == 2 and isinstance(value, bytes):
            ids: list[int] = []
            values: list[int] = []
            for n, v in _fields(value):
                if n == 1:
                    ids.extend(_ints(v))
                elif n == 2:
                    values.extend(_signed(x) for x in _ints(v))
            raw_samples.append((ids, values))
        elif number == 4 and isinstance(value, bytes):
            loc_id, funcs = 0, []
            for n, v in _fields(value):
                if n == 1 and isinstance(v, int):
                    loc_id = v
                elif n == 4 and isinstance(v, bytes):
                    line = dict(_fields(v))
                    funcs.append(int(line.get(1, 0)))
            locations[loc_id] = funcs
        elif number == 5 and isinstance(value, bytes):
            fn = dict(_fields(value))
            functions[int(fn.get(1, 0))] = int(fn.get(2, 0))
        elif number == 9 and isinstance(value, int):
            time_nanos = value
    if not strings:
        raise ProfileError("no string table: not a profile.proto")

    def name(index: int) -> str:
        return strings[index] if 0 <= index < len(strings) else "?"

    def frames(loc_ids: list[int]) -> tuple[str, ...]:
        out: list[str] = []
        for loc in loc_ids:
            funcs = locations.get(loc) or []
            # profile.proto: lines[0] is the innermost inlined function, the leaf-most frame.
            out.extend(name(functions.get(f, 0)) for f in funcs)
            if not funcs:
                out.append(f"?loc{loc}")
        return tuple(out)

    return Profile(sample_types=tuple((name(t), name(u)) for t, u in sample_types),
                   samples=tuple(HeapSample(frames(ids), tuple(vals)) for ids, vals in raw_samples),
                   time_nanos=time_nanos)
