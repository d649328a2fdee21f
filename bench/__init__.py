"""EWX benchmarks: each module runs alone (python bench/NAME.py); bench/run.py runs them all (see bench/README.md)."""
