"""Kubernetes: contexts and their safety checks, and kind cluster operations."""
