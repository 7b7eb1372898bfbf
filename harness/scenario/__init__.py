"""Scenarios: the validated model and the built-in TOML files (builtin/)."""
