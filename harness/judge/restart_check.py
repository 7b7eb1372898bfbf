"""Row checks after every restart, while the load is still running.

When the target answers again after a death (OOM kill, exit, injected kill), the harness
pauses the load (no insert in flight), flushes, and compares the rows the server counts with
the rows acked so far. Fewer rows than acked is a loss, known right after the death that
caused it rather than at the end; the final verification then narrows it down per batch.

The count is the collection's row count (no index, no load, so the check does not change
what it measures beyond one flush). It is a lower bound on the loss: an insert that failed
but was applied adds rows the acks do not know about, and Milvus's row count does not drop for
deleted rows (only the end check's count(*) sees those). Turn it off with
`--set check_after_restart=false` when the flush must not happen (a crash loop reproduced as is).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from harness.load.dispenser import LoadPause
from harness.milvus_client import Address, MilvusAdmin
from harness.judge.summary import death_ref, describe_death
from harness.watch import events
from harness.watch.events import Event, RunEvents

log = logging.getLogger(__name__)

#: Deaths after which rows are checked.
DEATHS = (events.OOM_KILLED, events.EXITED)
#: How long to wait for inserts in flight to settle (an insert's own timeout bounds it).
IDLE_TIMEOUT_S = 180.0
FLUSH_TIMEOUT_S = 180.0


class RestartCheck:
    """Listens for a Ready that follows a death and runs one check per restart on its own thread."""

    def __init__(self, context: RunEvents, address: Address, collection: str, pause: LoadPause,
                 acked_rows: Callable[[], int], load_running: Callable[[], bool]) -> None:
        self.context = context
        self.address = address
        self.collection = collection
        self.pause = pause
        self.acked_rows = acked_rows
        self.load_running = load_running
        self._death: Event | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        context.on_event(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.component == "harness" or self._stopped.is_set():
            return
        if event.type in DEATHS:
            self._death = event
        elif event.type == events.READY and self._death is not None:
            death, self._death = self._death, None
            thread = threading.Thread(target=self._check, args=(death,), name="restart-check", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, wait: bool = True) -> None:
        """No new checks; with `wait`, let one in progress finish. The load is never left paused."""
        self._stopped.set()
        if wait:
            for thread in self._threads:
                thread.join(timeout=FLUSH_TIMEOUT_S + 30)
        self.pause.release()

    def _check(self, death: Event) -> None:
        began = time.time()
        after = f"{describe_death(death_ref(death.to_json()))} at {time.strftime('%H:%M:%S', time.localtime(death.t))}"
        try:
            self.pause.request()
            if not self.pause.wait_idle(IDLE_TIMEOUT_S,
                                        alive=lambda: self.load_running() and not self._stopped.is_set()):
                if self.load_running() and not self._stopped.is_set():
                    self._fire(began, death, f"not checked after the {after}: the load did not pause")
                return  # the load is over: the end check covers these rows
            held_from = time.time()  # from here no insert is in flight until release
            acked = self.acked_rows()
            with MilvusAdmin(self.address, timeout=30) as admin:
                admin.flush(self.collection, timeout=FLUSH_TIMEOUT_S)
                present = admin.row_count(self.collection)
        except Exception as exc:  # the server died again, or would not flush: the end check decides
            log.warning("row check after restart failed: %s", exc)
            self._fire(began, death, f"not checked after the {after}: {str(exc)[:160]}")
            return
        finally:
            released_at = time.time()
            self.pause.release()
        held_s = released_at - held_from
        missing = max(0, acked - present)
        detail = (f"at least {missing:,} of {acked:,} acked rows missing after the {after}" if missing
                  else f"{present:,} rows present of {acked:,} acked, after the {after}")
        self._fire(began, death, detail, acked=acked, present=present, missing=missing, held_s=round(held_s, 2))

    def _fire(self, began: float, death: Event, detail: str, **figures: Any) -> None:
        """`paused_s`: from asking for the pause to resuming; `held_s`: the part with no insert in flight."""
        data: dict[str, Any] = {"after": death_ref(death.to_json()), "paused_s": round(time.time() - began, 2),
                                **figures}
        self.context.fire_event(component="harness", type=events.ROWS_CHECKED, detail=detail, data=data)
