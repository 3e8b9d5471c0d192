"""Benchmarks: run with `just bench`; results go to BENCHMARKS.md. Not part of the test suite."""
