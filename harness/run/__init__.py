"""The one run lifecycle of `run` and `ui`: lifecycle (the run from target start to verdict), guards
(checks before load, stop events), locust_procs (Locust processes), jsonl_tail (reading acks and
records as they grow), inject (fault injection), live_view (the terminal view)."""
