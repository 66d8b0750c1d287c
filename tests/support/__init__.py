"""Helpers that start real components for the tests and the benchmarks (Prometheus, exporters)."""
