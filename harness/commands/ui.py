"""`milvus-harness ui`: Locust's web UI on a real target with a live "Milvus memory" tab, until Ctrl-C.

The session (target, runs, Locust, control channel) is harness/webui/session.py; this is its
command line and its order of start and shutdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Callable

from harness.commands.options import add_run_options, run_options_from_args
from harness.errors import ExitCode, Interrupted, TargetError, sigterm_interrupts
from harness.units import format_bytes
from harness.webui import TAB_KEY
from harness.webui.options import WebOptions, bind_warning, hold_port

if TYPE_CHECKING:
    from rich.console import Console

    from harness.run.lifecycle import RunOptions
    from harness.webui.session import UiSession

EXAMPLES = """examples:
  milvus-harness ui --scenario smoke                             # then open http://127.0.0.1:8089
  milvus-harness ui --workers 2 --web-host 0.0.0.0 --web-login admin:CHANGE-ME"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="Locust's web UI with a live Milvus memory tab: start runs from a browser",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(p)
    web = p.add_argument_group("web UI")
    web.add_argument("--web-host", default="127.0.0.1",
                     help="interface of the web UI (default 127.0.0.1; 0.0.0.0 for all, with a login)")
    web.add_argument("--web-port", type=int, default=8089, help="port of the web UI (default 8089)")
    web.add_argument("--web-login", metavar="USER:PASSWORD", help="Locust's login page, for this one user")
    web.add_argument("--web-auth", metavar="USER:PASSWORD", help="HTTP basic auth on every page of the web UI")

    def from_args(args: argparse.Namespace) -> int:
        from harness.console import make_console

        web_options = WebOptions(host=args.web_host, port=args.web_port, login=args.web_login, auth=args.web_auth)
        return run(run_options_from_args(args), web_options, console=make_console())

    p.set_defaults(func=from_args)


def run(options: RunOptions, web: WebOptions, console: Console | None = None,
        on_ready: Callable[[UiSession], None] | None = None) -> int:
    """`milvus-harness ui`: until Ctrl-C or SIGTERM; returns 0 after a clean shutdown.

    A target that does not start is a TargetError (exit 125), as for `run`.
    """
    from rich.console import Console

    from harness.webui.session import UiSession

    console = console or Console()
    warning = bind_warning(web)
    held_port = hold_port(web)
    try:
        session = UiSession(options, web, console)  # validates the scenario and options first
    except BaseException:
        held_port.close()
        raise
    if warning:
        print(f"milvus-harness: {warning}", file=sys.stderr, flush=True)
    exit_code = 0
    try:
        with sigterm_interrupts():
            try:
                control_url = session.start_control()
                console.print(f"starting milvus {session.target_options.milvus_version or ''} "
                              f"({session.target_options.target}) ...".replace("  ", " "), highlight=False)
                session.start_target()
                facts = session.facts
                console.print(f"milvus {facts.get('milvus_version') or ''} ({facts.get('target')}) at "
                              f"{session.endpoint.address if session.endpoint else '?'}, memory limit "
                              f"{format_bytes(facts.get('memory_limit_bytes'))} ({facts.get('isolation') or 'none'})",
                              highlight=False)
                held_port.close()
                session.start_locust(control_url)
                session.locust.wait_ready(web, 60.0)
                console.print(f"Locust web UI: {web.url}/  (memory tab: {web.url}/?tab={TAB_KEY}); "
                              f"runs go to {options.report_dir}/; Ctrl-C to quit", highlight=False)
                if on_ready:
                    on_ready(session)
                while True:
                    if not session.locust.running():
                        raise TargetError(f"Locust exited ({session.locust.returncode}):\n{session.locust.log_tail()}")
                    time.sleep(0.5)
            except KeyboardInterrupt:
                exit_code = int(ExitCode.INTERRUPTED)
            except Interrupted as exc:
                exit_code = exc.exit_code
    finally:
        held_port.close()
        session.close(exit_code or int(ExitCode.INTERRUPTED))
    console.print("milvus-harness ui: stopped; nothing left running", highlight=False)
    return 0
