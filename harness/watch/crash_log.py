"""Crash signatures: why a Milvus process died, read from the end of its log.

When a component dies on a signal or exits non-zero, its log holds the reason: a Go
`panic:` or `fatal error:` with the goroutine's frames, or, for a SIGABRT from C++ segcore,
Go's "SIGABRT: abort" traceback (whose first goroutine runs through the C++ frames) and
Milvus's EasyAssert line `Assert "<expr>" at <file>:<line>` (written to stdout). The
signature names the assertion or panic and the first Milvus frames, in one line for a reason:
    assertion "unsupported" in segcore InsertRecord (InsertRecord.h:330), from segcore
    SegmentSealedImpl (SegmentSealedImpl.cpp:699) <- querynodev2/segments NewSegment (segment.go:175)
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.procs import wait_group_gone

#: How much of the end of each log is searched: a goroutine dump follows the header, so the
#: header is this far from the end at most when the dump is smaller.
TAIL_BYTES = 16 * 2**20
#: How long a crash reader waits for the dead process's group to be gone before it reads.
SETTLE_TIMEOUT = 5.0
#: Frames kept after the header of the crashing goroutine.
MAX_FRAMES = 40
MILVUS_GO = "github.com/milvus-io/milvus/"
_CPP_SRC = "/internal/core/src/"

_SIGNAL = re.compile(r"^(SIG[A-Z]+): (.+)$")
_PANIC = re.compile(r"^panic: (.+?)(?: \[recovered\])?$")
_FATAL = re.compile(r"^fatal error: (.+)$")
_GOROUTINE = re.compile(r"^goroutine \d+ \[")
_ASSERT = re.compile(r'Assert "(?P<expr>.*)" at (?P<path>\S+):(?P<line>\d+)')
_EXTRA = re.compile(r"^\s*=> (.+)$")
_TERMINATE = re.compile(r"terminate called after throwing an instance of '([^']+)'")
_WHAT = re.compile(r"^\s*what\(\):\s*(.+)$")
_LOCATION = re.compile(r"^\t(\S+?):(\d+)")


@dataclass(frozen=True)
class Frame:
    """One stack frame: a short function name, the package or C++ module, and file:line."""

    function: str
    module: str
    where: str

    def text(self) -> str:
        return f"{self.module} {self.function} ({self.where})".strip()


@dataclass(frozen=True)
class CrashSignature:
    """What a crashed process's log says: kind ("assertion", "panic", "fatal error",
    "exception" or "signal"), its message, and the first Milvus frames, crashing one first."""

    kind: str
    message: str
    frames: tuple[Frame, ...] = field(default_factory=tuple)
    where: str = ""

    def line(self) -> str:
        """One line for a verdict reason: the message, where, and up to two callers."""
        head = {"assertion": f'assertion "{self.message}"', "panic": f"panic: {self.message}",
                "fatal error": f"fatal error: {self.message}", "exception": f"uncaught {self.message}",
                "signal": self.message}[self.kind]
        frames = list(self.frames)
        if frames and self.where and frames[0].where == self.where:  # the frame that asserted
            head += f" in {frames.pop(0).text()}"
        elif self.where:
            head += f" at {self.where}"
        if frames:
            head += (", from " if self.where else " in ") + " <- ".join(f.text() for f in _callers(frames))
        return head

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "where": self.where,
                "frames": [f.text() for f in self.frames[:8]], "line": self.line()}


def _callers(frames: list[Frame]) -> list[Frame]:
    """The next frame, and the first two Go frames above it that say what the server was
    doing (cgo stubs and closures skipped): where C++ was called from."""
    go = [f for f in frames[1:] if f.where.split(":")[0].endswith(".go") and not f.where.startswith("_cgo_")
          and not f.function.startswith("_Cfunc_") and not re.search(r"\.func\d+$", f.function)]
    return frames[:1] + go[:2]


def read_tail(path: Path, start: int = 0, limit: int = TAIL_BYTES) -> str:
    """The text of `path` from byte `start` (where this process's output began), at most its
    last `limit` bytes; "" when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(start, size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def signature_after_exit(proc: subprocess.Popen[bytes] | None, log_starts: Mapping[Path, int],
                         timeout: float = SETTLE_TIMEOUT) -> CrashSignature | None:
    """The crash signature of a dead process from its logs (path -> where its output began),
    read once it is reaped and no process of its group (it leads one) is left, each wait
    bounded by `timeout`. Read any earlier and a traceback that another member of the group
    is still writing (the process waited for need not be the one that crashed) loses its frames."""
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # still running: read what is there
            pass
        wait_group_gone(proc.pid, timeout)
    return extract(read_tail(path, start) for path, start in log_starts.items())


def extract(texts: Iterable[str]) -> CrashSignature | None:
    """The crash signature in a dead process's log texts (stdout and stderr, any order);
    None when they hold no panic, fatal error, assertion or signal traceback."""
    lines = [line for text in texts for line in text.splitlines()]
    assertion = _last_assertion(lines)
    header, frames = _traceback(lines)
    milvus = [f for f in frames if f.module and not f.module.startswith("exceptions")]
    if assertion is not None:
        message, where = assertion
        return CrashSignature("assertion", message, tuple(milvus[:MAX_FRAMES]), where)
    exception = _exception(lines)
    if exception is not None:
        return CrashSignature("exception", exception, tuple(milvus[:MAX_FRAMES]))
    if header is not None:
        return CrashSignature(header[0], header[1], tuple(milvus[:MAX_FRAMES]))
    return None


def _last_assertion(lines: list[str]) -> tuple[str, str] | None:
    for i in range(len(lines) - 1, -1, -1):
        match = _ASSERT.search(lines[i])
        if match:
            message = match.group("expr")
            extra = _EXTRA.match(lines[i + 1]) if i + 1 < len(lines) else None
            if extra:
                message += f" => {extra.group(1).strip()}"
            return message, f"{Path(match.group('path')).name}:{match.group('line')}"
    return None


def _exception(lines: list[str]) -> str | None:
    for i, line in enumerate(lines):
        match = _TERMINATE.search(line)
        if match:
            what = next((w.group(1) for w in map(_WHAT.match, lines[i + 1:i + 3]) if w), "")
            return f"{match.group(1)}" + (f": {what}" if what else "")
    return None


def _traceback(lines: list[str]) -> tuple[tuple[str, str] | None, list[Frame]]:
    """The first panic / fatal error / signal header and the frames of the goroutine after it."""
    for i, line in enumerate(lines):
        for kind, pattern in (("panic", _PANIC), ("fatal error", _FATAL), ("signal", _SIGNAL)):
            match = pattern.match(line)
            if match:
                message = match.group(1) if kind != "signal" else f"{match.group(1)}: {match.group(2)}"
                return (kind, message), _frames(lines[i + 1:])
    return None, []


def _frames(lines: list[str]) -> list[Frame]:
    """Milvus frames of the first goroutine in `lines` (function line, then a tab and file:line)."""
    start = next((i for i, line in enumerate(lines[:20]) if _GOROUTINE.match(line)), None)
    if start is None:
        return []
    frames: list[Frame] = []
    body = lines[start + 1:]
    for name, location in zip(body, body[1:]):
        if not name or _GOROUTINE.match(name):
            break
        where = _LOCATION.match(location)
        if name.startswith("\t") or where is None:
            continue
        frame = _frame(name.strip(), where.group(1), where.group(2))
        if frame is not None:
            frames.append(frame)
        if len(frames) >= MAX_FRAMES:
            break
    return frames


def _frame(function: str, path: str, line: str) -> Frame | None:
    """A Milvus frame (Go under github.com/milvus-io/milvus, C++ under internal/core/src), else None."""
    where = f"{Path(path).name}:{line}"
    if _CPP_SRC in path:
        module = path.split(_CPP_SRC, 1)[1].rsplit("/", 1)[0]
        return Frame(cpp_name(function), module, where)
    if function.startswith(MILVUS_GO):
        name = re.sub(r"\(0x[^)]*\)$|\(\{.*\)$|\(\.\.\.\)$|\([^()]*\)$", "", function[len(MILVUS_GO):])
        name = name.removeprefix("internal/").removeprefix("pkg/")
        package, _, short = name.rpartition("/")
        head, dot, rest = short.partition(".")
        return Frame(rest if dot else short, f"{package}/{head}".strip("/") if dot else package, where)
    return None


def cpp_name(mangled: str) -> str:
    """`Class::method` (or `Class` for a constructor) of an Itanium-mangled nested name;
    the name as given when it is not one (`NewSegment`, a C function)."""
    if not mangled.startswith("_ZN"):
        return mangled
    names: list[str] = []
    i, s = 3, mangled
    while i < len(s) and s[i] != "E":
        if s[i].isdigit():
            j = i
            while j < len(s) and s[j].isdigit():
                j += 1
            size = int(s[i:j])
            names.append(s[j:j + size])
            i = j + size
        elif s[i] == "I":  # template arguments: skip to the matching E
            depth, i = 1, i + 1
            while i < len(s) and depth:
                depth += {"I": 1, "E": -1}.get(s[i], 0)
                i += 1
        elif s[i] in "CD" and i + 1 < len(s) and s[i + 1].isdigit():  # constructor / destructor
            return ("~" if s[i] == "D" else "") + (names[-1] if names else "?")
        else:
            i += 1
    kept = [n for n in names if n not in ("milvus", "impl", "segcore", "query", "exec")]
    return "::".join(kept[-2:]) if kept else mangled
