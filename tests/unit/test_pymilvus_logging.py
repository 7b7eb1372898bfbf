"""pymilvus resets its own log level when it is first imported; the harness's quiet level holds."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter: pymilvus must not be imported yet when the command asks for quiet.
SCRIPT = """
import logging
from harness import milvus_client

milvus_client.quiet_pymilvus()
try:
    milvus_client.open_client("127.0.0.1:9", timeout=0.5)  # nothing listens: the import is what counts
except Exception:
    pass
print(logging.getLogger("pymilvus").getEffectiveLevel(), logging.getLogger("pymilvus.decorators").isEnabledFor(logging.ERROR))
"""


def test_quiet_level_survives_pymilvus_import() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    level, error_enabled = out.stdout.split()
    assert int(level) == 50 and error_enabled == "False", out.stdout + out.stderr
