"""`milvus-harness scenarios`: list the built-in scenarios, or show one's fields."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  milvus-harness scenarios                                       # the built-in scenarios
  milvus-harness scenarios seed                                  # every field of one
  milvus-harness scenarios my-scenario.toml"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenarios", help="list the built-in scenarios, or show one",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="show this scenario's fields (a name or a .toml path)")
    p.set_defaults(func=lambda args: run(args.name))


def run(name: str | None = None) -> int:
    """Print the scenario table, or one scenario's fields."""
    from harness.console import make_console, print_scenarios

    print_scenarios(make_console(), name)
    return 0
