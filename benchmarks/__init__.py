"""Benchmarks of sgeval against its peers (torch-fidelity, clean-fid, the scipy sqrtm route, a brute-force P&R).

Run them with `nox -s bench` (or `python -m benchmarks.bench_extract` etc. from the repository root); see
benchmarks/README.md for what is measured and how to read the ratios.
"""
