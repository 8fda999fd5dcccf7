"""Benchmarks are run by hand (see README.md), never collected as tests."""

collect_ignore_glob = ["*.py"]
