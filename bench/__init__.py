"""Driftless benchmarks (issue #8): `make bench` or `python -m bench`. Results and method: bench/RESULTS.md."""
