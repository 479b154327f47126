"""`python -m loadtest SCENARIO [options] --json FILE`: run a scenario, print a table, save the figures."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from loadtest.stats import table


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description="Switchboard load tests and benchmarks")
    sub = parser.add_subparsers(dest="scenario", required=True)
    search = sub.add_parser("search", help="transcript search on a long call")
    search.add_argument("--fragments", type=int, default=10_000)
    search.add_argument("--rounds", type=int, default=200)
    search.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    if args.scenario == "search":
        from loadtest import search as scenario

        result = scenario.run(args.fragments, args.rounds)
        rows = {
            "function, first search": result["function"]["cold"],
            "function, rare word": result["function"]["rare"],
            "function, common word": result["function"]["common"],
            "naive scan (peer), rare": result["function"]["naive_rare"],
            "request, rare word": result["socket"]["rare"],
            "request, common word": result["socket"]["common"],
        }
        ratio = result["function"]["naive_rare"]["p50_ms"] / result["function"]["rare"]["p50_ms"]
        result["ratio_rare_vs_naive_p50"] = round(ratio, 1)
        print(f"search over {args.fragments} fragments; rare-word p50 {ratio:.0f}x faster than the naive scan")
    result["machine"] = machine()
    result["command"] = "python -m loadtest " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
