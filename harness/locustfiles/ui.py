"""The web UI's extension, as a second locustfile: `milvus-harness ui` loads
`-f milvus_insert.py,ui.py`, so the users are the insert locustfile's and this file adds the
start form's scenario fields, the "Milvus memory" tab and the hand-over of each run to the
harness (harness.webui.extension; nothing here)."""

from harness.webui import extension  # noqa: F401  (registers its arguments and listeners)
