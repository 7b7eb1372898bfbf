"""`milvus-harness versions`: the installable embedded Milvus versions, marking the cached ones."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  milvus-harness versions                                        # every published embedded version
  milvus-harness versions --installed                            # only those in the cache"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("versions", help="list the installable embedded Milvus versions",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--installed", action="store_true", help="only those already in the cache")
    p.set_defaults(func=lambda args: run(installed_only=args.installed))


def run(installed_only: bool = False) -> int:
    """Print the published versions (or only the installed ones), oldest first."""
    from harness.targets import install

    installed = install.installed_versions()  # oldest first
    versions = installed if installed_only else install.published_versions()
    newest = versions[-1] if versions else None
    for version in versions:
        marks = []
        if version in installed:
            marks.append("installed")
        if version == newest and not installed_only:
            marks.append("default")
        print(version + (f"  ({', '.join(marks)})" if marks else ""))
    return 0
