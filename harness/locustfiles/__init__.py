"""The files Locust's own processes load (`locust -f`): milvus_insert.py (the users), plus
ramp.py (the ramp's shape) for `run` without --users and ui.py (the web UI's extension) for `ui`."""
