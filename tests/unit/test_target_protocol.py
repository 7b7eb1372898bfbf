"""make_target's answer is a Target, and callers need nothing beyond what the protocol declares."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.run.lifecycle import make_target
from harness.targets.embedded import EmbeddedTarget
from harness.targets.external import ExternalTarget
from harness.targets.kind import KindTarget
from harness.targets.protocol import Target, TargetOptions


@pytest.mark.parametrize("cls", [EmbeddedTarget, KindTarget, ExternalTarget])
def test_every_target_is_a_target(cls):
    assert Target in cls.__mro__  # explicitly: the defaults of the protocol are its own


def test_an_external_target_has_the_protocols_defaults():
    target = make_target(TargetOptions(target="external", uri="http://127.0.0.1:19530"), log_dir=None)
    assert isinstance(target, ExternalTarget) and isinstance(target, Target)
    assert target.version is None and target.log_dir is None  # unknown before start; no server logs kept
    assert target.prepare_verification() is True  # nothing to lift before the rows are counted


def test_an_unknown_target_is_bad_input():
    with pytest.raises(UsageError, match="allowed are embedded, kind, external"):
        make_target(TargetOptions(target="docker"), log_dir=None)


class _HalfStarts(Target):
    """Makes something, then fails, like a server that never answers."""

    kind = "test"

    def __init__(self) -> None:
        self.made = False

    def bring_up(self, context):
        self.made = True
        raise TimeoutError("did not answer")

    def stop(self) -> None:
        self.made = False


def test_a_failed_start_stops_what_it_made_and_raises():
    target = _HalfStarts()
    with pytest.raises(TimeoutError):
        target.start(context=None)
    assert target.made is False


def test_leaving_the_with_block_stops_the_target():
    with _HalfStarts() as target:
        target.made = True
    assert target.made is False
