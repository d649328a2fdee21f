"""python -m bench: bench/run.py (every benchmark, the table, the JSON, the regression guard)."""

from bench.run import main

if __name__ == "__main__":
    main()
