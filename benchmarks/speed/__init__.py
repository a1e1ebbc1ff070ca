"""The training-and-serving speed benchmark (`python -m benchmarks.speed`; see __main__.py)."""
