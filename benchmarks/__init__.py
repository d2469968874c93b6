"""Benchmarks: each script runs gencritic and a peer on the same work and prints the ratio."""
