"""Benchmarks: each measures one layer and returns a plain, JSON-ready dict (the CLI prints it)."""
