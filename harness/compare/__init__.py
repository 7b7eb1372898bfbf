"""Across runs: run keys and reuse, the version matrix, the bisect search and command."""
