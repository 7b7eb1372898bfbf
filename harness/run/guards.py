"""What `run` and `ui` check before load starts, and which events their stop rules look at.

Before a target starts: a kube context that is not a kind cluster is refused (unless allowed
by name). Before load starts: an embedded Milvus older than the scenario needs is refused.
While loading: the stop rules see only the events collected here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import TargetError
from harness.watch import events
from harness.watch.events import Event, RunEvents

if TYPE_CHECKING:
    from harness.scenario.model import Scenario
    from harness.targets.protocol import TargetOptions

#: The events a stop rule acts on: the server was killed, stalled or exited.
STOP_EVENT_TYPES = (events.OOM_KILLED, events.MEMORY_STALL, events.EXITED)


def check_kube_context(options: TargetOptions) -> None:
    """Refuse a production kube context before anything starts (kind and external targets)."""
    if options.target != "embedded":
        from harness.kube.contexts import check_context

        check_context(options)


#: Servers newer than 2.3.0 that still refuse ARRAY fields at create (2.3.1 answers "array data
#: type not supported yet"; measured with every embedded version from 2.2.9 to 2.3.5).
ARRAYS_REFUSED_BY = frozenset({"2.3.1"})


def check_milvus_version(target: str, scenario: Scenario, version: str | None) -> None:
    """Refuse an embedded Milvus too old for the scenario's fields (a TargetError, exit 125)."""
    if target != "embedded" or not version:
        return
    from packaging.version import Version

    needed = scenario.oldest_milvus()
    if Version(version) < Version(needed):
        raise TargetError(f"milvus {version} cannot run scenario {scenario.name!r}: it needs {needed} "
                          "or newer (ARRAY fields need 2.3.0, partition keys 2.2.9)")
    if scenario.with_arrays and version in ARRAYS_REFUSED_BY:
        raise TargetError(f"milvus {version} cannot run scenario {scenario.name!r}: it refuses ARRAY fields when "
                          "the collection is created; use --set with_arrays=false or another version")


def collect_stop_events(context: RunEvents) -> list[Event]:
    """A list that fills with the stop events fired on `context` from now on."""
    found: list[Event] = []
    context.on_event(lambda e: found.append(e) if e.type in STOP_EVENT_TYPES else None)
    return found
