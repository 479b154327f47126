"""Smoke runs of the load-test scenarios: seconds, tiny numbers, and a report that adds up (never speed)."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.__main__ import main


def test_routing_smoke_run_reports_consistent_figures(tmp_path: Path):
    report_path, records_path = tmp_path / "routing.json", tmp_path / "records.jsonl"
    args = ["routing", "--agents", "4", "--rate", "8", "--aht", "0.2", "--duration", "2", "--workers", "1"]
    assert main([*args, "--manual", "--json", str(report_path), "--records", str(records_path)]) == 0
    report = json.loads(report_path.read_text())
    counts = report["engagements"]
    assert counts["created"] > 0 and counts["created"] == counts["offered"] == counts["completed"]
    latency = report["ring_latency"]
    assert 0 <= latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert report["erlang_c"]["offered_load_erlangs"] > 0 and 0 <= report["erlang_c"]["p_wait"] <= 1
    assert report["wait"]["ideal_fifo_mean_ms"] >= 0 and report["load_generator_cpu_s"] > 0
    assert report["server_cpu_s"] > 0 and report["machine"]["cpus"] >= 1
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    assert len(records) == counts["created"]
    assert all(r["created"] <= r["offered"] <= r["freed"] for r in records)
    assert report_path.with_suffix(".png").stat().st_size > 1000


def test_search_smoke_run_reports_every_measurement(tmp_path: Path):
    out = tmp_path / "search.json"
    assert main(["search", "--fragments", "2000", "--rounds", "5", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for part, names in (("function", ["cold", "rare", "common", "naive_rare"]), ("socket", ["rare", "common"])):
        for name in names:
            assert report[part][name]["count"] > 0, (part, name)
    assert report["ratio_rare_vs_naive_p50"] > 1
