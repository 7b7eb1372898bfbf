"""The crash signature extractor on logs captured from real Milvus (tests/fixtures/crash_logs).

2.3.0-load-sigabrt.*: Milvus 2.3.0 (PyPI embedded) aborting while a query node loads a sealed
segment of the seed collection; stderr holds Go's "SIGABRT: abort" traceback (lines 88-240 of
the server's milvus-stderr.log), stdout ends with segcore's EasyAssert line.
"""

from __future__ import annotations

from pathlib import Path

from harness.watch.crash_log import cpp_name, extract, read_tail

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "crash_logs"
STDOUT = (LOGS / "2.3.0-load-sigabrt.stdout.log").read_text()
STDERR = (LOGS / "2.3.0-load-sigabrt.stderr.log").read_text()


def test_the_segcore_assertion_and_the_frames_that_reached_it() -> None:
    signature = extract([STDOUT, STDERR])
    assert signature is not None
    assert (signature.kind, signature.message, signature.where) == ("assertion", "unsupported", "InsertRecord.h:330")
    frames = [f.text() for f in signature.frames]
    # crashing frame first; EasyAssert's own frame and libc/libstdc++ frames are not Milvus frames
    assert frames[:2] == ["segcore InsertRecord (InsertRecord.h:330)",
                          "segcore SegmentSealedImpl (SegmentSealedImpl.cpp:699)"]
    assert "querynodev2/segments (*segmentLoader).Load (segment_loader.go:185)" in frames
    assert not any("EasyAssert" in f or "abort" in f for f in frames)
    assert signature.line() == (
        'assertion "unsupported" in segcore InsertRecord (InsertRecord.h:330), from segcore SegmentSealedImpl '
        "(SegmentSealedImpl.cpp:699) <- querynodev2/segments NewSegment (segment.go:175) <- "
        "querynodev2/segments (*segmentLoader).Load (segment_loader.go:185)")


def test_without_the_assert_line_the_signal_and_its_frames_remain() -> None:
    signature = extract([STDERR])
    assert signature is not None and signature.kind == "signal"
    assert signature.line().startswith("SIGABRT: abort in segcore InsertRecord (InsertRecord.h:330)")


def test_a_log_without_a_crash_gives_nothing() -> None:
    # the etcd lines before the traceback, and the stdout lines before the assertion
    assert extract([STDERR.split("SIGABRT")[0], STDOUT.split("Assert")[0]]) is None


def test_itanium_names_read_as_class_and_method() -> None:
    assert cpp_name("_ZN6milvus7segcore12InsertRecordILb1EEC2ERKNS_6SchemaEl") == "InsertRecord"
    assert cpp_name("_ZN6milvus7segcore17SegmentSealedImplC2ESt10shared_ptrINS_6SchemaEEl") == "SegmentSealedImpl"
    assert cpp_name("_ZN6milvus7segcore19CreateSealedSegmentESt10shared_ptrINS_6SchemaEEl") == "CreateSealedSegment"
    assert cpp_name("NewSegment") == "NewSegment"


def test_only_the_last_process_output_is_read(tmp_path: Path) -> None:
    log = tmp_path / "milvus-stdout.log"
    log.write_text(STDOUT)  # an earlier process asserted ...
    start = log.stat().st_size
    with open(log, "a") as handle:  # ... the restarted one was SIGKILLed and wrote no reason
        handle.write("[INFO] restarted\n")
    assert extract([read_tail(log, start)]) is None
    assert extract([read_tail(log, 0)]) is not None
    assert read_tail(tmp_path / "missing.log") == ""
