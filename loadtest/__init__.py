"""Load tests and benchmarks: `python -m loadtest SCENARIO [options] --json FILE`."""
