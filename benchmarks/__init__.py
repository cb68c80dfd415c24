"""Reproducible benchmarks: ``python -m benchmarks <name> [--quick]``; baselines run in the same run."""
