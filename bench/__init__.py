"""Benchmarks: standalone scripts, runnable with `python bench/<name>.py` from the project root."""
