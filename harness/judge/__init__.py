"""Judging a run: the summary, the verdict rules, the row checks after restarts and at the end."""
