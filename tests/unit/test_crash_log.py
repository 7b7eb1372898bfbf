"""The crash signature extractor on logs captured from real Milvus (tests/fixtures/crash_logs).

2.3.0-load-sigabrt.*: Milvus 2.3.0 (PyPI embedded) aborting while a query node loads a sealed
segment of the seed collection; stderr holds Go's "SIGABRT: abort" traceback (lines 88-240 of
the server's milvus-stderr.log), stdout ends with segcore's EasyAssert line.
2.3.5-sigterm-panic.*: Milvus 2.3.5 panicking on SIGTERM during a load (kv.CloseEtcdClient);
tests/fixtures/crash_logs/README.md says how each was made.
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


def test_a_traceback_still_being_written_by_the_group_reaches_the_signature(tmp_path: Path) -> None:
    """The process waited for exits before another member of its group has written the crash
    (under load the rest of a traceback can trail the exit): the signature waits for the group."""
    import os
    import signal
    import subprocess

    from harness.watch.crash_log import signature_after_exit

    out, err = tmp_path / "milvus-stdout.log", tmp_path / "milvus-stderr.log"
    out.write_text("the previous server's output\n")
    err.write_text("panic: an older crash, not this process's\n")
    starts = {out: out.stat().st_size, err: err.stat().st_size}
    # The leader starts the writer and exits at once; the writer waits until the leader is reaped
    # (kill -0 still finds a zombie), then writes what Milvus 2.3.0 wrote when it aborted.
    script = (f'leader=$$; (while kill -0 "$leader" 2>/dev/null; do sleep 0.01; done; sleep 0.2; '
              f'cat "{LOGS / "2.3.0-load-sigabrt.stdout.log"}"; cat "{LOGS / "2.3.0-load-sigabrt.stderr.log"}" >&2) & '
              'exit 2')
    with out.open("ab") as stdout, err.open("ab") as stderr:
        proc = subprocess.Popen(["sh", "-c", script], stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        assert proc.wait(timeout=30) == 2
        signature = signature_after_exit(proc, starts)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert signature is not None and signature.line() == extract([STDOUT, STDERR]).line()
    assert len(signature.frames) >= 3


PANIC_STDOUT = (LOGS / "2.3.5-sigterm-panic.stdout.log").read_text()
PANIC_STDERR = (LOGS / "2.3.5-sigterm-panic.stderr.log").read_text()


def test_a_real_go_panic_names_its_message_and_first_milvus_frames() -> None:
    signature = extract([PANIC_STDOUT, PANIC_STDERR])
    assert signature is not None
    # Go's "panic:" header, not the SIGABRT that GOTRACEBACK=crash raises after it.
    assert (signature.kind, signature.message, signature.where) == ("panic", "context canceled", "")
    assert [f.text() for f in signature.frames] == [
        "util/dependency/kv CloseEtcdClient (kv_client_handler.go:38)",
        "cmd/roles (*MilvusRoles).Run (roles.go:421)",
        "cmd/milvus (*run).execute (run.go:46)",
        "cmd/milvus RunMilvus (milvus.go:60)"]
    assert signature.line() == ("panic: context canceled in util/dependency/kv CloseEtcdClient (kv_client_handler.go:38)"
                                " <- cmd/roles (*MilvusRoles).Run (roles.go:421) <- cmd/milvus (*run).execute (run.go:46)")
    # The frames are the panicking goroutine's (goroutine 1), not those of the 42 dumped after it.
    assert PANIC_STDERR.count("\ngoroutine ") > 40
