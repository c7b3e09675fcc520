"""Benchmarks: bring-up critical path and program cost as the cluster grows (see bringup.py)."""
