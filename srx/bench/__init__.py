"""Benchmarks: latency, memory and accuracy of every backend (srx bench)."""
