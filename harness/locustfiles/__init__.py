"""The files Locust's own processes load (`locust -f`): insert.py for `run`, ui.py for `ui`."""
