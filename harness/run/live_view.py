"""The live view of a headless run: a rich panel on a terminal, plain periodic lines otherwise.

Only the CLI owns the console; the runner hands it the figures through `update()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from harness.units import format_bytes
from harness.watch.events import Event, Sample


@dataclass
class Progress:
    """What the view shows; the runner fills it in."""

    planned: int
    acked: int = 0
    failed_inserts: int = 0
    failed_while_down: int = 0  # of failed_inserts: sent while the server was known to be down
    started: float = field(default_factory=time.time)
    load_started: float | None = None
    latest: dict[str, Sample] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    phase: str = "starting"

    def rows_per_s(self) -> float:
        if not self.load_started or not self.acked:
            return 0.0
        return self.acked / max(time.time() - self.load_started, 1e-6)


class LiveView:
    """A rich Live panel (TTY) or a plain line every `plain_every` seconds (CI logs)."""

    def __init__(self, console: Console, progress: Progress, plain_every: float = 10.0) -> None:
        self.console = console
        self.progress = progress
        self.plain_every = plain_every
        self._live: Live | None = None
        self._last_plain = 0.0

    def __enter__(self) -> "LiveView":
        if self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self) -> None:
        if self._live:
            self._live.update(self._render())
        elif time.time() - self._last_plain >= self.plain_every:
            self._last_plain = time.time()
            self.console.print(self._plain(), highlight=False)

    def event(self, event: Event) -> None:
        """Important events are printed as they happen, above the live panel."""
        clock = time.strftime("%H:%M:%S", time.localtime(event.t))
        style = {"OOMKilled": "bold red", "MemoryStall": "bold magenta", "Restarted": "yellow",
                 "Exited": "yellow", "Ready": "green",
                 "CrashLoop": "bold red"}.get(event.type, "")
        self.console.print(Text(f"{clock} {event.component}: {event.type} {event.detail}", style=style))

    def _plain(self) -> str:
        p = self.progress
        mem = "; ".join(f"{name} {format_bytes(s.memory_bytes)}/{format_bytes(s.limit_bytes)} restarts {s.restarts}"
                        for name, s in sorted(p.latest.items()))
        return (f"[{time.time() - p.started:5.0f}s] {p.phase}: rows {p.acked:,}/{p.planned:,} "
                f"({p.rows_per_s():,.0f}/s, {self._failed()} failed inserts); {mem}")

    def _failed(self) -> str:
        """"12", or "12 (10 while the server was down)": failures against a dead port apart."""
        p = self.progress
        down = f" ({p.failed_while_down} while the server was down)" if p.failed_while_down else ""
        return f"{p.failed_inserts}{down}"

    def _render(self) -> Group:
        p = self.progress
        table = Table.grid(padding=(0, 2))
        table.add_row("phase", p.phase)
        table.add_row("elapsed", f"{time.time() - p.started:.0f} s")
        table.add_row("rows acked", f"{p.acked:,} / {p.planned:,}  ({p.rows_per_s():,.0f} rows/s)")
        table.add_row("", ProgressBar(total=max(p.planned, 1), completed=p.acked, width=40))
        if p.failed_inserts:
            table.add_row("failed inserts", Text(self._failed(), style="yellow"))
        for name, s in sorted(p.latest.items()):
            limit = s.limit_bytes or 0
            bar = ProgressBar(total=max(limit, 1), completed=min(s.memory_bytes or 0, limit), width=40,
                              complete_style="red" if limit and (s.memory_bytes or 0) > 0.9 * limit else "cyan")
            table.add_row(f"{name} memory",
                          f"{format_bytes(s.memory_bytes)} / {format_bytes(s.limit_bytes)}  restarts {s.restarts}")
            if limit:
                table.add_row("", bar)
        return Group(table)
