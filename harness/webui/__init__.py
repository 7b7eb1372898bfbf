"""The web UI's shared names: the harness process (harness/webui/session.py) and the Locust process
(harness/webui/extension.py) agree on these and nothing else; static/ holds the tab's script
and style, served by Locust at /harness/static/."""

from __future__ import annotations

from pathlib import Path

#: The Locust tab's key; the tab's address is /?tab=milvus_memory
TAB_KEY = "milvus_memory"
TAB_TITLE = "Milvus memory"
#: The start form's scenario fields: Locust custom arguments --total-rows ... --partitions,
#: named as the scenario fields they override (validated like `--set`).
FORM_FIELDS = ("total_rows", "batch_rows", "shards", "partitions")
#: Environment variables that hand secrets to the Locust process (never its argv, which `ps` shows).
TOKEN_ENV = "MILVUS_HARNESS_CONTROL_TOKEN"
CREDENTIALS_ENV = "MILVUS_HARNESS_WEB_CREDENTIALS"
STATIC_DIR = Path(__file__).parent / "static"
